//! The autonomic records as they travel over the mesh: an event occurrence (written by
//! the node that hosts the instance whose probe hit), a scheduled job and an `exec`
//! request (written by the agent an operator spoke to), and the keys of the execution
//! history the coordinator's leader publishes.

use crate::mesh::replica::OWNER_SEP;
use serde::{Deserialize, Serialize};

/// `Kind::Operator` keys of jobs: `job␟app␟name`.
pub const JOB_PREFIX: &str = "job\u{1f}";
/// `Kind::Operator` keys of exec requests: `exec␟id`.
pub const EXEC_PREFIX: &str = "exec\u{1f}";
/// `Kind::LaunchIntent` keys of history items: `history␟app␟id` (id zero-padded).
pub const HISTORY_PREFIX: &str = "history\u{1f}";

pub fn history_key(app: &str, id: u64) -> String {
    format!("{HISTORY_PREFIX}{app}{OWNER_SEP}{id:020}")
}

/// An autonomic event: a probe of an instance hit (Roboconf's `MsgNotifAutonomic`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub app: String,
    /// The instance whose probe hit.
    pub instance: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// The hosting node's wall clock.
    pub at_ms: u64,
}

/// A scheduled job (Roboconf's `job-name`, `application-name`, `command-file-name`,
/// `cron`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Unique for each `job add` (a job replaced under the same name is a new one).
    pub id: String,
    pub app: String,
    pub name: String,
    pub command: String,
    /// A Quartz cron expression, with seconds (UTC).
    pub cron: String,
    /// When it was added: its first instant is after this.
    #[serde(default)]
    pub created_ms: u64,
}

/// An operator's `roboconf exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    pub app: String,
    pub command: String,
    pub at_ms: u64,
}
