//! Five agents on loopback form one mesh (one `mesh init`, four `join`s); an application
//! is deployed across four of them: a balancer, two app servers and a database. Scale-out:
//! a third app server is created on the fifth node (`instance create` + `bind`) and the
//! balancer's `update` adds it; scale-in: it is undeployed and deleted and the balancer
//! drops it; `kill -9` of an app server's node: the balancer's `update` drops that one
//! within the detection bound.

use roboconf_tests::Agent;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App, Lb;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\nLb {\n\tinstaller: script;\n\timports: App.ip (optional), App.port (optional);\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-lb;\n\tinstance of Lb {\n\t\tname: lb;\n\t}\n}\ninstance of VM {\n\tname: vm-app-1;\n\tinstance of App {\n\t\tname: app-1;\n\t}\n}\ninstance of VM {\n\tname: vm-app-2;\n\tinstance of App {\n\t\tname: app-2;\n\t}\n}\ninstance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n";
/// The balancer's configuration: one line per app server it imports (the name, from the
/// instance path in `App_<i>_name`).
const LB_SCRIPT: &str = "#!/bin/bash\n: > \"$CONF.tmp\"\ni=0\nwhile v=\"App_${i}_name\"; [ -n \"${!v}\" ]; do basename \"${!v}\" >> \"$CONF.tmp\"; i=$((i+1)); done\nsort \"$CONF.tmp\" > \"$CONF\"\n";

fn app(root: &Path) -> PathBuf {
    roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", "#!/bin/bash\ntrue\n"),
            ("graph/App/scripts/start.sh", "#!/bin/bash\ntrue\n"),
            ("graph/Lb/scripts/start.sh", LB_SCRIPT),
            ("graph/Lb/scripts/update.sh", LB_SCRIPT),
        ],
    )
}

fn ok(o: std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn five_agents_deploy_scale_out_scale_in_and_survive_a_kill() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let app = app(root);
    let conf = root.join("lb.conf");
    let conf_s = conf.display().to_string();
    let env = [("CONF", conf_s.as_str())];
    let hosts = [
        Some("shop:/vm-lb"),
        Some("shop:/vm-app-1"),
        Some("shop:/vm-app-2"),
        Some("shop:/vm-db"),
        None,
    ];
    let mut agents: Vec<Agent> = hosts
        .iter()
        .enumerate()
        .map(|(k, h)| {
            let name = format!("n{k}");
            let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0", "--node", &name];
            if let Some(h) = h {
                args.extend(["--host", h]);
            }
            Agent::start(&root.join(&name), &args, &env)
        })
        .collect();
    agents[0].init_mesh();
    for a in &agents[1..] {
        a.join(&agents[0]);
    }
    for a in &agents {
        a.wait_until("five members", Duration::from_secs(30), |a| {
            let o = a.cli(&["members", "--json"]);
            serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
                .unwrap_or_default()
                .iter()
                .filter(|m| m["state"] == "alive")
                .count()
                == 5
        });
    }
    // Added on the spare node; runs on the four that host its machines.
    ok(agents[4].cli(&["app", "add", app.to_str().expect("path"), "--start"]));
    let all = [
        "/vm-lb/lb",
        "/vm-app-1/app-1",
        "/vm-app-2/app-2",
        "/vm-db/db",
    ];
    agents[4].wait_states("shop", &all, "DEPLOYED_STARTED");
    let lb_conf = || std::fs::read_to_string(&conf).unwrap_or_default();
    agents[0].wait_until("the balancer has both", Duration::from_secs(30), |_| {
        lb_conf() == "app-1\napp-2\n"
    });
    // Every instance shows the node that hosts it.
    let s = agents[2].status("shop");
    let node_of = |path: &str| {
        s["instances"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["path"] == path))
            .and_then(|i| i["node"].as_str().map(String::from))
            .unwrap_or_default()
    };
    assert_eq!(node_of("/vm-db/db"), "n3");
    assert_eq!(node_of("/vm-lb/lb"), "n0");

    // Scale-out on the fifth node, from the first one.
    ok(agents[0].cli(&[
        "instance",
        "create",
        "shop",
        "/vm-app-3",
        "--component",
        "VM",
    ]));
    ok(agents[0].cli(&["instance", "bind", "shop", "/vm-app-3", "n4"]));
    ok(agents[0].cli(&[
        "instance",
        "create",
        "shop",
        "/vm-app-3/app-3",
        "--component",
        "App",
    ]));
    ok(agents[0].cli(&["instance", "start", "shop", "/vm-app-3/app-3"]));
    agents[4].wait_states("shop", &["/vm-app-3/app-3"], "DEPLOYED_STARTED");
    agents[0].wait_until("the balancer has three", Duration::from_secs(30), |_| {
        lb_conf() == "app-1\napp-2\napp-3\n"
    });
    // Scale-in, from another node.
    ok(agents[3].cli(&["instance", "undeploy", "shop", "/vm-app-3/app-3"]));
    agents[4].wait_states("shop", &["/vm-app-3/app-3"], "NOT_DEPLOYED");
    ok(agents[3].cli(&["instance", "delete", "shop", "/vm-app-3/app-3"]));
    agents[0].wait_until(
        "the balancer is back to two",
        Duration::from_secs(30),
        |_| lb_conf() == "app-1\napp-2\n",
    );
    agents[1].wait_until("app-3 gone everywhere", Duration::from_secs(30), |a| {
        a.state("shop", "/vm-app-3/app-3").is_empty()
    });

    // An instance every node knows, to be deleted while one of them is down.
    ok(agents[0].cli(&[
        "instance",
        "create",
        "shop",
        "/vm-db/db-old",
        "--component",
        "Db",
    ]));
    agents[2].wait_until("db-old known", Duration::from_secs(30), |a| {
        a.state("shop", "/vm-db/db-old") == "NOT_DEPLOYED"
    });

    // kill -9 of app-2's node: the balancer drops it within the detection bound.
    let t = Instant::now();
    agents[2].kill9();
    agents[0].wait_until(
        "the balancer without app-2",
        Duration::from_secs(30),
        |_| lb_conf() == "app-1\n",
    );
    let took = t.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    agents[0].wait_states("shop", &["/vm-app-2"], "PROBLEM");

    // While it is down: a deletion (a tombstone) and a creation. It comes back on its data
    // dir and catches up with both; the balancer has app-2 again.
    ok(agents[1].cli(&["instance", "delete", "shop", "/vm-db/db-old"]));
    ok(agents[1].cli(&[
        "instance",
        "create",
        "shop",
        "/vm-db/db-new",
        "--component",
        "Db",
    ]));
    let args = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--node",
        "n2",
        "--host",
        "shop:/vm-app-2",
    ];
    agents[2] = Agent::start(&root.join("n2"), &args, &env);
    agents[2].wait_until(
        "the deletion and the creation",
        Duration::from_secs(30),
        |a| {
            a.state("shop", "/vm-db/db-old").is_empty()
                && a.state("shop", "/vm-db/db-new") == "NOT_DEPLOYED"
        },
    );
    agents[2].wait_states("shop", &["/vm-app-2/app-2"], "DEPLOYED_STARTED");
    agents[0].wait_until(
        "the balancer has app-2 again",
        Duration::from_secs(30),
        |_| lb_conf() == "app-1\napp-2\n",
    );
}
