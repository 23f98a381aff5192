//! Benchmark of the AMQP bridge (issue 18), in process: a real `Bridge` on an `Outbox` in
//! a sled store (as the agent runs them), publishing with publisher confirms to RabbitMQ,
//! and a lapin consumer bound with `#` on the domain's DM exchange.
//!
//! (a) latency: events pushed at 100 per second for 10 s, each stamped with its push
//!     time (in the `Autonomic` event's `eventInfo`), against the consumer's receive time:
//!     p50 and p99;
//! (b) throughput: 100,000 events pushed as fast as possible; events per second until
//!     every one is confirmed and the outbox is empty, the consumer's receive rate, and
//!     the push rate alone;
//! (c) recovery: a private RabbitMQ node (`roboconf_tests::rabbit`) stopped for 30 s
//!     while events are pushed at 100 per second (3,000 queued); then the time from the
//!     node accepting connections again until the bridge is connected, the outbox empty
//!     and the consumer has every event.
//!
//! (a) and (b) use the machine's broker (127.0.0.1:5672, guest/guest) or
//! `AMQP_BENCH_URL`. Run with `cargo bench -p roboconf-agent --bench amqp`.
//! `AMQP_BENCH_QUICK=1`: 3 s of (a), 20,000 events in (b), a 5 s outage, one round;
//! `AMQP_BENCH_ROUNDS` (default 3) rounds of (a) and (b); `AMQP_BENCH_N` events in (b);
//! `AMQP_BENCH_OUTAGE_SECS` for (c); `AMQP_BENCH_ONLY=a,b,c` to choose.

use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use roboconf_agent::amqp::{messages::short, outbox, topology, Bridge, Config, Event, Outbox};
use roboconf_agent::store::Sled;
use roboconf_tests::rabbit::PrivateBroker;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const MACHINE_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Nanoseconds since the bench started: the clock both the pusher and the consumer read.
fn ns() -> u64 {
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn domain(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// An `Autonomic` event whose `eventInfo` is its push time.
fn stamped(i: u64) -> Event {
    Event::Autonomic {
        app: "bench".into(),
        root: format!("/vm{}", i % 16),
        event_name: "tick".into(),
        event_info: ns().to_string(),
    }
}

/// What the consumer took: message ids, receive times and latencies (ns).
#[derive(Default)]
struct Received {
    ids: HashSet<String>,
    messages: u64,
    first_ns: Option<u64>,
    /// When the distinct count last grew.
    last_new_ns: u64,
    latencies_ns: Vec<u64>,
}

type Shared = Arc<Mutex<Received>>;

fn record(got: &Shared, d: &lapin::message::Delivery) {
    let now = ns();
    let id = d
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    let stamp = serde_json::from_slice::<serde_json::Value>(&d.data)
        .ok()
        .and_then(|v| v["eventInfo"].as_str().and_then(|s| s.parse::<u64>().ok()));
    let mut g = got.lock().unwrap_or_else(|p| p.into_inner());
    g.messages += 1;
    g.first_ns.get_or_insert(now);
    if g.ids.insert(id) {
        g.last_new_ns = now;
        if let Some(s) = stamp {
            g.latencies_ns.push(now.saturating_sub(s));
        }
    }
}

fn distinct(got: &Shared) -> usize {
    got.lock().unwrap_or_else(|p| p.into_inner()).ids.len()
}

/// Declares the DM exchange as the bridge does and an exclusive queue bound to it with
/// `#`, then consumes it (no acks) into `got`. Returns the channel (the queue lives as
/// long as its connection).
async fn consumer(conn: &Connection, d: &str, got: Shared) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    let x = topology::dm_exchange(d);
    ch.exchange_declare(
        short(&x),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let q = format!("{d}.bench");
    let opts = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..Default::default()
    };
    ch.queue_declare(short(&q), opts, FieldTable::default())
        .await
        .expect("queue");
    ch.queue_bind(
        short(&q),
        short(&x),
        short("#"),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let mut c = ch
        .basic_consume(
            short(&q),
            short("bench"),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(d)) = c.next().await {
            record(&got, &d);
        }
    });
    ch
}

