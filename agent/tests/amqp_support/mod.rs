//! What the AMQP bridge's tests share: the broker's URL, a domain of their own, the
//! bridge's settings and outbox, waiting, declaring, taking messages and cleaning up.
#![allow(dead_code, unused_imports)]

pub use futures::StreamExt;
pub use lapin::options::*;
pub use lapin::types::{AMQPValue, FieldTable, ShortString};
pub use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
pub use roboconf_agent::amqp::{
    messages::short, outbox, topology, Bridge, Command, Config, Event, MemberState, Outbox,
};
pub use roboconf_agent::api::State;
pub use roboconf_agent::store::Sled;
pub use std::collections::BTreeMap;
pub use std::future::Future;
pub use std::sync::atomic::{AtomicU64, Ordering};
pub use std::time::{Duration, Instant};
pub use tokio::sync::mpsc;

pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub async fn broker() -> Option<Connection> {
    let c = Connection::connect(URL, ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(3), c).await {
        Ok(Ok(c)) => Some(c),
        // `.ci/run` starts one when none answers: a missing broker is a failure.
        _ => panic!("no RabbitMQ answers at 127.0.0.1:5672 (guest/guest); `.ci/run` starts one"),
    }
}

pub fn domain() -> String {
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

pub fn config(domain: &str) -> Config {
    Config {
        url: Some(URL.into()),
        domain: domain.into(),
        ..Config::default()
    }
}

/// A store in a temporary folder and its outbox. sled lets go of its lock file a moment
/// after the last handle is dropped (its background writes end on threads of their own):
/// reopened in the same process, the store is polled for until the lock is free (10 s).
pub fn outbox_in(dir: &std::path::Path, max: u64) -> (Sled, Outbox) {
    let end = Instant::now() + Duration::from_secs(10);
    let store = loop {
        match Sled::open(dir) {
            Ok(store) => break store,
            Err(e) if format!("{e:?}").contains("WouldBlock") && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("store: {e:?}"),
        }
    };
    let o = Outbox::open(store.open_tree(outbox::TREE).expect("tree"), max).expect("outbox");
    (store, o)
}

/// Polls `cond` until it holds or `secs` pass.
pub async fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs a test body, then deletes the domain's exchanges and queues even if it failed.
pub async fn run<F, Fut>(domain: &str, apps: &[&str], body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let r = tokio::spawn(body(domain.to_string())).await;
    if let Some(conn) = broker().await {
        roboconf_tests::broker::delete_domain(&conn, domain, apps).await;
        let _ = conn.close(200, short("bye")).await;
    }
    if let Err(e) = r {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Declares the exchanges as Roboconf does (so the bridge's declarations must agree)
/// and a queue `<domain>.test` bound with `#` on each.
pub async fn bind_all(ch: &Channel, d: &str, apps: &[&str]) -> String {
    let q = format!("{d}.test");
    let xs = roboconf_tests::broker::exchanges(d, apps);
    roboconf_tests::broker::bind_all(ch, &q, QueueDeclareOptions::default(), &xs).await;
    q
}

/// The next `n` deliveries of a queue.
pub async fn take(ch: &Channel, q: &str, n: usize, secs: u64) -> Vec<lapin::message::Delivery> {
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

pub fn s(v: &Option<ShortString>) -> &str {
    v.as_ref().map(|s| s.as_str()).unwrap_or("")
}

pub fn heartbeat(i: u64) -> Event {
    Event::Heartbeat {
        app: "lamp".into(),
        root: format!("/vm{i}"),
        ip: "10.0.0.1".into(),
    }
}
