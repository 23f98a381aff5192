//! Benchmark: our membership and replication (the real agent cores and SWIM in the
//! simulator, `roboconf_sim::scenario::run`) side by side with quickwit's `chitchat`
//! (scuttlebutt gossip and a phi-accrual failure detector), on the same simulated network:
//! the same N (`SIDE_N`, default 100), one-way latency 10 ms ± 5 ms uniform jitter, loss
//! `SIDE_LOSS` (default 0), each delay and loss drawn by the same function
//! (`roboconf_sim::net::Link::delay`, `Rng::chance`) from a seeded generator (`SIDE_SEED`).
//! It prints, for both and their ratio ours/chitchat: key-change propagation time
//! (p50/p99/max), dead-node detection time (p50/p99/max) and idle traffic per node.
//! Run with `cargo bench -p roboconf-sim --bench side_by_side`.
//!
//! How each side is measured:
//! - **Ours**: three scenario runs of 60 s after the simulator's 10 s warm-up, with every
//!   node but one hosting an exporter (so that every crash removes exports and yields
//!   detection samples). `steady`: propagation is "an exporter reaches DEPLOYED_STARTED →
//!   every live node's replica holds its exports", one sample per change, when the last
//!   node has it. `churn`: detection is "a node crashes → each survivor withdrew its
//!   exports", one sample per survivor. `idle`: bytes every node sent (payload plus 40 B of
//!   framing per message, the simulator's model of Noise/Yamux) over the 60 s and the 20 s
//!   settle, divided by N and by the time.
//! - **chitchat** (0.13, unmodified): N real `spawn_chitchat` servers in one process on a
//!   current-thread tokio runtime whose clock is paused and auto-advances (chitchat's gossip
//!   timer is `tokio::time::interval` and its failure detector uses `tokio::time::Instant`,
//!   so virtual time is faithful and a run takes seconds). Each server's socket is ours:
//!   what it sends goes through chitchat's own `ChannelTransport` (which serialises and
//!   deserialises every envelope, so the byte counts are the real UDP payloads), into one
//!   reader per receiver that counts the sender's bytes, drops the message with
//!   probability `loss` and delivers it after the link delay. Configuration: chitchat's
//!   defaults — gossip every 1 s (its `ChitchatConfig::default`; quickwit's too), 3 random
//!   live peers per round plus seeds and dead nodes as its server picks them,
//!   `FailureDetectorConfig::default()` (phi 8, 5 s prior interval), protocol V0
//!   (`SIDE_PROTOCOL=v1`: the compressed digest). Every node knows the first 3 nodes as
//!   seeds; nodes boot at random times within the first second; each holds one key `v`.
//!   Warm-up until every node lists N live nodes, then 10 s to settle; idle: traffic over
//!   30 s of quiet; propagation: 20 changes of `v` on random nodes, each followed until
//!   every other node's listener saw the new value (one sample per change, as ours), at
//!   least 3 s apart; detection: 5 random nodes stopped one at a time (every message to or
//!   from them dropped), one sample per survivor when its live set (the failure detector's
//!   verdict, `live_nodes_watcher`) loses the stopped node.
//!
//! What differs (read the figures with this in mind): our propagation is a life-cycle
//! change that becomes exports in every importer's view (a command, a script run of the
//! fake plug-in, gossip, the replica's import resolution); chitchat's is a key's new
//! value applied to every node's copy of the owner's state. Our crash resets the node's
//! connections (peers learn of the close after one link delay, the 1.5 s fast path) and
//! SWIM confirms it; a stopped chitchat node just goes silent (UDP has no reset), so phi
//! alone decides. Our simulator charges processor time per message (100 µs to receive,
//! 20 µs to send) and applies ±50 ms of clock skew; chitchat's messages are handled in
//! zero virtual time and it needs no wall clock. Our byte count includes 40 B framing per
//! message; chitchat's is the UDP payload without IP/UDP headers (add 28 B per message for
//! IPv4). Our run is deterministic per seed; chitchat's peer choice draws from its own
//! unseeded generator, so its figures vary a little between runs.

