//! The node: one agent as one sans-IO state machine, in the shape of raft-rs's
//! `RawNode`. It owns the engine (`crate::engine`), SWIM, the anti-entropy schedule
//! (`sync`), the connection policy (`peers`), SWIM's timers and the batching of peers'
//! writes. A driver feeds it inputs (`step`) and the time (`tick`), then takes a `Ready`:
//! the writes to make durable, and only then the effects (messages, dials, plug-in runs,
//! replies, events) and when to call `tick` again. The agent's runtime and the simulator
//! are two such drivers: the protocol is written once, and simulated as it runs.

mod autonomic;
mod config;
mod coordinate;
mod peers;
mod sync;

pub use autonomic::External;
pub use config::{Config, GossipSettings, PeerSettings, SwimSettings, SyncSettings};
pub use coordinate::{MachineAction, MachineOp, MachineResult, MAX_DATAGRAM};

use crate::engine::records::Write;
use crate::engine::{self, Command, Core, Event, InstanceRecord, LoadedApp, PluginRun, RunResult};
use crate::mesh::replica::Entry;
use crate::mesh::wire::Body;
use crate::mesh::NodeId;
use crate::rng::Rng;
use crate::swim::{Swim, SwimId};
use foca::Timer;
use std::collections::{BTreeMap, BTreeSet};

/// What drives a node.
#[derive(Debug)]
pub enum Input {
    /// An operator command (once the runtime did its I/O part).
    Command {
        id: u64,
        command: Command,
    },
    PluginDone {
        run: u64,
        result: RunResult,
    },
    /// A bundle asked for by `Effect::Fetch` was read (`None`: it failed).
    Fetched {
        name: String,
        app: Option<Box<LoadedApp>>,
    },
    /// Records a peer gossiped.
    Gossip {
        from: NodeId,
        entries: Vec<Entry>,
    },
    /// A datagram (SWIM's or the coordinator's) from a member.
    Datagram {
        from: NodeId,
        data: Vec<u8>,
    },
    /// A peer's request: answer with `Effect::Respond { id, .. }`.
    Request {
        id: u64,
        from: NodeId,
        body: Body,
    },
    /// A peer's answer to our `Effect::Request`.
    Response {
        from: NodeId,
        body: Body,
    },
    /// Our `Effect::Request` to this peer got no answer.
    RequestFailed {
        to: NodeId,
    },
    /// A connection to an admitted peer opened, or the last one closed.
    Connected(NodeId),
    Disconnected(NodeId),
    /// The addresses this node listens on (published in its member record).
    Addresses(Vec<String>),
    /// The binary this node runs (published in its member record).
    Binary(crate::api::BinaryView),
    /// This node became a member of a mesh (`mesh init`: `founded`, `join`): it may now
    /// dial, gossip and synchronise. The founder is the coordinator's first voter and
    /// leader; the mesh wants `voters` of them.
    Joined {
        founded: bool,
        voters: Option<u32>,
        /// Most machines the coordinator keeps at once, in the mesh and per application.
        limits: Option<(u32, u32)>,
    },
    /// A machine operation asked by `Effect::Machine` ended.
    MachineDone {
        key: crate::coord::MachineKey,
        result: MachineResult,
    },
    /// A probe of an instance hosted here hit (an autonomic event).
    Probe(crate::autonomic::records::EventRecord),
    /// External exports of an application elsewhere, from a bridge (`vars` `None`:
    /// withdrawn).
    ExternalExports {
        source: String,
        prefix: String,
        vars: Option<crate::engine::records::Vars>,
    },
    /// A step asked by `Effect::External` ended (`error`: it failed).
    ExternalDone {
        execution: u64,
        index: usize,
        error: Option<String>,
    },
}

