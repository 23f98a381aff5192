//! The coordinator inside the node (DESIGN §7): the node's part in the Raft group
//! (`crate::coord::Group`), ticked on the node's clock, its messages carried as tagged
//! datagrams; and, on the leader, the policy that turns the mesh's wishes into machine
//! operations. The leader launches a machine for a root of a `target` component with a
//! launchable target file when the operator wants it deployed and no live member hosts
//! it; terminates it once the operator undeployed it (after what runs under it is
//! undeployed); marks it PROBLEM when its agent never joins or dies; keeps the voters at
//! the wanted count; and publishes what it knows (`engine::Coordination`). Every machine
//! operation is asked of the driver (`Effect::Machine`) only for an intent committed in
//! the leader's current term; a new leader first issues each open intent again in its
//! own term, and the target's operations are idempotent by key, so the reconciliation
//! of a launch in flight is the same call.

use super::{Effect, Node};
use crate::api::{CoordinatorView, MachineView, VoterView};
use crate::coord::machine::{root_key, Command};
use crate::coord::{Group, Intent, MachineKey, Out, Phase, TargetSpec};
use crate::engine::{self, Coordination, COORDINATOR_KEY};
use crate::mesh::NodeId;
use std::collections::{BTreeMap, BTreeSet};

/// The first byte of a datagram: what it carries.
pub(super) const TAG_SWIM: u8 = 0;
pub(super) const TAG_RAFT: u8 = 1;
/// The largest datagram a node sends or reads (SWIM's packets are 16 KiB at most; the
/// leader's appends are cut at 8 KiB of entries, and its snapshot is the small
/// replicated state). A bigger Raft message is not sent (the follower catches up later).
pub const MAX_DATAGRAM: usize = 60 * 1024;

/// How long a proposal may stay uncommitted before the leader proposes it again.
const PROPOSAL_PATIENCE_MS: u64 = 3_000;
/// How long after a failed termination it is tried again.
const TERMINATE_RETRY_MS: u64 = 5_000;

/// A machine operation the leader asks of its driver (the target of the intent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineOp {
    pub key: MachineKey,
    pub target: TargetSpec,
    pub action: MachineAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineAction {
    /// Create (or find, when one exists for the key) the machine and start its agent.
    Create,
    /// Stop and remove the machine (nothing to do when there is none).
    Terminate { machine_id: String },
}

/// What the driver reports of a `MachineOp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineResult {
    /// The machine exists and its agent was started: `node` is the agent's member id.
    Created {
        machine_id: String,
        address: String,
        node: String,
    },
    /// Creation failed: `problem` when something was left that must be terminated.
    Failed {
        reason: String,
        problem: bool,
    },
    Terminated,
    NotTerminated {
        reason: String,
    },
}

/// The coordinator's bookkeeping beside the group (the leader's is rebuilt by each
/// leader from the replicated state).
#[derive(Debug, Default)]
pub(super) struct Coordinator {
    pub group: Option<Group>,
    pub next_tick: u64,
    /// Operations handed to the driver: not answered yet (`None`), or answered and their
    /// result proposed at (until it is applied).
    inflight: BTreeMap<MachineKey, Option<u64>>,
    /// Failed terminations: tried again from then.
    retry_at: BTreeMap<MachineKey, u64>,
    /// Launched machines whose agent has not joined yet: since when.
    waiting: BTreeMap<MachineKey, u64>,
    joined: BTreeSet<MachineKey>,
    /// Undeployed roots whose machine waits for its subtree: since when.
    undeploying: BTreeMap<MachineKey, u64>,
    /// Proposals on their way, by root key (or `voters`): when proposed.
    proposed: BTreeMap<String, u64>,
    /// Machine views this leader published.
    published: BTreeSet<String>,
    /// The term of the last view published.
    published_term: u64,
    /// The store's Raft state could not be read.
    pub unreadable: bool,
}

impl Node {
    /// This node founds a mesh: it is the first voter, and leads at once.
    pub(super) fn found_group(&mut self) {
        let mut out = Out::default();
        let g = Group::found(
            self.id().clone(),
            &self.cfg.coord,
            self.rng.next_u64(),
            &mut out,
        );
        self.coord.group = Some(g);
        self.coord_out(out);
    }

    /// A member that is not a voter yet (it waits for the leader to add it).
    pub(super) fn join_group(&mut self) {
        if self.coord.group.is_none() && !self.coord.unreadable {
            let g = Group::joiner(self.id().clone(), &self.cfg.coord, self.rng.next_u64());
            self.coord.group = Some(g);
        }
    }

