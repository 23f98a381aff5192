//! Benchmark of the `netns` target with real agent processes: 3 voters listening on the
//! address of a bridge made for the run, an application whose root component launches
//! with `netns`; each round times the deploy of a new root (`instance start` → its
//! machine's agent, in its own network namespace, joined and the instance under the root
//! DEPLOYED_STARTED), then retires the machine (namespace and veth deleted) before the
//! next. Needs root and `ip` (it says so and does nothing otherwise). Run with
//! `cargo bench -p roboconf-agent --bench netns` (`NETNS_ROUNDS=20` rounds, default 10).

use roboconf_tests::launch::{deploy_root, mesh, quantile, write_app};
use roboconf_tests::netns;
use std::time::Duration;

fn deploys(rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let machines = root.join("machines");
    let bridge = netns::Bridge::new(&machines);
    write_app(
        &root.join("app"),
        &format!(
            "id = ns\nhandler = netns\nnetns.subnet = {}\nnetns.bridge = {}\nnetns.dir = {}\n",
            bridge.subnet,
            bridge.name,
            machines.display()
        ),
    );
    let voters = mesh(root, 3, 3, &format!("/ip4/{}/tcp/0", bridge.gateway));
    let a = &voters[0];
    let o = a.cli(&["app", "add", &root.join("app").display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (0..rounds)
        .map(|k| {
            deploy_root(a, k, Duration::from_secs(60), || {
                bridge.machines().is_empty() && bridge.ports().is_empty()
            })
        })
        .collect()
}

fn main() {
    if !netns::available() {
        println!("netns bench skipped: it needs root and `ip`");
        return;
    }
    let rounds: usize = std::env::var("NETNS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut t = deploys(rounds);
    println!(
        "deploy of a root with the netns target (instance start -> machine in its namespace joined, its instance DEPLOYED_STARTED): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
        quantile(&mut t, 0.5),
        quantile(&mut t, 0.99),
        quantile(&mut t, 1.0),
        t.len()
    );
}
