//! The simulated target and the coordinator's invariants. A machine operation of the
//! leader takes a random time (0.2–1.5 s) and a creation fails one time in ten; a
//! created machine lends an existing node as its agent (the node the root is bound to
//! then). Checked as it happens: a create or terminate is asked only by a leader for an
//! intent committed in its current term, never two machines for one root, at most one
//! leader per term, and a node's term never goes back nor its vote changes within a
//! term. `check_machines` adds, once calm, that no machine is left without an intent.

use super::{Cluster, Ev};
use roboconf_core::coord::{MachineKey, Phase};
use roboconf_core::node::{Input, MachineAction, MachineOp, MachineResult};
use std::collections::BTreeMap;

/// The coordinator's side of a simulation.
#[derive(Debug, Default)]
pub struct Coord {
    /// Live machines: (application, root) → (generation, the node lent as its agent).
    pub machines: BTreeMap<(String, String), (u64, usize)>,
    /// Creates and terminates asked.
    pub creates: u64,
    pub terminates: u64,
    /// term → the leader seen in it.
    pub leaders: BTreeMap<u64, usize>,
    /// Per node: the last (term, vote) seen.
    pub hard: BTreeMap<usize, (u64, u64)>,
    /// Leaders elected, with when (µs): failover measurements.
    pub elected: Vec<(u64, usize, u64)>,
    /// Leaders crashed by the scenario: (when, their term).
    pub leader_crashes: Vec<(u64, u64)>,
    pub violations: Vec<String>,
    /// The machine limit of the mesh (0: none), and when the live machines exceeded it.
    pub limit: usize,
    pub limit_violations: Vec<String>,
    /// Autonomic: events published, steps outside the mesh asked.
    pub events: u64,
    pub externals: u64,
}

impl Cluster {
    /// The leader `k` asks its target for `op`.
    pub(super) fn machine_op(&mut self, k: usize, op: MachineOp) {
        let ok = self.nodes[k].node.group().is_some_and(|g| {
            g.is_leader()
                && g.machine()
                    .intent(&op.key.app, &op.key.root)
                    .is_some_and(|i| i.key == op.key && i.term == g.term())
        });
        if !ok {
            self.coord.violations.push(format!(
                "n{k} asked {:?} for {:?} without a committed intent of its current term",
                op.action, op.key
            ));
        }
        match op.action {
            MachineAction::Create => self.coord.creates += 1,
            MachineAction::Terminate { .. } => self.coord.terminates += 1,
        }
        let delay = 200_000 + self.rng.below(1_300_000) as u64;
        let life = self.nodes[k].life;
        self.queue.after(delay, Ev::Machine { node: k, life, op });
    }

    /// The target finished `op` (whether or not its leader still lives to hear it).
    pub(super) fn machine_done(&mut self, k: usize, life: u32, op: MachineOp) {
        let root = (op.key.app.clone(), op.key.root.clone());
        let result = match op.action {
            MachineAction::Create => match self.coord.machines.get(&root) {
                Some(&(g, node)) if g == op.key.generation => Some(created(&op.key, node)),
                Some(&(g, _)) => {
                    self.coord.violations.push(format!(
                        "a machine for {root:?} generation {} while generation {g} runs",
                        op.key.generation
                    ));
                    None
                }
                None if self.rng.below(10) == 0 => Some(MachineResult::Failed {
                    reason: "simulated failure".into(),
                    problem: false,
                }),
                None => {
                    let up: Vec<usize> = (0..self.nodes.len())
                        .filter(|&j| self.nodes[j].up)
                        .collect();
                    let node = up[self
                        .rng
                        .below(up.len().max(1))
                        .min(up.len().saturating_sub(1))];
                    self.coord.machines.insert(root, (op.key.generation, node));
                    let live = self.coord.machines.len();
                    if self.coord.limit > 0 && live > self.coord.limit {
                        self.coord.limit_violations.push(format!(
                            "{live} machines run, over the limit of {}",
                            self.coord.limit
                        ));
                    }
                    Some(created(&op.key, node))
                }
            },
            MachineAction::Terminate { .. } => {
                if self
                    .coord
                    .machines
                    .get(&root)
                    .is_some_and(|(g, _)| *g == op.key.generation)
                {
                    self.coord.machines.remove(&root);
                }
                Some(MachineResult::Terminated)
            }
        };
        if let (Some(result), true) = (result, self.live(k, life)) {
            let now = self.wall_ms(k);
            self.nodes[k].node.step(
                now,
                Input::MachineDone {
                    key: op.key,
                    result,
                },
            );
            self.effects(k);
        }
    }