    /// What a group step produced: its writes join the node's (durable before any
    /// message leaves), its messages become datagrams.
    fn coord_out(&mut self, out: Out) {
        if !out.writes.is_empty() {
            self.release_peer_writes();
            self.writes.extend(out.writes);
        }
        for (to, data) in out.sends {
            if data.len() + 1 > MAX_DATAGRAM {
                self.coord_dropped += 1;
                continue;
            }
            let mut d = Vec::with_capacity(data.len() + 1);
            d.push(TAG_RAFT);
            d.extend_from_slice(&data);
            self.effects.push(Effect::Datagram { to, data: d });
        }
        for k in out.applied {
            self.coord.proposed.remove(&root_key(&k.app, &k.root));
            if self.coord.inflight.get(&k).is_some_and(Option::is_some) {
                self.coord.inflight.remove(&k);
            }
        }
        if !out.voters.is_empty() {
            self.coord.proposed.remove("voters");
        }
    }

    /// A Raft message from a member.
    pub(super) fn consensus(&mut self, from: &NodeId, data: &[u8]) {
        let Some(g) = self.coord.group.as_mut() else {
            return;
        };
        let mut out = Out::default();
        let _ = g.step(from, data, &mut out);
        self.coord_out(out);
    }

    /// The group's clock, and the leader's round.
    pub(super) fn coord_tick(&mut self, now: u64) {
        // Only voters keep the group's time: a member that is not one only answers.
        if !self.coord.group.as_ref().is_some_and(Group::is_voter) || self.left {
            self.coord.next_tick = 0;
            return;
        }
        let tick = self.cfg.coord.tick.as_millis().max(1) as u64;
        if self.coord.next_tick == 0 {
            self.coord.next_tick = now;
        }
        let mut ticked = false;
        while now >= self.coord.next_tick {
            self.coord.next_tick += tick;
            let mut out = Out::default();
            if let Some(g) = self.coord.group.as_mut() {
                g.tick(&mut out);
            }
            self.coord_out(out);
            ticked = true;
        }
        if ticked && self.coord.group.as_ref().is_some_and(Group::settled) {
            self.lead(now);
        }
    }

    /// A machine operation ended.
    pub(super) fn machine_done(&mut self, key: MachineKey, result: MachineResult) {
        // Kept in flight until its result is applied (no second call meanwhile).
        self.coord.inflight.insert(key.clone(), Some(self.now_ms));
        let cmd = match result {
            MachineResult::Created {
                machine_id,
                address,
                node,
            } => {
                self.engine
                    .step(engine::Input::Coordination(Coordination::Bind {
                        app: key.app.clone(),
                        root: key.root.clone(),
                        node: NodeId::new(node.clone()),
                    }));
                Command::Launched {
                    key,
                    machine_id,
                    address,
                    node,
                }
            }
            MachineResult::Failed { reason, problem } => Command::LaunchFailed {
                key,
                reason,
                problem,
            },
            MachineResult::Terminated => {
                self.engine
                    .step(engine::Input::Coordination(Coordination::Unbind {
                        app: key.app.clone(),
                        root: key.root.clone(),
                    }));
                Command::Terminated { key }
            }
            MachineResult::NotTerminated { .. } => {
                self.coord.inflight.remove(&key);
                let at = self.now_ms + TERMINATE_RETRY_MS;
                self.coord.retry_at.insert(key, at);
                return;
            }
        };
        // A leader that lost its office drops the result: the next one finds the machine
        // by its key.
        self.propose(cmd);
    }

    pub(super) fn propose(&mut self, cmd: Command) -> bool {
        let Some(g) = self.coord.group.as_mut() else {
            return false;
        };
        let mut out = Out::default();
        let ok = g.propose(&cmd, &mut out);
        self.coord_out(out);
        ok
    }

    /// Whether a proposal for `what` is still on its way (and marks one made now).
    pub(super) fn pending(&mut self, what: &str, now: u64) -> bool {
        match self.coord.proposed.get(what) {
            Some(at) if now < at + PROPOSAL_PATIENCE_MS => true,
            _ => {
                self.coord.proposed.insert(what.to_string(), now);
                false
            }
        }
    }