use async_trait::async_trait;
use chitchat::transport::{ChannelTransport, RecvOutcome, SendOutcome, Socket, Transport};
use chitchat::{
    spawn_chitchat, Chitchat, ChitchatConfig, ChitchatEnvelope, ChitchatHandle, ChitchatId,
    FailureDetectorConfig, KeyChangeEvent, NodeState, ProtocolVersion,
};
use roboconf_core::rng::Rng;
use roboconf_sim::metrics::{Percentiles, Report};
use roboconf_sim::net::{Cpu, Link, Micros};
use roboconf_sim::scenario::{run, Kind, Params};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as WallClock};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};

/// chitchat's gossip period (its `ChitchatConfig::default`).
const GOSSIP_INTERVAL: Duration = Duration::from_secs(1);
/// Nodes every node knows as seeds (the first ones).
const SEEDS: usize = 3;
/// The key each chitchat node holds and changes.
const KEY: &str = "v";
/// chitchat's largest datagram (UDP's).
const MTU: usize = 65_507;
const SETTLE: Duration = Duration::from_secs(10);
const IDLE_WINDOW: Duration = Duration::from_secs(30);
const CHANGES: usize = 20;
const CHANGE_SPACING: Duration = Duration::from_secs(3);
const STOPS: usize = 5;
const STOP_SPACING: Duration = Duration::from_secs(2);
/// Longest wait for one change or one detection before giving up on it.
const GIVE_UP: Duration = Duration::from_secs(120);
/// Our scenarios' length (after the simulator's warm-up).
const OUR_DURATION_S: u64 = 60;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn micros(d: Duration) -> Micros {
    d.as_micros() as Micros
}

// ---------------------------------------------------------------------------------------
// The chitchat side: addresses, the simulated network, observations.

/// Node `k`'s gossip address (10.0.x.y:7280).
fn addr(k: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 0, (k / 250) as u8, (k % 250 + 1) as u8)),
        7280,
    )
}

/// The same address on another second octet: `1` is where a node's outgoing messages
/// leave from on the wire, `0` its own address.
fn with_net(a: SocketAddr, net: u8) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) => {
            let o = ip.octets();
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(o[0], net, o[2], o[3])), a.port())
        }
        IpAddr::V6(_) => a,
    }
}

/// Node index from a chitchat id (`n<k>`).
fn index(id: &ChitchatId) -> Option<usize> {
    id.node_id.strip_prefix('n')?.parse().ok()
}

/// The link model, traffic counters and stopped nodes, shared by every socket.
struct Wire {
    link: Link,
    rng: Rng,
    stopped: HashSet<SocketAddr>,
    inboxes: HashMap<SocketAddr, mpsc::Sender<RecvOutcome>>,
    bytes: HashMap<SocketAddr, u64>,
    msgs: HashMap<SocketAddr, u64>,
    /// Messages the readers took off `ChannelTransport` (against its own count: after the
    /// warm-up, any difference is messages its bounded channels dropped).
    carried: u64,
    /// Messages dropped because their receiver's inbox was full (as a full UDP buffer).
    inbox_full: u64,
}

type Shared<T> = Arc<Mutex<T>>;

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Messages waiting at one receiver (a datagram socket's buffer).
const INBOX: usize = 4096;

/// A `Transport` whose sockets send through `ChannelTransport` (exact serialised sizes)
/// and deliver through the link model.
#[derive(Clone)]
struct SimTransport {
    wire: ChannelTransport,
    net: Shared<Wire>,
}

struct SimSocket {
    addr: SocketAddr,
    out: Box<dyn Socket>,
    inbox: mpsc::Receiver<RecvOutcome>,
}

#[async_trait]
impl Transport for SimTransport {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let out = self.wire.open(with_net(listen_addr, 1)).await?;
        let mut arrivals = self.wire.open(listen_addr).await?;
        let (tx, inbox) = mpsc::channel(INBOX);
        locked(&self.net).inboxes.insert(listen_addr, tx);
        let net = self.net.clone();
        tokio::spawn(async move {
            while let Ok(arrival) = arrivals.recv().await {
                carry(&net, listen_addr, arrival);
            }
        });
        Ok(Box::new(SimSocket {
            addr: listen_addr,
            out,
            inbox,
        }))
    }
}

