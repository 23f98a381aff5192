//! Many agents on one virtual clock. Each is the real node (`node.rs`: the
//! `roboconf_core::node::Node` the agent runs); this file is the simulator's driver of
//! it, the counterpart of the agent's runtime: it carries out each node's effects
//! through the network model (`net.rs`) — connections opened and closed as the node's
//! connection policy asks, SWIM datagrams to any member, requests and answers over
//! connections, and a model of gossipsub as the agent configures it (the origin sends a
//! change to every connected peer, each receiver forwards it once to its gossip-mesh
//! peers, duplicates dropped by id) — and feeds the node what arrives, and the time when
//! it asked to be woken. Faults (crashes with or without the disk, restarts, partitions,
//! clock skew) are operations the scenario schedules. Every observation goes to `Metrics`.

use crate::metrics::Metrics;
use crate::net::{Cpu, Link, Micros, Partitions, Processors, Queue};
use crate::node::SimNode;
use roboconf_core::api::Response;
use roboconf_core::engine::{Command, Event, LoadedApp, RunResult};
use roboconf_core::mesh::replica::Entry;
use roboconf_core::mesh::wire::Body;
use roboconf_core::mesh::NodeId;
use roboconf_core::node::{Effect, Input};
use roboconf_core::rng::Rng;
use std::rc::Rc;

/// The wall clock the virtual one starts at (ms since the epoch; any fixed value).
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Framing around every message (Noise, Yamux, gossipsub), counted in the bytes.
const OVERHEAD: usize = 40;
/// Nodes start within this much of each other.
pub const BOOT_SPREAD_US: Micros = 5_000_000;
/// How long after a crash a verdict that the node is dead still concerns that crash.
const LATE_VERDICT_US: Micros = 15_000_000;
/// How many of the first nodes are every node's bootstrap peers.
const BOOTSTRAP_SEEDS: usize = 3;