    /// The leader's round: voters, open intents, new launches, the published views.
    fn lead(&mut self, now: u64) {
        let Some(g) = self.coord.group.as_ref() else {
            return;
        };
        let term = g.term();
        let machine = g.machine().clone();
        if term != self.coord.published_term {
            // A new office: what the last one tracked is rebuilt from the state.
            self.coord.inflight.clear();
            self.coord.waiting.clear();
            self.coord.joined.clear();
            self.coord.undeploying.clear();
            self.coord.proposed.clear();
            self.coord.retry_at.clear();
        }
        self.keep_voters(&machine, now);
        let roots = self.engine.launchable_roots();
        let wanted: BTreeMap<String, &engine::Launchable> = roots
            .iter()
            .map(|r| (root_key(&r.app, &r.root), r))
            .collect();
        for (rk, intent) in &machine.intents {
            self.follow_intent(rk, intent, wanted.get(rk).copied(), term, now);
        }
        let (mesh_n, mut per_app) = (machine.machines(None), BTreeMap::<&str, usize>::new());
        let mut launched = 0usize;
        for r in &roots {
            let rk = root_key(&r.app, &r.root);
            let fresh = match machine.intents.get(&rk) {
                None => true,
                Some(i) => matches!(i.phase, Phase::Failed { .. }) && r.stamp > i.desired_stamp,
            };
            let hosted = r.by_hand || r.host.as_ref().is_some_and(|(_, alive)| *alive);
            if !fresh || hosted || r.desired == crate::api::Desired::NotDeployed {
                continue;
            }
            let app_n = *per_app
                .entry(&r.app)
                .or_insert_with(|| machine.machines(Some(&r.app)));
            if mesh_n + launched >= machine.max_machines as usize
                || app_n >= machine.max_per_app as usize
            {
                continue;
            }
            if self.pending(&rk, now) {
                continue;
            }
            let Some(t) = r.targets.first() else { continue };
            let generation = machine.generations.get(&rk).copied().unwrap_or(0) + 1;
            let cmd = Command::Launch {
                key: MachineKey {
                    app: r.app.clone(),
                    root: r.root.clone(),
                    generation,
                },
                target: TargetSpec {
                    id: t.id.clone(),
                    handler: t.handler.clone(),
                    properties: t.properties.clone(),
                },
                desired_stamp: r.stamp,
            };
            if self.propose(cmd) {
                launched += 1;
                *per_app.entry(&r.app).or_default() += 1;
            }
        }
        self.publish(term);
        self.lead_autonomic(now, term);
    }

    /// One open intent, as the leader sees it.
    fn follow_intent(
        &mut self,
        rk: &str,
        i: &Intent,
        root: Option<&engine::Launchable>,
        term: u64,
        now: u64,
    ) {
        let key = &i.key;
        match self.coord.inflight.get(key) {
            None => {}
            // A result proposed but lost: the operation is asked again.
            Some(Some(at)) if now >= at + PROPOSAL_PATIENCE_MS => {
                self.coord.inflight.remove(key);
            }
            Some(_) => return,
        }
        let undeployed = root.is_none_or(|r| r.desired == crate::api::Desired::NotDeployed);
        let replaced = root.is_some_and(|r| r.stamp > i.desired_stamp && !undeployed);
        match &i.phase {
            Phase::Launching if i.term < term => {
                if !self.pending(rk, now) {
                    self.propose(Command::Launch {
                        key: key.clone(),
                        target: i.target.clone(),
                        desired_stamp: i.desired_stamp,
                    });
                }
            }
            Phase::Launching => self.machine_op(i, MachineAction::Create),
            Phase::Terminating { .. } if i.term < term => {
                if !self.pending(rk, now) {
                    self.propose(Command::Terminate { key: key.clone() });
                }
            }
            Phase::Terminating { machine_id } => {
                if self.coord.retry_at.get(key).is_some_and(|at| now < *at) {
                    return;
                }
                self.coord.retry_at.remove(key);
                let machine_id = machine_id.clone();
                self.machine_op(i, MachineAction::Terminate { machine_id });
            }
            Phase::Running { node, .. } | Phase::Problem { node, .. } if undeployed => {
                let since = *self.coord.undeploying.entry(key.clone()).or_insert(now);
                let waited =
                    now.saturating_sub(since) >= self.cfg.coord.undeploy_wait.as_millis() as u64;
                let node = NodeId::new(node.clone());
                let gone = !self.engine.member_counts(&node);
                if (gone || waited || self.engine.subtree_undeployed(&key.app, &key.root))
                    && !self.pending(rk, now)
                {
                    self.propose(Command::Terminate { key: key.clone() });
                }
            }
            Phase::Problem { .. } if replaced => {
                // Deployed again by the operator: the machine is replaced (terminated, then
                // a new generation launched).
                if !self.pending(rk, now) {
                    self.propose(Command::Terminate { key: key.clone() });
                }
            }
            Phase::Running { node, .. } => {
                self.coord.undeploying.remove(key);
                let node = NodeId::new(node.clone());
                if self.engine.member_counts(&node) {
                    self.coord.waiting.remove(key);
                    self.coord.joined.insert(key.clone());
                    return;
                }
                let reason = if self.coord.joined.contains(key) {
                    Some(match self.engine.member_left(&node) {
                        true => "the machine's agent left the mesh".to_string(),
                        false => "the machine's agent is dead".to_string(),
                    })
                } else {
                    let since = *self.coord.waiting.entry(key.clone()).or_insert(now);
                    let limit = self.cfg.coord.join_timeout.as_millis() as u64;
                    (now.saturating_sub(since) >= limit).then(|| {
                        format!(
                            "the machine's agent did not join the mesh within {} s",
                            limit / 1000
                        )
                    })
                };
                if let Some(reason) = reason {
                    if !self.pending(rk, now) {
                        self.propose(Command::LaunchFailed {
                            key: key.clone(),
                            reason,
                            problem: true,
                        });
                    }
                }
            }
            Phase::Problem {
                machine_id,
                address,
                node,
                ..
            } if !node.is_empty() && self.engine.member_counts(&NodeId::new(node.clone())) => {
                // Its agent is alive again (a partition healed, a frozen host woke up):
                // the machine is running again, not replaced.
                if !self.pending(rk, now) {
                    self.propose(Command::Launched {
                        key: key.clone(),
                        machine_id: machine_id.clone(),
                        address: address.clone(),
                        node: node.clone(),
                    });
                }
            }
            Phase::Problem { .. } | Phase::Failed { .. } => {}
        }
    }