#[async_trait]
impl Socket for SimSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.addr)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.out.send(to, envelope).await
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        self.inbox
            .recv()
            .await
            .ok_or_else(|| anyhow::anyhow!("the simulated network is gone"))
    }
}

/// A message reached `to` on the wire: count it for its sender, then drop it (stopped
/// node, loss) or deliver it after the link's delay.
fn carry(net: &Shared<Wire>, to: SocketAddr, arrival: RecvOutcome) {
    let from = with_net(arrival.from_addr, 0);
    let mut w = locked(net);
    w.carried += 1;
    *w.bytes.entry(from).or_default() += arrival.num_bytes_received as u64;
    *w.msgs.entry(from).or_default() += 1;
    let link = w.link;
    if w.stopped.contains(&from) || w.stopped.contains(&to) || w.rng.chance(link.loss) {
        return;
    }
    let delay = link.delay(&mut w.rng);
    drop(w);
    let net = net.clone();
    tokio::spawn(async move {
        sleep(Duration::from_micros(delay)).await;
        let mut w = locked(&net);
        if w.stopped.contains(&to) {
            return;
        }
        let full = w.inboxes.get(&to).is_some_and(|tx| {
            tx.try_send(RecvOutcome {
                from_addr: from,
                envelope: arrival.envelope,
                num_bytes_received: arrival.num_bytes_received,
            })
            .is_err()
        });
        if full {
            w.inbox_full += 1;
        }
    });
}

/// A key change being followed.
struct Change {
    owner: usize,
    at: Instant,
    waiting: HashSet<usize>,
}

/// What the listeners and liveness watchers saw.
#[derive(Default)]
struct Observed {
    /// Count live → dead verdicts on nodes that were not stopped.
    counting: bool,
    false_dead: u64,
    changes: HashMap<String, Change>,
    propagation_us: Vec<Micros>,
    /// Stopped node → when, and the survivors that still list it live.
    stopped: HashMap<usize, (Instant, HashSet<usize>)>,
    detection_us: Vec<Micros>,
}

impl Observed {
    fn key_seen(&mut self, observer: usize, owner: usize, value: &str, now: Instant) {
        if let Some(c) = self.changes.get_mut(value) {
            if c.owner == owner && c.waiting.remove(&observer) && c.waiting.is_empty() {
                self.propagation_us.push(micros(now - c.at));
            }
        }
    }

    fn liveness(
        &mut self,
        observer: usize,
        before: &HashSet<usize>,
        live: &HashSet<usize>,
        now: Instant,
    ) {
        if self.stopped.contains_key(&observer) {
            return;
        }
        for (node, (at, waiting)) in self.stopped.iter_mut() {
            if !live.contains(node) && waiting.remove(&observer) {
                self.detection_us.push(micros(now - *at));
            }
        }
        if self.counting {
            self.false_dead += before
                .difference(live)
                .filter(|k| !self.stopped.contains_key(k))
                .count() as u64;
        }
    }
}

async fn watch_liveness(
    observer: usize,
    mut rx: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    seen: Shared<Observed>,
) {
    let mut before = HashSet::new();
    while rx.changed().await.is_ok() {
        let live: HashSet<usize> = rx.borrow_and_update().keys().filter_map(index).collect();
        locked(&seen).liveness(observer, &before, &live, Instant::now());
        before = live;
    }
}

fn config(k: usize, n: usize, protocol: ProtocolVersion) -> ChitchatConfig {
    ChitchatConfig {
        chitchat_id: ChitchatId::new(format!("n{k}"), 0, addr(k)),
        cluster_id: "side-by-side".into(),
        gossip_interval: GOSSIP_INTERVAL,
        listen_addr: addr(k),
        seed_nodes: (0..SEEDS.min(n)).map(|s| addr(s).to_string()).collect(),
        failure_detector_config: FailureDetectorConfig::default(),
        marked_for_deletion_grace_period: Duration::from_secs(3600),
        catchup_callback: None,
        extra_liveness_predicate: None,
        protocol_version: protocol,
    }
}