/// A consumer of an existing queue that connects again whenever its connection is lost.
async fn consume_forever(url: String, q: String, got: Shared) {
    loop {
        let connect = Connection::connect(&url, ConnectionProperties::default());
        let Ok(Ok(conn)) = tokio::time::timeout(Duration::from_secs(3), connect).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let started = async {
            let ch = conn.create_channel().await?;
            let opts = BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            };
            ch.basic_consume(short(&q), short("bench"), opts, FieldTable::default())
                .await
        };
        if let Ok(mut c) = started.await {
            loop {
                match tokio::time::timeout(Duration::from_millis(500), c.next()).await {
                    Ok(Some(Ok(d))) => record(&got, &d),
                    Ok(_) => break,
                    Err(_) if conn.status().connected() => {}
                    Err(_) => break,
                }
            }
        }
        let _ = conn.close(200, short("bye")).await;
    }
}

async fn connect(url: &str) -> Connection {
    roboconf_tests::broker::connect(url).await
}

/// A bridge on a fresh sled store (kept with it).
struct Rig {
    bridge: Bridge,
    outbox: Outbox,
    _store: (tempfile::TempDir, Sled),
}

fn rig(url: &str, d: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Sled::open(dir.path()).expect("store");
    let outbox =
        Outbox::open(store.open_tree(outbox::TREE).expect("tree"), 1_000_000).expect("outbox");
    let cfg = Config {
        url: Some(url.to_string()),
        domain: d.to_string(),
        outbox_max: 1_000_000,
        ..Config::default()
    };
    let bridge = Bridge::start(&cfg, outbox.clone(), None).expect("bridge");
    Rig {
        bridge,
        outbox,
        _store: (dir, store),
    }
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Deletes the DM exchange of a domain on the machine's broker.
async fn clean(conn: &Connection, d: &str) {
    if let Ok(ch) = conn.create_channel().await {
        let _ = ch
            .exchange_delete(
                short(&topology::dm_exchange(d)),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// Pushes `n` events at `rate` per second on an absolute schedule.
fn paced(rig: &Rig, tag: &str, n: u64, rate: f64) {
    let t0 = Instant::now();
    for i in 1..=n {
        let due = t0 + Duration::from_secs_f64((i - 1) as f64 / rate);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        rig.bridge
            .push(&format!("{tag}:{i}"), &stamped(i))
            .expect("push");
    }
}

/// (a): (p50, p99) latency in ms.
fn latency(rt: &tokio::runtime::Runtime, url: &str, secs: u64) -> (f64, f64) {
    let d = domain("lat");
    let conn = rt.block_on(connect(url));
    let got: Shared = Arc::default();
    let _ch = rt.block_on(consumer(&conn, &d, got.clone()));
    let rig = rt.block_on(async { rig(url, &d) });
    let h = rig.bridge.handle();
    wait("the bridge connected", Duration::from_secs(10), || {
        h.status().connected
    });
    // A warm-up event: the exchange declared, the channel's first publish.
    rig.bridge.push("warm:0", &stamped(0)).expect("push");
    wait("the warm-up", Duration::from_secs(10), || {
        distinct(&got) == 1
    });
    let n = secs * 100;
    paced(&rig, "lat", n, 100.0);
    wait("every event", Duration::from_secs(30), || {
        distinct(&got) as u64 == n + 1
    });
    let lat: Vec<f64> = {
        let g = got.lock().unwrap_or_else(|p| p.into_inner());
        g.latencies_ns[1..]
            .iter()
            .map(|x| *x as f64 / 1e6)
            .collect()
    };
    rt.block_on(rig.bridge.stop());
    rt.block_on(clean(&conn, &d));
    let _ = rt.block_on(conn.close(200, short("bye")));
    (pct(&lat, 0.5), pct(&lat, 0.99))
}

struct Throughput {
    confirmed_per_s: f64,
    consumed_per_s: f64,
    pushed_per_s: f64,
    published: u64,
    failed: u64,
}

/// (b).
fn throughput(rt: &tokio::runtime::Runtime, url: &str, n: u64) -> Throughput {
    let d = domain("tput");
    let conn = rt.block_on(connect(url));
    let got: Shared = Arc::default();
    let _ch = rt.block_on(consumer(&conn, &d, got.clone()));
    let rig = rt.block_on(async { rig(url, &d) });
    let h = rig.bridge.handle();
    wait("the bridge connected", Duration::from_secs(10), || {
        h.status().connected
    });
    rig.bridge.push("warm:0", &stamped(0)).expect("push");
    wait("the warm-up", Duration::from_secs(10), || {
        distinct(&got) == 1 && h.status().outbox == 0
    });
    let base = h.status().confirmed;
    let t0 = ns();
    for i in 1..=n {
        rig.bridge
            .push(&format!("tput:{i}"), &stamped(i))
            .expect("push");
    }
    let pushed = ns();
    wait("every confirm", Duration::from_secs(300), || {
        let st = h.status();
        st.confirmed - base >= n && st.outbox == 0
    });
    let confirmed = ns();
    wait("every delivery", Duration::from_secs(120), || {
        distinct(&got) as u64 == n + 1
    });
    let last = got.lock().unwrap_or_else(|p| p.into_inner()).last_new_ns;
    let st = h.status();
    assert!(rig.outbox.is_empty());
    rt.block_on(rig.bridge.stop());
    rt.block_on(clean(&conn, &d));
    let _ = rt.block_on(conn.close(200, short("bye")));
    let per_s = |end: u64| n as f64 / ((end - t0) as f64 / 1e9);
    Throughput {
        confirmed_per_s: per_s(confirmed),
        consumed_per_s: per_s(last),
        pushed_per_s: per_s(pushed),
        published: st.published,
        failed: st.failed,
    }
}

struct Recovery {
    queued: u64,
    reconnected_s: f64,
    drained_s: f64,
    consumed_s: f64,
    start_s: f64,
    duplicates: u64,
}

/// (c).
fn recovery(rt: &tokio::runtime::Runtime, outage_secs: u64) -> Recovery {
    let d = domain("rec");
    let x = topology::dm_exchange(&d);
    let q = format!("{d}.bench");
    // The exchange as the bridge declares it and a durable queue bound to it, imported
    // at every boot before the listener opens: the binding is there before the bridge
    // can publish after the restart.
    let defs = serde_json::json!({
        "exchanges": [{"name": x, "vhost": "/", "type": "topic", "durable": false,
                       "auto_delete": false, "internal": false, "arguments": {}}],
        "queues": [{"name": q, "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {}}],
        "bindings": [{"source": x, "vhost": "/", "destination": q,
                      "destination_type": "queue", "routing_key": "#", "arguments": {}}],
    });
    let mut broker = PrivateBroker::with_definitions(&defs);
    broker.start();
    let url = broker.url();
    let got: Shared = Arc::default();
    let consumer = rt.spawn(consume_forever(url.clone(), q, got.clone()));
    let rig = rt.block_on(async { rig(&url, &d) });
    let h = rig.bridge.handle();
    wait("the bridge connected", Duration::from_secs(10), || {
        h.status().connected
    });
    broker.stop();
    wait(
        "the bridge to see the loss",
        Duration::from_secs(20),
        || !h.status().connected,
    );
    let n = outage_secs * 100;
    paced(&rig, "rec", n, 100.0);
    assert_eq!(rig.outbox.len(), n, "every event waits");
    // Watch the bridge from a thread while the node boots: the first instants at which
    // it is connected and its outbox empty.
    let watcher = {
        let h = h.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(180);
            let (mut connected, mut drained) = (None, None);
            while drained.is_none() && Instant::now() < end {
                let st = h.status();
                if st.connected && connected.is_none() {
                    connected = Some(Instant::now());
                }
                if st.connected && st.outbox == 0 {
                    drained = Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            (connected, drained)
        })
    };
    let booting = Instant::now();
    broker.start();
    let accepting = broker.accepting_since().expect("accepting");
    let (connected, drained) = watcher.join().expect("watcher");
    let (connected, drained) = (
        connected.expect("the bridge reconnected"),
        drained.expect("the outbox drained"),
    );
    wait("every delivery", Duration::from_secs(120), || {
        distinct(&got) as u64 == n
    });
    let (last, messages) = {
        let g = got.lock().unwrap_or_else(|p| p.into_inner());
        (g.last_new_ns, g.messages)
    };
    // `last` is on the `ns()` clock: bring `accepting` onto it.
    let accepting_ns = ns() - accepting.elapsed().as_nanos() as u64;
    let since = |t: Instant| t.saturating_duration_since(accepting).as_secs_f64();
    let r = Recovery {
        queued: n,
        reconnected_s: since(connected),
        drained_s: since(drained),
        consumed_s: last.saturating_sub(accepting_ns) as f64 / 1e9,
        start_s: (accepting - booting).as_secs_f64(),
        duplicates: messages - n,
    };
    rt.block_on(rig.bridge.stop());
    consumer.abort();
    drop(broker);
    r
}

fn row(name: &str, v: &[f64], unit: &str, digits: usize) {
    println!(
        "| {name} | **{:.*} {unit}** | {:.*} | {:.*} |",
        digits,
        pct(v, 0.5),
        digits,
        pct(v, 0.0),
        digits,
        pct(v, 1.0)
    );
}

fn main() {
    // Cargo passes `--bench`; nothing else is understood.
    let quick = std::env::var("AMQP_BENCH_QUICK").is_ok_and(|v| v == "1");
    let rounds: usize = env_or("AMQP_BENCH_ROUNDS", if quick { 1 } else { 3 });
    let n: u64 = env_or("AMQP_BENCH_N", if quick { 20_000 } else { 100_000 });
    let lat_secs: u64 = if quick { 3 } else { 10 };
    let outage: u64 = env_or("AMQP_BENCH_OUTAGE_SECS", if quick { 5 } else { 30 });
    let url = std::env::var("AMQP_BENCH_URL").unwrap_or_else(|_| MACHINE_URL.to_string());
    let only = std::env::var("AMQP_BENCH_ONLY").unwrap_or_else(|_| "a,b,c".into());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    ns();
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    let mut tputs = Vec::new();
    for r in 0..rounds {
        if only.contains('a') {
            let (a, b) = latency(&rt, &url, lat_secs);
            eprintln!("round {r}: (a) latency p50 {a:.2} ms, p99 {b:.2} ms");
            p50.push(a);
            p99.push(b);
        }
        if only.contains('b') {
            let t = throughput(&rt, &url, n);
            eprintln!(
                "round {r}: (b) {n} events: confirmed {:.0}/s, consumed {:.0}/s, pushed {:.0}/s ({} published, {} failed)",
                t.confirmed_per_s, t.consumed_per_s, t.pushed_per_s, t.published, t.failed
            );
            tputs.push(t);
        }
    }
    let rec =
        (only.contains('c') && roboconf_tests::rabbit::available()).then(|| recovery(&rt, outage));
    println!();
    println!("AMQP bridge, {rounds} round(s); (a) and (b) against {url}");
    println!();
    println!("| figure | median | min | max |");
    println!("|---|---|---|---|");
    if !p50.is_empty() {
        row(
            &format!("(a) latency p50, {} events at 100/s", lat_secs * 100),
            &p50,
            "ms",
            2,
        );
        row("(a) latency p99", &p99, "ms", 2);
    }
    if !tputs.is_empty() {
        let col = |f: fn(&Throughput) -> f64| tputs.iter().map(f).collect::<Vec<_>>();
        row(
            &format!("(b) {n} events, pushed until all confirmed, outbox empty"),
            &col(|t| t.confirmed_per_s),
            "events/s",
            0,
        );
        row(
            "(b) consumer receive rate (first push → last delivery)",
            &col(|t| t.consumed_per_s),
            "events/s",
            0,
        );
        row(
            "(b) push rate alone (into the outbox)",
            &col(|t| t.pushed_per_s),
            "events/s",
            0,
        );
    }
    if let Some(r) = &rec {
        println!(
            "| (c) {} events queued during a {outage} s outage: broker accepting → bridge connected | **{:.2} s** | | |",
            r.queued, r.reconnected_s
        );
        println!(
            "| (c) broker accepting → outbox empty | **{:.2} s** | | |",
            r.drained_s
        );
        println!(
            "| (c) broker accepting → consumer has all | **{:.2} s** ({} duplicates) | | |",
            r.consumed_s, r.duplicates
        );
        println!(
            "| (c) private node restart → accepting AMQP | {:.1} s | | |",
            r.start_s
        );
    }
}
