//! Benchmark of the coordinator with real agent processes on loopback: leader failover
//! (`kill -9` of the leader → another agent reports itself leader), with 3 and 5 voters,
//! the killed agent restarted between rounds; and the deploy of a root whose component
//! has a `local` target (`instance start` of a new root → its machine's agent joined and
//! the instance under the root DEPLOYED_STARTED), each machine retired again between
//! rounds. Run with `cargo bench -p roboconf-agent --bench coordinator`
//! (`COORD_ROUNDS=20` rounds per figure, default 10).

use roboconf_tests::launch::{deploy_root, mesh, quantile, write_app};
use roboconf_tests::{wait, Agent};
use std::time::{Duration, Instant};

const LISTEN: &str = "/ip4/127.0.0.1/tcp/0";

/// Whether `a` is the coordinator's leader (false when it does not answer).
fn leads(a: &Agent) -> bool {
    a.json(&["stats", "--json"])["coordinator_leader"] == 1
}

fn failover(voters: usize, rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut agents = mesh(tmp.path(), voters, voters, LISTEN);
    let mut times = Vec::new();
    for _ in 0..rounds {
        let Some(k) = agents.iter().position(leads) else {
            wait("a leader", Duration::from_secs(30), || {
                agents.iter().any(leads)
            });
            continue;
        };
        agents[k].kill9();
        let t = Instant::now();
        wait("a new leader", Duration::from_secs(30), || {
            agents.iter().any(leads)
        });
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        // The killed voter comes back (same store) and follows.
        let (dir, name) = (agents[k].data_dir.clone(), format!("a{k}"));
        agents[k] = Agent::start(&dir, &["--listen", LISTEN, "--node", &name], &[]);
        let back = &agents[k];
        wait(
            "the restarted voter to follow",
            Duration::from_secs(30),
            || {
                let s = back.json(&["stats", "--json"]);
                s["coordinator_voter"] == 1 && s["coordinator_commit"].as_u64() > Some(1)
            },
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    times
}

fn deploys(rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let machines = root.join("machines");
    write_app(
        &root.join("app"),
        &format!(
            "id = here\nhandler = local\nlocal.dir = {}\n",
            machines.display()
        ),
    );
    let agents = mesh(root, 3, 3, LISTEN);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &root.join("app").display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (0..rounds)
        .map(|k| {
            deploy_root(a, k, Duration::from_secs(60), || {
                std::fs::read_dir(&machines).map_or(0, |d| d.count()) == 0
            })
        })
        .collect()
}

fn main() {
    let rounds: usize = std::env::var("COORD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let only_deploy = std::env::var_os("COORD_DEPLOY_ONLY").is_some();
    for voters in [3, 5].into_iter().filter(|_| !only_deploy) {
        let mut t = failover(voters, rounds);
        println!(
            "failover after kill -9 of the leader, {voters} voters: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
            quantile(&mut t, 0.5),
            quantile(&mut t, 0.99),
            quantile(&mut t, 1.0),
            t.len()
        );
    }
    let mut t = deploys(rounds);
    println!(
        "deploy of a root with the local target (instance start -> machine joined, its instance DEPLOYED_STARTED): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
        quantile(&mut t, 0.5),
        quantile(&mut t, 0.99),
        quantile(&mut t, 1.0),
        t.len()
    );
}
