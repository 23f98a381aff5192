//! The AMQP bridge when the broker goes away during a deployment, on a private RabbitMQ
//! node (`roboconf_tests::rabbit::PrivateBroker`, stopped and started again on the same
//! ports and data): three agents each run a bridge; part of the application is deployed,
//! the broker stops while one agent keeps changing its instance's state (publishes may be
//! in flight), the deployment goes on for 30 s without it (the mesh does not need
//! the broker: every instance reaches DEPLOYED_STARTED, the bridges report
//! `connected: false` and events waiting in their outboxes), the broker comes back, and
//! then every instance state change each agent made (its log has one line per change,
//! printed where the change is handed to the bridge) reaches a consumer, in the agent's
//! order, with the agent's message ids contiguous from 1: nothing lost. A message id
//! may arrive twice (a publish whose confirm the outage swallowed is sent again), and
//! then both copies are the same message; no change arrives under a second id. The
//! outboxes drain to 0.
//!
//! The consumer and the broker's restart. The bridges declare Roboconf's exchanges as
//! Roboconf does, not durable, so a stopped broker forgets them and the bindings of any
//! queue to them; a bridge declares them again when it reconnects, and publishes at
//! once. A consumer that re-binds after the restart would race the bridges (whose
//! backoff is at most 2 s): what a bridge publishes before the binding exists is
//! confirmed and routed nowhere, lost to the test though not to a real monitoring
//! system whose bindings come back with the broker. So the test's side is made to come
//! back with the broker too: the private node is given definitions, which RabbitMQ
//! imports at every boot before it opens its AMQP listener — the three exchanges exactly
//! as the bridges declare them (topic, not durable, not auto-deleted) and a durable
//! queue bound to each with `#`. No bridge can publish before the bindings exist, so
//! the guarantee tested stays whole: every event arrives. The queue is durable and the
//! bridges' messages persistent, so what was routed but not yet consumed when the
//! broker stopped waits in it; the consumer acknowledges each message after recording
//! it (unacknowledged ones come back after the restart, as duplicates of the same id)
//! and reconnects by itself.

