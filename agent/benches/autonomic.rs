//! Benchmark of autonomic management. In process: the cost of evaluating an event
//! occurrence against an application's 1,000 rules (`roboconf_core::autonomic::due`,
//! what the coordinator's leader runs per occurrence), with the rules spread over 1,000
//! events and, worst case, all on the one event. With real agent processes on loopback:
//! a probe's hit (a `file` probe's trigger deleted) → the rule fired → its command
//! executed → the new machine's root (a `local` target) and its instance
//! DEPLOYED_STARTED. Run with `cargo bench -p roboconf-agent --bench autonomic`
//! (`AUTO_ROUNDS=10` rounds of the end-to-end figure, default 5).

use roboconf_core::autonomic::{due, Occurrence, Rules};
use roboconf_core::coord::autonomic::{rule_key, trigger_hash, RuleState};
use roboconf_model::rules::Rule;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// µs per evaluation of one occurrence against 1,000 rules (median of 21 batches).
fn evaluation(spread: bool) -> (f64, usize) {
    let rules: Vec<Rule> = (0..1000)
        .map(|i| Rule {
            name: format!("rule-{i}"),
            event: if spread {
                format!("event-{i}")
            } else {
                "event-0".to_string()
            },
            commands: vec!["scale".into()],
            sleep_period: 60,
            time_window: (i % 2 == 0).then_some(120),
            ..Rule::default()
        })
        .collect();
    let rules = Rules::new(rules);
    // Half of them fired before, a minute ago.
    let fired: std::collections::HashMap<String, RuleState> = (0..1000)
        .filter(|i| i % 2 == 0)
        .map(|i| {
            (
                rule_key("app", &format!("rule-{i}")),
                RuleState {
                    fired_ms: 1_000_000,
                    trigger: trigger_hash(&format!("old-{i}")),
                },
            )
        })
        .collect();
    let o = Occurrence {
        app: "app".into(),
        event: "event-0".into(),
        trigger: "node-1:1:42".into(),
        at_ms: 1_050_000,
    };
    let mut batches = Vec::new();
    let mut selected = 0;
    let n = if spread { 200_000 } else { 200 };
    for _ in 0..21 {
        let t = Instant::now();
        for _ in 0..n {
            selected = std::hint::black_box(due(&rules, &o, &fired, 1_070_000)).len();
        }
        batches.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    (median(&mut batches), selected)
}

struct Agent {
    dir: PathBuf,
    child: Option<Child>,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        std::fs::create_dir_all(dir).expect("dir");
        let log = std::fs::File::create(dir.with_extension("log")).expect("log");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["agent", "--listen", "/ip4/127.0.0.1/tcp/0", "--node", "a"])
            .env("ROBOCONF_PROBE_PERIOD_SECS", "1")
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

    fn state(&self, path: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&self.cli(&["status", "shop", "--json"]).stdout)
                .unwrap_or_default();
        v["instances"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["path"] == path))
            .and_then(|i| i["state"].as_str())
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// ms from a probe's hit to the new machine's instance DEPLOYED_STARTED.
fn end_to_end(rounds: usize) -> Vec<f64> {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path();
    let app = root.join("app");
    let machines = root.join("machines");
    let trigger = root.join("trigger");
    write(&app, "descriptor/application.properties", "application-name = shop\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n");
    write(
        &app,
        "graph/main.graph",
        "VM {\n\tinstaller: target;\n\tchildren: Web;\n}\nWeb {\n\tinstaller: script;\n}\n",
    );
    write(
        &app,
        "instances/main.instances",
        "instance of VM {\n\tname: vm 1;\n\tinstance of Web {\n\t\tname: web;\n\t}\n}\n",
    );
    write(
        &app,
        "graph/VM/target.properties",
        &format!(
            "handler = local\nid = here\nname = here\nlocal.dir = {}\n",
            machines.display()
        ),
    );
    write(&app, "graph/Web/scripts/start.sh", "#!/bin/bash\ntrue\n");
    write(
        &app,
        "probes/Web.measures",
        &format!(
            "[EVENT file grow]\nDelete if exists {}\n",
            trigger.display()
        ),
    );
    write(
        &app,
        "rules.autonomic/grow.drl",
        "rule \"grow\"\nwhen\n\tgrow\nthen\n\tgrow\nend\n",
    );
    write(
        &app,
        "commands/grow.commands",
        "define N = vm $(SMART_INDEX)\nreplicate /vm 1 as $(N)\ndeploy and start all /$(N)\n",
    );
    let a = Agent::start(&root.join("a"));
    assert!(a.cli(&["mesh", "init", "--voters", "1"]).status.success());
    let o = a.cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait("/vm 1/web", Duration::from_secs(60), || {
        a.state("/vm 1/web") == "DEPLOYED_STARTED"
    });
    let mut times = Vec::new();
    for k in 2..rounds + 2 {
        std::fs::write(&trigger, "go").expect("trigger");
        wait("the hit", Duration::from_secs(10), || !trigger.exists());
        let hit = Instant::now();
        let path = format!("/vm {k}/web");
        wait(&path, Duration::from_secs(60), || {
            a.state(&path) == "DEPLOYED_STARTED"
        });
        times.push(hit.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = a.cli(&["app", "undeploy", "shop"]);
    let _ = std::panic::catch_unwind(|| {
        wait("the machines terminated", Duration::from_secs(60), || {
            std::fs::read_dir(&machines).map_or(0, |d| d.count()) == 0
        })
    });
    drop(a);
    times
}

fn main() {
    for spread in [true, false] {
        let (us, selected) = evaluation(spread);
        println!(
            "rule evaluation of one occurrence against 1,000 rules ({}): median {us:.3} µs ({selected} rules due)",
            if spread {
                "spread over 1,000 events"
            } else {
                "all on that event"
            }
        );
    }
    let rounds: usize = std::env::var("AUTO_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut t = end_to_end(rounds);
    println!(
        "probe hit -> rule fired -> command executed -> new machine's instance DEPLOYED_STARTED (local target): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
        pct(&mut t, 0.5),
        pct(&mut t, 0.99),
        pct(&mut t, 1.0),
        t.len()
    );
}
