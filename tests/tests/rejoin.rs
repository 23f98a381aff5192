//! What an operator saw go wrong across a mesh (issue 14): a machine rebuilt with a new
//! identity under its old name left the other agents showing its roots dead; `logs` on
//! one agent of an instance hosted by another said "no script run recorded"; `app list`
//! counted started instances differently from `status`.

use roboconf_tests::{ok, Agent};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
const START: &str = "#!/bin/bash\necho \"started $ROBOCONF_INSTANCE_PATH on $(basename $(dirname $(dirname $(dirname $PWD))))\"\n";
/// Stops and undeploys are journalled (`$JOURNAL`, when set).
const STOP: &str = "#!/bin/bash\n[ -n \"$JOURNAL\" ] && echo \"$(basename $0 .sh) $ROBOCONF_INSTANCE_PATH\" >> \"$JOURNAL\"\nexit 0\n";

fn app(root: &Path) -> PathBuf {
    roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", START),
            ("graph/App/scripts/start.sh", START),
            ("graph/App/scripts/stop.sh", STOP),
            ("graph/App/scripts/undeploy.sh", STOP),
        ],
    )
}

fn args<'a>(host: &'a str, node: &'a str) -> [&'a str; 6] {
    [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--host",
        host,
        "--node",
        node,
    ]
}

/// `node-a` hosting `/vm-db`, `node-b` hosting `/vm-app`, the application started.
fn started_pair(root: &Path) -> (Agent, Agent) {
    let a = Agent::start(&root.join("a"), &args("shop:/vm-db", "node-a"), &[]);
    a.init_mesh();
    let b = Agent::start(&root.join("b"), &args("shop:/vm-app", "node-b"), &[]);
    b.join(&a);
    ok(&a.cli(&["app", "add", &app(root).display().to_string(), "--start"]));
    for agent in [&a, &b] {
        agent.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    }
    (a, b)
}

fn member_states(a: &Agent) -> Vec<(String, String, String)> {
    let o = a.cli(&["members", "--json"]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("id"), s("state"))
        })
        .collect()
}

/// node-b's data dir is lost; it comes back under the same name with a new identity and
/// a new token. Every agent shows its root hosted by the live node-b again within the
/// propagation bound, and the old identity as retired; `instance bind` by name picks the
/// live member.
#[test]
fn a_name_reused_by_a_new_identity_takes_its_roots_everywhere() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, mut b) = started_pair(tmp.path());
    let old_id = member_states(&a)
        .into_iter()
        .find(|(n, _, _)| n == "node-b")
        .map(|(_, id, _)| id)
        .expect("node-b");
    b.kill9();
    std::fs::remove_dir_all(tmp.path().join("b")).expect("rm data dir");
    a.wait_states("shop", &["/vm-app"], "PROBLEM");
    let journal = tmp.path().join("journal");
    let j = journal.display().to_string();
    let mut b2 = Agent::start(
        &tmp.path().join("b"),
        &args("shop:/vm-app", "node-b"),
        &[("JOURNAL", j.as_str())],
    );
    b2.join(&a);
    // On both agents, within the bound: the root and what runs under it, on node-b.
    for agent in [&a, &b2] {
        let o = agent.cli(&[
            "wait",
            "shop",
            "--state",
            "DEPLOYED_STARTED",
            "--timeout",
            "30s",
        ]);
        ok(&o);
        agent.wait_states("shop", &["/vm-app"], "DEPLOYED_STARTED");
        let s = agent.status("shop");
        let root = s["instances"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["path"] == "/vm-app").cloned())
            .expect("root");
        assert_eq!(root["node"], "node-b", "{root}");
        assert!(root["last_error"].is_null(), "{root}");
    }
    let members = member_states(&a);
    assert!(
        members
            .iter()
            .any(|(n, id, s)| n == "node-b" && *id == old_id && s == "retired"),
        "{members:?}"
    );
    assert!(
        members
            .iter()
            .any(|(n, id, s)| n == "node-b" && *id != old_id && s == "alive"),
        "{members:?}"
    );
    // The new identity restarts: it starts before it knows that the old one is dead,
    // and what it took over stays (the move was written down): nothing is stopped.
    b2.kill9();
    let b2 = Agent::start(
        &tmp.path().join("b"),
        &args("shop:/vm-app", "node-b"),
        &[("JOURNAL", j.as_str())],
    );
    b2.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
    let watch = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watch {
        assert_eq!(b2.state("shop", "/vm-app/app"), "DEPLOYED_STARTED");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stops = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(stops.is_empty(), "stopped after its restart: {stops}");
    // Binding by name picks the member that is alive, and nothing moves.
    let out = ok(&a.cli(&["instance", "bind", "shop", "/vm-app", "node-b"]));
    assert!(out.contains("node-b"), "{out}");
    a.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
}