    fn machine_op(&mut self, i: &Intent, action: MachineAction) {
        self.coord.inflight.insert(i.key.clone(), None);
        self.machine_ops += 1;
        self.effects.push(Effect::Machine(MachineOp {
            key: i.key.clone(),
            target: i.target.clone(),
            action,
        }));
    }

    /// Voters: those who left are removed, live members added up to the wanted count
    /// (one change at a time). A dead voter stays until an operator replaces it.
    fn keep_voters(&mut self, machine: &crate::coord::machine::Machine, now: u64) {
        let Some(g) = self.coord.group.as_ref() else {
            return;
        };
        if g.has_pending_conf() || self.coord.proposed.contains_key("voters") {
            if self
                .coord
                .proposed
                .get("voters")
                .is_some_and(|at| now >= at + PROPOSAL_PATIENCE_MS)
            {
                self.coord.proposed.remove("voters");
            }
            return;
        }
        let me = self.id().clone();
        let voters: Vec<NodeId> = machine
            .voters
            .values()
            .map(|v| NodeId::new(v.clone()))
            .collect();
        let learners = g.learners();
        let change = if let Some(gone) = voters
            .iter()
            .chain(learners.iter())
            .find(|v| **v != me && self.engine.member_left(v))
        {
            Some((gone.clone(), false))
        } else if let Some(l) = learners.first() {
            // A learner becomes a voter once it holds the log (or goes, if it died).
            match (g.caught_up(l), self.engine.member_counts(l)) {
                (true, _) => Some((l.clone(), true)),
                (false, false) => Some((l.clone(), false)),
                (false, true) => None,
            }
        } else if (voters.len() as u32) < machine.want_voters {
            let machines: BTreeSet<&str> = machine
                .intents
                .values()
                .filter_map(|i| match &i.phase {
                    Phase::Running { node, .. } | Phase::Problem { node, .. } => {
                        Some(node.as_str())
                    }
                    _ => None,
                })
                .collect();
            self.engine
                .member_liveness()
                .filter(|(id, l)| {
                    *l == engine::members::Liveness::Alive
                        && !voters.contains(id)
                        && !machine.excluded.contains(id.as_str())
                        && !machines.contains(id.as_str())
                })
                .map(|(id, _)| id.clone())
                .next()
                .map(|id| (id, true))
        } else {
            None
        };
        if let Some((node, add)) = change {
            // Marked before proposing: a lone leader commits the change at once.
            self.coord.proposed.insert("voters".into(), now);
            let mut out = Out::default();
            let ok = self
                .coord
                .group
                .as_mut()
                .is_some_and(|g| g.propose_voter(&node, add, &mut out).is_ok());
            if !ok {
                self.coord.proposed.remove("voters");
            }
            self.coord_out(out);
        }
    }

