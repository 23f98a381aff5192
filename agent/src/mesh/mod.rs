//! The mesh's replicated state, as sans-IO building blocks the core and the simulator
//! share (DESIGN §3): hybrid logical clocks (`hlc`), the replica of every record kind with
//! its owner and conflict rules, per-origin digests for anti-entropy (`replica`), and the
//! versioned, size-limited wire envelope every message travels in (`wire`). The network
//! (libp2p), membership and admission build on these.

pub mod hlc;
pub mod replica;
pub mod wire;

use serde::{Deserialize, Serialize};

/// A node of the mesh (its libp2p peer id, as text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub String);

impl NodeId {
    pub fn new(s: impl Into<String>) -> NodeId {
        NodeId(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
