//! The records the core persists: applications, instances (desired and observed state,
//! the imports each instance was last configured with, its random ports) and script
//! runs. They are plain serde types; the store keeps one tree per kind.

use crate::api::{Desired, State};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Store trees, one per kind of record.
pub const TREE_APPS: &str = "apps";
pub const TREE_INSTANCES: &str = "instances";
pub const TREE_RUNS: &str = "runs";

/// A registered application: its bundle (a copy of the project) lives in `bundle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    pub name: String,
    pub version: String,
    pub bundle: PathBuf,
    #[serde(default)]
    pub hash: String,
}

/// Variables an exporter gave an importer: full names → values.
pub type Vars = BTreeMap<String, String>;

/// One instance: what it is, what the operator wants, what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub app: String,
    pub path: String,
    pub name: String,
    pub component: String,
    /// Overridden exports from the instances file (`port: 9090;`).
    pub overrides: Vec<(String, String)>,
    pub desired: Desired,
    pub state: State,
    pub last_error: Option<String>,
    /// True after a failed script: nothing is retried until the operator acts again.
    pub blocked: bool,
    /// After a failure of the agent's environment (not of the script): the next attempt.
    #[serde(default)]
    pub retry: Option<Retry>,
    /// Per exporter path, the variables this instance was last configured with.
    pub configured: BTreeMap<String, Vars>,
    /// Random ports allocated for it: local variable name → port.
    pub ports: BTreeMap<String, u16>,
    /// Sequence number of its last script run (runs are kept under it).
    pub last_run_seq: u64,
}

impl InstanceRecord {
    /// A new instance, not deployed and never run, wanted as `desired`.
    pub fn new(app: &str, path: &str, name: &str, component: &str, desired: Desired) -> Self {
        Self {
            app: app.to_string(),
            path: path.to_string(),
            name: name.to_string(),
            component: component.to_string(),
            overrides: Vec::new(),
            desired,
            state: State::NotDeployed,
            last_error: None,
            blocked: false,
            retry: None,
            configured: BTreeMap::new(),
            ports: BTreeMap::new(),
            last_run_seq: 0,
        }
    }
}

/// A failed action that is tried again by itself: the failure was the agent's
/// environment's (its working folder could not be written, the script could not be
/// started), not the script's own verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retry {
    /// Attempts that failed so far.
    pub attempt: u32,
    /// When the next one is due (milliseconds since the Unix epoch).
    pub at_ms: u64,
}

impl Retry {
    /// The retry after `attempt` failures, the last at `now_ms`: the first wait doubles
    /// with each failure up to the most (`Timing::retry_first_ms`, `retry_max_ms`).
    /// Retries go on until the action succeeds or an operator changes what the instance
    /// should be.
    pub fn after(attempt: u32, now_ms: u64, first_ms: u64, max_ms: u64) -> Retry {
        let wait = first_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(max_ms);
        Retry {
            attempt,
            at_ms: now_ms.saturating_add(wait),
        }
    }
}

/// One finished (or interrupted) script run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub app: String,
    pub path: String,
    pub seq: u64,
    pub action: String,
    pub at_ms: u64,
    pub ok: bool,
    pub code: Option<i32>,
    pub error: Option<String>,
    pub output: String,
}

impl From<RunRecord> for crate::api::RunView {
    fn from(r: RunRecord) -> Self {
        crate::api::RunView {
            seq: r.seq,
            action: r.action,
            at_ms: r.at_ms,
            ok: r.ok,
            code: r.code,
            error: r.error,
            output: r.output,
        }
    }
}

/// Most bytes of runs sent to another agent's `logs` in one answer (messages are at most
/// 4 MiB): the newest runs are kept whole; the first that does not fit has the start of
/// its output cut, and older ones are left out.
pub const RUNS_BUDGET: usize = 2 * 1024 * 1024;

/// The runs (oldest first) that fit `RUNS_BUDGET`.
pub fn fit_runs(runs: Vec<crate::api::RunView>) -> Vec<crate::api::RunView> {
    let size = |r: &crate::api::RunView| {
        r.output.len() + r.action.len() + r.error.as_ref().map_or(0, String::len) + 64
    };
    let mut left = RUNS_BUDGET;
    let mut kept = Vec::new();
    for mut r in runs.into_iter().rev() {
        let whole = size(&r);
        if whole <= left {
            left -= whole;
            kept.push(r);
            continue;
        }
        let other = whole - r.output.len();
        if other + 64 < left {
            let room = left - other - 64;
            let mut cut = r.output.len() - room;
            while !r.output.is_char_boundary(cut) {
                cut += 1;
            }
            r.output = format!("[{cut} bytes cut]{}", &r.output[cut..]);
            kept.push(r);
        }
        break;
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seq: u64, output: usize, error: usize) -> crate::api::RunView {
        crate::api::RunView {
            seq,
            action: "start".into(),
            at_ms: seq,
            ok: false,
            code: Some(1),
            error: Some("e".repeat(error)),
            output: "é".repeat(output / 2),
        }
    }

    #[test]
    fn runs_sent_to_another_agent_fit_one_message() {
        let small: Vec<_> = (1..=3).map(|s| run(s, 100, 10)).collect();
        assert_eq!(fit_runs(small.clone()), small);
        // 40 runs of 1 MB of output and long errors: the newest whole, one cut, no more.
        let big: Vec<_> = (1..=40).map(|s| run(s, 1_000_000, 100_000)).collect();
        let fit = fit_runs(big);
        let total: usize = fit
            .iter()
            .map(|r| r.output.len() + r.error.as_ref().map_or(0, String::len) + 64)
            .sum();
        assert!(total <= RUNS_BUDGET, "{total}");
        assert_eq!(fit.last().map(|r| r.seq), Some(40));
        assert!(fit.len() < 40 && fit.len() >= 2, "{}", fit.len());
        assert!(fit[0].output.starts_with('['), "the oldest kept is cut");
    }
}

/// The store key of an instance (and the prefix of its runs).
pub fn instance_key(app: &str, path: &str) -> Vec<u8> {
    format!("{app}\u{0}{path}").into_bytes()
}

/// The store key of a run: sorts by instance, then by sequence number.
pub fn run_key(app: &str, path: &str, seq: u64) -> Vec<u8> {
    let mut k = instance_key(app, path);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// One write the runtime must make durable before acting on the outputs that follow it
/// (`Peer` writes excepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    Put {
        tree: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        tree: &'static str,
        key: Vec<u8>,
    },
    /// Deletes every key of the tree that starts with the prefix.
    DeletePrefix {
        tree: &'static str,
        prefix: Vec<u8>,
    },
    /// A copy of a peer's record: written in the same transaction as the rest, but a batch
    /// of nothing else is not flushed before acting — lost in a crash, it comes back from
    /// the peers with the next anti-entropy round.
    Peer {
        tree: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

impl Write {
    pub fn put<T: Serialize>(tree: &'static str, key: Vec<u8>, value: &T) -> Write {
        // Serializing these plain records cannot fail.
        let value = serde_json::to_vec(value).unwrap_or_default();
        Write::Put { tree, key, value }
    }
}
