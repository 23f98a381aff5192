//! The connection policy. A node keeps a bounded set of connections to members —
//! `PeerSettings::target` of them, ~3·log₂ N between 16 and 32, so a small mesh is a
//! full mesh — and gossip and anti-entropy travel over them; SWIM reaches every member
//! by datagrams, connected or not. Below the target, it dials random members it is not
//! connected to (live ones first; dead ones too while it has room, so a node cut off
//! finds its way back); connections others opened are kept up to `slack` above the
//! target, then random ones are closed. Every `rotate_every`, one connection is traded
//! for one to a random member not connected to, so that two parts of the mesh that lost
//! their connections (a partition) are joined again; a member that comes back to life
//! is dialled at once when there is room. The driver's bootstrap peers are dialled when
//! there is no connection at all, and at a rotation when every member known is
//! connected already (nodes that started while those peers were away would otherwise
//! stay an island of their own).

use super::{Effect, Node};
use crate::engine::members::Liveness;
use crate::mesh::NodeId;
use std::collections::BTreeMap;

/// The policy's state.
#[derive(Debug, Default)]
pub(super) struct Peers {
    /// Dials in progress, with when they are given up.
    dialing: BTreeMap<NodeId, u64>,
    next_round: u64,
    next_rotation: u64,
    /// Members that came back to life, to dial at the next round.
    revived: Vec<NodeId>,
    /// When each connection opened (the newest are not traded away at once).
    since: BTreeMap<NodeId, u64>,
    /// Connections that either side said it would close.
    closing: std::collections::BTreeSet<NodeId>,
}

impl Peers {
    pub(super) fn soon(&mut self) {
        self.next_round = 0;
    }

    pub(super) fn connected(&mut self, peer: &NodeId) {
        self.dialing.remove(peer);
        self.closing.remove(peer);
    }

    /// `peer` (or this node) is about to close their connection.
    pub(super) fn closing(&mut self, peer: &NodeId) {
        self.closing.insert(peer.clone());
    }

    /// Whether the connection to `peer` that just closed was closed on purpose.
    pub(super) fn closed(&mut self, peer: &NodeId) -> bool {
        self.closing.remove(peer)
    }

    pub(super) fn alive_again(&mut self, peer: &NodeId) {
        if !self.revived.contains(peer) {
            self.revived.push(peer.clone());
        }
    }
}

impl Node {
    /// Looks at the connections, when it is time.
    pub(super) fn peers_round(&mut self, now: u64) {
        if now < self.peers.next_round {
            return;
        }
        let s = self.cfg.peers.clone();
        self.peers.next_round = now + s.every.as_millis() as u64;
        self.peers.dialing.retain(|_, until| *until > now);
        for p in &self.connected {
            self.peers.since.entry(p.clone()).or_insert(now);
        }
        let connected = &self.connected;
        self.peers.since.retain(|p, _| connected.contains(p));
        let rotation_due = now >= self.peers.next_rotation;
        // Who could be dialled: members not connected (nor being dialled), live ones
        // first.
        let me = self.id().clone();
        let (members, mut live, mut dead) = {
            let mut members = 0usize;
            let (mut live, mut dead) = (Vec::new(), Vec::new());
            for (id, l) in self.engine.member_liveness() {
                if matches!(l, Liveness::Left | Liveness::Retired) {
                    continue;
                }
                members += 1;
                if *id == me || self.connected.contains(id) || self.peers.dialing.contains_key(id) {
                    continue;
                }
                match l {
                    Liveness::Dead => dead.push(id.clone()),
                    _ => live.push(id.clone()),
                }
            }
            (members, live, dead)
        };
        let target = s.target(members);
        // The bootstrap peers: with no connection at all, and at a rotation when every
        // member this node knows is connected already — nodes that started while those
        // peers were away must not stay an island of their own. (Not at every rotation
        // of every node: at N = 1,000 that made the bootstrap peers everyone's.)
        let alone = self.connected.is_empty() && self.peers.dialing.is_empty();
        if alone || (rotation_due && live.is_empty()) {
            self.effects.push(Effect::DialBootstrap);
        }
        let busy = self.connected.len() + self.peers.dialing.len();
        let revived: Vec<NodeId> = std::mem::take(&mut self.peers.revived)
            .into_iter()
            .filter(|p| live.contains(p))
            .collect();
        if busy < target + s.slack {
            for p in revived.iter().take(target + s.slack - busy) {
                live.retain(|x| x != p);
                self.dial(p.clone(), now);
            }
        }
        let busy = self.connected.len() + self.peers.dialing.len();
        if busy < target {
            let mut want = target - busy;
            for pool in [&mut live, &mut dead] {
                while want > 0 && !pool.is_empty() {
                    let p = pool.swap_remove(self.rng.below(pool.len()));
                    self.dial(p, now);
                    want -= 1;
                }
            }
        } else if rotation_due && !live.is_empty() {
            // Trade one connection (not one of the newest) for one to a random member.
            self.peers.next_rotation = now + s.rotate_every.as_millis() as u64;
            let p = live.swap_remove(self.rng.below(live.len()));
            self.dial(p, now);
            let settled = now.saturating_sub(s.rotate_every.as_millis() as u64 / 2);
            let old: Vec<NodeId> = self
                .peers
                .since
                .iter()
                .filter(|(_, at)| **at <= settled)
                .map(|(p, _)| p.clone())
                .collect();
            if !old.is_empty() {
                let p = old[self.rng.below(old.len())].clone();
                self.disconnect(p);
            }
        }
        if rotation_due {
            self.peers.next_rotation = now + s.rotate_every.as_millis() as u64;
        }
        // Too many (others dialled us): close random ones down to the bound.
        let excess = self.connected.len().saturating_sub(target + s.slack);
        if excess > 0 {
            let mut list: Vec<NodeId> = self.connected.iter().cloned().collect();
            for _ in 0..excess {
                if list.is_empty() {
                    break;
                }
                let p = list.swap_remove(self.rng.below(list.len()));
                self.disconnect(p);
            }
        }
    }

    fn disconnect(&mut self, peer: NodeId) {
        self.peers.closing(&peer);
        self.peers.since.remove(&peer);
        self.effects.push(Effect::Disconnect(peer));
    }

    fn dial(&mut self, node: NodeId, now: u64) {
        let addresses = self.engine.member_addresses(&node);
        if addresses.is_empty() {
            return;
        }
        let until = now + self.cfg.peers.dial_timeout.as_millis() as u64;
        self.peers.dialing.insert(node.clone(), until);
        self.effects.push(Effect::Dial { node, addresses });
    }
}
