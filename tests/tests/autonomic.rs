//! Autonomic management with real processes on loopback: commands files run through the
//! coordinator (`roboconf exec`), their history answered by any agent, files written and
//! e-mails sent (to an SMTP sink the test starts) by the leader, a file that no longer fits
//! the model failing whole, a query that finds nothing skipping; scheduled jobs; a probe
//! hit firing a rule whose command launches a machine — once, although the leader is
//! killed between the event and the command's execution; and bad files reported by
//! `roboconf validate` with file and line.

use roboconf_tests::smtp::Sink;
use roboconf_tests::{wait, Agent};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Web;\n}\nWeb {\n\tinstaller: script;\n\texports: ip;\n}\n";
const INSTANCES: &str =
    "instance of VM {\n\tname: vm 1;\n\tinstance of Web {\n\t\tname: web;\n\t}\n}\n";
const START: &str = "#!/bin/bash\necho \"start $ROBOCONF_INSTANCE_PATH\" >> \"$JOURNAL\"\n";

/// What the live agents and machines say, for a failure's message.
fn diagnose(agents: &[Agent], dead: usize, machines: &Path, journal: &str) -> String {
    let tail = |p: &Path| {
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n")
    };
    let mut out = String::new();
    for (k, a) in agents.iter().enumerate().filter(|(k, _)| *k != dead) {
        out += &format!(
            "--- agent {k}\nstats {}\nhistory {:?}\nstatus {}\nlog:\n{}\n",
            json(a, &["stats", "--json"]),
            history(a),
            a.status("shop"),
            tail(&a.log)
        );
    }
    for e in std::fs::read_dir(machines).into_iter().flatten().flatten() {
        out += &format!(
            "--- machine {:?}\n{}\n",
            e.path(),
            tail(&e.path().join("agent.log"))
        );
    }
    out + &format!(
        "--- journal\n{}",
        std::fs::read_to_string(journal).unwrap_or_default()
    )
}

fn json(a: &Agent, args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&a.cli(args).stdout).unwrap_or_default()
}