/// chitchat's figures.
struct Theirs {
    joined: Duration,
    idle_bytes: f64,
    idle_msgs: f64,
    propagation: Percentiles,
    propagation_unfinished: usize,
    detection: Percentiles,
    detection_unfinished: usize,
    false_dead: u64,
    wire_overflow: u64,
    virtual_s: f64,
}

fn traffic(net: &Shared<Wire>) -> (u64, u64) {
    let w = locked(net);
    (w.bytes.values().sum(), w.msgs.values().sum())
}

async fn chitchat_side(n: usize, link: Link, seed: u64, protocol: ProtocolVersion) -> Theirs {
    let mut rng = Rng::new(seed ^ 0xc417_c4a7);
    let net = Arc::new(Mutex::new(Wire {
        link,
        rng: Rng::new(rng.next_u64()),
        stopped: HashSet::new(),
        inboxes: HashMap::new(),
        bytes: HashMap::new(),
        msgs: HashMap::new(),
        carried: 0,
        inbox_full: 0,
    }));
    let transport = SimTransport {
        wire: ChannelTransport::with_mtu(MTU),
        net: net.clone(),
    };
    let seen: Shared<Observed> = Arc::default();
    let start = Instant::now();

    // Boot: each node at a random time within the first second.
    let mut order: Vec<(u64, usize)> = (0..n).map(|k| (rng.below(1000) as u64, k)).collect();
    order.sort_unstable();
    let mut handles: Vec<Option<ChitchatHandle>> = (0..n).map(|_| None).collect();
    for (offset_ms, k) in order {
        sleep_until(start + Duration::from_millis(offset_ms)).await;
        let handle = spawn_chitchat(
            config(k, n, protocol),
            vec![(KEY.to_string(), "0".to_string())],
            &transport,
        )
        .await
        .expect("chitchat starts");
        {
            let chitchat = handle.chitchat();
            let guard = chitchat.lock().await;
            let s = seen.clone();
            guard
                .subscribe_event(KEY, move |ev: KeyChangeEvent| {
                    if let Some(owner) = index(ev.node) {
                        locked(&s).key_seen(k, owner, ev.value, Instant::now());
                    }
                })
                .forever();
            tokio::spawn(watch_liveness(k, guard.live_nodes_watcher(), seen.clone()));
        }
        handles[k] = Some(handle);
    }
    let handles: Vec<ChitchatHandle> = handles.into_iter().flatten().collect();
    let nodes: Vec<Arc<tokio::sync::Mutex<Chitchat>>> =
        handles.iter().map(|h| h.chitchat()).collect();
    let ids: Vec<ChitchatId> = handles.iter().map(|h| h.chitchat_id().clone()).collect();

    // Warm-up: until every node lists N live nodes.
    let joined = loop {
        sleep(Duration::from_millis(100)).await;
        let mut complete = true;
        for c in &nodes {
            if c.lock().await.live_nodes().count() < n {
                complete = false;
                break;
            }
        }
        if complete {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "chitchat: membership still incomplete after 600 s"
        );
    };
    eprintln!(
        "side_by_side: chitchat membership complete after {:.1} s (virtual)",
        joined.as_secs_f64()
    );
    sleep(SETTLE).await;
    locked(&seen).counting = true;
    // From here every message goes to a node that exists: any message `ChannelTransport`
    // counted and no reader took is one its bounded channels dropped.
    let sent_at_warm = transport.wire.statistics().num_messages_total;
    let carried_at_warm = locked(&net).carried;

    // Idle traffic.
    let (b0, m0) = traffic(&net);
    sleep(IDLE_WINDOW).await;
    let (b1, m1) = traffic(&net);
    let per = n as f64 * IDLE_WINDOW.as_secs_f64();
    let idle_bytes = ((b1 - b0) as f64 / per).round();
    let idle_msgs = ((m1 - m0) as f64 / per * 10.0).round() / 10.0;

    // Propagation.
    let mut propagation_unfinished = 0;
    for c in 0..CHANGES {
        let owner = rng.below(n);
        let value = format!("change-{c}");
        let at = {
            let mut guard = nodes[owner].lock().await;
            let at = Instant::now();
            locked(&seen).changes.insert(
                value.clone(),
                Change {
                    owner,
                    at,
                    waiting: (0..n).filter(|j| *j != owner).collect(),
                },
            );
            guard.self_node_state().set(KEY, &value);
            at
        };
        loop {
            sleep(Duration::from_millis(100)).await;
            let done = locked(&seen).changes[&value].waiting.is_empty();
            if done {
                break;
            }
            if at.elapsed() > GIVE_UP {
                propagation_unfinished += 1;
                break;
            }
        }
        sleep_until(at + CHANGE_SPACING).await;
    }

    // Detection.
    let mut detection_unfinished = 0;
    let mut stopped: HashSet<usize> = HashSet::new();
    for _ in 0..STOPS.min(n.saturating_sub(2)) {
        let node = loop {
            let k = rng.below(n);
            if !stopped.contains(&k) {
                break k;
            }
        };
        stopped.insert(node);
        let at = Instant::now();
        locked(&net).stopped.insert(ids[node].gossip_advertise_addr);
        let survivors = (0..n).filter(|j| !stopped.contains(j)).collect();
        locked(&seen).stopped.insert(node, (at, survivors));
        loop {
            sleep(Duration::from_millis(100)).await;
            let left = locked(&seen).stopped[&node].1.len();
            if left == 0 {
                break;
            }
            if at.elapsed() > GIVE_UP {
                detection_unfinished += left;
                break;
            }
        }
        sleep(STOP_SPACING).await;
    }

    let virtual_s = start.elapsed().as_secs_f64();
    // Stop the servers (a dropped handle ends its server), let the readers drain.
    drop(handles);
    sleep(Duration::from_millis(100)).await;
    // One guard at a time: two temporaries in one expression would both be held.
    let (carried, inbox_full) = {
        let w = locked(&net);
        (w.carried, w.inbox_full)
    };
    let wire_overflow = (transport.wire.statistics().num_messages_total - sent_at_warm)
        - (carried - carried_at_warm)
        + inbox_full;
    let s = locked(&seen);
    Theirs {
        joined,
        idle_bytes,
        idle_msgs,
        propagation: Percentiles::of(&s.propagation_us),
        propagation_unfinished,
        detection: Percentiles::of(&s.detection_us),
        detection_unfinished,
        false_dead: s.false_dead,
        wire_overflow,
        virtual_s,
    }
}

