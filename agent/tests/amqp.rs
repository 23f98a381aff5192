//! The AMQP bridge against the machine's RabbitMQ (127.0.0.1:5672, guest/guest): events
//! published on Roboconf's exchanges in order, the outbox drained on confirms and kept
//! across a reopen, a broker that is away or closes the connection. Each test works in
//! a domain of its own and deletes what it declared; without a broker they fail.

mod amqp_support;
use amqp_support::*;

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
