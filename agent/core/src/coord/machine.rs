//! The coordinator's replicated state: what the Raft log's committed entries build, the
//! same on every voter. It holds the voter set (Raft ids → members), how many voters the
//! mesh wants, the machine limits, and one launch intent per root instance with its
//! generation — the idempotency key of every machine operation is (application, root
//! path, generation). Applying an entry is pure and deterministic; entries that no longer
//! fit the state (a stale generation, a result for an intent already closed) change
//! nothing.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a target file says (`graph/<Root>/*.target.properties`), as the leader hands it
/// to the driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSpec {
    pub id: String,
    pub handler: String,
    pub properties: BTreeMap<String, String>,
}

/// The idempotency key of a machine operation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MachineKey {
    pub app: String,
    pub root: String,
    pub generation: u64,
}

/// Where an intent stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A launch is committed; the leader creates (or looks up) the machine.
    Launching,
    /// The target created and configured it; `node` is its agent.
    Running {
        machine_id: String,
        address: String,
        node: String,
    },
    /// The creation failed: nothing runs, nothing is retried until the operator deploys
    /// the root again.
    Failed { reason: String },
    /// The machine exists but is not right (its configuration failed, its agent never
    /// joined): the root shows PROBLEM.
    Problem {
        machine_id: String,
        address: String,
        node: String,
        reason: String,
    },
    /// A termination is committed; the leader terminates (or looks up) the machine.
    Terminating { machine_id: String },
}

/// The current intent of a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub key: MachineKey,
    pub target: TargetSpec,
    pub phase: Phase,
    /// The term of the leader that issued the current operation (a new leader issues it
    /// again in its own term before acting).
    pub term: u64,
    /// The root's desired-state stamp the launch answered (an operator's later deploy
    /// has a newer one).
    pub desired_stamp: (u64, u32),
}

/// A command in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Launch a machine for a root (a new generation, or the open one issued again by a
    /// new leader).
    Launch {
        key: MachineKey,
        target: TargetSpec,
        desired_stamp: (u64, u32),
    },
    /// The target created and configured it.
    Launched {
        key: MachineKey,
        machine_id: String,
        address: String,
        node: String,
    },
    /// Creation failed (`problem: false`: nothing exists) or the machine is not right.
    LaunchFailed {
        key: MachineKey,
        reason: String,
        problem: bool,
    },
    /// Terminate the machine of this intent (issued again by a new leader).
    Terminate { key: MachineKey },
    /// The machine is gone: the intent is closed.
    Terminated { key: MachineKey },
    /// How many voters the mesh wants (the leader adds live members up to it).
    WantVoters(u32),
    /// Rules, jobs and executions (`super::autonomic`).
    Autonomic(super::autonomic::Op),
}

/// The replicated state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Raft id → member (node id).
    pub voters: BTreeMap<u64, String>,
    /// Members being added: learners until they hold the log, then voters.
    #[serde(default)]
    pub learners: BTreeMap<u64, String>,
    /// Members removed from the voters: never added back by the leader itself (an
    /// operator's `mesh voters add` does).
    #[serde(default)]
    pub excluded: std::collections::BTreeSet<String>,
    pub want_voters: u32,
    /// Most machines launched at once in the mesh, and per application.
    pub max_machines: u32,
    pub max_per_app: u32,
    /// `app \0 root` → its current intent.
    pub intents: BTreeMap<String, Intent>,
    /// `app \0 root` → the last generation issued (kept after the intent closes, so a
    /// key is never reused).
    pub generations: BTreeMap<String, u64>,
    /// Rules fired, jobs' instants, executions (`super::autonomic`).
    #[serde(default)]
    pub autonomic: super::autonomic::Autonomic,
}

/// The map key of a root.
pub fn root_key(app: &str, root: &str) -> String {
    format!("{app}\u{0}{root}")
}

/// What applying a command did, for the leader's bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The command changed the intent of this root.
    Intent(MachineKey),
    /// The autonomic state changed.
    Autonomic,
    Nothing,
}

impl Machine {
    /// Machines counted against the limits: every intent that may hold a machine.
    pub fn machines(&self, app: Option<&str>) -> usize {
        self.intents
            .values()
            .filter(|i| app.is_none_or(|a| a == i.key.app))
            .filter(|i| !matches!(i.phase, Phase::Failed { .. }))
            .count()
    }

    pub fn intent(&self, app: &str, root: &str) -> Option<&Intent> {
        self.intents.get(&root_key(app, root))
    }

