//! Every setting of a node, and every timing constant of its protocols, in one place:
//! the engine's (`engine::Config`), SWIM's, anti-entropy's schedule, the connection
//! policy, the gossip mesh the drivers build, and the batching of peers' writes. The
//! agent and the simulator build a node from the same `Config`.

use std::time::Duration;

/// A node's settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub engine: crate::engine::Config,
    /// False for an agent without a network: no SWIM, no anti-entropy, no dialling.
    pub networked: bool,
    /// How often the node's periodic work runs (the engine's clock: suspects expire on
    /// it, retries fall due, missing bundles are asked for).
    pub tick: Duration,
    pub swim: SwimSettings,
    pub sync: SyncSettings,
    pub peers: PeerSettings,
    pub gossip: GossipSettings,
    /// Copies of peers' records held back from the store at most (they are written
    /// with the node's own next writes, on the next tick, or when this many wait).
    pub peer_writes_max: usize,
    /// The coordinator (its Raft group, and the leader's limits and waits).
    pub coord: crate::coord::Settings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: crate::engine::Config::default(),
            networked: true,
            tick: Duration::from_millis(250),
            swim: SwimSettings::default(),
            sync: SyncSettings::default(),
            peers: PeerSettings::default(),
            gossip: GossipSettings::default(),
            peer_writes_max: 1024,
            coord: crate::coord::Settings::default(),
        }
    }
}

/// SWIM (`crate::swim`): how long a suspect has to refute (the probe period and the
/// rest are `swim::config`'s).
#[derive(Debug, Clone)]
pub struct SwimSettings {
    pub suspect_for: Duration,
}

impl Default for SwimSettings {
    fn default() -> Self {
        SwimSettings {
            suspect_for: Duration::from_secs(3),
        }
    }
}

/// Anti-entropy: a round with one connected peer every `first`, doubling up to `max`
/// while rounds bring nothing (gossip is the fast path), back to `first` on news or a
/// new connection; a round unanswered after `timeout` is given up.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub first: Duration,
    pub max: Duration,
    pub timeout: Duration,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            first: Duration::from_secs(1),
            max: Duration::from_secs(2),
            timeout: Duration::from_secs(3),
        }
    }
}

/// The connection policy: each node keeps a bounded set of connections to members
/// (gossip and anti-entropy travel over them; SWIM reaches every member by datagrams).
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// How many connections a node keeps: `per_log2` × ⌈log₂ members⌉, between `min` and
    /// `max` (every other member below that: a small mesh is a full mesh).
    pub min: usize,
    pub per_log2: usize,
    pub max: usize,
    /// Connections others opened to us are kept up to this many above the target.
    pub slack: usize,
    /// How often the policy looks at the connections.
    pub every: Duration,
    /// How often one connection is traded for one to a member not connected to (so
    /// that any two parts of the mesh meet again, e.g. after a partition).
    pub rotate_every: Duration,
    /// A dial with no connection after this long has failed.
    pub dial_timeout: Duration,
    /// A connection closed on purpose is closed once the peer acknowledged the
    /// `Closing` notice, or after this long.
    pub close_after: Duration,
    /// A node that leaves waits this long at most for its peers to take its last words.
    pub last_words_for: Duration,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            min: 16,
            per_log2: 3,
            max: 32,
            slack: 8,
            every: Duration::from_secs(1),
            rotate_every: Duration::from_secs(30),
            dial_timeout: Duration::from_secs(10),
            close_after: Duration::from_secs(1),
            last_words_for: Duration::from_secs(3),
        }
    }
}

impl PeerSettings {
    /// How many connections to keep in a mesh of `members` (this node included).
    pub fn target(&self, members: usize) -> usize {
        let others = members.saturating_sub(1);
        let log2 = usize::BITS - members.max(1).saturating_sub(1).leading_zeros();
        (self.per_log2 * log2 as usize)
            .clamp(self.min, self.max)
            .min(others)
    }
}

/// How drivers spread a published change: to every connected peer at once (flood
/// publish), then each receiver forwards it once to `degree` of its peers (gossipsub's
/// mesh: between `degree_low` and `degree_high`).
#[derive(Debug, Clone)]
pub struct GossipSettings {
    pub degree_low: usize,
    pub degree: usize,
    pub degree_high: usize,
    /// How long a message id is remembered, to drop copies.
    pub seen_for: Duration,
    /// Gossip messages are kept under this many bytes (bigger batches are split).
    pub max_message: usize,
}

impl Default for GossipSettings {
    fn default() -> Self {
        GossipSettings {
            degree_low: 2,
            degree: 3,
            degree_high: 6,
            seen_for: Duration::from_secs(60),
            max_message: 128 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_target_grows_with_the_log_of_the_mesh() {
        let p = PeerSettings::default();
        assert_eq!(p.target(1), 0);
        assert_eq!(p.target(10), 9, "a small mesh is a full mesh");
        assert_eq!(p.target(17), 16);
        assert_eq!(p.target(100), 21);
        assert_eq!(p.target(1_000), 30);
        assert_eq!(p.target(10_000), 32);
    }
}