/// A message between agents.
#[derive(Clone)]
pub enum Msg {
    Gossip {
        id: u64,
        entries: Rc<Vec<Entry>>,
    },
    Datagram(Vec<u8>),
    Request(Body),
    Response(Body),
    /// A dial reached its target (the handshake's first half)...
    Dial,
    /// ... and the target's acceptance reached the dialler.
    Accept,
    /// The connection closed (a crash resets it; a close the node asked for).
    Closed,
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
    /// The node asked to be woken now.
    Wake {
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
    /// A connection a node asked to close goes (if it is still there).
    Close {
        node: usize,
        peer: usize,
        life: u32,
    },
    Op(crate::scenario::Op),
    /// A node starts for the first time.
    Boot {
        node: usize,
    },
}

/// The whole simulation.
pub struct Cluster {
    pub nodes: Vec<SimNode>,
    pub queue: Queue<Ev>,
    pub rng: Rng,
    pub link: Link,
    pub cpu: Processors,
    /// When the last message on each (from, to) link is delivered (links keep order).
    fifo: std::collections::HashMap<(usize, usize), Micros>,
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
        let nodes: Vec<SimNode> = (0..n)
            .map(|k| {
                let skew = rng.below(2 * skew_ms as usize + 1) as i64 - skew_ms as i64;
                let h = hosts.get(k).cloned().unwrap_or_default();
                SimNode::new(&format!("n{k}"), h, skew, rng.next_u64())
            })
            .collect();
        Cluster {
            cpu: Processors::new(cpu, n),
            fifo: std::collections::HashMap::new(),
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

    /// The virtual time at which node `k`'s clock reads `ms`.
    fn virtual_us(&self, node: usize, ms: u64) -> Micros {
        let local = ms as i64 - EPOCH_MS as i64 - self.nodes[node].skew_ms;
        (local.max(0) as u64) * 1000
    }

    /// Starts every node at a random time within `BOOT_SPREAD_US` (a fleet does not
    /// start in one instant).
    pub fn boot(&mut self) {
        for k in 0..self.nodes.len() {
            self.nodes[k].up = false;
            let at = self.rng.below(BOOT_SPREAD_US as usize) as u64;
            self.queue.at(at, Ev::Boot { node: k });
        }
    }

    /// A node's process starts: it learns its address and runs.
    fn start_node(&mut self, k: usize) {
        let now = self.wall_ms(k);
        self.nodes[k]
            .node
            .step(now, Input::Addresses(vec![format!("/sim/{k}")]));
        self.effects(k);
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
                    Msg::Datagram(d) => 2 + 16 * d.len() as u64,
                    _ => 3,
                },
                (*to * 65_536 + *from) as u64,
            ),
            Ev::Wake { node, .. } => (4, *node as u64),
            Ev::Done { node, run, .. } => (6 + 16 * run, *node as u64),
            Ev::Fetched { node, .. } => (7, *node as u64),
            Ev::Close { node, peer, .. } => (10, (*node * 65_536 + *peer) as u64),
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
                        self.cpu.duplicate(to, self.queue.now);
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
            Ev::Wake { node, life } => {
                if self.live(node, life) {
                    self.nodes[node].wake_queued = None;
                    let now = self.wall_ms(node);
                    self.nodes[node].node.tick(now);
                    self.graft(node);
                    self.effects(node);
                }
            }
            Ev::Done {
                node,
                life,
                run,
                result,
            } => {
                if self.live(node, life) {
                    let now = self.wall_ms(node);
                    self.nodes[node]
                        .node
                        .step(now, Input::PluginDone { run, result });
                    self.effects(node);
                }
            }
            Ev::Fetched { node, life, name } => {
                if self.live(node, life) {
                    let app = self.apps.iter().find(|a| a.name == name).cloned();
                    let now = self.wall_ms(node);
                    self.nodes[node].node.step(
                        now,
                        Input::Fetched {
                            name,
                            app: app.map(Box::new),
                        },
                    );
                    self.effects(node);
                }
            }
            Ev::Close { node, peer, life } => {
                if self.live(node, life) && self.nodes[node].conns.contains(&peer) {
                    self.close(node, peer);
                    self.effects(node);
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
        // What travels on a connection keeps its order, as on a TCP stream: an `Accept`
        // is never overtaken by the data sent after it (which the dialer would take for
        // data on a connection it does not have, and reset).
        let ordered = !matches!(msg, Msg::Datagram(_));
        for _ in 0..copies {
            let mut at = leaves + self.link.delay(&mut self.rng);
            if ordered {
                let last = self.fifo.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
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
        let now = self.wall_ms(to);
        let who = NodeId::new(format!("n{from}"));
        // What travels on a connection needs the connection.
        let on_connection = matches!(msg, Msg::Gossip { .. } | Msg::Request(_) | Msg::Response(_));
        if on_connection && !self.nodes[to].conns.contains(&from) {
            // Data on a connection this side does not have (it crashed and came back,
            // or closed it): a reset answers it, as TCP's would.
            self.send(to, from, Msg::Closed, 0);
            return;
        }
        let input = match msg {
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
                Input::Gossip {
                    from: who,
                    entries: (*entries).clone(),
                }
            }
            Msg::Datagram(data) => Input::Datagram { from: who, data },
            Msg::Request(body) => {
                let n = &mut self.nodes[to];
                let id = n.next_ask;
                n.next_ask += 1;
                n.asks.insert(id, from);
                Input::Request {
                    id,
                    from: who,
                    body,
                }
            }
            Msg::Response(body) => Input::Response { from: who, body },
            Msg::Dial => {
                self.send(to, from, Msg::Accept, 0);
                if self.nodes[to].conns.contains(&from) {
                    return;
                }
                self.open(to, from);
                Input::Connected(who)
            }
            Msg::Accept => {
                if self.nodes[to].conns.contains(&from) || !self.nodes[from].conns.contains(&to) {
                    return;
                }
                self.open(to, from);
                Input::Connected(who)
            }
            Msg::Closed => {
                if !self.nodes[to].conns.remove(&from) {
                    return;
                }
                self.nodes[to].mesh.remove(&from);
                Input::Disconnected(who)
            }
        };
        self.nodes[to].node.step(now, input);
        self.effects(to);
    }

    /// One end of a connection opens (the gossip mesh grafts it while it has room).
    fn open(&mut self, k: usize, peer: usize) {
        self.nodes[k].conns.insert(peer);
        let degree = self.nodes[k].node.config().gossip.degree;
        let high = self.nodes[k].node.config().gossip.degree_high;
        // A mesh edge needs the connection at both ends (the dialer's opens on `Accept`).
        if self.nodes[peer].conns.contains(&k)
            && self.nodes[k].mesh.len() < degree
            && self.nodes[peer].mesh.len() < high
        {
            self.nodes[k].mesh.insert(peer);
            self.nodes[peer].mesh.insert(k);
        }
    }

    /// Keeps node `k`'s gossip mesh at its degree among its connections (gossipsub's
    /// heartbeat grafts peers when the mesh is below its low mark).
    fn graft(&mut self, k: usize) {
        let g = self.nodes[k].node.config().gossip.clone();
        if self.nodes[k].mesh.len() >= g.degree_low {
            return;
        }
        let room: Vec<usize> = self.nodes[k]
            .conns
            .iter()
            .copied()
            .filter(|j| {
                !self.nodes[k].mesh.contains(j)
                    && self.nodes[*j].conns.contains(&k)
                    && self.nodes[*j].mesh.len() < g.degree_high
            })
            .collect();
        for j in room.into_iter().take(g.degree - self.nodes[k].mesh.len()) {
            self.nodes[k].mesh.insert(j);
            self.nodes[j].mesh.insert(k);
        }
    }

    /// Node `k` closes its connection to `peer` (it told it first: `Body::Closing`).
    fn close(&mut self, k: usize, peer: usize) {
        self.nodes[k].conns.remove(&peer);
        self.nodes[k].mesh.remove(&peer);
        self.nodes[peer].mesh.remove(&k);
        self.send(k, peer, Msg::Closed, 0);
        let now = self.wall_ms(k);
        self.nodes[k]
            .node
            .step(now, Input::Disconnected(NodeId::new(format!("n{peer}"))));
    }

    /// Carries out what node `k` asked for, until it asks nothing more; then queues its
    /// next wake-up.
    pub fn effects(&mut self, k: usize) {
        loop {
            let mut ready = self.nodes[k].node.ready();
            let wake_at = ready.wake_at;
            if ready.is_empty() {
                self.queue_wake(k, wake_at);
                return;
            }
            let writes = std::mem::take(&mut ready.writes);
            self.nodes[k].persist(writes);
            for e in ready.persisted() {
                self.effect(k, e);
            }
        }
    }

    fn queue_wake(&mut self, k: usize, wake_at_ms: u64) {
        let at = self.virtual_us(k, wake_at_ms).max(self.queue.now);
        if self.nodes[k].wake_queued.is_some_and(|q| q <= at) {
            return;
        }
        self.nodes[k].wake_queued = Some(at);
        let life = self.nodes[k].life;
        self.queue.at(at, Ev::Wake { node: k, life });
    }

    fn effect(&mut self, k: usize, e: Effect) {
        let now_us = self.queue.now;
        match e {
            Effect::Publish(entries) => {
                let id = self.next_gossip;
                self.next_gossip += 1;
                let size = entries_size(&entries);
                let _ = self.nodes[k].first_sight(id, now_us);
                let entries = Rc::new(entries);
                for j in self.nodes[k].conns.clone() {
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
            Effect::Datagram { to, data } => {
                if let Some(j) = index(to.as_str()) {
                    let size = data.len();
                    self.send(k, j, Msg::Datagram(data), size);
                }
            }
            Effect::Request { to, body } => match index(to.as_str()) {
                Some(j) if self.nodes[k].conns.contains(&j) => {
                    let size = body_size(&body);
                    self.send(k, j, Msg::Request(body), size);
                }
                _ => {
                    let now = self.wall_ms(k);
                    self.nodes[k].node.step(now, Input::RequestFailed { to });
                }
            },
            Effect::Respond { id, body } => {
                if let Some(to) = self.nodes[k].asks.remove(&id) {
                    if self.nodes[k].conns.contains(&to) {
                        let size = body_size(&body);
                        self.send(k, to, Msg::Response(body), size);
                    }
                }
            }
            Effect::Dial { node, .. } => {
                if let Some(j) = index(node.as_str()) {
                    if j != k && !self.nodes[k].conns.contains(&j) {
                        self.send(k, j, Msg::Dial, 64);
                    }
                }
            }
            Effect::DialBootstrap => {
                // The bootstrap peers an operator gives (`--peer`): the first nodes of
                // the fleet, as a mesh starts from its first members; one that is up.
                let seeds: Vec<usize> = (0..self.nodes.len().min(BOOTSTRAP_SEEDS))
                    .filter(|&j| j != k && self.nodes[j].up && !self.nodes[k].conns.contains(&j))
                    .collect();
                for j in seeds {
                    self.send(k, j, Msg::Dial, 64);
                }
            }
            Effect::Disconnect(peer) => {
                if let Some(j) = index(peer.as_str()) {
                    if self.nodes[k].conns.contains(&j) {
                        self.send(k, j, Msg::Request(Body::Closing), 8);
                        let life = self.nodes[k].life;
                        self.queue.after(
                            self.nodes[k].node.config().peers.close_after.as_micros() as Micros,
                            Ev::Close {
                                node: k,
                                peer: j,
                                life,
                            },
                        );
                    }
                }
            }
            Effect::Run(run) => {
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
            Effect::Fetch { name, .. } => {
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
            Effect::Reply { id, response } => {
                let ok = matches!(response, Response::Ok { .. });
                self.metrics.replied(id, ok, now_us);
            }
            Effect::Event(Event::RemoteExports { path, present, .. }) => {
                self.metrics.remote_exports(k, &path, present, now_us);
            }
            Effect::Event(Event::StateChanged { path, state, .. }) => {
                let awaited = if state == roboconf_core::api::State::DeployedStarted {
                    self.reachable_from(k)
                } else {
                    Vec::new()
                };
                self.metrics.state_changed(k, &path, state, now_us, awaited);
            }
            Effect::Event(Event::Liveness { node, dead }) => {
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
                            self.nodes[k].conns.contains(&j)
                        );
                    }
                }
            }
            Effect::Suspected(p) => {
                if let Some(j) = index(p.as_str()) {
                    let real = !self.nodes[j].up || !self.parts.connected(k, j);
                    self.metrics.suspected(real);
                }
            }
            // It left: its process stops (its connections close) until the calm.
            Effect::Down(_) => {}
            Effect::Left => self.crash(k, false),
        }
    }

    /// Sends an operator command to node `k`; returns its id.
    pub fn command(&mut self, k: usize, command: Command) -> u64 {
        let id = self.next_cmd;
        self.next_cmd += 1;
        let now = self.wall_ms(k);
        self.nodes[k].node.step(now, Input::Command { id, command });
        self.effects(k);
        id
    }

    /// A crash (its connections reset at once, unless it is cut off).
    pub fn crash(&mut self, k: usize, lose_disk: bool) {
        if !self.nodes[k].up {
            return;
        }
        let peers: Vec<usize> = self.nodes[k].conns.iter().copied().collect();
        self.nodes[k].crash(lose_disk);
        self.nodes[k].crashed_at = Some(self.queue.now);
        let survivors = self.reachable_from(k);
        self.metrics.crashed(k, self.queue.now, survivors);
        for j in peers {
            self.nodes[j].mesh.remove(&k);
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
            .map(|n| n.node.engine().digest_hash());
        let Some(first) = digests.next() else {
            return true;
        };
        digests.all(|d| d == first)
    }

    /// Connections per node that is up: (max, p99).
    pub fn connection_counts(&self) -> (usize, usize) {
        let mut counts: Vec<usize> = self
            .nodes
            .iter()
            .filter(|n| n.up)
            .map(|n| n.conns.len())
            .collect();
        counts.sort_unstable();
        let max = counts.last().copied().unwrap_or(0);
        let p99 = counts
            .get((counts.len() * 99 / 100).min(counts.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0);
        (max, p99)
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

/// Bytes of a request or an answer on the wire, approximately.
fn body_size(body: &Body) -> usize {
    match body {
        Body::Entries(e) => entries_size(e),
        Body::Digest(d) => d.len() * 24,
        Body::Delta(d) => entries_size(&d.entries) + d.watermarks.len() * 24,
        Body::DigestHash(h) => h.len() + 8,
        _ => 16,
    }
}
