//! The coordinator's consensus (DESIGN §7): tikv's raft-rs `RawNode` among the voters,
//! sans-IO like the rest of the node. This module owns the Raft group of one node — its
//! log (`log`, mirrored to the store as writes), the replicated state it applies
//! (`machine`) and the translation between Raft ids and members — and hands back, after
//! each step, the writes to make durable, the messages to send and what was applied.
//! The node (`crate::node`) decides what the leader proposes.
//!
//! Determinism: raft-rs draws its randomized election timeout from the OS random
//! source; after every step and tick this module overwrites it from the node's seeded
//! `Rng` whenever raft-rs has just reset it, so a seed replays the same election.

pub mod autonomic;
pub mod log;
pub mod machine;

use crate::engine::Write;
use crate::mesh::NodeId;
use crate::rng::Rng;
use log::Log;
use machine::{Applied, Command, Machine};
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, EntryType, Message};
use raft::{RawNode, StateRole};
use std::time::Duration;

pub use machine::{Intent, MachineKey, Phase, TargetSpec};

/// The coordinator's settings (part of the node's `Config`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// One Raft tick.
    pub tick: Duration,
    /// Ticks without a word from the leader before a follower campaigns (randomized in
    /// `[election_ticks, 2 × election_ticks)`).
    pub election_ticks: usize,
    /// Ticks between the leader's heartbeats.
    pub heartbeat_ticks: usize,
    /// Voters a new mesh wants (`mesh init --voters`).
    pub voters: u32,
    /// Machines launched at once, in the mesh and per application.
    pub max_machines: u32,
    pub max_per_app: u32,
    /// How long a launched machine's agent has to join and host its root.
    pub join_timeout: Duration,
    /// How long the leader waits for an undeployed root's subtree to be undeployed by
    /// its agent before it terminates the machine anyway.
    pub undeploy_wait: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            tick: Duration::from_millis(100),
            election_ticks: 10,
            heartbeat_ticks: 2,
            voters: 3,
            max_machines: 64,
            max_per_app: 64,
            join_timeout: Duration::from_secs(60),
            undeploy_wait: Duration::from_secs(60),
        }
    }
}

/// The Raft id of a member: the mesh's FNV-1a of its node id (never 0).
pub fn raft_id(node: &NodeId) -> u64 {
    crate::mesh::fnv1a(node.as_str().as_bytes()).max(1)
}

/// Why a Raft message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("undecodable raft message")]
    Malformed,
    #[error("raft message whose sender is not the peer that sent it")]
    Forged,
    #[error("raft message refused: {0}")]
    Raft(String),
}

/// What a step of the group produced.
#[derive(Debug, Default)]
pub struct Out {
    pub writes: Vec<Write>,
    /// Messages for members (encoded).
    pub sends: Vec<(NodeId, Vec<u8>)>,
    /// Intents changed by applied commands.
    pub applied: Vec<MachineKey>,
    /// Voter changes applied: (member, added).
    pub voters: Vec<(NodeId, bool)>,
    /// The autonomic state changed.
    pub autonomic: bool,
}

/// One node's part in the Raft group.
pub struct Group {
    me: NodeId,
    raw: RawNode<Log>,
    machine: Machine,
    conf: ConfState,
    rng: Rng,
    election_ticks: usize,
    /// Senders of messages received: a voter just added answers its leader before it
    /// holds the voter set.
    peers: std::collections::BTreeMap<u64, NodeId>,
    /// Raft messages refused (malformed, forged, refused by raft-rs).
    pub refused: u64,
    /// This member lost its Raft state (its store) after it had joined: it may have
    /// voted in a term it no longer remembers, so it casts no vote until it is added
    /// to the voters again (`mesh voters remove` then `add`).
    pub amnesiac: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("me", &self.me)
            .field("term", &self.raw.raft.term)
            .field("role", &self.raw.raft.state)
            .finish_non_exhaustive()
    }
}