/// `logs` on one agent of an instance another hosts fetches the runs from it; an
/// unknown path is an error. `app list` counts started instances as `status` does.
#[test]
fn logs_and_counts_answer_for_the_whole_mesh() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = started_pair(tmp.path());
    let text = ok(&a.cli(&["logs", "shop", "/vm-app/app"]));
    assert!(text.contains("started /vm-app/app on b"), "{text}");
    let json = ok(&b.cli(&["logs", "shop", "/vm-db/db", "--json"]));
    assert!(json.contains("started /vm-db/db on a"), "{json}");
    let o = a.cli(&["logs", "shop", "/vm-app/nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no instance"));
    let o = a.cli(&["logs", "nope", "/vm-app/app"]);
    assert_eq!(o.status.code(), Some(1));
    for agent in [&a, &b] {
        let list = ok(&agent.cli(&["app", "list"]));
        assert!(list.contains("(4 instances, 4 started)"), "{list}");
        let status = ok(&agent.cli(&["status", "shop"]));
        assert!(status.contains("(4 instances, 4 started)"), "{status}");
    }
    // A dead host's runs cannot be fetched: said so, not "no run recorded".
    let mut b = b;
    b.kill9();
    a.wait_states("shop", &["/vm-app"], "PROBLEM");
    let o = a.cli(&["logs", "shop", "/vm-app/app"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("which is dead"), "{err}");
}

fn counter(a: &Agent, name: &str) -> u64 {
    let o = a.cli(&["stats", "--json"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_default()[name]
        .as_u64()
        .unwrap_or(0)
}

/// Tombstones are collected while a member is down (issue 15): node-c, which hosts the
/// importer, is killed; the database stops (its exports are withdrawn); the two live
/// agents collect the withdrawal; node-c comes back from its disk — which still holds
/// the exports — and must not take them for current: the database's origin reaches it
/// whole, and its importer goes UNRESOLVED as it would have, had it been up.
#[test]
fn a_member_down_across_a_collection_does_not_bring_a_withdrawal_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let conf = tmp.path().join("agent.toml");
    std::fs::write(&conf, "collect-every-secs = 1\ncollect-after-secs = 2\n").expect("conf");
    let conf = conf.display().to_string();
    let start = |dir: &str, extra: &[&str]| {
        let mut v = vec![
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--config",
            conf.as_str(),
        ];
        v.extend_from_slice(extra);
        Agent::start(&tmp.path().join(dir), &v, &[])
    };
    let a = start("a", &["--host", "shop:/vm-db", "--node", "node-a"]);
    a.init_mesh();
    let b = start("b", &["--node", "node-b"]);
    b.join(&a);
    let mut c = start("c", &["--host", "shop:/vm-app", "--node", "node-c"]);
    c.join(&a);
    ok(&a.cli(&[
        "app",
        "add",
        &app(tmp.path()).display().to_string(),
        "--start",
    ]));
    for agent in [&a, &b, &c] {
        agent.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    }
    // node-c's importer started on the database's exports: its own write of that state
    // was made durable with the copy of the exports it started on.
    c.kill9();
    ok(&a.cli(&["instance", "stop", "shop", "/vm-db/db"]));
    for agent in [&a, &b] {
        agent.wait_until("the withdrawal collected", Duration::from_secs(60), |x| {
            counter(x, "tombstones_collected") >= 1
        });
    }
    let c = start("c", &["--host", "shop:/vm-app", "--node", "node-c"]);
    // Once node-c has node-a alive and its word on the database, the importer is
    // UNRESOLVED, and stays so: nothing it held of the exports counts again.
    c.wait_until("node-a alive", Duration::from_secs(30), |x| {
        member_states(x)
            .iter()
            .any(|(n, _, st)| n == "node-a" && st == "alive")
    });
    c.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STOPPED");
    c.wait_states("shop", &["/vm-app/app"], "UNRESOLVED");
    let watch = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < watch {
        assert_eq!(c.state("shop", "/vm-app/app"), "UNRESOLVED");
        std::thread::sleep(Duration::from_millis(100));
    }
}
