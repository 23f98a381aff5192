//! The mesh's replicated state, as sans-IO building blocks the core and the simulator
//! share (DESIGN §3): hybrid logical clocks (`hlc`), the replica of every record kind with
//! its owner and conflict rules, per-origin digests for anti-entropy (`replica`), and the
//! versioned, size-limited wire envelope every message travels in (`wire`). The network
//! (libp2p), membership and admission build on these.

pub mod hlc;
pub mod replica;
pub mod wire;

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A node of the mesh (its libp2p peer id, as text). Shared, not copied: a replica names
/// the same node in every origin, clock stamp and record it holds, so a clone is a
/// reference count, not an allocation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn new(s: impl AsRef<str>) -> NodeId {
        NodeId(Arc::from(s.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Sets and maps of nodes are looked up by `&str` (ordering and hashing are those of the
/// text).
impl std::borrow::Borrow<str> for NodeId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a: a small stable hash, the same on every node and every build (names, a node's
/// phase of the collection rounds, an origin's digest bucket).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}