impl Group {
    fn build(me: NodeId, s: &Settings, log: Log, seed: u64) -> Result<Group, String> {
        let applied = log.applied();
        let conf = log.snapshot_ref().get_metadata().get_conf_state().clone();
        let machine = match log.snapshot_ref().data.is_empty() {
            true => Machine::default(),
            false => serde_json::from_slice(&log.snapshot_ref().data)
                .map_err(|e| format!("raft snapshot: {e}"))?,
        };
        let cfg = raft::Config {
            id: raft_id(&me),
            election_tick: s.election_ticks,
            heartbeat_tick: s.heartbeat_ticks,
            applied,
            max_size_per_msg: 8 * 1024,
            max_inflight_msgs: 32,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&cfg, log, &logger).map_err(|e| e.to_string())?;
        let mut g = Group {
            me,
            raw,
            machine,
            conf,
            rng: Rng::new(seed),
            election_ticks: s.election_ticks,
            peers: Default::default(),
            refused: 0,
            amnesiac: false,
        };
        g.reseed();
        Ok(g)
    }

    /// The group of a new mesh: this node its only voter, and at once its leader.
    pub fn found(me: NodeId, s: &Settings, seed: u64, out: &mut Out) -> Group {
        let id = raft_id(&me);
        let machine = Machine {
            voters: [(id, me.as_str().to_string())].into(),
            want_voters: s.voters.clamp(1, 7),
            max_machines: s.max_machines,
            max_per_app: s.max_per_app,
            ..Machine::default()
        };
        let conf = ConfState {
            voters: vec![id],
            ..Default::default()
        };
        let data = serde_json::to_vec(&machine).unwrap_or_default();
        let log = Log::founded(conf, data, &mut out.writes);
        // A founded log always builds.
        let mut g = Group::build(me, s, log, seed).unwrap_or_else(|_| unreachable!());
        let _ = g.raw.campaign();
        g.process(out);
        g
    }

    /// The group of a member that is not a voter yet (it learns the state from the
    /// leader's snapshot when it is added).
    pub fn joiner(me: NodeId, s: &Settings, seed: u64) -> Group {
        Group::build(me, s, Log::default(), seed).unwrap_or_else(|_| unreachable!())
    }

    /// The group as the store held it.
    pub fn restore(me: NodeId, s: &Settings, seed: u64, log: Log) -> Result<Group, String> {
        Group::build(me, s, log, seed)
    }

    /// raft-rs just reset its election timer (it does on every change of role or term,
    /// and from its own random source): draw the timeout from ours instead.
    fn reseed(&mut self) {
        if self.raw.raft.election_elapsed == 0 {
            let span = self.election_ticks.max(1);
            let t = self.election_ticks + self.rng.below(span);
            self.raw.raft.set_randomized_election_timeout(t);
        }
    }

    pub fn tick(&mut self, out: &mut Out) {
        self.raw.tick();
        self.reseed();
        self.process(out);
    }

    /// A Raft message from `from` (a member: the driver checked it). A message that
    /// claims another sender, or that raft-rs refuses, changes nothing.
    pub fn step(&mut self, from: &NodeId, data: &[u8], out: &mut Out) -> Result<(), Refused> {
        let msg = Message::parse_from_bytes(data).map_err(|_| {
            self.refused += 1;
            Refused::Malformed
        })?;
        if msg.from != raft_id(from) || msg.to != raft_id(&self.me) {
            self.refused += 1;
            return Err(Refused::Forged);
        }
        // raft-rs panics on a heartbeat that commits past this log's end; a leader never
        // sends one (it commits at most what the follower matched), so only a forged
        // one does: refused.
        let last = self.raw.raft.raft_log.last_index();
        if msg.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat && msg.commit > last {
            self.refused += 1;
            return Err(Refused::Forged);
        }
        if self.amnesiac
            && matches!(
                msg.get_msg_type(),
                raft::eraftpb::MessageType::MsgRequestVote
                    | raft::eraftpb::MessageType::MsgRequestPreVote
            )
        {
            return Ok(());
        }
        if !self.peers.contains_key(&msg.from) && self.peers.len() < 64 {
            self.peers.insert(msg.from, from.clone());
        }
        let r = self.raw.step(msg).map_err(|e| {
            self.refused += 1;
            Refused::Raft(e.to_string())
        });
        self.reseed();
        self.process(out);
        r
    }

