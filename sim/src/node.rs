//! One simulated agent: the real node (`roboconf_core::node::Node`: engine, SWIM,
//! anti-entropy schedule, connection policy, batching of peers' writes) with the
//! runtime's duties done in memory — a store (what a `Ready` says to write is durable
//! at once; the node itself holds back copies of peers' records, lost in a crash), the
//! gossipsub model's state (ids already seen, the gossip mesh among the connections) and
//! the node's clock skew. What crosses the network is the cluster's business.

use roboconf_core::engine::records::{AppRecord, Write};
use roboconf_core::engine::{InstanceRecord, LoadedApp};
use roboconf_core::mesh::replica::Entry;
use roboconf_core::mesh::NodeId;
use roboconf_core::node::{Config, Node, Restored};
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::rc::Rc;

/// The store: a map per tree. Keys and values are shared between the simulated nodes
/// (`Interner`): a thousand nodes hold the same copy of a member's record.
pub type Store = BTreeMap<&'static str, BTreeMap<Rc<[u8]>, Rc<[u8]>>>;

/// One copy of each key and value the simulated stores hold.
#[derive(Default)]
pub struct Interner {
    held: HashSet<Rc<[u8]>>,
    added: usize,
}

impl Interner {
    /// The shared copy of `bytes`.
    pub fn share(&mut self, bytes: Vec<u8>) -> Rc<[u8]> {
        if let Some(b) = self.held.get(bytes.as_slice()) {
            return b.clone();
        }
        self.added += 1;
        if self.added >= 4 * self.held.len().max(1 << 14) {
            // Forget the copies no store holds any more.
            self.held.retain(|b| Rc::strong_count(b) > 1);
            self.added = 0;
        }
        let b: Rc<[u8]> = Rc::from(bytes);
        self.held.insert(b.clone());
        b
    }
}

pub struct SimNode {
    pub name: String,
    pub node: Node,
    pub up: bool,
    /// Bumped at each crash: events of a previous life are ignored.
    pub life: u32,
    /// When it last crashed (virtual µs).
    pub crashed_at: Option<u64>,
    pub skew_ms: i64,
    pub generation: u64,
    /// What the node made durable.
    pub durable: Store,
    /// Open connections (symmetric: the cluster keeps both ends in step), and the
    /// gossip mesh among them.
    pub conns: BTreeSet<usize>,
    pub mesh: BTreeSet<usize>,
    seen: HashSet<u64>,
    seen_order: VecDeque<(u64, u64)>,
    /// Requests answered through the node: request id → asker.
    pub asks: BTreeMap<u64, usize>,
    pub next_ask: u64,
    /// When the node's next wake-up is queued (virtual µs), to queue no duplicates.
    pub wake_queued: Option<u64>,
    pub hosts: Vec<(String, String)>,
    /// Tombstone collection's round and age (ms): the agent's unless a scenario
    /// compresses them (`Cluster::compress_collection`).
    pub collect_ms: (u64, u64),
    /// The seed the node was first built with.
    seed: u64,
}

impl SimNode {
    pub fn new(name: &str, hosts: Vec<(String, String)>, skew_ms: i64, seed: u64) -> SimNode {
        let generation = 1;
        let t = roboconf_core::engine::Timing::default();
        let collect_ms = (t.collect_every_ms, t.collect_after_ms);
        SimNode {
            name: name.to_string(),
            node: Node::new(
                config(name, &hosts, generation, collect_ms),
                Restored::default(),
                true,
                0,
                seed,
            ),
            up: true,
            life: 0,
            crashed_at: None,
            skew_ms,
            generation,
            durable: Store::new(),
            conns: BTreeSet::new(),
            mesh: BTreeSet::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            asks: BTreeMap::new(),
            next_ask: 1,
            wake_queued: None,
            hosts,
            collect_ms,
            seed,
        }
    }

    /// Tombstone collection on other timings (before the node starts).
    pub fn set_collection(&mut self, every_ms: u64, after_ms: u64) {
        self.collect_ms = (every_ms, after_ms);
        let cfg = config(&self.name, &self.hosts, self.generation, self.collect_ms);
        self.node = Node::new(cfg, Restored::default(), true, 0, self.seed);
    }

