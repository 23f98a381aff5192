//! Benchmark of the coordinator with real agent processes on loopback: leader failover
//! (`kill -9` of the leader → another agent reports itself leader), with 3 and 5 voters,
//! the killed agent restarted between rounds; and the deploy of a root whose component
//! has a `local` target (`instance start` of a new root → its machine's agent joined and
//! the instance under the root DEPLOYED_STARTED), each machine retired again between
//! rounds. Run with `cargo bench -p roboconf-agent --bench coordinator`
//! (`COORD_ROUNDS=20` rounds per figure, default 10).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");

struct Agent {
    dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn start(dir: &Path, name: &str) -> Agent {
        std::fs::create_dir_all(dir).expect("dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.with_extension("log"))
            .expect("log");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["agent", "--listen", "/ip4/127.0.0.1/tcp/0", "--node", name])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("agent");
        let a = Agent {
            dir: dir.to_path_buf(),
            child: Some(child),
        };
        wait("the agent", Duration::from_secs(20), || {
            a.cli(&["app", "list"]).status.success()
        });
        a
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("roboconf")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.cli(args).stdout).unwrap_or_default()
    }

    fn leads(&self) -> bool {
        self.child.is_some() && self.json(&["stats", "--json"])["coordinator_leader"] == 1
    }

    fn address(&self) -> String {
        let log = self.dir.with_extension("log");
        let mut found = String::new();
        wait("an address", Duration::from_secs(20), || {
            found =
                roboconf_tests::log::addresses(&std::fs::read_to_string(&log).unwrap_or_default())
                    .into_iter()
                    .find(|a| a.contains("/tcp/"))
                    .unwrap_or_default();
            !found.is_empty()
        });
        found
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
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

/// `n` agents in one mesh wanting `voters` voters, once they all are.
fn mesh(root: &Path, n: usize, voters: usize) -> Vec<Agent> {
    let first = Agent::start(&root.join("a0"), "a0");
    let v = voters.to_string();
    assert!(first
        .cli(&["mesh", "init", "--voters", &v])
        .status
        .success());
    let addr = first.address();
    let mut agents = vec![first];
    for k in 1..n {
        let a = Agent::start(&root.join(format!("a{k}")), &format!("a{k}"));
        let token = String::from_utf8_lossy(&agents[0].cli(&["mesh", "token"]).stdout)
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(a.cli(&["join", &addr, "--token", &token]).status.success());
        agents.push(a);
    }
    wait("the voters", Duration::from_secs(60), || {
        agents[0].json(&["coordinator", "--json"])["voters"]
            .as_array()
            .is_some_and(|l| l.len() == voters)
    });
    agents
}

fn failover(voters: usize, rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut agents = mesh(tmp.path(), voters, voters);
    let mut times = Vec::new();
    for _ in 0..rounds {
        let Some(k) = agents.iter().position(Agent::leads) else {
            wait("a leader", Duration::from_secs(30), || {
                agents.iter().any(Agent::leads)
            });
            continue;
        };
        agents[k].kill();
        let t = Instant::now();
        wait("a new leader", Duration::from_secs(30), || {
            agents.iter().any(Agent::leads)
        });
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        // The killed voter comes back (same store) and follows.
        let dir = agents[k].dir.clone();
        agents[k] = Agent::start(&dir, &format!("a{k}"));
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

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n";

fn deploys(rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let app = root.join("app");
    let machines = root.join("machines");
    let w = |rel: &str, text: &str| {
        let p = app.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w("descriptor/application.properties", "application-name = bench\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n");
    w("graph/main.graph", GRAPH);
    // One root declared (never deployed here): the rounds create theirs.
    w(
        "instances/main.instances",
        "instance of VM {\n\tname: seed;\n}\n",
    );
    w("graph/Db/scripts/deploy.sh", "#!/bin/sh\ntrue\n");
    w(
        "graph/VM/target.properties",
        &format!(
            "id = here\nhandler = local\nlocal.dir = {}\n",
            machines.display()
        ),
    );
    let agents = mesh(root, 3, 3);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut times = Vec::new();
    for k in 0..rounds {
        let vm = format!("/vm{k}");
        let db = format!("{vm}/db");
        assert!(a
            .cli(&["instance", "create", "bench", &vm, "--component", "VM"])
            .status
            .success());
        assert!(a
            .cli(&["instance", "create", "bench", &db, "--component", "Db"])
            .status
            .success());
        let t = Instant::now();
        assert!(a.cli(&["instance", "start", "bench", &vm]).status.success());
        wait(
            "the root's machine and its instance",
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
        assert!(a
            .cli(&["instance", "undeploy", "bench", &vm])
            .status
            .success());
        wait("the machine retired", Duration::from_secs(60), || {
            std::fs::read_dir(&machines).map_or(0, |d| d.count()) == 0
        });
    }
    times
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
            pct(&mut t, 0.5),
            pct(&mut t, 0.99),
            pct(&mut t, 1.0),
            t.len()
        );
    }
    let mut t = deploys(rounds);
    println!(
        "deploy of a root with the local target (instance start -> machine joined, its instance DEPLOYED_STARTED): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
        pct(&mut t, 0.5),
        pct(&mut t, 0.99),
        pct(&mut t, 1.0),
        t.len()
    );
}
