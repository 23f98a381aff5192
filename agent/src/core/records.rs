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
            configured: BTreeMap::new(),
            ports: BTreeMap::new(),
            last_run_seq: 0,
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
