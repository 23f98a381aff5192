//! Hybrid logical clocks: timestamps that follow wall time when clocks agree and still
//! order causally related events when they do not (a node whose clock is behind never
//! issues a stamp below one it has seen). Ties break on the node id. The clock is given
//! the wall time as an input: nothing here reads a clock.

use super::NodeId;
use serde::{Deserialize, Serialize};

/// A timestamp: milliseconds, a logical counter, the node that issued it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Hlc {
    pub ms: u64,
    pub logical: u32,
    pub node: NodeId,
}

/// How far ahead of the local wall clock a remote stamp may be before it is refused
/// (a peer with a broken clock must not drag everyone's time forward).
pub const MAX_DRIFT_MS: u64 = 60_000;

/// A node's clock.
#[derive(Debug, Clone)]
pub struct Clock {
    node: NodeId,
    last_ms: u64,
    last_logical: u32,
}

impl Clock {
    pub fn new(node: NodeId) -> Clock {
        Clock {
            node,
            last_ms: 0,
            last_logical: 0,
        }
    }

    /// A new stamp, above every stamp issued or observed so far.
    pub fn now(&mut self, wall_ms: u64) -> Hlc {
        if wall_ms > self.last_ms {
            self.last_ms = wall_ms;
            self.last_logical = 0;
        } else {
            self.last_logical = self.last_logical.saturating_add(1);
        }
        Hlc {
            ms: self.last_ms,
            logical: self.last_logical,
            node: self.node.clone(),
        }
    }

    /// Takes a remote stamp into account. Refuses (false) one too far in the future.
    pub fn observe(&mut self, remote: &Hlc, wall_ms: u64) -> bool {
        if remote.ms > wall_ms.saturating_add(MAX_DRIFT_MS) {
            return false;
        }
        if (remote.ms, remote.logical) > (self.last_ms, self.last_logical) {
            self.last_ms = remote.ms;
            self.last_logical = remote.logical;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_even_when_the_wall_clock_goes_back() {
        let mut c = Clock::new(NodeId::new("a"));
        let s1 = c.now(1000);
        let s2 = c.now(900);
        let s3 = c.now(900);
        assert!(s1 < s2 && s2 < s3);
        assert_eq!(c.now(2000).ms, 2000);
    }

    #[test]
    fn observed_stamps_are_exceeded_and_far_future_ones_refused() {
        let mut a = Clock::new(NodeId::new("a"));
        let remote = Hlc {
            ms: 5_000,
            logical: 7,
            node: NodeId::new("b"),
        };
        assert!(a.observe(&remote, 4_000));
        assert!(a.now(4_000) > remote);
        let wild = Hlc {
            ms: 10_000_000,
            logical: 0,
            node: NodeId::new("c"),
        };
        assert!(!a.observe(&wild, 4_000));
        assert!(a.now(4_000).ms < 10_000_000);
    }

    #[test]
    fn ties_break_on_the_node() {
        let x = Hlc {
            ms: 1,
            logical: 0,
            node: NodeId::new("a"),
        };
        let y = Hlc {
            ms: 1,
            logical: 0,
            node: NodeId::new("b"),
        };
        assert!(x < y);
    }
}
