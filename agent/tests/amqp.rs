//! The AMQP bridge against the machine's RabbitMQ (127.0.0.1:5672, guest/guest): events
//! published on Roboconf's exchanges in order, the outbox drained on confirms and kept
//! across a reopen, commands answered or dead-lettered, and a broker that is away.
//! Each test works in a domain of its own and deletes what it declared; without a
//! broker they fail.

use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use roboconf_agent::amqp::{
    messages::short, outbox, topology, Bridge, Command, Config, Event, MemberState, Outbox,
};
use roboconf_agent::api::State;
use roboconf_agent::store::Sled;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn broker() -> Option<Connection> {
    let c = Connection::connect(URL, ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(3), c).await {
        Ok(Ok(c)) => Some(c),
        // `.ci/run` starts one when none answers: a missing broker is a failure.
        _ => panic!("no RabbitMQ answers at 127.0.0.1:5672 (guest/guest); `.ci/run` starts one"),
    }
}

fn domain() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "t{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn config(domain: &str) -> Config {
    Config {
        url: Some(URL.into()),
        domain: domain.into(),
        ..Config::default()
    }
}

/// A store in a temporary folder and its outbox.
fn outbox_in(dir: &std::path::Path, max: u64) -> (Sled, Outbox) {
    let store = Sled::open(dir).expect("store");
    let o = Outbox::open(store.open_tree(outbox::TREE).expect("tree"), max).expect("outbox");
    (store, o)
}