    /// Proposes a command (only the leader's proposals are taken).
    pub fn propose(&mut self, cmd: &Command, out: &mut Out) -> bool {
        if !self.is_leader() {
            return false;
        }
        let data = serde_json::to_vec(cmd).unwrap_or_default();
        let ok = self.raw.propose(Vec::new(), data).is_ok();
        self.process(out);
        ok
    }

    /// Whether a learner has caught up with the leader's log (it may become a voter).
    pub fn caught_up(&self, node: &NodeId) -> bool {
        let id = raft_id(node);
        self.machine.learners.contains_key(&id)
            && self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|p| p.matched >= self.raw.raft.raft_log.committed)
    }

    /// The members being added (learners).
    pub fn learners(&self) -> Vec<NodeId> {
        self.machine
            .learners
            .values()
            .map(|n| NodeId::new(n.clone()))
            .collect()
    }

    /// Proposes adding or removing a voter (one change at a time). A member is added as
    /// a learner first, and made a voter once it holds the log (`caught_up`): a voter
    /// that never heard of its addition could otherwise leave the group without a
    /// majority.
    pub fn propose_voter(&mut self, node: &NodeId, add: bool, out: &mut Out) -> Result<(), String> {
        if !self.is_leader() {
            return Err("not the leader".into());
        }
        if self.raw.raft.has_pending_conf() {
            return Err("a voter change is in progress: one at a time".into());
        }
        let id = raft_id(node);
        match (add, self.machine.voters.get(&id)) {
            (true, Some(n)) if n == node.as_str() => return Err("already a voter".into()),
            (true, Some(_)) => return Err("its raft id collides with a voter's".into()),
            (false, None) if !self.machine.learners.contains_key(&id) => {
                return Err("not a voter".into())
            }
            _ => {}
        }
        if !add && self.machine.voters.len() == 1 {
            return Err("the last voter cannot be removed".into());
        }
        let mut cc = ConfChange {
            node_id: id,
            ..Default::default()
        };
        let learner = self.machine.learners.contains_key(&id);
        cc.set_change_type(match (add, learner) {
            (true, true) => ConfChangeType::AddNode,
            (true, false) => ConfChangeType::AddLearnerNode,
            (false, _) => ConfChangeType::RemoveNode,
        });
        let r = self
            .raw
            .propose_conf_change(node.as_str().as_bytes().to_vec(), cc)
            .map_err(|e| e.to_string());
        self.process(out);
        r
    }

    /// Hands leadership to a voter (a leader that leaves).
    pub fn transfer_to(&mut self, node: &NodeId, out: &mut Out) {
        self.raw.transfer_leader(raft_id(node));
        self.process(out);
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader has committed an entry of its own term and applied everything
    /// committed: its view of the state is complete.
    pub fn settled(&self) -> bool {
        let log = &self.raw.raft.raft_log;
        self.is_leader()
            && log.term(log.committed).ok() == Some(self.raw.raft.term)
            && log.applied >= log.committed
    }

    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The vote this node cast in its current term.
    pub fn vote(&self) -> u64 {
        self.raw.raft.vote
    }

    pub fn commit(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn role(&self) -> StateRole {
        self.raw.raft.state
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        let l = self.raw.raft.leader_id;
        self.machine.voters.get(&l).map(|n| NodeId::new(n.clone()))
    }

    pub fn machine(&self) -> &Machine {
        &self.machine
    }

    pub fn is_voter(&self) -> bool {
        self.conf.voters.contains(&raft_id(&self.me))
    }

    pub fn has_pending_conf(&self) -> bool {
        self.raw.raft.has_pending_conf()
    }

    /// The voters' members.
    pub fn voters(&self) -> Vec<NodeId> {
        self.machine
            .voters
            .values()
            .map(|n| NodeId::new(n.clone()))
            .collect()
    }

    /// Handles everything raft-rs has ready: the writes go to `out.writes` (durable
    /// before any message leaves: the driver sends `out.sends` only after), committed
    /// entries are applied.
    fn process(&mut self, out: &mut Out) {
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            let mut msgs = rd.take_messages();
            if !rd.snapshot().is_empty() {
                self.install(rd.snapshot().clone(), out);
            }
            let committed = rd.take_committed_entries();
            self.apply(committed, out);
            let entries = rd.take_entries();
            self.raw.mut_store().append(&entries, &mut out.writes);
            if let Some(hs) = rd.hs() {
                let hs = hs.clone();
                self.raw.mut_store().set_hard_state(hs, &mut out.writes);
            }
            msgs.extend(rd.take_persisted_messages());
            let mut light = self.raw.advance(rd);
            if let Some(c) = light.commit_index() {
                self.raw.mut_store().set_commit(c, &mut out.writes);
            }
            msgs.extend(light.take_messages());
            let committed = light.take_committed_entries();
            self.apply(committed, out);
            self.raw.advance_apply();
            for m in msgs {
                let named = self.machine.voters.get(&m.to);
                let to = match named.or_else(|| self.machine.learners.get(&m.to)) {
                    Some(n) => NodeId::new(n.clone()),
                    None => match self.peers.get(&m.to) {
                        Some(n) => n.clone(),
                        None => continue,
                    },
                };
                if let Ok(bytes) = m.write_to_bytes() {
                    out.sends.push((to, bytes));
                }
            }
        }
    }

    /// A snapshot from the leader: the state and configuration it holds replace ours.
    fn install(&mut self, snap: raft::eraftpb::Snapshot, out: &mut Out) {
        if snap.get_metadata().index <= self.raw.store().applied() {
            return;
        }
        if let Ok(m) = serde_json::from_slice::<Machine>(&snap.data) {
            self.machine = m;
        }
        self.conf = snap.get_metadata().get_conf_state().clone();
        self.raw.mut_store().install(snap, &mut out.writes);
        let keys: Vec<MachineKey> = self
            .machine
            .intents
            .values()
            .map(|i| i.key.clone())
            .collect();
        out.applied.extend(keys);
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>, out: &mut Out) {
        let Some(last) = entries.last() else { return };
        let (index, term) = (last.index, last.term);
        for e in entries {
            if e.data.is_empty() {
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if let Ok(cmd) = serde_json::from_slice::<Command>(&e.data) {
                        match self.machine.apply(cmd, e.term) {
                            Applied::Intent(k) => out.applied.push(k),
                            Applied::Autonomic => out.autonomic = true,
                            Applied::Nothing => {}
                        }
                    }
                }
                EntryType::EntryConfChange => {
                    let Ok(cc) = ConfChange::parse_from_bytes(&e.data) else {
                        continue;
                    };
                    if let Ok(cs) = self.raw.apply_conf_change(&cc) {
                        self.conf = cs;
                    }
                    let node = String::from_utf8_lossy(&e.context).into_owned();
                    match cc.get_change_type() {
                        ConfChangeType::AddLearnerNode => {
                            self.machine.excluded.remove(&node);
                            self.machine.learners.insert(cc.node_id, node.clone());
                            out.voters.push((NodeId::new(node), true));
                        }
                        ConfChangeType::AddNode => {
                            self.machine.learners.remove(&cc.node_id);
                            if cc.node_id == raft_id(&self.me) {
                                // Added (again): what it votes from now on, it remembers.
                                self.amnesiac = false;
                            }
                            self.machine.voters.insert(cc.node_id, node.clone());
                            let n = self.machine.voters.len() as u32;
                            self.machine.want_voters = self.machine.want_voters.max(n);
                            out.voters.push((NodeId::new(node), true));
                        }
                        ConfChangeType::RemoveNode => {
                            self.machine.learners.remove(&cc.node_id);
                            self.machine.excluded.insert(node.clone());
                            if let Some(n) = self.machine.voters.remove(&cc.node_id) {
                                out.voters.push((NodeId::new(n), false));
                            }
                        }
                    }
                }
                EntryType::EntryConfChangeV2 => {}
            }
        }
        let data = serde_json::to_vec(&self.machine).unwrap_or_default();
        let conf = self.conf.clone();
        self.raw
            .mut_store()
            .applied_to(index, term, conf, data, &mut out.writes);
    }
}

#[cfg(test)]
mod tests;
