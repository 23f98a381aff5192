//! Many agents on one virtual clock. Each node is the real core and the real SWIM
//! (`node.rs`); between them, the network model (`net.rs`) and a model of gossipsub as the
//! real agent configures it: the origin sends a change to every connected peer, each
//! receiver forwards it once to its gossip-mesh peers, duplicates are dropped by id;
//! anti-entropy is the real exchange (digest fingerprint, digest, delta) with one peer
//! per round. Faults (crashes with or without the disk, restarts, partitions, clock skew)
//! are operations the scenario schedules. Every observation goes to `Metrics`.

use crate::metrics::Metrics;
use crate::net::{Cpu, Link, Micros, Partitions, Processors, Queue};
use crate::node::Node;
use foca::Timer;
use roboconf_core::api::Response;
use roboconf_core::engine::{Command, Event, Input, LoadedApp, Output, RunResult};
use roboconf_core::mesh::replica::{Delta, Digest, Entry};
use roboconf_core::mesh::NodeId;
use roboconf_core::rng::Rng;
use roboconf_core::swim::SwimId;
use std::rc::Rc;

/// The wall clock the virtual one starts at (ms since the epoch; any fixed value).
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// The runtime's tick, and anti-entropy every fourth one.
const TICK_US: Micros = 250_000;
/// Framing around every message (Noise, Yamux, gossipsub), counted in the bytes.
const OVERHEAD: usize = 40;
/// Nodes start within this much of each other.
pub const BOOT_SPREAD_US: Micros = 5_000_000;
/// How long after a crash a verdict that the node is dead still concerns that crash.
const LATE_VERDICT_US: Micros = 15_000_000;
/// Above this many nodes, each connects to this many random others (below: to all).
pub const FULL_MESH_UP_TO: usize = 64;
const PEERS_AT_SCALE: usize = 24;

/// A message between agents.
#[derive(Clone)]
pub enum Msg {
    Gossip {
        id: u64,
        entries: Rc<Vec<Entry>>,
    },
    Swim(Vec<u8>),
    AeHash(String),
    AeSendDigest,
    AeDigest(Digest),
    AeDelta(Delta),
    /// The connection closed (the peer's process died: its sockets were reset).
    Closed,
    /// A connection opened (the peer came back).
    Opened,
}

/// What the queue holds.
pub enum Ev {
    /// A message arrives (`handled`: false) or its receiver is done with it (true).
    Deliver {
        to: usize,
        from: usize,
        msg: Msg,
        handled: bool,
    },
    Swim {
        node: usize,
        life: u32,
        timer: Timer<SwimId>,
    },
    Tick {
        node: usize,
        life: u32,
    },
    Done {
        node: usize,
        life: u32,
        run: u64,
        result: RunResult,
    },
    Fetched {
        node: usize,
        life: u32,
        name: String,
    },
    Op(crate::scenario::Op),
    /// A node starts for the first time.
    Boot {
        node: usize,
    },
}

/// The whole simulation.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub queue: Queue<Ev>,
    pub rng: Rng,
    pub link: Link,
    pub cpu: Processors,
    pub parts: Partitions,
    pub apps: Vec<LoadedApp>,
    pub metrics: Metrics,
    next_gossip: u64,
    next_cmd: u64,
    /// Operator intents sent: command id → (instance path, target).
    pub intents: std::collections::BTreeMap<u64, (String, roboconf_core::api::Desired)>,
    /// When the last heal happened, until the mesh converged again.
    pub healed_at: Option<Micros>,
    /// FNV-1a over every event handled: two runs with one seed have the same.
    hash: u64,
    /// `SIM_DEBUG` set: false verdicts are told on stderr as they happen.
    debug: bool,
}

