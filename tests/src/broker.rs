//! A RabbitMQ broker as the bridge's tests and benchmark use it: connecting (a broker
//! that does not answer is a failure: `.ci/run` starts one), a queue bound with `#` on
//! a domain's exchanges declared as Roboconf declares them (topic, not durable, so the
//! bridges' declarations must agree), and deleting what a test declared in its domain.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;

/// The machine's broker.
pub const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn short(s: &str) -> ShortString {
    ShortString::from(s.to_string())
}

/// A small runtime for a synchronous test's AMQP side.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A connection to `url`, within 5 s.
pub async fn connect(url: &str) -> Connection {
    let c = Connection::connect(url, ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(5), c).await {
        Ok(Ok(c)) => c,
        _ => panic!("no RabbitMQ answers at {url}; `.ci/run` starts one at 127.0.0.1:5672"),
    }
}

/// Roboconf's exchanges of a domain: the DM's, the inter-application one, and each
/// application's.
pub fn exchanges(domain: &str, apps: &[&str]) -> Vec<String> {
    let mut xs = vec![
        format!("{domain}.roboconf.dm"),
        format!("{domain}.roboconf.inter-app"),
    ];
    xs.extend(apps.iter().map(|a| format!("{domain}.{a}.agents")));
    xs
}

/// Declares `queue` (with `opts`) and binds it with `#` on each exchange, declared as
/// Roboconf declares them.
pub async fn bind_all(ch: &Channel, queue: &str, opts: QueueDeclareOptions, xs: &[String]) {
    ch.queue_declare(short(queue), opts, FieldTable::default())
        .await
        .expect("queue");
    for x in xs {
        ch.exchange_declare(
            short(x),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange");
        ch.queue_bind(
            short(queue),
            short(x),
            short("#"),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
}

/// Deletes a domain's exchanges and queues: Roboconf's exchanges of `apps`, the commands
/// queue and its dead letters, the tests' `<domain>.test` and `<domain>.test.replies`.
/// Each on a channel of its own (a failed delete closes its channel).
pub async fn delete_domain(conn: &Connection, domain: &str, apps: &[&str]) {
    let dead = format!("{domain}.roboconf.commands.dead");
    let queues = [
        format!("{domain}.roboconf.commands"),
        dead.clone(),
        format!("{domain}.test"),
        format!("{domain}.test.replies"),
    ];
    for q in queues {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .queue_delete(short(&q), QueueDeleteOptions::default())
                .await;
        }
    }
    let mut xs = exchanges(domain, apps);
    xs.push(dead);
    for x in xs {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .exchange_delete(short(&x), ExchangeDeleteOptions::default())
                .await;
        }
    }
}