// ---------------------------------------------------------------------------------------
// Our side and the table.

struct Ours {
    idle: Report,
    steady: Report,
    churn: Report,
}

fn our_side(n: usize, link: Link, seed: u64) -> Ours {
    let base = Params {
        agents: n,
        seed,
        duration_s: OUR_DURATION_S,
        link,
        // roboconf-sim's defaults.
        cpu: Cpu::PerNode {
            recv_us: 100,
            send_us: 20,
        },
        duplicate_us: None,
        collect_ms: None,
        voters: 0,
        skew_ms: 50,
        kind: Kind::Idle,
        exporters: n.saturating_sub(1).max(1),
    };
    let one = |kind: Kind| {
        let t = WallClock::now();
        let (report, _) = run(
            &Params {
                kind,
                ..base.clone()
            },
            false,
        );
        eprintln!(
            "side_by_side: ours, {kind:?} done in {:.1} s (wall)",
            t.elapsed().as_secs_f64()
        );
        report
    };
    Ours {
        idle: one(Kind::Idle),
        steady: one(Kind::Steady),
        churn: one(Kind::Churn),
    }
}

fn ratio(ours: f64, theirs: f64) -> String {
    if theirs > 0.0 {
        format!("{:.3}", ours / theirs)
    } else {
        "-".into()
    }
}

