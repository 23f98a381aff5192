//! Two agents on loopback form a mesh and share exports: a database hosted by one agent
//! satisfies the import of an app server hosted by the other; when the database stops,
//! the importer goes UNRESOLVED there, and it starts again when the database comes back;
//! every agent shows every instance with its host, and an operator on either agent acts
//! on instances hosted by the other.
//! Real processes, real libp2p (TCP, Noise, Yamux, gossipsub, request-response), port 0.

use roboconf_tests::Agent;
use std::path::{Path, PathBuf};
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
const START: &str = "#!/bin/bash\necho \"start $ROBOCONF_INSTANCE_PATH db=${Db_0_name:-none}:${Db_0_port:-none}\" >> \"$JOURNAL\"\n";

fn app(root: &Path) -> PathBuf {
    roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", START),
            ("graph/App/scripts/start.sh", START),
        ],
    )
}

/// A test's folder, the application, the scripts' journal, and the two agents.
struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    app: PathBuf,
    journal: PathBuf,
    a: Agent,
    b: Agent,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let app = app(&root);
        let journal = root.join("journal.log");
        let (a, b) = pair(&root, &journal);
        Setup {
            _tmp: tmp,
            root,
            app,
            journal,
            a,
            b,
        }
    }
}

/// Agent `node-a` hosting `/vm-db`, and `node-b` hosting `/vm-app` joined to it.
fn pair(root: &Path, journal: &Path) -> (Agent, Agent) {
    let journal = journal.display().to_string();
    let env = &[("JOURNAL", journal.as_str())];
    let a = Agent::start(&root.join("a"), &A_ARGS, env);
    a.init_mesh();
    let b_args = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--host",
        "shop:/vm-app",
        "--node",
        "node-b",
    ];
    let b = Agent::start(&root.join("b"), &b_args, env);
    b.join(&a);
    (a, b)
}

const A_ARGS: [&str; 6] = [
    "--listen",
    "/ip4/127.0.0.1/tcp/0",
    "--host",
    "shop:/vm-db",
    "--node",
    "node-a",
];

#[test]
fn exports_cross_the_mesh() {
    let Setup {
        _tmp,
        app,
        journal,
        a,
        b,
        ..
    } = Setup::new();
    for agent in [&a, &b] {
        let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    a.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STARTED");
    b.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(
        text.contains("start /vm-app/app db=/vm-db/db:5432"),
        "the importer was configured from the remote export:\n{text}"
    );
    // The database stops on its agent: the importer on the other agent loses it.
    let o = a.cli(&["instance", "stop", "shop", "/vm-db/db"]);
    assert!(o.status.success());
    b.wait_states("shop", &["/vm-app/app"], "UNRESOLVED");
    let o = a.cli(&["instance", "start", "shop", "/vm-db/db"]);
    assert!(o.status.success());
    b.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
    // Every agent shows the whole application, with who hosts what.
    b.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STARTED");
    let s = b.status("shop");
    let db = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "/vm-db/db")
        .unwrap()
        .clone();
    assert_eq!(db["node"], "node-a");
    assert_eq!(db["exports"]["Db.port"], "5432");
    // An operator on one agent acts on an instance hosted by the other.
    let o = b.cli(&["instance", "stop", "shop", "/vm-db/db"]);
    assert!(o.status.success());
    a.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STOPPED");
    b.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STOPPED");
    b.wait_states("shop", &["/vm-app/app"], "UNRESOLVED");
    let o = b.cli(&["instance", "start", "shop", "/vm-db/db"]);
    assert!(o.status.success());
    a.wait_states("shop", &["/vm-app/app", "/vm-db/db"], "DEPLOYED_STARTED");
}

fn members(a: &Agent) -> Vec<serde_json::Value> {
    let o = a.cli(&["members", "--json"]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).unwrap_or_default()
}

