//! The coordinator's targets (DESIGN §8): what creates, finds and terminates the machine
//! of a launch intent, idempotent by its key (application, root, generation). `local`
//! starts an agent process on this host; `embedded` starts one on a host reached over
//! SSH. The leader's runtime hands each `MachineOp` to a blocking worker here, and the
//! result comes back to its loop as `Done`. A new agent receives its "user data" — the
//! mesh's bootstrap addresses, a single-use join token, its name — in a file, and joins
//! the mesh at start; the leader binds the root to it. `docker` runs the agent in a
//! container, `netns` in a network namespace of this host. Each operation runs in a
//! `machine` span and its outcome is logged.

pub mod carry;
mod docker;
mod embedded;
mod local;
mod netns;

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

/// Where agent binaries this agent does not run come from (the mesh: `carry`).
pub trait Binaries: Send + Sync {
    /// An agent binary for `arch`, or the build `sha256`, fetched from a member that
    /// runs it and checked by its hash (blocking: called on a worker).
    fn fetch(
        &self,
        arch: Option<&str>,
        sha256: Option<&str>,
    ) -> Result<crate::binary::Local, String>;
}

/// What a target needs besides its file.
#[derive(Clone)]
pub struct Context {
    /// This agent's data dir.
    pub data_dir: PathBuf,
    /// The folder of the target file in the application's bundle.
    pub target_dir: Option<PathBuf>,
    pub binaries: Option<std::sync::Arc<dyn Binaries>>,
}

impl Context {
    pub fn new(data_dir: &Path) -> Context {
        Context {
            data_dir: data_dir.to_path_buf(),
            target_dir: None,
            binaries: None,
        }
    }

    /// An agent binary for a machine of `arch`: the build `pinned` (a target file's
    /// `agent.sha256`) if given, else this agent's own when it is of that architecture,
    /// else the one members of that architecture run — from the mesh when not here.
    pub fn binary_for(
        &self,
        arch: &str,
        pinned: Option<&str>,
    ) -> Result<crate::binary::Local, String> {
        let own = crate::binary::own()?;
        let arch = match arch {
            "amd64" => "x86_64",
            "arm64" => "aarch64",
            a => a,
        };
        if pinned.is_none_or(|h| h == own.info.sha256) && own.info.arch == arch {
            return Ok(own.clone());
        }
        let got = match &self.binaries {
            Some(b) => b.fetch(Some(arch), pinned)?,
            None => {
                return Err(format!(
                    "no agent binary for {arch} here (this agent runs a build for {})",
                    own.info.arch
                ))
            }
        };
        if got.info.arch != arch {
            return Err(format!(
                "the agent build {} is for {}, the machine is {arch}",
                got.info.sha256, got.info.arch
            ));
        }
        Ok(got)
    }
}

/// The properties of a `local`, `netns` or `embedded` spec with the pinned build's path
/// (`agent.sha256`, fetched from the mesh when needed) as its binary, unless one is
/// given.
fn with_pinned_binary(
    spec: &TargetSpec,
    ctx: &Context,
    key: &str,
) -> Result<std::collections::BTreeMap<String, String>, String> {
    let mut props = spec.properties.clone();
    if let (Some(h), false) = (props.get("agent.sha256").cloned(), props.contains_key(key)) {
        let b = ctx
            .binary_for(std::env::consts::ARCH, Some(&h))
            .map_err(|e| format!("target `{}`: {e}", spec.id))?;
        props.insert(key.into(), b.path.display().to_string());
    }
    Ok(props)
}

/// The target of a spec.
pub fn handler(spec: &TargetSpec, ctx: &Context) -> Result<Box<dyn Target + Send>, String> {
    let data_dir = ctx.data_dir.as_path();
    match spec.handler.as_str() {
        "local" => {
            let props = with_pinned_binary(spec, ctx, "local.binary")?;
            Ok(Box::new(local::Local::new(&props, data_dir)?))
        }
        "embedded" => {
            let props = with_pinned_binary(spec, ctx, "embedded.binary")?;
            Ok(Box::new(embedded::Embedded::new(&props, ctx)?))
        }
        "docker" => Ok(Box::new(docker::Docker::new(spec, ctx)?)),
        "netns" => {
            let props = with_pinned_binary(spec, ctx, "netns.binary")?;
            Ok(Box::new(netns::Netns::new(&props, data_dir)?))
        }
        other => Err(format!(
            "target `{}`: handler `{other}` cannot launch machines in this mesh (it launches with {})",
            spec.id,
            roboconf_model::targets::LAUNCHABLE.join(", ")
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

    /// Carries out `op` (`user`: what a created agent is told; `target_dir`: the folder
    /// of its target file in the application's bundle; `binaries`: the mesh, for an
    /// agent binary this agent does not run).
    pub fn start(
        &self,
        op: MachineOp,
        user: UserData,
        target_dir: Option<PathBuf>,
        binaries: Option<std::sync::Arc<dyn Binaries>>,
    ) {
        let ctx = Context {
            data_dir: self.data_dir.clone(),
            target_dir,
            binaries,
        };
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let key = op.key.clone();
            let result = tokio::task::spawn_blocking(move || logged(&op, &user, &ctx))
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
fn logged(op: &MachineOp, user: &UserData, ctx: &Context) -> MachineResult {
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
    let result = carry_out(op, user, ctx);
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

fn carry_out(op: &MachineOp, user: &UserData, ctx: &Context) -> MachineResult {
    let target = match handler(&op.target, ctx) {
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