fn row(name: &str, ours: f64, theirs: f64) {
    println!(
        "{name:<32} {ours:>12.1} {theirs:>12.1} {:>14}",
        ratio(ours, theirs)
    );
}

fn percentile_rows(what: &str, ours: &Percentiles, theirs: &Percentiles) {
    row(&format!("{what} p50 (ms)"), ours.p50, theirs.p50);
    row(&format!("{what} p99 (ms)"), ours.p99, theirs.p99);
    row(&format!("{what} max (ms)"), ours.max, theirs.max);
    println!(
        "{:<32} {:>12} {:>12}",
        format!("{what} samples"),
        ours.samples,
        theirs.samples
    );
}

fn main() {
    let n: usize = env("SIDE_N", 100).max(3);
    let loss: f64 = env("SIDE_LOSS", 0.0f64).clamp(0.0, 1.0);
    let seed: u64 = env("SIDE_SEED", 1);
    let protocol = match std::env::var("SIDE_PROTOCOL").as_deref() {
        Ok("v1") | Ok("V1") => ProtocolVersion::V1,
        _ => ProtocolVersion::V0,
    };
    let link = Link {
        latency_us: 10_000,
        jitter_us: 5_000,
        loss,
        duplicate: 0.0,
    };
    eprintln!("side_by_side: N = {n}, latency 10 ms ± 5 ms, loss {loss}, seed {seed}");
    let wall = WallClock::now();

    // Our three runs on a second thread while chitchat runs on this one.
    let ours = std::thread::spawn(move || {
        let t = WallClock::now();
        let o = our_side(n, link, seed);
        (o, t.elapsed())
    });
    let t = WallClock::now();
    let theirs = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime")
        .block_on(chitchat_side(n, link, seed, protocol));
    let their_wall = t.elapsed();
    eprintln!(
        "side_by_side: chitchat done in {:.1} s (wall) for {:.0} s virtual",
        their_wall.as_secs_f64(),
        theirs.virtual_s
    );
    let (ours, our_wall) = ours.join().expect("our side");

    println!();
    println!(
        "side by side: N = {n}, one-way latency 10 ms ± 5 ms, loss {loss}, seed {seed}; chitchat 0.13 protocol {protocol:?}, gossip 1 s, phi 8"
    );
    println!(
        "{:<32} {:>12} {:>12} {:>14}",
        "", "ours", "chitchat", "ours/chitchat"
    );
    percentile_rows(
        "propagation",
        &ours.steady.propagation_ms,
        &theirs.propagation,
    );
    percentile_rows("detection", &ours.churn.detection_ms, &theirs.detection);
    row(
        "idle bytes/node/s",
        ours.idle.bytes_per_node_per_s,
        theirs.idle_bytes,
    );
    row(
        "idle msgs/node/s",
        ours.idle.msgs_per_node_per_s,
        theirs.idle_msgs,
    );
    println!();
    println!(
        "ours: false suspicions idle/steady/churn {}/{}/{}; invariant violations {}/{}/{}; wall {:.1} s",
        ours.idle.false_suspicions,
        ours.steady.false_suspicions,
        ours.churn.false_suspicions,
        ours.idle.invariant_violations.len(),
        ours.steady.invariant_violations.len(),
        ours.churn.invariant_violations.len(),
        our_wall.as_secs_f64()
    );
    println!(
        "chitchat: membership complete at {:.1} s; false dead verdicts {}; unfinished changes {}, detections {}; wire overflow {}; {:.0} s virtual in {:.1} s wall",
        theirs.joined.as_secs_f64(),
        theirs.false_dead,
        theirs.propagation_unfinished,
        theirs.detection_unfinished,
        theirs.wire_overflow,
        theirs.virtual_s,
        their_wall.as_secs_f64()
    );
    println!("total wall time {:.1} s", wall.elapsed().as_secs_f64());
}
