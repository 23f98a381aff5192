//! The AMQP bridge end to end, on the machine's RabbitMQ (127.0.0.1:5672, guest/guest;
//! `.ci/run` starts one when none answers): three agents, each running a bridge, deploy
//! an application; a consumer bound with `#` on Roboconf's exchanges sees every instance's
//! changes in order, the exports announced and withdrawn, the coordinator's office, and
//! no message id twice; a JSON command on the commands queue changes an instance's state
//! and is answered on `reply_to`, a malformed one gets an error reply.

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use roboconf_tests::broker::{self, short, URL};
use roboconf_tests::{wait, Agent};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App, Web;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\nWeb {\n\tinstaller: script;\n\timports: App.ip, App.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\ninstance of VM {\n\tname: vm-web;\n\tinstance of Web {\n\t\tname: web;\n\t}\n}\n";
const PATHS: [&str; 6] = [
    "/vm-db",
    "/vm-db/db",
    "/vm-app",
    "/vm-app/app",
    "/vm-web",
    "/vm-web/web",
];

/// One message the consumer took.
#[derive(Debug, Clone)]
struct Seen {
    id: String,
    kind: String,
    exchange: String,
    key: String,
    body: serde_json::Value,
}

/// A queue bound with `#` on the domain's exchanges (declared as Roboconf declares
/// them), its messages collected into `seen`.
async fn consume(ch: &Channel, domain: &str, seen: Arc<Mutex<Vec<Seen>>>) {
    let q = format!("{domain}.test");
    let xs = broker::exchanges(domain, &["shop"]);
    broker::bind_all(ch, &q, QueueDeclareOptions::default(), &xs).await;
    let mut deliveries = ch
        .basic_consume(
            short(&q),
            short("test"),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(d)) = deliveries.next().await {
            let p = &d.properties;
            let s = Seen {
                id: p
                    .message_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                kind: p.kind().as_ref().map(|s| s.to_string()).unwrap_or_default(),
                exchange: d.exchange.to_string(),
                key: d.routing_key.to_string(),
                body: serde_json::from_slice(&d.data).unwrap_or_default(),
            };
            assert_eq!(
                p.content_type().as_ref().map(|s| s.to_string()),
                Some("application/json".to_string())
            );
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    });
}

fn start(root: &Path, name: &str, host: &str, domain: &str, extra: &[&str]) -> Agent {
    let mut args = vec![
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--node",
        name,
        "--host",
        host,
        "--amqp",
        URL,
        "--amqp-domain",
        domain,
    ];
    args.extend_from_slice(extra);
    Agent::start(&root.join(name), &args, &[])
}