impl Cluster {
    /// `n` nodes; `hosts[k]` are the roots node `k` hosts.
    pub fn new(
        n: usize,
        seed: u64,
        link: Link,
        cpu: Cpu,
        skew_ms: u64,
        hosts: Vec<Vec<(String, String)>>,
        apps: Vec<LoadedApp>,
    ) -> Cluster {
        let mut rng = Rng::new(seed);
        let mut nodes: Vec<Node> = (0..n)
            .map(|k| {
                let skew = rng.below(2 * skew_ms as usize + 1) as i64 - skew_ms as i64;
                let h = hosts.get(k).cloned().unwrap_or_default();
                Node::new(&format!("n{k}"), h, skew, rng.next_u64())
            })
            .collect();
        // Connections: everyone with everyone in a small mesh (members dial members);
        // at scale a bounded random set each, made symmetric.
        if n <= FULL_MESH_UP_TO {
            for (k, node) in nodes.iter_mut().enumerate() {
                node.peers = (0..n).filter(|&j| j != k).collect();
            }
        } else {
            for k in 0..n {
                for _ in 0..PEERS_AT_SCALE / 2 {
                    let j = rng.below(n);
                    if j != k && !nodes[k].peers.contains(&j) {
                        nodes[k].peers.push(j);
                        nodes[j].peers.push(k);
                    }
                }
            }
        }
        // The gossip mesh, symmetric as gossipsub's (a graft is mutual): behind a flood
        // to every peer of a full mesh, degree 1–2 as the agent runs it; with bounded
        // connections the forwarding has to reach the rest: gossipsub's default 6.
        let degree = if n <= FULL_MESH_UP_TO { 1 } else { 6 };
        for k in 0..n {
            let p = nodes[k].peers.clone();
            let mut tries = 0;
            while nodes[k].mesh.len() < degree.min(p.len()) && tries < 4 * degree {
                tries += 1;
                let j = p[rng.below(p.len())];
                if !nodes[k].mesh.contains(&j) && nodes[j].mesh.len() < 2 * degree {
                    nodes[k].mesh.push(j);
                    nodes[j].mesh.push(k);
                }
            }
        }
        Cluster {
            cpu: Processors::new(cpu, n),
            nodes,
            queue: Queue::default(),
            rng,
            link,
            parts: Partitions::whole(n),
            apps,
            metrics: Metrics::new(n),
            next_gossip: 1,
            next_cmd: 1,
            intents: Default::default(),
            healed_at: None,
            hash: 0xcbf2_9ce4_8422_2325,
            debug: std::env::var_os("SIM_DEBUG").is_some(),
        }
    }

    /// This node's wall clock now, skew included.
    pub fn wall_ms(&self, node: usize) -> u64 {
        (EPOCH_MS as i64 + (self.queue.now / 1000) as i64 + self.nodes[node].skew_ms) as u64
    }

    /// Starts every node at a random time within `BOOT_SPREAD_US` (a fleet does not
    /// start in one instant): addresses published, connections up, SWIM announced, ticks.
    pub fn boot(&mut self) {
        for k in 0..self.nodes.len() {
            self.nodes[k].up = false;
            let at = self.rng.below(BOOT_SPREAD_US as usize) as u64;
            self.queue.at(at, Ev::Boot { node: k });
        }
    }

    fn start_node(&mut self, k: usize) {
        let now = self.wall_ms(k);
        self.nodes[k].core.step(Input::Now(now));
        self.nodes[k]
            .core
            .step(Input::Addresses(vec![format!("/sim/{k}")]));
        for j in self.nodes[k].peers.clone() {
            if self.nodes[j].up {
                self.nodes[k]
                    .core
                    .step(Input::PeerUp(NodeId::new(format!("n{j}"))));
                self.nodes[k].swim.announce(&format!("n{j}"));
                self.send(k, j, Msg::Opened, 0);
            }
        }
        let life = self.nodes[k].life;
        let first = self.rng.below(TICK_US as usize) as u64;
        self.queue.after(first, Ev::Tick { node: k, life });
        self.outputs(k);
    }

    /// Runs until `until` (virtual µs).
    pub fn run_until(&mut self, until: Micros) {
        while let Some(ev) = self.queue.pop(until) {
            self.handle(ev);
        }
        self.queue.now = self.queue.now.max(until);
    }