/// Polls `cond` until it holds or `secs` pass.
async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body, then deletes the domain's exchanges and queues even if it failed.
async fn run<F, Fut>(domain: &str, apps: &[&str], body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let r = tokio::spawn(body(domain.to_string())).await;
    if let Some(conn) = broker().await {
        let d = domain;
        let mut exchanges = vec![
            topology::dm_exchange(d),
            topology::inter_app_exchange(d),
            topology::dead_letters(d),
        ];
        exchanges.extend(apps.iter().map(|a| topology::agents_exchange(d, a)));
        let queues = [
            topology::commands_queue(d),
            topology::dead_letters(d),
            format!("{d}.test"),
            format!("{d}.test.replies"),
        ];
        for q in queues {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .queue_delete(short(&q), QueueDeleteOptions::default())
                    .await;
            }
        }
        for x in exchanges {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .exchange_delete(short(&x), ExchangeDeleteOptions::default())
                    .await;
            }
        }
        let _ = conn.close(200, short("bye")).await;
    }
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares the exchanges as Roboconf does (so the bridge's declarations must agree)
/// and a queue `<domain>.test` bound with `#` on each.
async fn bind_all(ch: &Channel, d: &str, apps: &[&str]) -> String {
    let q = format!("{d}.test");
    ch.queue_declare(
        short(&q),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue");
    let mut xs = vec![topology::dm_exchange(d), topology::inter_app_exchange(d)];
    xs.extend(apps.iter().map(|a| topology::agents_exchange(d, a)));
    for x in xs {
        ch.exchange_declare(
            short(&x),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
        ch.queue_bind(
            short(&q),
            short(&x),
            short("#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    q
}

/// The next `n` deliveries of a queue.
async fn take(ch: &Channel, q: &str, n: usize, secs: u64) -> Vec<lapin::message::Delivery> {
    let mut c = ch
        .basic_consume(
            short(q),
            short(""),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let mut out = Vec::with_capacity(n);
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while out.len() < n {
        match tokio::time::timeout_at(end, c.next()).await {
            Ok(Some(Ok(d))) => out.push(d),
            other => panic!("{} of {n} messages, then {other:?}", out.len()),
        }
    }
    out
}

fn s(v: &Option<ShortString>) -> &str {
    v.as_ref().map(|s| s.as_str()).unwrap_or("")
}

fn heartbeat(i: u64) -> Event {
    Event::Heartbeat {
        app: "lamp".into(),
        root: format!("/vm{i}"),
        ip: "10.0.0.1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_in_order_on_roboconfs_exchanges() {
    let Some(conn) = broker().await else { return };
    run(&domain(), &["lamp"], |d| async move {
        let ch = conn.create_channel().await.expect("channel");
        let q = bind_all(&ch, &d, &["lamp"]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, ob) = outbox_in(dir.path(), 1000);
        let bridge = Bridge::start(&config(&d), ob, None).expect("start");
        let h = bridge.handle();
        let events = vec![
            Event::InstanceChanged {
                app: "lamp".into(),
                path: "/vm/tomcat".into(),
                state: State::DeployedStarted,
                imports: BTreeMap::new(),
            },
            Event::ExportsAdded {
                app: "lamp".into(),
                component: "MySql".into(),
                path: "/vm/db".into(),
                variables: BTreeMap::from([("MySql.port".into(), "3306".into())]),
            },
            Event::ExternalExportsAdded {
                app: "lamp".into(),
                prefix: "Lamp".into(),
                path: "/vm/apache".into(),
                variables: BTreeMap::from([("lb_ip".into(), "10.0.0.9".into())]),
            },
            Event::MachineDown { app: "lamp".into(), root: "/vm".into() },
            Event::MemberChanged { node: "12D3".into(), name: "web1".into(), state: MemberState::Joined },
            Event::ExportsRemoved { app: "lamp".into(), component: "MySql".into(), path: "/vm/db".into() },
        ];
        for (i, e) in events.iter().enumerate() {
            h.push(&format!("node-a:{}", i + 1), e).expect("push");
        }
        let got = take(&ch, &q, events.len(), 15).await;
        for (i, (m, e)) in got.iter().zip(&events).enumerate() {
            let (x, k) = e.route(&d);
            assert_eq!((m.exchange.as_str(), m.routing_key.as_str()), (x.as_str(), k.as_str()));
            let p = &m.properties;
            assert_eq!(s(p.message_id()), format!("node-a:{}", i + 1));
            assert_eq!(s(p.kind()), e.kind());
            assert_eq!(s(p.content_type()), "application/json");
            assert!(p.timestamp().is_some());
            let header = p.headers().as_ref().and_then(|h| h.inner().get("type").cloned());
            assert!(matches!(header, Some(AMQPValue::LongString(t)) if t.as_bytes() == e.kind().as_bytes()));
            let body: serde_json::Value = serde_json::from_slice(&m.data).expect("json");
            assert_eq!(body, e.body());
        }
        wait_until(10, "the outbox to drain", || {
            let st = h.status();
            st.outbox == 0 && st.confirmed == 6
        })
        .await;
        let st = h.status();
        assert!(st.connected);
        assert_eq!((st.published, st.confirmed, st.failed), (6, 6, 0));
        assert_eq!(st.url, "amqp://guest:***@127.0.0.1:5672/%2f");
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_are_all_confirmed() {
    let Some(conn) = broker().await else { return };
    run(&domain(), &[], |d| async move {
        let ch = conn.create_channel().await.expect("channel");
        let q = bind_all(&ch, &d, &[]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, ob) = outbox_in(dir.path(), 100_000);
        let bridge = Bridge::start(&config(&d), ob.clone(), None).expect("start");
        let h = bridge.handle();
        let t = Instant::now();
        for i in 1..=10_000 {
            h.push(&format!("n:{i}"), &heartbeat(i)).expect("push");
        }
        wait_until(60, "10,000 confirms", || h.status().confirmed == 10_000).await;
        eprintln!("10,000 events confirmed in {:?}", t.elapsed());
        assert_eq!(ob.len(), 0);
        assert!(ob.peek(0, 10).expect("peek").is_empty());
        let count = || async {
            let q = ch
                .queue_declare(
                    short(&q),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("passive declare");
            q.message_count()
        };
        assert_eq!(count().await, 10_000, "every event reached the bound queue");
        let st = h.status();
        assert_eq!((st.published, st.failed, st.overflowed), (10_000, 0, 0));
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_survives_a_reopen_and_drains_after() {
    let Some(conn) = broker().await else { return };
    run(&domain(), &[], |d| async move {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // Events queued while no bridge runs (as when the broker is away).
            let (_store, ob) = outbox_in(dir.path(), 1000);
            for i in 1..=50 {
                let m = heartbeat(i)
                    .to_message(&d, &format!("n:{i}"), 1)
                    .expect("message");
                ob.push(&m).expect("push");
            }
            ob.flush().expect("flush");
        }
        let (_store, ob) = outbox_in(dir.path(), 1000);
        assert_eq!(ob.len(), 50, "the outbox kept its events");
        let ch = conn.create_channel().await.expect("channel");
        let q = bind_all(&ch, &d, &[]).await;
        let bridge = Bridge::start(&config(&d), ob.clone(), None).expect("start");
        let got = take(&ch, &q, 50, 15).await;
        let ids: Vec<&str> = got.iter().map(|m| s(m.properties.message_id())).collect();
        let want: Vec<String> = (1..=50).map(|i| format!("n:{i}")).collect();
        assert_eq!(ids, want);
        wait_until(10, "the outbox to drain", || ob.is_empty()).await;
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

/// A bridge taking commands, its handler recording them and answering `done <n>`.
fn command_bridge(d: &str, ob: Outbox) -> (Bridge, mpsc::Receiver<Command>) {
    let (tx, mut rx) = mpsc::channel::<(
        Command,
        tokio::sync::oneshot::Sender<Result<String, String>>,
    )>(8);
    let (seen_tx, seen) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut n = 0;
        while let Some((cmd, answer)) = rx.recv().await {
            n += 1;
            let ok = !matches!(cmd, Command::ExecuteCommand { .. });
            let _ = seen_tx.send(cmd).await;
            let _ = answer.send(if ok {
                Ok(format!("done {n}"))
            } else {
                Err("no such command".into())
            });
        }
    });
    let cfg = Config {
        commands: true,
        ..config(d)
    };
    (Bridge::start(&cfg, ob, Some(tx)).expect("start"), seen)
}

/// A command bridge connected, and a confirming channel with the reply queue
/// `<domain>.test.replies`.
struct Commands {
    bridge: Bridge,
    seen: mpsc::Receiver<Command>,
    ch: Channel,
    replies: String,
    _store: (tempfile::TempDir, Sled),
}

async fn commands_setup(conn: &Connection, d: &str) -> Commands {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, ob) = outbox_in(dir.path(), 1000);
    let (bridge, seen) = command_bridge(d, ob);
    let h = bridge.handle();
    wait_until(10, "the bridge to connect", || h.status().connected).await;
    let ch = conn.create_channel().await.expect("channel");
    let confirms = ConfirmSelectOptions::default();
    ch.confirm_select(confirms).await.expect("confirms");
    let replies = format!("{d}.test.replies");
    let opts = QueueDeclareOptions::default();
    ch.queue_declare(short(&replies), opts, FieldTable::default())
        .await
        .expect("reply queue");
    Commands {
        bridge,
        seen,
        ch,
        replies,
        _store: (dir, store),
    }
}

/// Publishes a command to the commands queue, replies going to `<domain>.test.replies`.
async fn send(ch: &Channel, d: &str, body: &str, reply_to: &str, id: &str) {
    let props = BasicProperties::default()
        .with_reply_to(short(reply_to))
        .with_correlation_id(short(id))
        .with_content_type(short("application/json"));
    ch.basic_publish(
        short(""),
        short(&topology::commands_queue(d)),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_handed_over_and_answered() {
    let Some(conn) = broker().await else { return };
    run(&domain(), &[], |d| async move {
        let Commands { bridge, mut seen, ch, replies, _store } = commands_setup(&conn, &d).await;
        let h = bridge.handle();
        let body = r#"{"type":"ChangeState","app":"lamp","path":"/vm/tomcat","state":"DEPLOYED_STARTED"}"#;
        send(&ch, &d, body, &replies, "c-1").await;
        let roboconf = r#"{"type":"MsgCmdChangeInstanceState","applicationName":"lamp","instancePath":"/vm","newState":"NOT_DEPLOYED"}"#;
        send(&ch, &d, roboconf, &replies, "c-2").await;
        let got = take(&ch, &replies, 2, 15).await;
        for (m, (id, n)) in got.iter().zip([("c-1", 1), ("c-2", 2)]) {
            assert_eq!(s(m.properties.correlation_id()), id);
            let v: serde_json::Value = serde_json::from_slice(&m.data).expect("json");
            assert_eq!(v, serde_json::json!({"ok": true, "message": format!("done {n}")}));
        }
        assert_eq!(
            seen.recv().await,
            Some(Command::ChangeState { app: "lamp".into(), path: "/vm/tomcat".into(), state: State::DeployedStarted })
        );
        assert_eq!(
            seen.recv().await,
            Some(Command::ChangeState { app: "lamp".into(), path: "/vm".into(), state: State::NotDeployed })
        );
        wait_until(5, "the counters", || h.status().commands_answered == 2).await;
        let st = h.status();
        assert_eq!((st.commands_received, st.commands_rejected), (2, 0));
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_command_is_answered_and_dead_lettered() {
    let Some(conn) = broker().await else { return };
    run(&domain(), &[], |d| async move {
        let Commands {
            bridge,
            ch,
            replies,
            ..
        } = commands_setup(&conn, &d).await;
        let h = bridge.handle();
        // A reply to a queue that does not exist must not break the bridge's channels.
        send(&ch, &d, "not json", &format!("{d}.nowhere"), "c-0").await;
        send(&ch, &d, "not json", &replies, "c-1").await;
        send(
            &ch,
            &d,
            r#"{"type":"Reboot","app":"lamp"}"#,
            &replies,
            "c-2",
        )
        .await;
        let big = format!(r#"{{"type":"StopAll","app":"{}"}}"#, "a".repeat(70_000));
        send(&ch, &d, &big, &replies, "c-3").await;
        // Refused by the agent: an error reply, but acknowledged (not dead-lettered).
        send(
            &ch,
            &d,
            r#"{"type":"ExecuteCommand","app":"lamp","command":"x"}"#,
            &replies,
            "c-4",
        )
        .await;
        send(
            &ch,
            &d,
            r#"{"type":"StopAll","app":"lamp"}"#,
            &replies,
            "c-5",
        )
        .await;
        let got = take(&ch, &replies, 5, 15).await;
        let mut ids: Vec<&str> = got
            .iter()
            .map(|m| s(m.properties.correlation_id()))
            .collect();
        ids.sort();
        assert_eq!(ids, ["c-1", "c-2", "c-3", "c-4", "c-5"]);
        for m in &got {
            let v: serde_json::Value = serde_json::from_slice(&m.data).expect("json");
            let ok = s(m.properties.correlation_id()) == "c-5";
            assert_eq!(v["ok"], ok, "{v}");
        }
        let dead = topology::dead_letters(&d);
        let mut bodies = Vec::new();
        let end = Instant::now() + Duration::from_secs(10);
        while bodies.len() < 4 {
            assert!(Instant::now() < end, "dead letters: {bodies:?}");
            match ch
                .basic_get(short(&dead), BasicGetOptions { no_ack: true })
                .await
                .expect("get")
            {
                Some(m) => bodies.push(
                    String::from_utf8_lossy(&m.delivery.data)
                        .chars()
                        .take(20)
                        .collect::<String>(),
                ),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert_eq!(
            &bodies[..3],
            ["not json", "not json", r#"{"type":"Reboot","ap"#]
        );
        assert!(bodies[3].starts_with(r#"{"type":"StopAll""#));
        wait_until(5, "the counters", || h.status().commands_answered == 2).await;
        let st = h.status();
        assert_eq!(
            (
                st.commands_received,
                st.commands_rejected,
                st.commands_answered
            ),
            (6, 4, 2)
        );
        assert!(st.connected);
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_retried_and_push_still_works() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, ob) = outbox_in(dir.path(), 1000);
    let cfg = Config {
        url: Some(format!("amqp://guest:s3cret@127.0.0.1:{port}/%2f")),
        ..config(&domain())
    };
    let bridge = Bridge::start(&cfg, ob, None).expect("start never waits for the broker");
    let h = bridge.handle();
    wait_until(10, "a connection error", || h.status().last_error.is_some()).await;
    for i in 1..=3 {
        h.push(&format!("n:{i}"), &heartbeat(i)).expect("push");
    }
    let st = h.status();
    assert!(!st.connected);
    assert_eq!(st.outbox, 3);
    assert!(
        !st.url.contains("s3cret") && st.url.contains(&port.to_string()),
        "{}",
        st.url
    );
    // Something now listens there but speaks no AMQP: the bridge keeps trying (backoff
    // at most 2 s), and every attempt fails.
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("port {port} taken meanwhile ({e}); retry check skipped");
            bridge.stop().await;
            return;
        }
    };
    let t = Instant::now();
    for attempt in 0..2 {
        let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
        let (sock, _) = accepted
            .unwrap_or_else(|_| panic!("no attempt {attempt}"))
            .expect("accept");
        drop(sock);
    }
    eprintln!("two attempts within {:?}", t.elapsed());
    let st = h.status();
    assert!(!st.connected);
    assert_eq!(st.outbox, 3);
    let stopping = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), bridge.stop())
        .await
        .expect("stop promptly");
    assert!(stopping.elapsed() < Duration::from_secs(6));
}

/// The broker's process id of the connection named `name` (`rabbitmqctl`, whose plain
/// listing gives the `<node.N.M>` form `close_connection` takes).
fn connection_pid(name: &str) -> Option<String> {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "pid", "client_properties"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let pid = text
        .lines()
        .find(|l| l.contains(name))
        .and_then(|l| l.split('\t').next())
        .map(str::to_string);
    if pid.is_none() {
        eprintln!("no connection {name} in:\n{text}");
    }
    pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_by_the_broker_loses_nothing() {
    let Some(conn) = broker().await else { return };
    if std::process::Command::new("rabbitmqctl")
        .arg("help")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no rabbitmqctl to close the bridge's connection");
        return;
    }
    run(&domain(), &[], |d| async move {
        let ch = conn.create_channel().await.expect("channel");
        let q = bind_all(&ch, &d, &[]).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, ob) = outbox_in(dir.path(), 100_000);
        let bridge = Bridge::start(&config(&d), ob.clone(), None).expect("start");
        let h = bridge.handle();
        let n = 20_000;
        for i in 1..=n {
            h.push(&format!("n:{i}"), &heartbeat(i)).expect("push");
        }
        wait_until(20, "the first confirms", || h.status().confirmed > 0).await;
        let name = format!("roboconf-mesh {d}");
        let pid = tokio::task::spawn_blocking(move || connection_pid(&name))
            .await
            .expect("rabbitmqctl")
            .expect("the bridge's connection is listed");
        let closed = tokio::task::spawn_blocking(move || {
            std::process::Command::new("rabbitmqctl")
                .args(["close_connection", &pid, "test: connection lost"])
                .output()
        })
        .await
        .expect("join")
        .expect("rabbitmqctl close_connection");
        assert!(closed.status.success(), "{closed:?}");
        wait_until(20, "the error to be seen", || {
            h.status().last_error.is_some()
        })
        .await;
        h.push("n:last", &heartbeat(0))
            .expect("push after the loss");
        wait_until(60, "the outbox to drain", || {
            ob.is_empty() && h.status().connected
        })
        .await;
        let st = h.status();
        eprintln!(
            "after the loss: published {} confirmed {} failed {} ({:?})",
            st.published, st.confirmed, st.failed, st.last_error
        );
        assert!(st.confirmed > n);
        let mut c = ch
            .basic_consume(
                short(&q),
                short(""),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("consume");
        let mut seen = std::collections::HashSet::new();
        let mut dups = 0;
        while seen.len() < n as usize + 1 {
            let d = tokio::time::timeout(Duration::from_secs(10), c.next())
                .await
                .unwrap_or_else(|_| panic!("only {} distinct events arrived", seen.len()));
            let d = d.expect("stream").expect("delivery");
            if !seen.insert(s(d.properties.message_id()).to_string()) {
                dups += 1;
            }
        }
        eprintln!("every event arrived; {dups} duplicates");
        bridge.stop().await;
        let _ = conn.close(200, short("bye")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_fails_cleanly_against_a_server_that_speaks_no_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_store, ob) = outbox_in(dir.path(), 10);
    let cfg = Config {
        url: Some(format!("amqps://guest:guest@127.0.0.1:{port}/")),
        ..config(&domain())
    };
    let bridge = Bridge::start(&cfg, ob, None).expect("start");
    let h = bridge.handle();
    // Answer the TLS client hello with AMQP's plain protocol header.
    let (mut sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("an attempt")
        .expect("accept");
    let _ = tokio::io::AsyncWriteExt::write_all(&mut sock, b"AMQP\x00\x00\x09\x01").await;
    wait_until(10, "the TLS error", || h.status().last_error.is_some()).await;
    let st = h.status();
    assert!(!st.connected);
    assert!(st.url.starts_with("amqps://"), "{}", st.url);
    eprintln!("amqps against plain bytes: {:?}", st.last_error);
    bridge.stop().await;
}
