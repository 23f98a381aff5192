//! What the network task sends and receives, counted by kind of message and direction:
//! atomics the task adds to and the agent reads for its metrics (`roboconf_net_*`).
//! Gossip out is what this node publishes (gossipsub sends each to every connected
//! peer, and forwards others' messages unseen by us); gossip in is every message
//! gossipsub delivers (one per message, duplicates dropped before). SWIM's UDP
//! datagrams are counted by `udp::Counters`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Messages and their bytes.
#[derive(Debug, Default)]
pub struct Count {
    pub messages: AtomicU64,
    pub bytes: AtomicU64,
}

impl Count {
    /// One message of `bytes` bytes.
    pub fn add(&self, bytes: usize) {
        self.messages.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }
}

/// One kind of message, each way.
#[derive(Debug, Default)]
pub struct Both {
    pub sent: Count,
    pub received: Count,
}

/// Every kind counted.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Gossipsub messages (the fast path of records).
    pub gossip: Both,
    /// Requests of the sync protocol (anti-entropy, bundles, runs, last words).
    pub request: Both,
    /// Their answers.
    pub response: Both,
    /// SWIM's datagrams over connections (`datagrams`).
    pub datagram: Both,
}

impl Traffic {
    /// (kind, direction, messages, bytes) of every count.
    pub fn all(&self) -> Vec<(&'static str, &'static str, u64, u64)> {
        let mut out = Vec::with_capacity(8);
        for (kind, both) in [
            ("gossip", &self.gossip),
            ("request", &self.request),
            ("response", &self.response),
            ("datagram", &self.datagram),
        ] {
            for (direction, c) in [("in", &both.received), ("out", &both.sent)] {
                out.push((
                    kind,
                    direction,
                    c.messages.load(Relaxed),
                    c.bytes.load(Relaxed),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_and_way() {
        let t = Traffic::default();
        t.gossip.sent.add(10);
        t.gossip.sent.add(5);
        t.response.received.add(7);
        let all = t.all();
        assert_eq!(all.len(), 8);
        assert!(all.contains(&("gossip", "out", 2, 15)));
        assert!(all.contains(&("response", "in", 1, 7)));
        assert!(all.contains(&("gossip", "in", 0, 0)));
    }
}