/// What a node asks of its driver, once the writes before it are durable.
#[derive(Debug)]
pub enum Effect {
    /// Spread records to the mesh (gossip). Always after everything else of a `Ready`.
    Publish(Vec<Entry>),
    /// A datagram (SWIM's or the coordinator's) for a member (connected or not), at
    /// most `MAX_DATAGRAM` bytes.
    Datagram { to: NodeId, data: Vec<u8> },
    /// A machine operation for the coordinator's leader (its target's), answered by
    /// `Input::MachineDone`.
    Machine(MachineOp),
    /// A step of an execution outside the mesh (a file written, an e-mail sent), for the
    /// coordinator's leader; answered by `Input::ExternalDone`.
    External(External),
    /// A request to a connected peer; its answer comes back as `Input::Response`, or
    /// `Input::RequestFailed`.
    Request { to: NodeId, body: Body },
    /// The answer to `Input::Request { id, .. }`.
    Respond { id: u64, body: Body },
    /// Open a connection to a member (at its published addresses).
    Dial {
        node: NodeId,
        addresses: Vec<String>,
    },
    /// Dial the bootstrap peers the driver knows (`--peer`) it is not connected to.
    DialBootstrap,
    /// Close the connection to a peer: tell it first (a `Body::Closing` request, so that
    /// it does not take the close for a crash), close once it answered or after a
    /// second.
    Disconnect(NodeId),
    /// Run a plug-in (in a worker); its result comes back as `Input::PluginDone`.
    Run(Box<PluginRun>),
    /// Fetch a bundle and read the application (`Input::Fetched`).
    Fetch {
        name: String,
        hash: String,
        from: NodeId,
    },
    /// The answer to an operator command.
    Reply {
        id: u64,
        response: crate::api::Response,
    },
    /// Something observers may want to know.
    Event(Event),
    /// SWIM came to suspect this member (observers count them).
    Suspected(NodeId),
    /// SWIM declared this member down (the engine took it as dead).
    Down(NodeId),
    /// The node has left the mesh: the driver lets the requests before this finish
    /// (the departure pushed to every peer), then stops.
    Left,
}

/// What a step produced: writes to make durable, then effects to carry out.
#[derive(Debug, Default)]
#[must_use = "a Ready's writes must be made durable and its effects carried out"]
pub struct Ready {
    /// The node's own writes (and copies of peers' records due now), to apply as one
    /// transaction and make durable before anything in `effects` is done.
    pub writes: Vec<Write>,
    effects: Vec<Effect>,
    /// When to call `tick` next (ms, on the node's clock).
    pub wake_at: u64,
}

impl Ready {
    /// Nothing to write and nothing to do.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.effects.is_empty()
    }

    /// The effects, to carry out in order once `writes` are durable.
    pub fn persisted(self) -> Vec<Effect> {
        self.effects
    }
}

/// What a node starts from: what its store held.
#[derive(Debug, Default)]
pub struct Restored {
    pub apps: Vec<LoadedApp>,
    pub instances: Vec<InstanceRecord>,
    pub replica: Vec<Entry>,
    /// The coordinator's Raft state (store tree `raft`).
    pub raft: Vec<(Vec<u8>, Vec<u8>)>,
    /// The store was lost (a member restarted on an empty one).
    pub lost: bool,
}

