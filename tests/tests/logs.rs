//! The agent's logs (issue 19): `--log-format json` writes one JSON object per line,
//! with level, target and fields, and a script's events carry the span of its run
//! (application, instance, action); no secret reaches any log of a mesh being formed
//! and deploying (join tokens, the CA key); `--log warn` silences the info events while
//! the announcements stay; a filter that is not one is refused at start.

use roboconf_tests::{log, shop_app, Agent};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App, Bad;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\nBad {\n\tinstaller: script;\n}\n";
const START: &str = "#!/bin/bash\nexit 0\n";
const FAIL: &str = "#!/bin/bash\necho broken >&2\nexit 3\n";

fn app(root: &Path, instances: &str) -> PathBuf {
    shop_app(
        root,
        GRAPH,
        instances,
        &[
            ("graph/Db/scripts/deploy.sh", START),
            ("graph/Db/scripts/start.sh", START),
            ("graph/App/scripts/start.sh", START),
            ("graph/Bad/scripts/deploy.sh", FAIL),
        ],
    )
}

fn add_start(agent: &Agent, app: &Path) {
    let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// A database and a broken component on one machine.
const ONE_VM: &str = "instance of VM {\n\tname: vm;\n\tinstance of Db {\n\t\tname: db;\n\t}\n\tinstance of Bad {\n\t\tname: bad;\n\t}\n}\n";

#[test]
fn json_lines_carry_level_target_fields_and_the_run_span() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let args = [
        "--host",
        "shop:/vm",
        "--log-format",
        "json",
        "--log",
        "info,roboconf_agent::runtime=debug",
    ];
    let a = Agent::start(&tmp.path().join("a"), &args, &[]);
    add_start(&a, &app(tmp.path(), ONE_VM));
    a.wait_states("shop", &["/vm/db"], "DEPLOYED_STARTED");
    a.wait_until("the failed deploy logged", Duration::from_secs(20), |a| {
        a.log_text().contains("plug-in run failed")
    });
    let text = a.log_text();
    let mut runs = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        for key in ["timestamp", "level", "target"] {
            assert!(v[key].is_string(), "no {key}: {line}");
        }
        assert!(v["fields"].is_object(), "no fields: {line}");
        if v["span"]["name"] == "run" {
            runs.push(v);
        }
    }
    // The deploy of the database ended (debug), inside its run's span.
    let deploy = runs
        .iter()
        .find(|v| v["span"]["instance"] == "/vm/db" && v["span"]["action"] == "deploy")
        .unwrap_or_else(|| panic!("no event in the run span of /vm/db's deploy:\n{text}"));
    assert_eq!(deploy["span"]["app"], "shop", "{deploy}");
    assert!(deploy["span"]["run"].is_u64(), "{deploy}");
    assert!(deploy["spans"].is_array(), "{deploy}");
    // The broken one's failure is a warning, in its span, with the error but not the
    // script's output.
    let failed = runs
        .iter()
        .find(|v| v["fields"]["message"] == "plug-in run failed")
        .unwrap_or_else(|| panic!("no failure in a run span:\n{text}"));
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert_eq!(failed["span"]["instance"], "/vm/bad", "{failed}");
    assert_eq!(failed["fields"]["error"], "exit code 3", "{failed}");
    assert!(
        !text.contains("broken"),
        "a script's output reached the log"
    );
    // The state changes are structured events the shared reader finds.
    let changes = log::state_changes(&text);
    assert!(
        changes
            .iter()
            .any(|c| c.path == "/vm/db" && c.state == "DEPLOYED_STARTED"),
        "{changes:?}"
    );
    assert!(changes.iter().all(|c| c.at_ms > 1_600_000_000_000));
}

#[test]
fn no_secret_reaches_any_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let debug = ["--log", "info,roboconf_agent=debug"];
    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"];
    let mut a_args = vec!["--host", "shop:/vm-db", "--node", "node-a"];
    a_args.extend(listen.iter().chain(&debug));
    let a = Agent::start(&root.join("a"), &a_args, &[]);
    a.init_mesh();
    let token = a.token();
    let mut b_args = vec!["--host", "shop:/vm-app", "--node", "node-b"];
    b_args.extend(listen.iter().chain(&debug));
    let b = Agent::start(&root.join("b"), &b_args, &[]);
    let o = b.cli(&["join", &a.address(), "--token", &token]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let instances = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
    let app = app(root, instances);
    add_start(&a, &app);
    add_start(&b, &app);
    b.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    // Tokens shown by `mesh token` while running, too.
    let later = a.token();
    let secret = |t: &str| t.rsplit('-').next().unwrap_or_default().to_string();
    assert_eq!(secret(&token).len(), 32, "{token}");
    // The CA key's PEM body, as the credentials file keeps it.
    let creds =
        std::fs::read_to_string(a.data_dir.join("mesh/credentials.json")).expect("credentials");
    let creds: serde_json::Value = serde_json::from_str(&creds).expect("credentials JSON");
    let ca_key: Vec<String> = creds["ca_key"]
        .as_str()
        .expect("ca_key")
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
        .map(String::from)
        .collect();
    assert!(!ca_key.is_empty());
    let mut logs = vec![a.log_text(), b.log_text()];
    assert!(
        log::state_changes(&logs[1]).len() >= 2,
        "the logs were read: {}",
        logs[1]
    );
    logs.push(std::fs::read_to_string(&a.log).unwrap_or_default());
    logs.push(std::fs::read_to_string(&b.log).unwrap_or_default());
    for (k, text) in logs.iter().enumerate() {
        for t in [&token, &later] {
            assert!(!text.contains(t.as_str()), "log {k} holds a join token");
            assert!(!text.contains(&secret(t)), "log {k} holds a token's secret");
        }
        for l in &ca_key {
            assert!(!text.contains(l.as_str()), "log {k} holds the CA key");
        }
    }
}

#[test]
fn warn_silences_info_and_announcements_stay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = app(tmp.path(), ONE_VM);
    let run = |name: &str, level: &str| {
        let args = [
            "--host",
            "shop:/vm",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--log",
            level,
        ];
        let agent = Agent::start(&tmp.path().join(name), &args, &[]);
        add_start(&agent, &app);
        agent.wait_states("shop", &["/vm/db"], "DEPLOYED_STARTED");
        agent.wait_until("the failed deploy", Duration::from_secs(20), |a| {
            a.status("shop").to_string().contains("exit code 3")
        });
        assert!(!agent.address().is_empty());
        agent.log_text()
    };
    // The same run at info: its info events are there (the check below can fail).
    let info = run("info", "info");
    assert!(
        info.lines()
            .any(|l| l.contains(" INFO ") && l.contains("instance state")),
        "{info}"
    );
    let warn = run("warn", "warn");
    let infos: Vec<&str> = warn.lines().filter(|l| l.contains(" INFO ")).collect();
    assert!(infos.is_empty(), "info lines at --log warn: {infos:?}");
    assert!(log::state_changes(&warn).is_empty(), "{warn}");
    assert!(
        warn.lines()
            .any(|l| l.contains(" WARN ") && l.contains("plug-in run failed")),
        "{warn}"
    );
    assert!(
        warn.contains("roboconf agent: ready, control socket"),
        "{warn}"
    );
}

#[test]
fn a_filter_that_is_not_one_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut child = std::process::Command::new(roboconf_tests::roboconf_bin())
        .arg("agent")
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .args(["--log", "not a[filter"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started with a bad filter");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("log `not a[filter` is not a filter"), "{err}");
    assert!(!tmp.path().join("d/control.sock").exists());
}