fn states_of(seen: &[Seen], path: &str) -> Vec<String> {
    seen.iter()
        .filter(|s| s.kind == "MsgNotifInstanceChanged" && s.body["instancePath"] == path)
        .map(|s| s.body["newStatus"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_deployment_across_three_bridges_reaches_the_broker_once_and_commands_come_back() {
    let rt = broker::runtime();
    let domain = format!("it{}-{}", std::process::id(), now_ms());
    let conn = rt.block_on(broker::connect(URL));
    let ch = rt.block_on(conn.create_channel()).expect("channel");
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    rt.block_on(consume(&ch, &domain, seen.clone()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        scenario(&rt, &conn, &domain, &seen)
    }));
    rt.block_on(broker::delete_domain(&conn, &domain, &["shop"]));
    let _ = rt.block_on(conn.close(200, short("bye")));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn scenario(
    rt: &tokio::runtime::Runtime,
    conn: &Connection,
    domain: &str,
    seen: &Mutex<Vec<Seen>>,
) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let start_sh = "#!/bin/bash\nexit 0\n";
    let app = roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", start_sh),
            ("graph/App/scripts/start.sh", start_sh),
            ("graph/Web/scripts/start.sh", start_sh),
        ],
    );
    let a = start(root, "a", "shop:/vm-db", domain, &["--amqp-commands"]);
    a.init_mesh();
    let b = start(root, "b", "shop:/vm-app", domain, &[]);
    b.join(&a);
    let c = start(root, "c", "shop:/vm-web", domain, &[]);
    c.join(&a);
    let o = a.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (agent, paths) in [
        (&a, ["/vm-db", "/vm-db/db"]),
        (&b, ["/vm-app", "/vm-app/app"]),
        (&c, ["/vm-web", "/vm-web/web"]),
    ] {
        agent.wait_states("shop", &paths, "DEPLOYED_STARTED");
    }
    let snapshot = || seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    wait(
        "every instance started, on the broker",
        Duration::from_secs(30),
        || {
            let s = snapshot();
            PATHS.iter().all(|p| {
                states_of(&s, p)
                    .last()
                    .is_some_and(|l| l == "DEPLOYED_STARTED")
            })
        },
    );
    let s = snapshot();
    // In order per instance: a child goes DEPLOYING → DEPLOYED_STOPPED → STARTING →
    // DEPLOYED_STARTED (UNRESOLVED may come between while an import is missing).
    for p in PATHS.iter().filter(|p| p.matches('/').count() == 2) {
        let states = states_of(&s, p);
        let order = [
            "DEPLOYING",
            "DEPLOYED_STOPPED",
            "STARTING",
            "DEPLOYED_STARTED",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|w| states.iter().position(|x| x == w).unwrap_or(usize::MAX))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{p}: {states:?}");
    }
    for x in &s {
        if x.kind == "MsgNotifInstanceChanged" {
            assert_eq!(x.exchange, format!("{domain}.roboconf.dm"));
            assert_eq!(x.key, "shop");
            assert_eq!(x.body["applicationName"], "shop");
        }
    }
    let db = s
        .iter()
        .find(|x| x.kind == "MsgCmdAddImport" && x.body["addedInstancePath"] == "/vm-db/db")
        .expect("the database's exports announced");
    assert_eq!(db.exchange, format!("{domain}.shop.agents"));
    assert_eq!(db.key, "those.that.import.Db");
    assert_eq!(db.body["exportedVariables"]["Db.port"], "5432");
    wait("the coordinator's office", Duration::from_secs(20), || {
        snapshot()
            .iter()
            .any(|x| x.kind == "MeshNotifCoordinatorChanged" && x.body["term"].as_u64() > Some(0))
    });
    // A command on the queue: the database stops, the reply carries the correlation id.
    let ch = rt.block_on(conn.create_channel()).expect("channel");
    let replies = format!("{domain}.test.replies");
    rt.block_on(ch.queue_declare(
        short(&replies),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .expect("replies");
    let ask = |body: &str, corr: &str| {
        let props = BasicProperties::default()
            .with_reply_to(short(&replies))
            .with_correlation_id(short(corr))
            .with_content_type(short("application/json"));
        rt.block_on(async {
            ch.basic_publish(
                short(""),
                short(&format!("{domain}.roboconf.commands")),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
        });
    };
    let answers: Arc<Mutex<BTreeMap<String, serde_json::Value>>> = Arc::default();
    {
        let answers = answers.clone();
        let mut d = rt
            .block_on(ch.basic_consume(
                short(&replies),
                short("replies"),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            ))
            .expect("consume replies");
        rt.spawn(async move {
            while let Some(Ok(m)) = d.next().await {
                let corr = m
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                let v = serde_json::from_slice(&m.data).unwrap_or_default();
                answers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(corr, v);
            }
        });
    }
    // The commands queue exists once the bridge with commands on is connected.
    wait("the commands queue", Duration::from_secs(20), || {
        rt.block_on(ch.queue_declare(
            short(&format!("{domain}.roboconf.commands")),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ))
        .is_ok()
    });
    ask(
        r#"{"type":"ChangeState","app":"shop","path":"/vm-db/db","state":"DEPLOYED_STOPPED"}"#,
        "stop-db",
    );
    ask("{not json", "broken");
    ask(
        r#"{"type":"ChangeState","app":"nope","path":"/vm","state":"DEPLOYED_STARTED"}"#,
        "unknown",
    );
    let answer = |k: &str| {
        answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(k)
            .cloned()
    };
    wait("the replies", Duration::from_secs(20), || {
        answer("stop-db").is_some() && answer("broken").is_some()
    });
    assert_eq!(
        answer("stop-db").expect("reply")["ok"],
        true,
        "{:?}",
        answer("stop-db")
    );
    assert_eq!(answer("broken").expect("reply")["ok"], false);
    wait("the refusal", Duration::from_secs(20), || {
        answer("unknown").is_some()
    });
    let refused = answer("unknown").expect("reply");
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("nope"),
        "{refused}"
    );
    a.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STOPPED");
    wait(
        "the exports withdrawn, on the broker",
        Duration::from_secs(20),
        || {
            snapshot().iter().any(|x| {
                x.kind == "MsgCmdRemoveImport" && x.body["removedInstancePath"] == "/vm-db/db"
            })
        },
    );
    // An agent leaves: the leader's bridge says so, and that its machine is down.
    let o = c.cli(&["leave"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait(
        "the departure, on the broker",
        Duration::from_secs(30),
        || {
            let s = snapshot();
            s.iter().any(|x| {
                x.kind == "MeshNotifMemberChanged"
                    && x.body["name"] == "c"
                    && x.body["state"] == "left"
            }) && s.iter().any(|x| {
                x.kind == "MsgNotifMachineDown" && x.body["scopedInstancePath"] == "/vm-web"
            })
        },
    );
    // Nothing twice, and the bridges have nothing left to publish.
    let s = snapshot();
    let kinds: BTreeSet<&str> = s.iter().map(|x| x.kind.as_str()).collect();
    eprintln!("{} messages on the broker: {kinds:?}", s.len());
    let mut ids = BTreeSet::new();
    for x in &s {
        assert!(!x.id.is_empty(), "{x:?}");
        assert!(ids.insert(x.id.clone()), "a message id twice: {x:?}");
    }
    for agent in [&a, &b] {
        wait("the outbox drained", Duration::from_secs(20), || {
            let o = agent.cli(&["amqp", "status", "--json"]);
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
            v["connected"] == true && v["outbox"] == 0 && v["confirmed"].as_u64() > Some(0)
        });
    }
    let o = a.cli(&["amqp", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    assert!(v["commands_received"].as_u64() >= Some(2), "{v}");
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}
