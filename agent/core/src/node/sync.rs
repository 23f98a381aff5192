//! Anti-entropy, the node's side: one round at a time with a random connected peer — our
//! digest's fingerprint first (`DigestHash`); when they differ the peer answers with its
//! digest's 64 bucket fingerprints (`Buckets`), we send the watermarks of the buckets
//! that differ (`Digest`), then the peer's `Delta` of what we lack. A digest grows with
//! the mesh (one watermark per origin, ~70 B on the wire); a round of a 1,000-member mesh
//! that differs in a few origins sends a few buckets of it, not all of it. A round every
//! `first` after news, doubling up to `max` while rounds bring nothing (gossip is the
//! fast path); a new connection gets a round at once. Peers' rounds are answered by the
//! engine from the replica.

use super::{Effect, Node, SyncSettings};
use crate::engine;
use crate::mesh::wire::Body;
use crate::mesh::NodeId;

/// The schedule of this node's own rounds.
#[derive(Debug)]
pub(super) struct Sync {
    first_ms: u64,
    max_ms: u64,
    timeout_ms: u64,
    period_ms: u64,
    next_at: u64,
    /// The peer of the round in progress, and when it started.
    inflight: Option<(NodeId, u64)>,
    /// The round in progress found the two digests different.
    differ: bool,
    /// Rounds started, ended with a delta, and given up.
    pub(super) started: u64,
    pub(super) ended: u64,
    pub(super) timed_out: u64,
}

impl Sync {
    pub(super) fn new(s: &SyncSettings) -> Sync {
        let first = s.first.as_millis() as u64;
        Sync {
            first_ms: first,
            max_ms: s.max.as_millis() as u64,
            timeout_ms: s.timeout.as_millis() as u64,
            period_ms: first,
            next_at: 0,
            inflight: None,
            differ: false,
            started: 0,
            ended: 0,
            timed_out: 0,
        }
    }

    /// News: the next round comes soon, and often.
    pub(super) fn soon(&mut self, now: u64) {
        self.period_ms = self.first_ms;
        self.next_at = self.next_at.min(now + self.first_ms);
    }

    /// The round with `to` failed.
    pub(super) fn failed(&mut self, to: &NodeId) {
        if self.inflight.as_ref().is_some_and(|(p, _)| p == to) {
            self.inflight = None;
        }
    }

    /// A round ended with a delta (`same`: the two digests were the same: nothing to
    /// mend on either side).
    fn ended(&mut self, same: bool) {
        self.inflight = None;
        self.ended += 1;
        self.period_ms = if same {
            (self.period_ms * 2).min(self.max_ms)
        } else {
            self.first_ms
        };
    }
}

impl Node {
    /// Starts a round when one is due.
    pub(super) fn sync_round(&mut self, now: u64) {
        if let Some((_, since)) = &self.sync.inflight {
            if now.saturating_sub(*since) < self.sync.timeout_ms {
                return;
            }
            self.sync.inflight = None;
            self.sync.timed_out += 1;
        }
        if now < self.sync.next_at || self.connected.is_empty() {
            return;
        }
        self.sync.next_at = now + self.sync.period_ms;
        let pick = self.rng.below(self.connected.len());
        let peer = self.connected.iter().nth(pick).cloned();
        if let Some(peer) = peer {
            self.sync_with(peer);
        }
    }

    /// Starts a round with `peer` (unless one is in progress).
    pub(super) fn sync_with(&mut self, peer: NodeId) {
        if self.sync.inflight.is_some() {
            return;
        }
        self.sync.inflight = Some((peer.clone(), self.now_ms));
        self.sync.differ = false;
        self.sync.started += 1;
        self.effects.push(Effect::Request {
            to: peer,
            body: Body::DigestHash(self.engine.digest_hash()),
        });
    }

    /// A peer's request.
    pub(super) fn request(&mut self, id: u64, from: NodeId, body: Body) {
        let now = self.now_ms;
        match body {
            Body::DigestHash(hash) => self.engine.step(engine::Input::DigestHash { id, hash }),
            Body::Digest { mask, digest } => {
                // Push-pull: a peer that holds what this node lacks gets asked in turn, so
                // one round mends both sides.
                let behind = self.engine.lacks_from(&digest);
                self.engine.step(engine::Input::Digest { id, mask, digest });
                if behind {
                    self.sync_with(from);
                }
            }
            // The peer is about to close our connection (its connection policy).
            Body::Closing => {
                self.peers.closing(&from);
                self.effects.push(Effect::Respond {
                    id,
                    body: Body::Delta(Default::default()),
                });
            }
            // A peer's last words (it is leaving): taken in, acknowledged.
            Body::Entries(entries) => {
                self.engine.step(engine::Input::Remote {
                    entries,
                    at_ms: now,
                });
                self.effects.push(Effect::Respond {
                    id,
                    body: Body::Delta(Default::default()),
                });
            }
            // Not the node's: the driver answers those (bundles, runs) itself.
            _ => self.effects.push(Effect::Respond {
                id,
                body: Body::Delta(Default::default()),
            }),
        }
    }

    /// A peer's answer to our request.
    pub(super) fn response(&mut self, from: NodeId, body: Body) {
        match body {
            Body::Buckets(theirs) => {
                // The digests differ: not a round that brings nothing.
                self.sync.differ = true;
                let mask = self.engine.differing(&theirs);
                self.effects.push(Effect::Request {
                    to: from,
                    body: Body::Digest {
                        mask,
                        digest: self.engine.digest_in(mask),
                    },
                });
            }
            Body::Delta(delta) => {
                let ours = self.sync.inflight.as_ref().is_some_and(|(p, _)| *p == from);
                if ours {
                    let same = !std::mem::take(&mut self.sync.differ) && delta.entries.is_empty();
                    self.sync.ended(same);
                }
                let now = self.now_ms;
                self.engine
                    .step(engine::Input::RemoteDelta { delta, at_ms: now });
            }
            _ => {}
        }
    }
}
