//! The agent's Prometheus metrics (issue 19), read from `GET /metrics`: on two agents forming a mesh and deploying the shop application,
//! the text passes `promtool check metrics` (Debian's `prometheus` package; the test
//! fails without it, CI installs it) before and after, and the script runs, the gossip
//! traffic, the propagation lag, the members and the instances by state move with the
//! deployment.

use roboconf_tests::Agent;
use std::path::Path;
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
const SCRIPT: &str = "#!/bin/bash\nexit 0\n";

/// The metrics of an agent, from `GET /metrics`, checked by `promtool`.
fn metrics(agent: &Agent) -> String {
    roboconf_tests::http::metrics_checked(&roboconf_tests::http::base_url(agent))
}

use roboconf_tests::http::metric as value;

fn instances(state: &str, hosted: &str) -> String {
    format!("roboconf_instances{{app=\"shop\",state=\"{state}\",hosted=\"{hosted}\"}}")
}

fn agent(root: &Path, name: &str, root_instance: &str) -> Agent {
    let host = format!("shop:{root_instance}");
    let args = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--host",
        &host,
        "--node",
        name,
        "--http",
        "127.0.0.1:0",
    ];
    Agent::start(&root.join(name), &args, &[])
}

#[test]
fn metrics_follow_a_deployment_and_pass_promtool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let app = roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", SCRIPT),
            ("graph/Db/scripts/stop.sh", SCRIPT),
            ("graph/App/scripts/start.sh", SCRIPT),
        ],
    );
    let a = agent(root, "node-a", "/vm-db");
    a.init_mesh();
    let b = agent(root, "node-b", "/vm-app");
    b.join(&a);
    a.wait_until("two members alive", Duration::from_secs(30), |a| {
        value(&metrics(a), "roboconf_members{state=\"alive\"}") == 2.0
    });
    let before = [metrics(&a), metrics(&b)];
    let started_ok = "roboconf_script_runs_total{action=\"start\",result=\"ok\"}";
    let gossip_in = "roboconf_net_messages_total{kind=\"gossip\",direction=\"in\"}";
    let gossip_out = "roboconf_net_messages_total{kind=\"gossip\",direction=\"out\"}";
    for text in &before {
        assert_eq!(value(text, started_ok), 0.0, "{text}");
        assert_eq!(value(text, &instances("DEPLOYED_STARTED", "here")), 0.0);
    }

    for agent in [&a, &b] {
        let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let all = ["/vm-db", "/vm-db/db", "/vm-app", "/vm-app/app"];
    a.wait_states("shop", &all, "DEPLOYED_STARTED");
    b.wait_states("shop", &all, "DEPLOYED_STARTED");
    // The views settle (each agent has heard the other's last state).
    b.wait_until(
        "b's metrics see the whole deployment",
        Duration::from_secs(30),
        |b| {
            let t = metrics(b);
            value(&t, &instances("DEPLOYED_STARTED", "here")) == 2.0
                && value(&t, &instances("DEPLOYED_STARTED", "elsewhere")) == 2.0
        },
    );
    let after = [metrics(&a), metrics(&b)];
    for (k, (old, new)) in before.iter().zip(&after).enumerate() {
        assert!(value(new, started_ok) >= 1.0, "agent {k}:\n{new}");
        assert!(
            value(new, gossip_in) > value(old, gossip_in),
            "agent {k}: no gossip in:\n{new}"
        );
        assert!(
            value(new, gossip_out) > value(old, gossip_out),
            "agent {k}: no gossip out:\n{new}"
        );
        assert!(
            value(
                new,
                "roboconf_script_run_duration_seconds_count{action=\"start\"}"
            ) >= 1.0,
            "agent {k}:\n{new}"
        );
        assert_eq!(value(new, "roboconf_connections"), 1.0, "agent {k}:\n{new}");
        assert!(value(new, "roboconf_process_resident_memory_bytes") > 1e6);
        assert!(value(new, "roboconf_process_open_fds") > 3.0);
    }
    // The app server's agent measured the lag of the database's exports.
    assert!(
        value(&after[1], "roboconf_remote_exports_lag_seconds_count") >= 1.0,
        "{}",
        after[1]
    );
    // Each sees its own machine and instance started here, the other's elsewhere.
    assert_eq!(
        value(&after[0], &instances("DEPLOYED_STARTED", "here")),
        2.0
    );

    // The database stops: its stop script runs, the app server waits for it.
    let o = a.cli(&["instance", "stop", "shop", "/vm-db/db"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b.wait_until(
        "the app server unresolved in b's metrics",
        Duration::from_secs(30),
        |b| value(&metrics(b), &instances("UNRESOLVED", "here")) == 1.0,
    );
    a.wait_until("the stop counted", Duration::from_secs(30), |a| {
        let t = metrics(a);
        value(
            &t,
            "roboconf_script_runs_total{action=\"stop\",result=\"ok\"}",
        ) == 1.0
            && value(&t, &instances("DEPLOYED_STOPPED", "here")) == 1.0
    });
}