    /// The leader's word to the mesh: who leads, and each root's machine.
    fn publish(&mut self, term: u64) {
        let Some(g) = self.coord.group.as_ref() else {
            return;
        };
        let view = CoordinatorView {
            leader: Some(self.id().to_string()),
            term,
            voters: g
                .voters()
                .into_iter()
                .map(|v| VoterView {
                    id: v.to_string(),
                    name: String::new(),
                    state: String::new(),
                })
                .collect(),
        };
        let mut writes = vec![(COORDINATOR_KEY.to_string(), serde_json::to_vec(&view).ok())];
        let mut keys = BTreeSet::new();
        for i in g.machine().intents.values() {
            let key = engine::mesh::desired_key(&i.key.app, &i.key.root);
            keys.insert(key.clone());
            writes.push((key, serde_json::to_vec(&machine_view(i)).ok()));
        }
        for gone in self.coord.published.difference(&keys) {
            writes.push((gone.clone(), None));
        }
        self.coord.published = keys;
        self.coord.published_term = term;
        for (key, value) in writes {
            self.engine
                .step(engine::Input::Coordination(Coordination::Publish {
                    key,
                    value,
                    term,
                }));
        }
    }

    /// `roboconf coordinator`: what this node knows (a voter from its group, any member
    /// from the leader's record).
    pub fn coordinator_view(&self) -> CoordinatorView {
        let (leader, term, voters) = match self.coord.group.as_ref().filter(|g| g.is_voter()) {
            Some(g) => (g.leader(), g.term(), g.voters()),
            None => match self.engine.coordinator_record() {
                Some((v, term)) => (
                    v.leader.map(NodeId::new),
                    term,
                    v.voters.into_iter().map(|v| NodeId::new(v.id)).collect(),
                ),
                None => (None, 0, Vec::new()),
            },
        };
        let members = self.engine.members();
        let voters = voters
            .into_iter()
            .map(|v| {
                let (name, state) = members
                    .iter()
                    .find(|(id, _, _)| *id == v)
                    .map(|(_, rec, l)| {
                        let state = serde_json::to_value(l)
                            .ok()
                            .and_then(|s| s.as_str().map(String::from))
                            .unwrap_or_default();
                        (rec.name.clone(), state)
                    })
                    .unwrap_or_default();
                VoterView {
                    id: v.to_string(),
                    name,
                    state,
                }
            })
            .collect();
        CoordinatorView {
            leader: leader.map(|l| l.to_string()),
            term,
            voters,
        }
    }

    /// `roboconf mesh voters add|remove NODE`, on the leader.
    pub fn change_voters(&mut self, node: &str, add: bool) -> Result<String, String> {
        let leader = self.coordinator_view().leader;
        let Some(g) = self.coord.group.as_mut().filter(|g| g.is_leader()) else {
            return Err(match leader {
                Some(l) => format!("this agent is not the coordinator's leader: ask {l}"),
                None => "the coordinator has no leader now".to_string(),
            });
        };
        let id = self.engine.member_id(node)?;
        let mut out = Out::default();
        let r = g.propose_voter(&id, add, &mut out);
        self.coord_out(out);
        r?;
        if !add {
            // A removed voter is replaced by a live member (the wanted count stays).
            return Ok(format!(
                "{node} is being removed from the voters; a live member replaces it"
            ));
        }
        Ok(format!("{node} is being added to the voters"))
    }

    /// Leaving: the leader hands its office to another voter.
    pub(super) fn hand_off(&mut self) {
        let Some(g) = self.coord.group.as_ref().filter(|g| g.is_leader()) else {
            return;
        };
        let me = self.id().clone();
        let next = g
            .voters()
            .into_iter()
            .find(|v| *v != me && self.engine.member_counts(v));
        if let (Some(next), Some(g)) = (next, self.coord.group.as_mut()) {
            let mut out = Out::default();
            g.transfer_to(&next, &mut out);
            self.coord_out(out);
        }
    }
}

fn machine_view(i: &Intent) -> MachineView {
    let (id, address, node, state, reason) = match &i.phase {
        Phase::Launching => ("", "", "", "launching", None),
        Phase::Running {
            machine_id,
            address,
            node,
        } => (
            machine_id.as_str(),
            address.as_str(),
            node.as_str(),
            "running",
            None,
        ),
        Phase::Failed { reason } => ("", "", "", "failed", Some(reason.clone())),
        Phase::Problem {
            machine_id,
            address,
            node,
            reason,
        } => (
            machine_id.as_str(),
            address.as_str(),
            node.as_str(),
            "problem",
            Some(reason.clone()),
        ),
        Phase::Terminating { machine_id } => (machine_id.as_str(), "", "", "terminating", None),
    };
    MachineView {
        target: i.target.id.clone(),
        handler: i.target.handler.clone(),
        generation: i.key.generation,
        id: id.to_string(),
        address: address.to_string(),
        node: node.to_string(),
        state: state.to_string(),
        reason,
    }
}