    /// Applies a committed command, issued in `term`.
    pub fn apply(&mut self, cmd: Command, term: u64) -> Applied {
        match cmd {
            Command::Launch {
                key,
                target,
                desired_stamp,
            } => {
                let rk = root_key(&key.app, &key.root);
                let last = self.generations.get(&rk).copied().unwrap_or(0);
                let current = self.intents.get(&rk);
                let reissue =
                    current.is_some_and(|i| i.key == key && matches!(i.phase, Phase::Launching));
                let fresh = key.generation == last + 1
                    && current.is_none_or(|i| matches!(i.phase, Phase::Failed { .. }));
                let within = self.machines(None) < self.max_machines as usize
                    && self.machines(Some(&key.app)) < self.max_per_app as usize;
                if reissue {
                    if let Some(i) = self.intents.get_mut(&rk) {
                        i.term = term;
                    }
                } else if fresh && within {
                    self.generations.insert(rk.clone(), key.generation);
                    self.intents.insert(
                        rk,
                        Intent {
                            key: key.clone(),
                            target,
                            phase: Phase::Launching,
                            term,
                            desired_stamp,
                        },
                    );
                } else {
                    return Applied::Nothing;
                }
                Applied::Intent(key)
            }
            Command::Launched {
                key,
                machine_id,
                address,
                node,
            } => self.update(&key, |i| match &i.phase {
                Phase::Launching => {
                    i.phase = Phase::Running {
                        machine_id,
                        address,
                        node,
                    };
                    true
                }
                // The machine's agent is back (a partition healed): running again.
                Phase::Problem { node: n, .. } if !n.is_empty() && *n == node => {
                    i.phase = Phase::Running {
                        machine_id,
                        address,
                        node,
                    };
                    true
                }
                _ => false,
            }),
            Command::LaunchFailed {
                key,
                reason,
                problem,
            } => self.update(&key, |i| {
                let (machine_id, address, node) = match &i.phase {
                    Phase::Launching => (String::new(), String::new(), String::new()),
                    Phase::Running {
                        machine_id,
                        address,
                        node,
                    } => (machine_id.clone(), address.clone(), node.clone()),
                    _ => return false,
                };
                i.phase = match problem {
                    true => Phase::Problem {
                        machine_id,
                        address,
                        node,
                        reason,
                    },
                    false => Phase::Failed { reason },
                };
                true
            }),
            Command::Terminate { key } => self.update(&key, |i| {
                let machine_id = match &i.phase {
                    Phase::Running { machine_id, .. } | Phase::Problem { machine_id, .. } => {
                        machine_id.clone()
                    }
                    Phase::Terminating { machine_id } => machine_id.clone(),
                    Phase::Launching => String::new(),
                    Phase::Failed { .. } => String::new(),
                };
                i.phase = Phase::Terminating { machine_id };
                i.term = term;
                true
            }),
            Command::Terminated { key } => {
                let rk = root_key(&key.app, &key.root);
                match self.intents.get(&rk) {
                    Some(i) if i.key == key => {
                        self.intents.remove(&rk);
                        Applied::Intent(key)
                    }
                    _ => Applied::Nothing,
                }
            }
            Command::WantVoters(n) => {
                self.want_voters = n.clamp(1, 7);
                Applied::Nothing
            }
            Command::Autonomic(op) => {
                self.autonomic.apply(op);
                Applied::Autonomic
            }
        }
    }

    fn update(&mut self, key: &MachineKey, f: impl FnOnce(&mut Intent) -> bool) -> Applied {
        match self.intents.get_mut(&root_key(&key.app, &key.root)) {
            Some(i) if i.key == *key => match f(i) {
                true => Applied::Intent(key.clone()),
                false => Applied::Nothing,
            },
            _ => Applied::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: u64) -> MachineKey {
        MachineKey {
            app: "a".into(),
            root: "/vm".into(),
            generation: g,
        }
    }

    fn launch(g: u64) -> Command {
        Command::Launch {
            key: key(g),
            target: TargetSpec {
                id: "t".into(),
                handler: "local".into(),
                properties: BTreeMap::new(),
            },
            desired_stamp: (1, 0),
        }
    }

    #[test]
    fn a_key_is_launched_once_and_never_reused_and_the_limits_hold() {
        let mut m = Machine {
            max_machines: 1,
            max_per_app: 1,
            ..Machine::default()
        };
        assert_eq!(m.apply(launch(1), 2), Applied::Intent(key(1)));
        // Issued again by a new leader: same key, its term.
        assert_eq!(m.apply(launch(1), 3), Applied::Intent(key(1)));
        assert_eq!(m.intent("a", "/vm").map(|i| i.term), Some(3));
        // A second generation while the first is open: refused.
        assert_eq!(m.apply(launch(2), 3), Applied::Nothing);
        let launched = Command::Launched {
            key: key(1),
            machine_id: "m".into(),
            address: "x".into(),
            node: "n".into(),
        };
        assert_eq!(m.apply(launched.clone(), 3), Applied::Intent(key(1)));
        assert_eq!(m.apply(launched, 3), Applied::Nothing);
        assert_eq!(
            m.apply(Command::Terminate { key: key(1) }, 3),
            Applied::Intent(key(1))
        );
        assert_eq!(
            m.apply(Command::Terminated { key: key(1) }, 3),
            Applied::Intent(key(1))
        );
        // Generation 1 is spent: only 2 comes next.
        assert_eq!(m.apply(launch(1), 4), Applied::Nothing);
        assert_eq!(m.apply(launch(2), 4), Applied::Intent(key(2)));
        // The mesh's limit of one machine holds for another root.
        let other = Command::Launch {
            key: MachineKey {
                root: "/vm2".into(),
                ..key(1)
            },
            target: TargetSpec {
                id: "t".into(),
                handler: "local".into(),
                properties: BTreeMap::new(),
            },
            desired_stamp: (1, 0),
        };
        assert_eq!(m.apply(other, 4), Applied::Nothing);
    }
}