    /// The election's invariants, after every event on node `k`.
    pub(super) fn watch_group(&mut self, k: usize) {
        let Some(g) = self.nodes[k].node.group() else {
            return;
        };
        let (term, vote, leader) = (g.term(), g.vote(), g.is_leader());
        if let Some(&(t, v)) = self.coord.hard.get(&k) {
            if term < t {
                self.coord
                    .violations
                    .push(format!("n{k}'s term went back from {t} to {term}"));
            } else if term == t && v != 0 && vote != v {
                self.coord
                    .violations
                    .push(format!("n{k} changed its vote in term {term}"));
            }
        }
        self.coord.hard.insert(k, (term, vote));
        if leader {
            match self.coord.leaders.get(&term) {
                Some(&j) if j != k => self
                    .coord
                    .violations
                    .push(format!("two leaders in term {term}: n{j} and n{k}")),
                Some(_) => {}
                None => {
                    self.coord.leaders.insert(term, k);
                    self.coord.elected.push((self.queue.now, k, term));
                }
            }
        }
    }

    /// Node `k` makes the mesh's coordinator (`mesh init --voters`).
    pub fn found_coordinator(&mut self, k: usize, voters: u32) {
        let now = self.wall_ms(k);
        let limits =
            (self.coord.limit > 0).then_some((self.coord.limit as u32, self.coord.limit as u32));
        self.nodes[k].node.step(
            now,
            Input::Joined {
                founded: true,
                voters: Some(voters),
                limits,
            },
        );
        self.effects(k);
    }

    /// For each leader crashed: how long until a leader of a later term was elected (ms).
    pub fn failovers_ms(&self) -> Vec<f64> {
        self.coord
            .leader_crashes
            .iter()
            .filter_map(|&(at, term)| {
                self.coord
                    .elected
                    .iter()
                    .find(|(t, _, tm)| *t >= at && *tm > term)
                    .map(|(t, _, _)| (t - at) as f64 / 1000.0)
            })
            .collect()
    }

    /// Once calm: every machine has an open intent of its generation on the leader.
    pub fn check_machines(&self) -> Vec<String> {
        let leader = (0..self.nodes.len()).find(|&k| {
            self.nodes[k].up && self.nodes[k].node.group().is_some_and(|g| g.is_leader())
        });
        let Some(l) = leader else {
            let groups: Vec<String> = (0..self.nodes.len())
                .filter_map(|k| {
                    let g = self.nodes[k].node.group()?;
                    g.is_voter().then(|| {
                        format!(
                            "n{k} up {} term {} role {:?} voters {}",
                            self.nodes[k].up,
                            g.term(),
                            g.role(),
                            g.voters().len()
                        )
                    })
                })
                .collect();
            return vec![format!(
                "no leader once calm (voters: {groups:?}, unreadable {:?})",
                (0..self.nodes.len())
                    .filter(|&k| self.nodes[k]
                        .node
                        .coord_counts()
                        .iter()
                        .any(|(n, v)| *n == "coordinator_unreadable" && *v == 1))
                    .collect::<Vec<_>>()
            )];
        };
        let Some(g) = self.nodes[l].node.group() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((app, root), (generation, _)) in &self.coord.machines {
            let held = g.machine().intent(app, root).is_some_and(|i| {
                i.key.generation == *generation && !matches!(i.phase, Phase::Failed { .. })
            });
            if !held {
                out.push(format!(
                    "machine {app}{root} generation {generation} runs without an intent"
                ));
            }
        }
        out
    }
}

fn created(key: &MachineKey, node: usize) -> MachineResult {
    MachineResult::Created {
        machine_id: format!(
            "sim-{}-{}",
            key.root.trim_start_matches('/'),
            key.generation
        ),
        address: format!("/sim/{node}"),
        node: format!("n{node}"),
    }
}