    fn mix(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    /// Adds a description of something that happened to the trace's fingerprint.
    pub fn trace(&mut self, what: &str) {
        for b in what.bytes() {
            self.hash = (self.hash ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }

    /// The fingerprint of everything handled so far.
    pub fn fingerprint(&self) -> u64 {
        self.hash
    }

    fn handle(&mut self, ev: Ev) {
        let (kind, node) = match &ev {
            Ev::Deliver { to, from, msg, .. } => (
                1 + match msg {
                    Msg::Gossip { id, .. } => 16 * id,
                    Msg::Swim(d) => 2 + 16 * d.len() as u64,
                    _ => 3,
                },
                (*to * 65_536 + *from) as u64,
            ),
            Ev::Swim { node, .. } => (4, *node as u64),
            Ev::Tick { node, .. } => (5, *node as u64),
            Ev::Done { node, run, .. } => (6 + 16 * run, *node as u64),
            Ev::Fetched { node, .. } => (7, *node as u64),
            Ev::Op(_) => (8, 0),
            Ev::Boot { node } => (9, *node as u64),
        };
        self.mix(self.queue.now);
        self.mix(kind);
        self.mix(node);
        match ev {
            Ev::Deliver {
                to,
                from,
                msg,
                handled: false,
            } => {
                // The receiver's processor takes it when free; it acts once done. A copy
                // of a gossip message it already has costs the processor and stops there.
                if let Msg::Gossip { id, .. } = &msg {
                    if !self.nodes[to].up || !self.nodes[to].first_sight(*id, self.queue.now) {
                        self.cpu.receive(to, self.queue.now);
                        return;
                    }
                }
                let done = self.cpu.receive(to, self.queue.now);
                self.queue.at(
                    done,
                    Ev::Deliver {
                        to,
                        from,
                        msg,
                        handled: true,
                    },
                );
            }
            Ev::Deliver { to, from, msg, .. } => self.deliver(to, from, msg),
            Ev::Swim { node, life, timer } => {
                if self.live(node, life) {
                    self.nodes[node].swim.timer(timer);
                    self.outputs(node);
                }
            }
            Ev::Tick { node, life } => {
                if !self.live(node, life) {
                    return;
                }
                self.nodes[node].flush_pending();
                let now = self.wall_ms(node);
                self.nodes[node].core.step(Input::Now(now));
                let n = &mut self.nodes[node];
                n.ae_turn += 1;
                if n.ae_turn % 4 == 1 && !n.peers.is_empty() {
                    let peer = n.peers[self.rng.below(n.peers.len())];
                    let hash = n.core.digest_hash();
                    self.send(node, peer, Msg::AeHash(hash), 64);
                }
                self.outputs(node);
                self.queue.after(TICK_US, Ev::Tick { node, life });
            }
            Ev::Done {
                node,
                life,
                run,
                result,
            } => {
                if self.live(node, life) {
                    self.nodes[node]
                        .core
                        .step(Input::PluginDone { run, result });
                    self.outputs(node);
                }
            }
            Ev::Fetched { node, life, name } => {
                if self.live(node, life) {
                    let app = self.apps.iter().find(|a| a.name == name).cloned();
                    self.nodes[node].core.step(Input::Fetched {
                        name,
                        app: app.map(Box::new),
                    });
                    self.outputs(node);
                }
            }
            Ev::Op(op) => crate::scenario::apply(self, op),
            Ev::Boot { node } => {
                self.nodes[node].up = true;
                self.start_node(node);
            }
        }
    }

    fn live(&self, node: usize, life: u32) -> bool {
        self.nodes[node].up && self.nodes[node].life == life
    }

    /// Sends `msg` from `from` to `to` through the model (partitions, loss, duplication).
    pub fn send(&mut self, from: usize, to: usize, msg: Msg, bytes: usize) {
        let bytes = bytes + OVERHEAD;
        self.metrics.sent(from, bytes);
        let leaves = self.cpu.send(from, self.queue.now);
        if !self.parts.connected(from, to) || self.rng.chance(self.link.loss) {
            return;
        }
        let copies = if self.rng.chance(self.link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = leaves + self.link.delay(&mut self.rng);
            self.queue.at(
                at,
                Ev::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                    handled: false,
                },
            );
        }
    }

    fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        if !self.nodes[to].up {
            return;
        }
        let at_ms = self.wall_ms(to);
        let who = NodeId::new(format!("n{from}"));
        match msg {
            Msg::Gossip { id, entries } => {
                // (Copies already seen were dropped on arrival.)
                let size = entries_size(&entries);
                for j in self.nodes[to].mesh.clone() {
                    if j != from {
                        self.send(
                            to,
                            j,
                            Msg::Gossip {
                                id,
                                entries: entries.clone(),
                            },
                            size,
                        );
                    }
                }
                self.nodes[to].core.step(Input::Remote {
                    entries: (*entries).clone(),
                    at_ms,
                });
            }
            Msg::Swim(data) => {
                self.nodes[to].swim.handle(&data);
            }
            Msg::AeHash(hash) => {
                let id = self.nodes[to].next_ask;
                self.nodes[to].next_ask += 1;
                self.nodes[to].asks.insert(id, from);
                self.nodes[to].core.step(Input::DigestHash { id, hash });
            }
            Msg::AeSendDigest => {
                let digest = self.nodes[to].core.digest();
                let size = digest.len() * 24;
                self.send(to, from, Msg::AeDigest(digest), size);
            }
            Msg::AeDigest(digest) => {
                let id = self.nodes[to].next_ask;
                self.nodes[to].next_ask += 1;
                self.nodes[to].asks.insert(id, from);
                self.nodes[to].core.step(Input::Digest { id, digest });
            }
            Msg::AeDelta(delta) => {
                self.nodes[to]
                    .core
                    .step(Input::RemoteDelta { delta, at_ms });
            }
            Msg::Closed => {
                self.nodes[to].swim.suspect(&format!("n{from}"));
                self.nodes[to].core.step(Input::PeerDown(who));
            }
            Msg::Opened => {
                self.nodes[to].core.step(Input::PeerUp(who));
                self.nodes[to].swim.announce(&format!("n{from}"));
            }
        }
        self.outputs(to);
    }

    /// Carries out what node `k`'s core and SWIM asked for (SWIM's verdicts go back to
    /// the core, whose answers are carried out in turn).
    pub fn outputs(&mut self, k: usize) {
        loop {
            let outs = self.nodes[k].core.take_outputs();
            let swim = self.nodes[k].swim.take();
            if outs.is_empty()
                && swim.sends.is_empty()
                && swim.timers.is_empty()
                && swim.up.is_empty()
                && swim.down.is_empty()
                && swim.suspected.is_empty()
            {
                return;
            }
            self.core_outputs(k, outs);
            self.swim_outputs(k, swim);
        }
    }

    fn core_outputs(&mut self, k: usize, outs: Vec<Output>) {
        let now_us = self.queue.now;
        for out in outs {
            match out {
                Output::Persist(writes) => self.nodes[k].persist(writes),
                Output::Broadcast(entries) => {
                    let id = self.next_gossip;
                    self.next_gossip += 1;
                    let size = entries_size(&entries);
                    let _ = self.nodes[k].first_sight(id, now_us);
                    let entries = Rc::new(entries);
                    for j in self.nodes[k].peers.clone() {
                        self.send(
                            k,
                            j,
                            Msg::Gossip {
                                id,
                                entries: entries.clone(),
                            },
                            size,
                        );
                    }
                }
                Output::Delta { id, delta } => {
                    if let Some(to) = self.nodes[k].asks.remove(&id) {
                        let size = entries_size(&delta.entries) + delta.watermarks.len() * 24;
                        self.send(k, to, Msg::AeDelta(delta), size);
                    }
                }
                Output::SendDigest { id } => {
                    if let Some(to) = self.nodes[k].asks.remove(&id) {
                        self.send(k, to, Msg::AeSendDigest, 8);
                    }
                }
                Output::Run(run) => {
                    let at_ms = self.wall_ms(k) + 2;
                    let life = self.nodes[k].life;
                    self.queue.after(
                        2_000,
                        Ev::Done {
                            node: k,
                            life,
                            run: run.run,
                            result: RunResult {
                                ok: true,
                                code: Some(0),
                                error: None,
                                output: String::new(),
                                at_ms,
                                retry: false,
                            },
                        },
                    );
                }
                Output::Fetch { name, .. } => {
                    let life = self.nodes[k].life;
                    self.queue.after(
                        5_000,
                        Ev::Fetched {
                            node: k,
                            life,
                            name,
                        },
                    );
                }
                Output::Reply { id, response } => {
                    let ok = matches!(response, Response::Ok { .. });
                    self.metrics.replied(id, ok, now_us);
                }
                Output::Event(Event::RemoteExports { path, present, .. }) => {
                    self.metrics.remote_exports(k, &path, present, now_us);
                }
                Output::Event(Event::StateChanged { path, state, .. }) => {
                    let awaited = if state == roboconf_core::api::State::DeployedStarted {
                        self.reachable_from(k)
                    } else {
                        Vec::new()
                    };
                    self.metrics.state_changed(k, &path, state, now_us, awaited);
                }
                Output::Event(Event::Liveness { node, dead }) => {
                    if let Some(j) = index(node.as_str()) {
                        // A late verdict on a life that ended lately is not false.
                        let lately = self.nodes[j]
                            .crashed_at
                            .is_some_and(|t| now_us.saturating_sub(t) < LATE_VERDICT_US);
                        let real = !self.nodes[j].up || !self.parts.connected(k, j) || lately;
                        self.metrics.liveness(dead, real);
                        if !real && dead && self.debug {
                            eprintln!(
                                "debug: t={} n{k} says n{j} dead (crashed {:?}, life {}, connected {})",
                                now_us / 1000,
                                self.nodes[j].crashed_at.map(|t| t / 1000),
                                self.nodes[j].life,
                                self.nodes[k].peers.contains(&j)
                            );
                        }
                    }
                }
                // It left: its process stops (its connections close) until the calm.
                Output::Left => self.crash(k, false),
                Output::Announce(node) => self.nodes[k].swim.announce(node.as_str()),
            }
        }
    }

    fn swim_outputs(&mut self, k: usize, out: roboconf_core::swim::Outbox) {
        let life = self.nodes[k].life;
        for (peer, data) in out.sends {
            if let Some(j) = index(&peer) {
                let size = data.len();
                self.send(k, j, Msg::Swim(data), size);
            }
        }
        for (timer, after) in out.timers {
            self.queue.after(
                after.as_micros() as u64,
                Ev::Swim {
                    node: k,
                    life,
                    timer,
                },
            );
        }
        for p in out.suspected {
            if let Some(j) = index(&p) {
                let real = !self.nodes[j].up || !self.parts.connected(k, j);
                self.metrics.suspected(real);
            }
        }
        for p in out.down {
            self.nodes[k].core.step(Input::SwimDown(NodeId::new(p)));
        }
        for p in out.up {
            self.nodes[k].core.step(Input::SwimUp(NodeId::new(p)));
        }
    }

    /// Sends an operator command to node `k`; returns its id.
    pub fn command(&mut self, k: usize, command: Command) -> u64 {
        let id = self.next_cmd;
        self.next_cmd += 1;
        let now = self.wall_ms(k);
        self.nodes[k].core.step(Input::Now(now));
        self.nodes[k].core.step(Input::Command { id, command });
        self.outputs(k);
        id
    }

    /// A crash (its connections reset at once, unless it is cut off).
    pub fn crash(&mut self, k: usize, lose_disk: bool) {
        if !self.nodes[k].up {
            return;
        }
        self.nodes[k].crash(lose_disk);
        self.nodes[k].crashed_at = Some(self.queue.now);
        let survivors = self.reachable_from(k);
        self.metrics.crashed(k, self.queue.now, survivors);
        for j in self.nodes[k].peers.clone() {
            self.send(k, j, Msg::Closed, 0);
        }
    }

    /// A restart from what the disk kept.
    pub fn restart(&mut self, k: usize) {
        if self.nodes[k].up {
            return;
        }
        let seed = self.rng.next_u64();
        let now = self.wall_ms(k);
        let apps = self.apps.clone();
        let hosted: Vec<String> = self.nodes[k]
            .hosts
            .iter()
            .map(|(_, root)| format!("{root}/src"))
            .collect();
        self.metrics.restarted(&hosted);
        self.nodes[k].restart(&apps, seed, now);
        self.start_node(k);
    }

    /// The other nodes that are up and on the same side of any partition as `k`.
    pub fn reachable_from(&self, k: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| j != k && self.nodes[j].up && self.parts.connected(k, j))
            .collect()
    }

    /// Whether every live node holds the same records.
    pub fn converged(&self) -> bool {
        let mut digests = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.core.digest_hash());
        let Some(first) = digests.next() else {
            return true;
        };
        digests.all(|d| d == first)
    }
}

/// The index of the node named `name` (`n<index>`).
fn index(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

/// Bytes of entries on the wire, approximately (key, value, origin, stamps).
fn entries_size(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| e.key.len() + e.value.as_ref().map_or(0, |v| v.len()) + 48)
        .sum()
}
