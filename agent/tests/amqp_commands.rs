//! Commands through the AMQP bridge, on the machine's RabbitMQ: handed to the agent and
//! answered on `reply_to`, or, malformed, answered with an error and dead-lettered.

mod amqp_support;
use amqp_support::*;

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