use futures::StreamExt;
use lapin::options::*;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use roboconf_tests::rabbit::{self, PrivateBroker};
use roboconf_tests::Agent;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// How long the broker stays away (`AMQP_OUTAGE_SECS` to change it).
fn outage() -> Duration {
    let secs = std::env::var("AMQP_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// One message the consumer took.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: String,
    kind: String,
    exchange: String,
    key: String,
    body: serde_json::Value,
}

impl Seen {
    fn instance_change(&self) -> Option<(String, String)> {
        (self.kind == "MsgNotifInstanceChanged").then(|| {
            let s = |k: &str| self.body[k].as_str().unwrap_or_default().to_string();
            (s("instancePath"), s("newStatus"))
        })
    }
}

fn short(s: &str) -> ShortString {
    ShortString::from(s.to_string())
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The domain's three exchanges, as the bridge declares them (topic, not durable, not
/// auto-deleted, no arguments), and the durable queue `<domain>.test` bound with `#` to
/// each: RabbitMQ definitions, imported at every boot of the node.
fn definitions(domain: &str) -> serde_json::Value {
    let exchanges = [
        format!("{domain}.roboconf.dm"),
        format!("{domain}.shop.agents"),
        format!("{domain}.roboconf.inter-app"),
    ];
    let queue = format!("{domain}.test");
    serde_json::json!({
        "exchanges": exchanges.iter().map(|x| serde_json::json!({
            "name": x, "vhost": "/", "type": "topic", "durable": false,
            "auto_delete": false, "internal": false, "arguments": {},
        })).collect::<Vec<_>>(),
        "queues": [{
            "name": queue, "vhost": "/", "durable": true, "auto_delete": false,
            "arguments": {},
        }],
        "bindings": exchanges.iter().map(|x| serde_json::json!({
            "source": x, "vhost": "/", "destination": queue,
            "destination_type": "queue", "routing_key": "#", "arguments": {},
        })).collect::<Vec<_>>(),
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Consumes `queue` (manual acks, each message acknowledged once recorded) for as long
/// as the runtime lives, connecting again whenever the connection is lost; `sessions`
/// counts the consumers started.
async fn consume(
    url: String,
    queue: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    sessions: Arc<AtomicU64>,
) {
    loop {
        let connect = Connection::connect(&url, ConnectionProperties::default());
        let conn = match tokio::time::timeout(Duration::from_secs(3), connect).await {
            Ok(Ok(c)) => c,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let consumer = async {
            let ch = conn.create_channel().await?;
            ch.basic_qos(256, BasicQosOptions::default()).await?;
            ch.basic_consume(
                short(&queue),
                short("outage-test"),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
        };
        let Ok(mut deliveries) = consumer.await else {
            let _ = conn.close(200, short("bye")).await;
            continue;
        };
        sessions.fetch_add(1, Ordering::Relaxed);
        loop {
            let d = match tokio::time::timeout(Duration::from_millis(500), deliveries.next()).await
            {
                Ok(Some(Ok(d))) => d,
                Ok(_) => break,
                // Quiet: still connected?
                Err(_) if conn.status().connected() => continue,
                Err(_) => break,
            };
            let p = &d.properties;
            let text =
                |v: &Option<ShortString>| v.as_ref().map(|s| s.to_string()).unwrap_or_default();
            let s = Seen {
                id: text(p.message_id()),
                kind: text(p.kind()),
                exchange: d.exchange.to_string(),
                key: d.routing_key.to_string(),
                body: serde_json::from_slice(&d.data).unwrap_or_default(),
            };
            seen.lock().unwrap_or_else(|e| e.into_inner()).push(s);
            if d.acker.ack(BasicAckOptions::default()).await.is_err() {
                break;
            }
        }
        let _ = conn.close(200, short("bye")).await;
    }
}

fn start(root: &Path, name: &str, host: &str, url: &str, domain: &str) -> Agent {
    let args = [
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--node",
        name,
        "--host",
        host,
        "--amqp",
        url,
        "--amqp-domain",
        domain,
    ];
    Agent::start(&root.join(name), &args, &[])
}

fn amqp_status(agent: &Agent) -> serde_json::Value {
    let o = agent.cli(&["amqp", "status", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

fn cli_ok(agent: &Agent, args: &[&str]) {
    let o = agent.cli(args);
    assert!(
        o.status.success(),
        "roboconf {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The instance state changes an agent made, in order, from its log (its `instance
/// state` events, logged where each change is handed to the bridge).
fn logged_changes(agent: &Agent) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(&agent.log).unwrap_or_default();
    roboconf_tests::log::state_changes(&log)
        .into_iter()
        .filter(|c| c.app == "shop")
        .map(|c| (c.path, c.state))
        .collect()
}

/// What the consumer got: messages, distinct ids, and each agent's events.
type Report = (usize, usize, Vec<usize>);

/// Where two lists part (their common length when one extends the other).
fn parting<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Checks the messages seen against the changes each agent logged: each copy of an id is
/// the same message; each run of an agent (ids `<node>:<start ms>:<n>`) has its ids from
/// 1 without a gap, first seen in order; its instance changes are exactly its log's, in
/// order; every instance's last change is DEPLOYED_STARTED.
fn check(seen: &[Seen], logs: &[Vec<(String, String)>]) -> Result<Report, String> {
    let mut first: HashMap<&str, &Seen> = HashMap::new();
    let mut order: Vec<&Seen> = Vec::new();
    for s in seen {
        match first.get(s.id.as_str()) {
            _ if s.id.is_empty() => return Err(format!("a message without an id: {s:?}")),
            Some(f) if *f != s => return Err(format!("one id, two messages: {f:?} / {s:?}")),
            Some(_) => {}
            None => {
                first.insert(&s.id, s);
                order.push(s);
            }
        }
    }
    // Each agent run's events, by sequence number, in first-seen order.
    let mut runs: BTreeMap<String, Vec<(u64, &Seen)>> = BTreeMap::new();
    for s in &order {
        let parts: Vec<&str> = s.id.split(':').collect();
        let n = parts.get(2).and_then(|n| n.parse::<u64>().ok());
        if let (3, Some(n), false) = (parts.len(), n, parts[0] == "execution") {
            let run = format!("{}:{}", parts[0], parts[1]);
            runs.entry(run).or_default().push((n, s));
        }
    }
    let mut changes: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (run, events) in &runs {
        let ns: Vec<u64> = events.iter().map(|(n, _)| *n).collect();
        let want: Vec<u64> = (1..=ns.len() as u64).collect();
        let at = parting(&ns, &want);
        if at < ns.len() {
            let got = &ns[at..ns.len().min(at + 5)];
            return Err(format!(
                "run {run}: after id {at}, ids {got:?}: a gap or out of order"
            ));
        }
        let c = events.iter().filter_map(|(_, s)| s.instance_change());
        changes.insert(run, c.collect());
    }
    let mut per_agent = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let Some((run, _)) = changes.iter().find(|(_, c)| *c == log) else {
            let best = changes.values().map(|c| parting(c, log)).max().unwrap_or(0);
            return Err(format!(
                "agent {i}: {} changes logged, none of the {} runs on the broker has them \
                 (the closest parts after {best}: logged {:?})",
                log.len(),
                changes.len(),
                log.get(best..(best + 3).min(log.len()))
            ));
        };
        per_agent.push(runs[*run].len());
    }
    for path in PATHS {
        let mut of_path = logs.iter().flatten().filter(|(p, _)| p == path);
        let last = of_path.next_back().map(|(_, s)| s.as_str());
        if last != Some("DEPLOYED_STARTED") {
            return Err(format!("{path}: last change {last:?}"));
        }
    }
    Ok((seen.len(), order.len(), per_agent))
}

/// The database stopped, then started again.
fn db_cycle(a: &Agent) {
    cli_ok(a, &["instance", "stop", "shop", "/vm-db/db"]);
    a.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STOPPED");
    cli_ok(a, &["instance", "start", "shop", "/vm-db/db"]);
    a.wait_states("shop", &["/vm-db/db"], "DEPLOYED_STARTED");
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the test can run here: a private node needs Debian's `rabbitmq-server`.
fn available() -> bool {
    if rabbit::available() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "rabbitmq-server is missing under {} (CI must have it)",
        rabbit::SCRIPTS
    );
    eprintln!("SKIPPED: rabbitmq-server is not installed");
    false
}

#[test]
fn a_broker_outage_during_a_deployment_loses_no_event() {
    if !available() {
        return;
    }
    let domain = format!("outage{}-{}", std::process::id(), now_ms());
    let mut broker = PrivateBroker::with_definitions(&definitions(&domain));
    broker.start();
    let url = broker.url();
    let rt = runtime();
    let seen = Arc::new(Mutex::new(Vec::<Seen>::new()));
    let sessions = Arc::new(AtomicU64::new(0));
    rt.spawn(consume(
        url.clone(),
        format!("{domain}.test"),
        seen.clone(),
        sessions.clone(),
    ));
    let snapshot = || seen.lock().unwrap_or_else(|e| e.into_inner()).clone();

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
    let a = start(root, "a", "shop:/vm-db", &url, &domain);
    a.init_mesh();
    let b = start(root, "b", "shop:/vm-app", &url, &domain);
    b.join(&a);
    let c = start(root, "c", "shop:/vm-web", &url, &domain);
    c.join(&a);
    let agents = [&a, &b, &c];
    cli_ok(&a, &["app", "add", app.to_str().expect("path")]);

    // Part of the application while the broker is there: the database.
    cli_ok(&a, &["instance", "start", "shop", "/vm-db/db"]);
    a.wait_states("shop", &["/vm-db", "/vm-db/db"], "DEPLOYED_STARTED");
    wait(
        "the database started, on the broker",
        Duration::from_secs(30),
        || {
            snapshot()
                .iter()
                .filter_map(Seen::instance_change)
                .any(|(p, s)| p == "/vm-db/db" && s == "DEPLOYED_STARTED")
        },
    );
    for agent in agents {
        wait("every bridge connected", Duration::from_secs(20), || {
            amqp_status(agent)["connected"] == true
        });
    }

    // The broker goes away in the middle of activity (the database stopped and started
    // over by another thread: publishes may be in flight), and the deployment goes on.
    let busy = AtomicBool::new(true);
    let mut down = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| {
            while busy.load(Ordering::Relaxed) {
                db_cycle(&a);
            }
        });
        let activity = snapshot().len() + 20;
        wait("activity on the broker", Duration::from_secs(30), || {
            snapshot().len() > activity
        });
        broker.stop();
        down = Instant::now();
        for agent in agents {
            wait(
                "every bridge to see the loss",
                Duration::from_secs(20),
                || amqp_status(agent)["connected"] == false,
            );
        }
        busy.store(false, Ordering::Relaxed);
    });
    let before = snapshot().len();
    cli_ok(&b, &["instance", "start", "shop", "/vm-app/app"]);
    b.wait_states("shop", &["/vm-app", "/vm-app/app"], "DEPLOYED_STARTED");
    cli_ok(&c, &["instance", "start", "shop", "/vm-web/web"]);
    c.wait_states("shop", &["/vm-web", "/vm-web/web"], "DEPLOYED_STARTED");
    // Until the outage has lasted long enough: the database stopped and started again,
    // its importers following.
    let mut cycles = 0;
    while down.elapsed() < outage() {
        db_cycle(&a);
        b.wait_states("shop", &["/vm-app/app"], "DEPLOYED_STARTED");
        c.wait_states("shop", &["/vm-web/web"], "DEPLOYED_STARTED");
        cycles += 1;
    }
    for agent in agents {
        for path in PATHS {
            assert_eq!(agent.state("shop", path), "DEPLOYED_STARTED", "{path}");
        }
    }
    let mut waiting = Vec::new();
    for agent in agents {
        let st = amqp_status(agent);
        assert_eq!(st["connected"], false, "{st}");
        assert!(
            st["outbox"].as_u64() > Some(0),
            "events wait in the outbox: {st}"
        );
        assert!(st["last_error"].is_string(), "{st}");
        waiting.push(st["outbox"].as_u64().unwrap_or_default());
    }
    assert_eq!(
        snapshot().len(),
        before,
        "nothing arrives while the broker is away"
    );
    eprintln!(
        "broker away {:.1} s: {cycles} stop/start cycles of the database; outboxes {waiting:?}",
        down.elapsed().as_secs_f64()
    );

    // The broker comes back: the outboxes drain, everything arrives.
    broker.start();
    let back = broker.accepting_since().unwrap_or_else(Instant::now);
    for agent in agents {
        wait("the outbox drained", Duration::from_secs(60), || {
            let st = amqp_status(agent);
            st["connected"] == true && st["outbox"] == 0
        });
    }
    let drained = back.elapsed();
    let logs = || agents.iter().map(|a| logged_changes(a)).collect::<Vec<_>>();
    let end = Instant::now() + Duration::from_secs(60);
    let (messages, distinct, per_agent) = loop {
        match check(&snapshot(), &logs()) {
            Ok(r) => break r,
            Err(e) if Instant::now() > end => panic!("after the outage: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let changes: usize = logs().iter().map(Vec::len).sum();
    eprintln!(
        "outboxes drained {:.1} s after the broker accepted connections; {changes} instance changes logged; \
         consumer: {messages} messages, {distinct} distinct ({} duplicates), per agent {per_agent:?}, {} sessions",
        drained.as_secs_f64(),
        messages - distinct,
        sessions.load(Ordering::Relaxed)
    );
    for (agent, events) in agents.iter().zip(&per_agent) {
        let st = amqp_status(agent);
        eprintln!("  {st}");
        let n = |k: &str| st[k].as_u64().unwrap_or_default();
        assert!(
            n("confirmed") >= *events as u64,
            "each event confirmed: {st}"
        );
        // Every publish ends confirmed or failed (and a failed one is sent again).
        assert!(n("published") >= n("confirmed") + n("failed"), "{st}");
        assert_eq!(n("overflowed"), 0, "{st}");
    }
    assert!(
        sessions.load(Ordering::Relaxed) >= 2,
        "the consumer came back"
    );
    // The bridges published after the restart on the node's own exchanges: the
    // definitions matched the bridges' declarations (a mismatch would close their
    // channel and leave the outboxes full).
    drop(rt);
}

/// The helper itself: a private node restarts on its ports with its data (a durable
/// queue keeps a persistent message), and leaves no process, port or file behind.
#[test]
fn a_private_broker_restarts_with_its_data_and_leaves_nothing_behind() {
    if !available() {
        return;
    }
    let mut broker = PrivateBroker::new();
    broker.start();
    let (port, epmd_port, dir, url) = (
        broker.port,
        broker.epmd_port,
        broker.dir.clone(),
        broker.url(),
    );
    assert_ne!(port, 5672);
    let rt = runtime();
    let q = "kept";
    rt.block_on(async {
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        ch.queue_declare(short(q), durable, FieldTable::default())
            .await
            .expect("queue");
        ch.basic_publish(
            short(""),
            short(q),
            BasicPublishOptions::default(),
            b"still here",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
        let _ = conn.close(200, short("bye")).await;
    });
    broker.restart();
    assert_eq!((broker.port, broker.url()), (port, url.clone()));
    let got = rt.block_on(async {
        let conn = Connection::connect(&url, ConnectionProperties::default())
            .await
            .expect("connect after the restart");
        let ch = conn.create_channel().await.expect("channel");
        let m = ch
            .basic_get(short(q), BasicGetOptions { no_ack: true })
            .await
            .expect("get");
        let _ = conn.close(200, short("bye")).await;
        m.map(|m| m.delivery.data)
    });
    assert_eq!(got.as_deref(), Some(&b"still here"[..]));
    let listed = broker.ctl(&["list_queues", "-q", "name"]);
    assert!(listed.status.success(), "{listed:?}");
    drop(broker);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the AMQP port is closed"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", epmd_port)).is_err(),
        "the private epmd is gone"
    );
    assert!(!dir.exists(), "{} removed", dir.display());
}