/// One agent.
pub struct Node {
    cfg: Config,
    engine: Core,
    swim: Option<Swim>,
    rng: Rng,
    now_ms: u64,
    next_tick_ms: u64,
    /// Whether this node is in a mesh (it dials, gossips and synchronises only then).
    member: bool,
    connected: BTreeSet<NodeId>,
    peers: peers::Peers,
    sync: sync::Sync,
    /// SWIM's timers: (due, sequence) → timer.
    timers: BTreeMap<(u64, u64), Timer<SwimId>>,
    timer_seq: u64,
    writes: Vec<Write>,
    peer_writes: Vec<Write>,
    effects: Vec<Effect>,
    gossip: Vec<Entry>,
    /// The last records gossiped (when leaving: the departure itself).
    last_words: Vec<Entry>,
    left: bool,
    coord: coordinate::Coordinator,
    auto: autonomic::Lead,
    /// Datagrams not sent or not read: too big, or of an unknown kind.
    coord_dropped: u64,
    /// Machine operations asked of the driver.
    machine_ops: u64,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.engine.config().node_id)
            .field("connected", &self.connected.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// A node started from what its store held, at `now_ms`. `member`: whether it is in
    /// a mesh already; `life`: its SWIM life (the wall time it started); `seed`: its
    /// randomness (the agent draws it from the OS, the simulator from its seed).
    pub fn new(cfg: Config, restored: Restored, member: bool, life: u64, seed: u64) -> Node {
        let restored_member_before = member && restored.lost;
        let engine = Core::restore_with(
            cfg.engine.clone(),
            restored.apps,
            restored.instances,
            restored.replica,
        );
        let mut rng = Rng::new(seed);
        let swim = cfg.networked.then(|| {
            Swim::seeded(
                cfg.engine.node_id.as_str(),
                life,
                crate::swim::config(cfg.swim.suspect_for),
                rng.next_u64(),
            )
        });
        let mut node = Node {
            peers: peers::Peers::default(),
            sync: sync::Sync::new(&cfg.sync),
            cfg,
            engine,
            swim,
            rng,
            now_ms: 0,
            next_tick_ms: 0,
            member,
            connected: BTreeSet::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            writes: Vec::new(),
            peer_writes: Vec::new(),
            effects: Vec::new(),
            gossip: Vec::new(),
            last_words: Vec::new(),
            left: false,
            coord: Default::default(),
            auto: Default::default(),
            coord_dropped: 0,
            machine_ops: 0,
        };
        if node.cfg.networked {
            match crate::coord::log::Log::restore(&restored.raft) {
                Ok(Some(log)) => {
                    let (me, seed) = (node.id().clone(), node.rng.next_u64());
                    match crate::coord::Group::restore(me, &node.cfg.coord, seed, log) {
                        Ok(g) => node.coord.group = Some(g),
                        Err(_) => node.coord.unreadable = true,
                    }
                }
                Ok(None) if member => {
                    // A member without Raft state: new to the coordinator, or its store
                    // was lost (then it may have voted before: it votes no more until an
                    // operator adds it again).
                    node.join_group();
                    if let Some(g) = node.coord.group.as_mut() {
                        g.amnesiac = restored_member_before;
                    }
                }
                Ok(None) => {}
                Err(_) => node.coord.unreadable = true,
            }
        }
        node.drain();
        node
    }

    /// The coordinator's counters: (term, commit, refused messages, datagrams dropped,
    /// machine operations asked, whether this node leads, its Raft state unreadable).
    pub fn coord_counts(&self) -> Vec<(&'static str, u64)> {
        let g = self.coord.group.as_ref();
        vec![
            ("coordinator_term", g.map_or(0, |g| g.term())),
            ("coordinator_commit", g.map_or(0, |g| g.commit())),
            (
                "coordinator_leader",
                g.is_some_and(|g| g.is_leader()) as u64,
            ),
            ("coordinator_voter", g.is_some_and(|g| g.is_voter()) as u64),
            ("coordinator_refused", g.map_or(0, |g| g.refused)),
            ("coordinator_dropped", self.coord_dropped),
            ("machine_ops", self.machine_ops),
            ("coordinator_unreadable", self.coord.unreadable as u64),
        ]
    }

    /// The node's Raft group, for observers (the simulator's invariants).
    pub fn group(&self) -> Option<&crate::coord::Group> {
        self.coord.group.as_ref()
    }

    /// The engine, for read-only views (status, members, digests).
    pub fn engine(&self) -> &Core {
        &self.engine
    }

    /// Takes the node apart piece by piece into `account`: the simulator's memory
    /// account (`sim/examples/memory.rs`).
    pub fn dismantle(self, account: &mut engine::Account<'_>) {
        let Node {
            engine,
            swim,
            timers,
            peers,
            connected,
            ..
        } = self;
        account.drop("swim (foca's members and updates)", swim);
        account.drop(
            "node: timers, peer policy, connections",
            (timers, peers, connected),
        );
        engine.dismantle(account);
    }

    /// This node's id.
    pub fn id(&self) -> &NodeId {
        &self.engine.config().node_id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The peers this node is connected to.
    pub fn connected(&self) -> &BTreeSet<NodeId> {
        &self.connected
    }

    /// Anti-entropy rounds: started, ended with a delta, given up.
    pub fn sync_counts(&self) -> (u64, u64, u64) {
        (self.sync.started, self.sync.ended, self.sync.timed_out)
    }

    /// SWIM's count of the datagrams it could not read.
    pub fn swim_rejected(&self) -> u64 {
        self.swim.as_ref().map_or(0, |s| s.rejected)
    }

    /// SWIM updates kept out of datagrams: down verdicts reached while hearing no one.
    pub fn swim_withheld(&self) -> u64 {
        self.swim.as_ref().map_or(0, |s| s.withheld())
    }

    /// Applies one input at `now_ms`.
    pub fn step(&mut self, now_ms: u64, input: Input) {
        self.advance_clock(now_ms);
        let now = self.now_ms;
        match input {
            Input::Command { id, command } => {
                self.engine.step(engine::Input::Now(now));
                self.engine.step(engine::Input::Command { id, command });
            }
            Input::PluginDone { run, result } => {
                self.engine.step(engine::Input::PluginDone { run, result })
            }
            Input::Fetched { name, app } => self.engine.step(engine::Input::Fetched { name, app }),
            Input::Gossip { entries, .. } => self.engine.step(engine::Input::Remote {
                entries,
                at_ms: now,
            }),
            Input::Datagram { from, data } => match data.split_first() {
                Some((&coordinate::TAG_SWIM, rest)) => {
                    if let Some(s) = self.swim.as_mut() {
                        s.handle(rest);
                    }
                }
                Some((&coordinate::TAG_RAFT, rest)) => self.consensus(&from, rest),
                _ => self.coord_dropped += 1,
            },
            Input::MachineDone { key, result } => self.machine_done(key, result),
            Input::Probe(rec) => self.probe_hit(rec),
            Input::ExternalExports {
                source,
                prefix,
                vars,
            } => self.engine.step(engine::Input::External {
                source,
                prefix,
                vars,
            }),
            Input::ExternalDone {
                execution,
                index,
                error,
            } => self.external_done(execution, index, error),
            Input::Request { id, from, body } => self.request(id, from, body),
            Input::Response { from, body } => self.response(from, body),
            Input::RequestFailed { to } => self.sync.failed(&to),
            Input::Connected(peer) => self.peer_connected(peer),
            Input::Disconnected(peer) => {
                self.connected.remove(&peer);
                self.sync.failed(&peer);
                if self.peers.closed(&peer) {
                    // Either side said it would close: no sign of a crash.
                    self.engine.step(engine::Input::PeerClosed(peer));
                } else {
                    self.engine.step(engine::Input::PeerDown(peer.clone()));
                    if let Some(s) = self.swim.as_mut() {
                        s.suspect(peer.as_str());
                    }
                }
            }
            Input::Addresses(a) => self.engine.step(engine::Input::Addresses(a)),
            Input::Binary(b) => self.engine.step(engine::Input::Binary(b)),
            Input::Joined {
                founded,
                voters,
                limits,
            } => {
                if let Some((mesh, app)) = limits {
                    self.cfg.coord.max_machines = mesh;
                    self.cfg.coord.max_per_app = app;
                }
                // A joiner's empty group gives way to the founder's.
                let fresh = self
                    .coord
                    .group
                    .as_ref()
                    .is_none_or(|g| !g.is_voter() && g.commit() == 0);
                if founded && self.cfg.networked && fresh {
                    if let Some(v) = voters {
                        self.cfg.coord.voters = v;
                    }
                    self.found_group();
                } else {
                    self.join_group();
                }
                self.member = true;
                self.sync.soon(now);
                self.peers.soon();
                self.periodic(now);
            }
        }
        self.drain();
    }

    /// Lets the time pass: SWIM's due timers fire, and every `cfg.tick` the periodic
    /// work runs (the engine's clock, copies of peers' records written, anti-entropy,
    /// the connection policy).
    pub fn tick(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        self.drain();
    }

    /// What the steps so far produced.
    pub fn ready(&mut self) -> Ready {
        self.drain();
        let mut effects = std::mem::take(&mut self.effects);
        // Gossip goes out last, once this batch's events are told: a peer never learns a
        // record before its origin told the change that made it.
        if !self.gossip.is_empty() {
            let entries = std::mem::take(&mut self.gossip);
            self.last_words = entries.clone();
            effects.push(Effect::Publish(entries));
        }
        Ready {
            writes: std::mem::take(&mut self.writes),
            effects,
            wake_at: self.wake_at(),
        }
    }

    /// The copies of peers' records still held back (the driver writes them when it
    /// stops).
    pub fn take_peer_writes(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.peer_writes)
    }

    /// How many copies of peers' records are held back now (the driver's metrics).
    pub fn peer_writes_held(&self) -> usize {
        self.peer_writes.len()
    }

    /// When the node next needs `tick`.
    fn wake_at(&self) -> u64 {
        let timer = self.timers.keys().next().map(|(at, _)| *at);
        let at = timer.map_or(self.next_tick_ms, |t| t.min(self.next_tick_ms));
        match self.coord.next_tick > 0 && !self.left {
            true => at.min(self.coord.next_tick),
            false => at,
        }
    }

    /// Moves the clock to `now_ms` (never back), firing SWIM's due timers and the
    /// periodic work on the way.
    fn advance_clock(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let now = self.now_ms;
        if let Some(s) = self.swim.as_mut() {
            s.clock(now);
        }
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            if let Some(t) = self.timers.remove(&(at, seq)) {
                if let Some(s) = self.swim.as_mut() {
                    s.timer(t);
                }
                self.drain_swim();
            }
        }
        if now >= self.next_tick_ms {
            let tick = self.cfg.tick.as_millis() as u64;
            self.next_tick_ms = now + tick;
            self.periodic(now);
        }
        self.coord_tick(now);
    }

    /// The work of every tick.
    fn periodic(&mut self, now: u64) {
        // Copies of peers' records wait at most one tick.
        self.release_peer_writes();
        self.engine.step(engine::Input::Now(now));
        if self.cfg.networked && self.member && !self.left {
            self.sync_round(now);
            self.peers_round(now);
        }
    }

    fn release_peer_writes(&mut self) {
        let held = std::mem::take(&mut self.peer_writes);
        self.writes.extend(held);
    }

    /// A connection to `peer` opened.
    fn peer_connected(&mut self, peer: NodeId) {
        self.peers.connected(&peer);
        self.connected.insert(peer.clone());
        self.engine.step(engine::Input::PeerUp(peer.clone()));
        // A member SWIM does not hold yet is announced to (its answer, a feed of the
        // members it knows, teaches a node that starts the mesh); one it holds is not: the
        // connection policy trades connections all the time, and a feed per trade would
        // be most of an idle mesh's traffic.
        if let Some(s) = self.swim.as_mut() {
            if !s.knows(peer.as_str()) {
                s.announce(peer.as_str());
            }
        }
        // A new connection is a chance to catch up at once.
        if self.member {
            self.sync.soon(self.now_ms);
            self.sync_with(peer);
        }
    }

    /// Takes in everything the engine and SWIM asked for, until neither asks more.
    fn drain(&mut self) {
        loop {
            let outs = self.engine.take_outputs();
            if outs.is_empty() && !self.drain_swim() {
                return;
            }
            for out in outs {
                self.engine_output(out);
            }
        }
    }

    fn engine_output(&mut self, out: engine::Output) {
        use engine::Output as O;
        match out {
            O::Persist(writes) => {
                if writes.iter().all(|w| matches!(w, Write::Peer { .. })) {
                    self.peer_writes.extend(writes);
                    if self.peer_writes.len() > self.cfg.peer_writes_max {
                        self.release_peer_writes();
                    }
                } else {
                    // The node's own writes take the held copies with them.
                    self.release_peer_writes();
                    self.writes.extend(writes);
                }
            }
            O::Broadcast(entries) => self.gossip.extend(entries),
            O::Delta { id, delta } => self.effects.push(Effect::Respond {
                id,
                body: Body::Delta(delta),
            }),
            O::Differs { id } => self.effects.push(Effect::Respond {
                id,
                body: Body::Buckets(self.engine.buckets()),
            }),
            O::Run(run) => self.effects.push(Effect::Run(run)),
            O::Reply { id, response } => self.effects.push(Effect::Reply { id, response }),
            O::Event(e) => {
                if let Event::Liveness { node, dead: false } = &e {
                    self.peers.alive_again(node);
                }
                self.effects.push(Effect::Event(e));
            }
            O::Left => self.leave(),
            O::Announce(node) => {
                if let Some(s) = self.swim.as_mut() {
                    s.announce(node.as_str());
                }
            }
            O::Fetch { name, hash, from } => self.effects.push(Effect::Fetch { name, hash, from }),
        }
    }

    /// Carries out what SWIM asked for; false when it asked nothing.
    fn drain_swim(&mut self) -> bool {
        let Some(s) = self.swim.as_mut() else {
            return false;
        };
        let out = s.take();
        let any = !(out.sends.is_empty()
            && out.timers.is_empty()
            && out.up.is_empty()
            && out.down.is_empty()
            && out.suspected.is_empty());
        for (peer, data) in out.sends {
            let mut d = Vec::with_capacity(data.len() + 1);
            d.push(coordinate::TAG_SWIM);
            d.extend_from_slice(&data);
            self.effects.push(Effect::Datagram {
                to: NodeId::new(peer),
                data: d,
            });
        }
        for (timer, after) in out.timers {
            let at = self.now_ms + after.as_millis() as u64;
            self.timer_seq += 1;
            self.timers.insert((at, self.timer_seq), timer);
        }
        for p in out.suspected {
            self.effects.push(Effect::Suspected(NodeId::new(p)));
        }
        for p in out.down {
            let p = NodeId::new(p);
            self.effects.push(Effect::Down(p.clone()));
            self.engine.step(engine::Input::SwimDown(p));
        }
        for p in out.up {
            self.engine.step(engine::Input::SwimUp(NodeId::new(p)));
        }
        any
    }

    /// The node left: SWIM says goodbye, the departure is pushed to every peer, then
    /// the driver stops.
    fn leave(&mut self) {
        self.hand_off();
        self.left = true;
        if let Some(s) = self.swim.as_mut() {
            s.leave();
        }
        let _ = self.drain_swim();
        let mut words = std::mem::take(&mut self.last_words);
        words.append(&mut self.gossip.clone());
        if !words.is_empty() {
            for peer in self.connected.clone() {
                self.effects.push(Effect::Request {
                    to: peer,
                    body: Body::Entries(words.clone()),
                });
            }
        }
        self.effects.push(Effect::Left);
    }
}
