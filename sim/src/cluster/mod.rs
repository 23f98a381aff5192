//! Many agents on one virtual clock. Each is the real node (`node.rs`: the
//! `roboconf_core::node::Node` the agent runs); this module is the simulator's driver of
//! it, the counterpart of the agent's runtime. This file owns the `Cluster` itself: its
//! construction and boot, the events its queue holds (`Ev`) and the loop that handles
//! them in time order — feeding each node what arrives, and the time when it asked to be
//! woken — the run's fingerprint, and the questions asked of the whole fleet
//! (convergence, connection counts). The rest is split by concept: `links` carries
//! messages through the network model (`net.rs`) and owns connections and the gossipsub
//! model, `effects` carries out what a node asks for, and `ops` is what a scenario does
//! to a node from outside (operator commands, crashes, restarts). Faults (crashes with
//! or without the disk, restarts, partitions, clock skew) are operations the scenario
//! schedules. Every observation goes to `Metrics`.

mod autonomic;
pub use autonomic::RULES;
mod effects;
mod links;
mod machines;
mod ops;

pub use links::Msg;

use crate::metrics::Metrics;
use crate::net::{Cpu, Link, Micros, Partitions, Processors, Queue};
use crate::node::SimNode;
use roboconf_core::engine::{LoadedApp, RunResult};
use roboconf_core::node::Input;
use roboconf_core::rng::Rng;

/// The wall clock the virtual one starts at (ms since the epoch; any fixed value).
pub const EPOCH_MS: u64 = 1_767_225_600_000;
/// Nodes start within this much of each other.
pub const BOOT_SPREAD_US: Micros = 5_000_000;

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
    /// The simulated target finished a machine operation of node `node`.
    Machine {
        node: usize,
        life: u32,
        op: roboconf_core::node::MachineOp,
    },
    /// The simulated driver finished a step outside the mesh of leader `node`.
    External {
        node: usize,
        life: u32,
        x: roboconf_core::node::External,
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
    /// The last heal: when, and the partitions it ended (a verdict soon after on a
    /// member that was cut off concerns the cut).
    pub last_cut: Option<(Micros, Partitions)>,
    /// FNV-1a over every event handled: two runs with one seed have the same.
    hash: u64,
    /// `SIM_DEBUG` set: false verdicts are told on stderr as they happen.
    debug: bool,
    /// The one copy of each stored key and value (`node::Interner`).
    pub interner: crate::node::Interner,
    /// The coordinator: the simulated target and its invariants.
    pub coord: machines::Coord,
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
            last_cut: None,
            hash: 0xcbf2_9ce4_8422_2325,
            debug: std::env::var_os("SIM_DEBUG").is_some(),
            interner: Default::default(),
            coord: Default::default(),
        }
    }

    /// Tombstones acknowledged and collected on shorter timings than the agent's (so
    /// that a run of seconds sees collections); before `boot`.
    /// Heals every partition, noting what it ended.
    pub fn heal(&mut self) {
        self.last_cut = Some((self.queue.now, self.parts.clone()));
        self.parts.heal();
        self.healed_at = Some(self.queue.now);
    }

    pub fn compress_collection(&mut self, every_ms: u64, after_ms: u64) {
        for n in &mut self.nodes {
            n.set_collection(every_ms, after_ms);
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
            Ev::Machine { node, .. } => (11, *node as u64),
            Ev::External { node, .. } => (12, *node as u64),
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
            Ev::Machine { node, life, op } => self.machine_done(node, life, op),
            Ev::External { node, life, x } => self.external_done(node, life, x),
        }
    }

    fn live(&self, node: usize, life: u32) -> bool {
        self.nodes[node].up && self.nodes[node].life == life
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

    /// Says on stderr which origins' watermarks differ between live nodes (`SIM_DEBUG`).
    pub fn tell_divergence(&self) {
        if !self.debug {
            return;
        }
        let up: Vec<&SimNode> = self.nodes.iter().filter(|n| n.up).collect();
        let Some(first) = up.first() else { return };
        let d0 = first.node.engine().digest();
        let mut told = 0;
        for n in &up[1..] {
            let d = n.node.engine().digest();
            if d == d0 {
                continue;
            }
            let origins: std::collections::BTreeSet<_> = d0.keys().chain(d.keys()).collect();
            for o in origins {
                let (a, b) = (d0.get(o), d.get(o));
                if a != b && told < 20 {
                    told += 1;
                    use roboconf_core::mesh::replica::Kind as Rk;
                    for kind in [Rk::Member, Rk::Exports, Rk::Observed, Rk::Ack] {
                        for (key, e) in n.node.engine().replica().all(kind) {
                            if e.origin == *o {
                                eprintln!(
                                    "  {} holds {kind:?} {key} seq {} hlc {:?} (now {} ms)",
                                    n.name,
                                    e.seq,
                                    e.hlc,
                                    self.queue.now / 1000
                                );
                            }
                        }
                    }
                    eprintln!(
                        "diverged: {} holds {:?} of {}/{}, {} holds {:?}",
                        first.name, a, o.node, o.generation, n.name, b
                    );
                }
            }
        }
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