fn member_state(a: &Agent, name: &str) -> String {
    members(a)
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["state"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn a_dead_node_is_detected_and_a_restarted_one_rejoins() {
    let Setup {
        _tmp,
        root,
        app,
        journal,
        mut a,
        b,
    } = Setup::new();
    let journal = journal.display().to_string();
    let env = [("JOURNAL", journal.as_str())];
    for agent in [&a, &b] {
        let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    b.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
    // `members` lists both, alive, with ids, addresses, roots and version.
    b.wait_until("both members", Duration::from_secs(20), |b| {
        member_state(b, "node-a") == "alive" && member_state(b, "node-b") == "alive"
    });
    // node-a knows node-b too (that is how it will find it again after its restart).
    a.wait_until("node-b alive from node-a", Duration::from_secs(20), |a| {
        member_state(a, "node-b") == "alive"
    });
    let m = members(&b);
    let ma = m.iter().find(|m| m["name"] == "node-a").expect("node-a");
    assert!(ma["id"].as_str().is_some_and(|id| id.starts_with("12D3")));
    assert!(ma["addresses"][0]
        .as_str()
        .is_some_and(|a| a.starts_with("/ip4/127.0.0.1/tcp/")));
    assert_eq!(ma["roots"][0], "shop:/vm-db");
    assert!(ma["version"].is_string());
    // kill -9: the survivor marks it dead, withdraws its exports (the importer stops)
    // and shows its machine in trouble.
    let t = std::time::Instant::now();
    a.kill9();
    b.wait_until("node-a dead", Duration::from_secs(20), |b| {
        member_state(b, "node-a") == "dead"
    });
    let detection = t.elapsed();
    b.wait_states("shop", &["/vm-app/app"], "UNRESOLVED");
    b.wait_states("shop", &["/vm-db"], "PROBLEM");
    assert!(detection < Duration::from_secs(10), "{detection:?}");
    // Restarted on its data dir (same identity, no new token or flag needed): it finds
    // the mesh again and everything converges.
    let a2 = Agent::start(&root.join("a"), &A_ARGS, &env);
    a2.wait_until("node-b alive from node-a", Duration::from_secs(30), |a| {
        member_state(a, "node-b") == "alive"
    });
    b.wait_until("node-a alive again", Duration::from_secs(30), |b| {
        member_state(b, "node-a") == "alive"
    });
    b.wait_states("shop", &["/vm-app/app", "/vm-db/db"], "DEPLOYED_STARTED");
    // A graceful leave: stops what it hosts, announces it, and is dropped at once.
    let o = a2.cli(&["leave"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b.wait_until("node-a left", Duration::from_secs(20), |b| {
        member_state(b, "node-a") == "left"
    });
    b.wait_states("shop", &["/vm-app/app"], "UNRESOLVED");
}

#[test]
fn an_application_added_on_one_agent_runs_across_the_mesh() {
    let Setup {
        _tmp, app, a, b, ..
    } = Setup::new();
    // Added once, on the agent that does not run the app server: the other one fetches
    // the bundle (checked against its hash), then deploys and starts what it hosts.
    let o = a.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
    a.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    let fetched = std::fs::read_dir(b.data_dir.join("apps"))
        .expect("apps")
        .flatten()
        .any(|e| {
            e.file_name().to_string_lossy().starts_with("shop@")
                && e.path().join("graph/App/scripts/start.sh").is_file()
        });
    assert!(fetched, "the bundle was fetched and unpacked on node-b");
    // An instance created on one agent, under a machine another agent hosts, runs there.
    assert!(b
        .cli(&[
            "instance",
            "create",
            "shop",
            "/vm-db/db2",
            "--component",
            "Db"
        ])
        .status
        .success());
    assert!(b
        .cli(&["instance", "start", "shop", "/vm-db/db2"])
        .status
        .success());
    a.wait_states("shop", &["/vm-db/db2"], "DEPLOYED_STARTED");
    b.wait_states("shop", &["/vm-db/db2"], "DEPLOYED_STARTED");
    // Undeployed and deleted from the other agent: gone everywhere.
    assert!(a
        .cli(&["instance", "undeploy", "shop", "/vm-db/db2"])
        .status
        .success());
    a.wait_states("shop", &["/vm-db/db2"], "NOT_DEPLOYED");
    b.wait_states("shop", &["/vm-db/db2"], "NOT_DEPLOYED");
    let o = a.cli(&["instance", "delete", "shop", "/vm-db/db2"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b.wait_until("the deletion", Duration::from_secs(20), |b| {
        b.state("shop", "/vm-db/db2").is_empty()
    });
    // `app stop` on either agent stops the instances everywhere.
    let o = b.cli(&["app", "stop", "shop"]);
    assert!(o.status.success());
    a.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STOPPED");
}

#[test]
fn instance_bind_moves_a_machine_to_another_node() {
    let Setup {
        _tmp, app, a, b, ..
    } = Setup::new();
    assert!(a
        .cli(&["app", "add", app.to_str().expect("path"), "--start"])
        .status
        .success());
    a.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    // /vm-app moves from node-b to node-a: it stops and undeploys on b, runs on a.
    let o = b.cli(&["instance", "bind", "shop", "/vm-app", "node-a"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b.wait_until("the move", Duration::from_secs(30), |b| {
        let s = b.status("shop");
        s["instances"].as_array().is_some_and(|l| {
            l.iter().any(|i| {
                i["path"] == "/vm-app/app"
                    && i["state"] == "DEPLOYED_STARTED"
                    && i["node"] == "node-a"
            })
        })
    });
    assert!(
        a.data_dir.join("instances/shop/vm-app+app").is_dir(),
        "the working copy is on node-a now"
    );
    // `members` shows the root where it is bound now.
    let roots = |name: &str| {
        members(&b)
            .into_iter()
            .find(|m| m["name"] == name)
            .map(|m| m["roots"].clone())
            .unwrap_or_default()
    };
    assert_eq!(
        roots("node-a"),
        serde_json::json!(["shop:/vm-db", "shop:/vm-app"])
    );
    assert_eq!(roots("node-b"), serde_json::json!([]));
    let o = b.cli(&["instance", "bind", "shop", "/vm-app/app", "node-a"]);
    assert_eq!(o.status.code(), Some(1), "only roots are bound");
    let o = b.cli(&["instance", "bind", "shop", "/vm-app", "nobody"]);
    assert_eq!(o.status.code(), Some(1));
}