fn history(a: &Agent) -> Vec<serde_json::Value> {
    json(a, &["history", "shop", "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn start(root: &Path, name: &str, config: &Path, env: &[(&str, &str)]) -> Agent {
    let config = config.display().to_string();
    Agent::start(
        &root.join(name),
        &[
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--node",
            name,
            "--config",
            &config,
        ],
        env,
    )
}

/// Three voters sharing one config file.
fn three(root: &Path, config: &Path, env: &[(&str, &str)]) -> Vec<Agent> {
    let a = start(root, "a", config, env);
    a.init_mesh();
    let b = start(root, "b", config, env);
    b.join(&a);
    let c = start(root, "c", config, env);
    c.join(&a);
    let agents = vec![a, b, c];
    wait("three voters and a leader", Duration::from_secs(30), || {
        let v = json(&agents[0], &["coordinator", "--json"]);
        v["voters"].as_array().map_or(0, |l| l.len()) == 3 && v["leader"].is_string()
    });
    agents
}

/// The machines of the `local` target, killed (if any is left) when dropped.
struct Machines(PathBuf);

impl Drop for Machines {
    fn drop(&mut self) {
        roboconf_tests::kill_machines(&self.0);
    }
}

fn app(root: &Path, files: &[(&str, &str)]) -> (PathBuf, Machines) {
    let dir = root.join("machines");
    let target = format!(
        "handler = local\nid = here\nname = this host\nlocal.dir = {}\n",
        dir.display()
    );
    let mut all = vec![
        ("graph/VM/target.properties", target.as_str()),
        ("graph/Web/scripts/start.sh", START),
    ];
    all.extend_from_slice(files);
    let app = roboconf_tests::shop_app(root, GRAPH, INSTANCES, &all);
    (app, Machines(dir))
}

fn exec(a: &Agent, command: &str) -> (bool, serde_json::Value) {
    let o = a.cli(&["exec", "shop", command, "--json", "--timeout", "60s"]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_default();
    (o.status.success(), v)
}

#[test]
fn commands_run_once_through_the_coordinator_and_every_agent_shows_the_history() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let sink = Sink::start();
    let config = root.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[email]\nhost = \"127.0.0.1\"\nport = {}\nfrom = \"mesh@example.org\"\ndefault-recipients = [\"oncall@example.org\"]\n",
            sink.port()
        ),
    )
    .expect("config");
    let (app, _machines) = app(
        root,
        &[
            (
                "commands/notify.commands",
                "define N = vm $(SMART_INDEX)\ncreate VM as $(N)\ncreate Web as web under /$(N)\nwrite $(N) into %TMP%/created.txt\nappend second into %TMP%/created.txt\nemail ops@example.org with Subject: Created\\n$(N) was created\n",
            ),
            ("commands/once.commands", "create VM as vm-x\n"),
            (
                "commands/skip.commands",
                "define L = vm $(EXISTING_INDEX MAX > 100)\nstop all /$(L)\nexecute tick\n",
            ),
            ("commands/tick.commands", "define T = $(MILLI_TIME)\nappend $(T) into %TMP%/ticks\n"),
        ],
    );
    let agents = three(root, &config, &[]);
    let o = agents[0].cli(&["app", "add", &app.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait(
        "the application everywhere",
        Duration::from_secs(30),
        || {
            agents
                .iter()
                .all(|a| a.cli(&["status", "shop"]).status.success())
        },
    );
    // From the third agent: the command runs on the leader, once.
    let (ok, h) = exec(&agents[2], "notify");
    assert!(ok, "{h}");
    assert_eq!(h["result"], "ok", "{h}");
    assert_eq!(h["origin"], "operator", "{h}");
    for a in &agents {
        a.wait_until("/vm 2/web created", Duration::from_secs(20), |a| {
            a.status("shop")["instances"]
                .as_array()
                .is_some_and(|l| l.iter().any(|i| i["path"] == "/vm 2/web"))
        });
    }
    let mails = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["ops@example.org", "oncall@example.org"]);
    assert!(
        mails[0].data.contains("Subject: Created"),
        "{}",
        mails[0].data
    );
    assert!(
        mails[0].data.contains("vm 2 was created"),
        "{}",
        mails[0].data
    );
    let written: Vec<String> = agents
        .iter()
        .filter_map(|a| {
            std::fs::read_to_string(a.data_dir.join("autonomic/files/created.txt")).ok()
        })
        .collect();
    assert_eq!(written, ["vm 2\nsecond"], "written once, on the leader");
    // A file that no longer fits the model fails whole, with its line.
    let (ok, h) = exec(&agents[1], "once");
    assert!(ok, "{h}");
    let (ok, h) = exec(&agents[0], "once");
    assert!(!ok, "{h}");
    assert_eq!(h["result"], "error", "{h}");
    let reason = h["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("once.commands:1: instance `/vm-x` already exists"),
        "{reason}"
    );
    // A query that finds nothing skips what uses it; `execute` runs another file.
    let (ok, h) = exec(&agents[0], "skip");
    assert!(ok, "{h}");
    assert_eq!(h["result"], "ok_with_skipped", "{h}");
    let (ok, _) = exec(&agents[0], "tick");
    assert!(ok);
    // Any agent answers the history: origins, results.
    for a in &agents {
        a.wait_until("the whole history", Duration::from_secs(20), |a| {
            history(a).len() >= 6
        });
    }
    let h = history(&agents[1]);
    let line = |cmd: &str| h.iter().filter(|x| x["command"] == cmd).count();
    assert_eq!(line("notify"), 1, "{h:?}");
    assert_eq!(line("once"), 2, "{h:?}");
    assert!(h
        .iter()
        .any(|x| x["command"] == "tick" && x["origin"] == "command" && x["details"] == "skip"));
    // Scheduled jobs: every 2 s, listed with their next instant, replicated, removed.
    let o = agents[1].cli(&[
        "job",
        "add",
        "shop",
        "--name",
        "ticker",
        "--command",
        "tick",
        "--cron",
        "*/2 * * * * ?",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = agents[1].cli(&[
        "job",
        "add",
        "shop",
        "--name",
        "bad",
        "--command",
        "tick",
        "--cron",
        "0 0 25 * * ?",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("hours: `25`"), "{err}");
    let jobs = json(&agents[2], &["job", "list", "--json"]);
    assert_eq!(jobs[0]["name"], "ticker", "{jobs}");
    assert!(jobs[0]["next_ms"].as_u64().is_some(), "{jobs}");
    let jobs_run = |a: &Agent| {
        history(a)
            .iter()
            .filter(|x| x["origin"] == "job")
            .map(|x| x["occurrence"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    agents[0].wait_until("three instants fired", Duration::from_secs(30), |a| {
        jobs_run(a).len() >= 3
    });
    let fired = jobs_run(&agents[0]);
    let mut unique = fired.clone();
    unique.dedup();
    assert_eq!(fired, unique, "each instant once");
    let o = agents[0].cli(&["job", "remove", "shop", "ticker"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait("the removal everywhere", Duration::from_secs(10), || {
        json(&agents[2], &["job", "list", "--json"])
            .as_array()
            .is_some_and(|l| l.is_empty())
    });
}

/// A probe (`file`, `Delete if exists`: one hit per trigger file) fires a rule whose
/// command replicates the machine and starts it; the leader is killed as soon as the hit
/// is published: one execution, one new machine, one start of its instance.
#[test]
fn a_rule_fires_once_and_its_command_runs_once_across_a_leader_kill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let trigger = root.join("trigger");
    let probe = format!(
        "[EVENT file scale-me]\nDelete if exists {}\n",
        trigger.display()
    );
    let (app, machines) = app(
        root,
        &[
            ("probes/Web.measures", probe.as_str()),
            (
                "rules.autonomic/grow.drl",
                "rule \"grow\"\n\tsleep period is 2s\nwhen\n\tscale-me\nthen\n\tgrow\nend\n",
            ),
            (
                "commands/grow.commands",
                "define N = vm $(SMART_INDEX)\nreplicate /vm 1 as $(N)\ndeploy and start all /$(N)\n",
            ),
        ],
    );
    let journal = root.join("journal.log").display().to_string();
    let config = root.join("agent.toml");
    std::fs::write(&config, "probe-period-secs = 1\n").expect("config");
    let env = [
        ("JOURNAL", journal.as_str()),
        ("ROBOCONF_PROBE_PERIOD_SECS", "1"),
    ];
    let mut agents = three(root, &config, &env);
    let o = agents[0].cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[0].wait_until("/vm 1/web started", Duration::from_secs(60), |a| {
        a.state("shop", "/vm 1/web") == "DEPLOYED_STARTED"
    });
    let leader = json(&agents[0], &["coordinator", "--json"])["leader"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let l = (0..3)
        .find(|&k| json(&agents[k], &["stats", "--json"])["coordinator_leader"] == 1)
        .expect("the leader");
    std::fs::write(&trigger, "go").expect("trigger");
    wait("the probe's hit", Duration::from_secs(20), || {
        !trigger.exists()
    });
    agents[l].kill9();
    let s = (l + 1) % 3;
    agents[s].wait_until("/vm 2/web started", Duration::from_secs(90), |a| {
        a.state("shop", "/vm 2/web") == "DEPLOYED_STARTED"
    });
    agents[s].wait_until(
        "the execution in the history",
        Duration::from_secs(30),
        |a| {
            history(a)
                .iter()
                .any(|h| h["origin"] == "rule" && h["result"] == "ok")
        },
    );
    let h = history(&agents[s]);
    let runs: Vec<&serde_json::Value> = h.iter().filter(|h| h["details"] == "grow").collect();
    assert_eq!(runs.len(), 1, "one execution: {h:?}");
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert_eq!(
        text.matches("start /vm 2/web").count(),
        1,
        "one start: {text}"
    );
    assert!(!text.contains("/vm 3/"), "{text}");
    assert_eq!(
        roboconf_tests::live_machines(&machines.0).len(),
        2,
        "one new machine (leader was {leader})"
    );
    // A later occurrence fires the rule again: a third machine. It must come after the
    // rule's sleep period (2 s from its firing, which precedes the execution's start): an
    // occurrence inside it is dropped, as Roboconf drops it.
    let first_start = runs[0]["start_ms"].as_u64().expect("start_ms");
    let rested = std::time::UNIX_EPOCH + Duration::from_millis(first_start + 2_500);
    wait("the rule's sleep period", Duration::from_secs(10), || {
        std::time::SystemTime::now() >= rested
    });
    std::fs::write(&trigger, "again").expect("trigger");
    wait("the second hit", Duration::from_secs(20), || {
        !trigger.exists()
    });
    let end = Instant::now() + Duration::from_secs(90);
    while agents[s].state("shop", "/vm 3/web") != "DEPLOYED_STARTED" {
        assert!(
            Instant::now() < end,
            "/vm 3/web not started:\n{}",
            diagnose(&agents, l, &machines.0, &journal)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = agents[s].cli(&["app", "undeploy", "shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[s].wait_until("every machine terminated", Duration::from_secs(90), |_| {
        roboconf_tests::live_machines(&machines.0).is_empty()
    });
}

#[test]
fn bad_commands_rules_and_probes_are_reported_with_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (app, _m) = app(
        tmp.path(),
        &[
            (
                "commands/broken.commands",
                "create VM as ok\nexplode everything\n",
            ),
            ("commands/loop.commands", "execute loop\n"),
            ("commands/unset.commands", "stop all /$(NOPE)\n"),
            (
                "rules.autonomic/r.drl",
                "rule \"r\"\nwhen\n\tevt\nthen\n\tmissing\nend\n",
            ),
            (
                "probes/Web.measures",
                "[EVENT snmp e]\nx\n[EVENT rest e2]\nGET /\n",
            ),
        ],
    );
    let o = roboconf_tests::roboconf(&["validate", &app.display().to_string()]);
    let text =
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{text}");
    for expected in [
        "commands/broken.commands:2:1: error[CMD_UNRECOGNIZED_INSTRUCTION]",
        "commands/loop.commands:1:",
        "commands/unset.commands:1:",
        "rules.autonomic/r.drl:1:1: error[RULE_UNKNOWN_COMMAND]",
        "probes/Web.measures:1:1: warning[PROBE_UNKNOWN_HANDLER]",
        "probes/Web.measures:3:1: error[PROBE_INVALID_SYNTAX]",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
}