    /// First sight of gossip `id` at `now` (µs), within the node's `seen_for`.
    pub fn first_sight(&mut self, id: u64, now: u64) -> bool {
        let keep_us = self.node.config().gossip.seen_for.as_micros() as u64;
        while let Some(&(at, old)) = self.seen_order.front() {
            if now.saturating_sub(at) < keep_us {
                break;
            }
            self.seen_order.pop_front();
            self.seen.remove(&old);
        }
        if !self.seen.insert(id) {
            return false;
        }
        self.seen_order.push_back((now, id));
        true
    }

    /// Makes writes durable.
    pub fn persist(&mut self, writes: Vec<Write>, interner: &mut Interner) {
        apply(&mut self.durable, writes, interner);
    }

    /// A crash: what the node held back is gone; with `lose_disk`, everything is.
    pub fn crash(&mut self, lose_disk: bool) {
        self.up = false;
        self.life += 1;
        self.seen.clear();
        self.seen_order.clear();
        self.asks.clear();
        self.conns.clear();
        self.mesh.clear();
        self.wake_queued = None;
        if lose_disk {
            self.durable.clear();
        }
    }

    /// A restart from the durable store (a new generation when it is empty), at
    /// `now_ms` (its new SWIM life).
    pub fn restart(&mut self, apps: &[LoadedApp], seed: u64, now_ms: u64) {
        let lost = self.durable.is_empty();
        if lost {
            self.generation = now_ms.max(self.generation + 1);
        }
        let cfg = config(&self.name, &self.hosts, self.generation, self.collect_ms);
        let read = |tree: &str| -> Vec<Vec<u8>> {
            self.durable
                .get(tree)
                .map(|t| t.values().map(|v| v.to_vec()).collect())
                .unwrap_or_default()
        };
        let instances: Vec<InstanceRecord> = read("instances")
            .iter()
            .filter_map(|v| serde_json::from_slice(v).ok())
            .collect();
        let replica: Vec<Entry> = read("replica")
            .iter()
            .filter_map(|v| Entry::from_stored(v))
            .collect();
        let known: Vec<String> = read("apps")
            .iter()
            .filter_map(|v| serde_json::from_slice::<AppRecord>(v).ok())
            .map(|r| r.name)
            .collect();
        let apps: Vec<LoadedApp> = apps
            .iter()
            .filter(|a| known.contains(&a.name))
            .cloned()
            .collect();
        let raft: Vec<(Vec<u8>, Vec<u8>)> = self
            .durable
            .get("raft")
            .map(|t| t.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
            .unwrap_or_default();
        let restored = Restored {
            apps,
            instances,
            replica,
            lost,
            raft,
        };
        self.node = Node::new(cfg, restored, true, now_ms, seed);
        self.up = true;
    }
}

/// A simulated node's settings: the agent's defaults, this node's name and hosts.
fn config(
    name: &str,
    hosts: &[(String, String)],
    generation: u64,
    (every_ms, after_ms): (u64, u64),
) -> Config {
    let mut cfg = Config::default();
    cfg.engine.timing.collect_every_ms = every_ms;
    cfg.engine.timing.collect_after_ms = after_ms;
    if every_ms != Config::default().engine.timing.collect_every_ms {
        // Compressed for a short run: the period is what the scenario says.
        cfg.engine.timing.collect_per_member_ms = 0;
    }
    cfg.engine.node = name.to_string();
    cfg.engine.node_id = NodeId::new(name);
    cfg.engine.hosts = hosts.to_vec();
    cfg.engine.generation = generation;
    cfg
}

/// Applies writes to an in-memory store, in order.
pub fn apply(store: &mut Store, writes: Vec<Write>, interner: &mut Interner) {
    for w in writes {
        match w {
            Write::Put { tree, key, value } | Write::Peer { tree, key, value } => {
                let (key, value) = (interner.share(key), interner.share(value));
                store.entry(tree).or_default().insert(key, value);
            }
            Write::Delete { tree, key } => {
                store.entry(tree).or_default().remove(key.as_slice());
            }
            Write::DeletePrefix { tree, prefix } => {
                store
                    .entry(tree)
                    .or_default()
                    .retain(|k, _| !k.starts_with(&prefix));
            }
        }
    }
}
