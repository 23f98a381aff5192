//! The coordinator's targets (DESIGN §8): what creates, finds and terminates the machine
//! of a launch intent, idempotent by its key (application, root, generation). `local`
//! starts an agent process on this host; `embedded` starts one on a host reached over
//! SSH. The leader's runtime hands each `MachineOp` to a blocking worker here, and the
//! result comes back to its loop as `Done`. A new agent receives its "user data" — the
//! mesh's bootstrap addresses, a single-use join token, its name — in a file, and joins
//! the mesh at start; the leader binds the root to it. Each operation runs in a
//! `machine` span and its outcome is logged.

mod embedded;
mod local;

use roboconf_core::coord::{MachineKey, TargetSpec};
use roboconf_core::node::{MachineAction, MachineOp, MachineResult};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// A machine operation's result, for the runtime's loop.
pub type Done = (MachineKey, MachineResult);

/// What a new agent is told at start (`roboconf agent --user-data FILE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserData {
    /// Members to contact (multiaddrs with their `/p2p/` id).
    pub peers: Vec<String>,
    /// A single-use join token.
    pub token: String,
    /// The agent's name in the mesh.
    pub name: String,
    /// The application and the root instance it is launched for.
    pub app: String,
    pub root: String,
}

impl UserData {
    pub fn read(path: &Path) -> Result<UserData, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("user data {}: {e}", path.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("user data {}: {e}", path.display()))
    }
}

/// A created machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub machine_id: String,
    pub address: String,
    /// The member id of its agent.
    pub node: String,
}

/// Why an operation failed, and whether something is left that must be terminated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    pub left_behind: bool,
}

impl Failure {
    pub fn clean(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            left_behind: false,
        }
    }
}

/// A target handler. Every operation is idempotent by key: `create` finds the machine a
/// previous leader created for the same key instead of making a second one.
pub trait Target {
    fn create(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure>;
    fn terminate(&self, key: &MachineKey, machine_id: &str) -> Result<(), String>;
    fn is_running(&self, key: &MachineKey) -> bool;
}

/// The target of a spec, on an agent with this data dir.
pub fn handler(spec: &TargetSpec, data_dir: &Path) -> Result<Box<dyn Target + Send>, String> {
    match spec.handler.as_str() {
        "local" => Ok(Box::new(local::Local::new(&spec.properties, data_dir)?)),
        "embedded" => Ok(Box::new(embedded::Embedded::new(&spec.properties)?)),
        other => Err(format!(
            "target `{}`: handler `{other}` cannot launch machines in this mesh (it launches with `local` and `embedded`)",
            spec.id
        )),
    }
}

/// The leader's machine operations, each on a blocking worker; results to `done_tx`.
pub struct Machines {
    done_tx: mpsc::Sender<Done>,
    data_dir: PathBuf,
}

impl Machines {
    pub fn new(done_tx: mpsc::Sender<Done>, data_dir: &Path) -> Machines {
        Machines {
            done_tx,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// Carries out `op` (`user`: what a created agent is told).
    pub fn start(&self, op: MachineOp, user: UserData) {
        let (done_tx, data_dir) = (self.done_tx.clone(), self.data_dir.clone());
        tokio::spawn(async move {
            let key = op.key.clone();
            let result = tokio::task::spawn_blocking(move || logged(&op, &user, &data_dir))
                .await
                .unwrap_or_else(|e| MachineResult::Failed {
                    reason: format!("worker failed: {e}"),
                    problem: true,
                });
            let _ = done_tx.send((key, result)).await;
        });
    }
}

/// `carry_out` inside a `machine` span, its outcome logged (never the user data: it
/// holds a join token).
fn logged(op: &MachineOp, user: &UserData, data_dir: &Path) -> MachineResult {
    let action = match op.action {
        MachineAction::Create => "create",
        MachineAction::Terminate { .. } => "terminate",
    };
    let span = tracing::info_span!(
        "machine",
        app = op.key.app.as_str(),
        root = op.key.root.as_str(),
        generation = op.key.generation,
        target = op.target.id.as_str(),
        action
    );
    let _entered = span.enter();
    let result = carry_out(op, user, data_dir);
    match &result {
        MachineResult::Created {
            machine_id,
            address,
            ..
        } => tracing::info!(
            machine_id = machine_id.as_str(),
            address = address.as_str(),
            "machine created"
        ),
        MachineResult::Terminated => tracing::info!("machine terminated"),
        MachineResult::Failed { reason, problem } => tracing::warn!(
            reason = reason.as_str(),
            left_behind = problem,
            "machine not created"
        ),
        MachineResult::NotTerminated { reason } => {
            tracing::warn!(reason = reason.as_str(), "machine not terminated")
        }
    }
    result
}

fn carry_out(op: &MachineOp, user: &UserData, data_dir: &Path) -> MachineResult {
    let target = match handler(&op.target, data_dir) {
        Ok(t) => t,
        Err(reason) => {
            return match op.action {
                MachineAction::Create => MachineResult::Failed {
                    reason,
                    problem: false,
                },
                MachineAction::Terminate { .. } => MachineResult::NotTerminated { reason },
            }
        }
    };
    match &op.action {
        MachineAction::Create => match target.create(&op.key, user) {
            Ok(c) => MachineResult::Created {
                machine_id: c.machine_id,
                address: c.address,
                node: c.node,
            },
            Err(f) => MachineResult::Failed {
                reason: f.reason,
                problem: f.left_behind,
            },
        },
        MachineAction::Terminate { machine_id } => match target.terminate(&op.key, machine_id) {
            Ok(()) => MachineResult::Terminated,
            Err(reason) => MachineResult::NotTerminated { reason },
        },
    }
}

/// A file name for a key: `app-root-gN`, with anything but letters, digits, `-`, `_`
/// and `.` replaced.
pub fn machine_name(key: &MachineKey) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(
                |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    true => c,
                    false => '_',
                },
            )
            .collect()
    };
    format!(
        "{}-{}-g{}",
        clean(&key.app),
        clean(key.root.trim_start_matches('/')),
        key.generation
    )
}
