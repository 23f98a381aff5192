//! Benchmark of the `netns` target with real agent processes: 3 voters listening on the
//! address of a bridge made for the run, an application whose root component launches
//! with `netns`; each round times the deploy of a new root (`instance start` → its
//! machine's agent, in its own network namespace, joined and the instance under the root
//! DEPLOYED_STARTED), then retires the machine (namespace and veth deleted) before the
//! next. Needs root and `ip` (it says so and does nothing otherwise). Run with
//! `cargo bench -p roboconf-agent --bench netns` (`NETNS_ROUNDS=20` rounds, default 10).

use roboconf_tests::netns;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");

/// A voter, killed on drop.
struct Voter {
    dir: PathBuf,
    child: Child,
}

impl Voter {
    fn start(dir: &Path, name: &str, listen: &str) -> Voter {
        std::fs::create_dir_all(dir).expect("dir");
        let log = std::fs::File::create(dir.with_extension("log")).expect("log");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["agent", "--listen", listen, "--node", name])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent");
        let v = Voter {
            dir: dir.to_path_buf(),
            child,
        };
        wait("the agent", Duration::from_secs(20), || {
            v.cli(&["app", "list"]).status.success()
        });
        v
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("roboconf")
    }

    fn ok(&self, args: &[&str]) {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.cli(args).stdout).unwrap_or_default()
    }
}

impl Drop for Voter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn app(dir: &Path, bridge: &netns::Bridge, machines: &Path) {
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w("descriptor/application.properties", "application-name = bench\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n");
    w("graph/main.graph", "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n");
    // One root declared, never deployed: the rounds create theirs.
    w(
        "instances/main.instances",
        "instance of VM {\n\tname: seed;\n}\n",
    );
    w("graph/Db/scripts/deploy.sh", "#!/bin/sh\ntrue\n");
    w(
        "graph/VM/target.properties",
        &format!(
            "id = ns\nhandler = netns\nnetns.subnet = {}\nnetns.bridge = {}\nnetns.dir = {}\n",
            bridge.subnet,
            bridge.name,
            machines.display()
        ),
    );
}

fn deploys(rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let machines = root.join("machines");
    let bridge = netns::Bridge::new(&machines);
    app(&root.join("app"), &bridge, &machines);
    let listen = format!("/ip4/{}/tcp/0", bridge.gateway);
    let first = Voter::start(&root.join("v0"), "v0", &listen);
    first.ok(&["mesh", "init", "--voters", "3"]);
    let log = root.join("v0.log");
    let mut addr = String::new();
    wait("an address", Duration::from_secs(20), || {
        addr = roboconf_tests::log::addresses(&std::fs::read_to_string(&log).unwrap_or_default())
            .into_iter()
            .find(|a| a.contains("/tcp/"))
            .unwrap_or_default();
        !addr.is_empty()
    });
    let mut voters = vec![first];
    for k in 1..3 {
        let v = Voter::start(&root.join(format!("v{k}")), &format!("v{k}"), &listen);
        let token = String::from_utf8_lossy(&voters[0].cli(&["mesh", "token"]).stdout)
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        v.ok(&["join", &addr, "--token", &token]);
        voters.push(v);
    }
    wait("three voters", Duration::from_secs(60), || {
        voters[0].json(&["coordinator", "--json"])["voters"]
            .as_array()
            .is_some_and(|l| l.len() == 3)
    });
    let a = &voters[0];
    a.ok(&["app", "add", &root.join("app").display().to_string()]);
    let mut times = Vec::new();
    for k in 0..rounds {
        let (vm, db) = (format!("/vm{k}"), format!("/vm{k}/db"));
        a.ok(&["instance", "create", "bench", &vm, "--component", "VM"]);
        a.ok(&["instance", "create", "bench", &db, "--component", "Db"]);
        let t = Instant::now();
        a.ok(&["instance", "start", "bench", &vm]);
        wait(
            "the machine and its instance",
            Duration::from_secs(60),
            || {
                let s = a.json(&["status", "bench", "--json"]);
                s["instances"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|i| i["path"] == db.as_str() && i["state"] == "DEPLOYED_STARTED")
                })
            },
        );
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        a.ok(&["instance", "undeploy", "bench", &vm]);
        wait("the machine retired", Duration::from_secs(60), || {
            bridge.machines().is_empty() && bridge.ports().is_empty()
        });
    }
    drop(voters);
    times
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
        pct(&mut t, 0.5),
        pct(&mut t, 0.99),
        pct(&mut t, 1.0),
        t.len()
    );
}
