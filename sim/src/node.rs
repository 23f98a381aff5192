//! One simulated agent: the real `Core` and the real SWIM (`roboconf_core::swim`, foca)
//! with the runtime's duties done in memory — a store whose copies of peers' records
//! wait for the next tick as the real runtime's do (and are lost in a crash), the
//! gossipsub model's state (connected peers, mesh peers, ids already seen), and the
//! node's clock skew. What crosses the network is the cluster's business.

use roboconf_core::engine::records::{AppRecord, Write};
use roboconf_core::engine::{Config, Core, InstanceRecord, LoadedApp};
use roboconf_core::mesh::replica::Entry;
use roboconf_core::mesh::NodeId;
use roboconf_core::swim::{self, Swim};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

/// The store: a map per tree.
pub type Store = BTreeMap<&'static str, BTreeMap<Vec<u8>, Vec<u8>>>;

/// How long SWIM lets a suspect refute (the real agent's setting).
pub const SUSPECT_FOR: Duration = Duration::from_secs(3);

/// How long a gossip id is remembered (gossipsub's duplicate cache).
const SEEN_FOR_US: u64 = 60_000_000;

pub struct Node {
    pub name: String,
    pub core: Core,
    pub swim: Swim,
    pub up: bool,
    /// Bumped at each crash: events of a previous life are ignored.
    pub life: u32,
    /// When it last crashed (virtual µs).
    pub crashed_at: Option<u64>,
    pub skew_ms: i64,
    pub generation: u64,
    /// What survived the last flush.
    pub durable: Store,
    /// Copies of peers' records not written yet (lost in a crash).
    pub pending: Vec<Write>,
    /// Nodes this one has a connection with, and the gossip mesh among them.
    pub peers: Vec<usize>,
    pub mesh: Vec<usize>,
    seen: HashSet<u64>,
    seen_order: VecDeque<(u64, u64)>,
    /// Anti-entropy requests answered through the core: request id → asker.
    pub asks: BTreeMap<u64, usize>,
    pub next_ask: u64,
    pub ae_turn: usize,
    pub hosts: Vec<(String, String)>,
}

impl Node {
    pub fn new(name: &str, hosts: Vec<(String, String)>, skew_ms: i64, seed: u64) -> Node {
        let generation = 1;
        Node {
            name: name.to_string(),
            core: Core::new(config(name, &hosts, generation)),
            swim: Swim::seeded(name, 0, swim::config(SUSPECT_FOR), seed),
            up: true,
            life: 0,
            crashed_at: None,
            skew_ms,
            generation,
            durable: Store::new(),
            pending: Vec::new(),
            peers: Vec::new(),
            mesh: Vec::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
            asks: BTreeMap::new(),
            next_ask: 1,
            ae_turn: 0,
            hosts,
        }
    }

    /// First sight of gossip `id` at `now`.
    pub fn first_sight(&mut self, id: u64, now: u64) -> bool {
        while let Some(&(at, old)) = self.seen_order.front() {
            if now.saturating_sub(at) < SEEN_FOR_US {
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

    /// Carries out a batch of writes as the runtime does: peers' copies alone wait.
    pub fn persist(&mut self, writes: Vec<Write>) {
        if writes.iter().all(|w| matches!(w, Write::Peer { .. })) {
            self.pending.extend(writes);
            return;
        }
        let mut all = std::mem::take(&mut self.pending);
        all.extend(writes);
        apply(&mut self.durable, all);
    }

    /// The tick's write of waiting copies.
    pub fn flush_pending(&mut self) {
        let w = std::mem::take(&mut self.pending);
        apply(&mut self.durable, w);
    }

    /// A crash: what was not written is gone; with `lose_disk`, everything is.
    pub fn crash(&mut self, lose_disk: bool) {
        self.up = false;
        self.life += 1;
        self.pending.clear();
        self.seen.clear();
        self.seen_order.clear();
        self.asks.clear();
        if lose_disk {
            self.durable.clear();
        }
    }

    /// A restart from the durable store (a new generation when it is empty).
    pub fn restart(&mut self, apps: &[LoadedApp], seed: u64, now_ms: u64) {
        if self.durable.is_empty() {
            self.generation = now_ms.max(self.generation + 1);
        }
        let cfg = config(&self.name, &self.hosts, self.generation);
        let read = |tree: &str| -> Vec<Vec<u8>> {
            self.durable
                .get(tree)
                .map(|t| t.values().cloned().collect())
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
        self.core = Core::restore_with(cfg, apps, instances, replica);
        // A new SWIM life, named by the start time as the agent does.
        let bump = now_ms;
        self.swim = Swim::seeded(&self.name, bump, swim::config(SUSPECT_FOR), seed);
        self.up = true;
    }
}

fn config(name: &str, hosts: &[(String, String)], generation: u64) -> Config {
    Config {
        node: name.to_string(),
        node_id: NodeId::new(name),
        hosts: hosts.to_vec(),
        generation,
        ..Config::default()
    }
}

/// Applies writes to an in-memory store, in order.
pub fn apply(store: &mut Store, writes: Vec<Write>) {
    for w in writes {
        match w {
            Write::Put { tree, key, value } | Write::Peer { tree, key, value } => {
                store.entry(tree).or_default().insert(key, value);
            }
            Write::Delete { tree, key } => {
                store.entry(tree).or_default().remove(&key);
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
