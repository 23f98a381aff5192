//! Membership, first version: every node publishes a member record (its name, addresses,
//! hosted roots, version, and whether it left); liveness comes from the runtime's
//! connections: a member whose connection drops is *suspect*, and *dead* if it does not
//! come back within `Timing::dead_after_ms`. A dead member's exports are withdrawn here, so
//! importers run `update` or stop, and its roots show PROBLEM; when it comes back its
//! records count again. A member that left is dropped at once. SWIM (`crate::swim`) adds
//! the members that went silent with their connections still open (a partition): one it
//! declares down is dead here too until it declares it alive again; one it finds alive
//! counts as reachable without a connection of its own (where connections are bounded),
//! and its word lifts a death by silence. A member merely unreachable — never connected
//! here, no word from SWIM yet — gets SWIM's time (`Timing::unreached_dead_after_ms`) before it is
//! dead. Each change of verdict is an `Event::Liveness`.

use super::mesh::{split_exports_key, SharedExports};
use super::Core;
use crate::mesh::replica::{owner_key, Kind};
use crate::mesh::NodeId;
use serde::{Deserialize, Serialize};

/// A member as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub name: String,
    pub addresses: Vec<String>,
    pub roots: Vec<String>,
    pub version: String,
    pub left: bool,
    /// The binary it runs (`Input::Binary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<crate::api::BinaryView>,
}

/// Liveness of a member, as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Alive,
    Suspect,
    Dead,
    Left,
    /// Dead, and its name is carried by another member that is alive (a machine rebuilt
    /// with a new identity): its roots follow the live one (`core::names`).
    Retired,
}

impl Core {
    /// Publishes this node's member record (addresses as the network reports them).
    pub(super) fn publish_member(&mut self, addresses: Vec<String>, left: bool) {
        let me = self.replica.origin().node.clone();
        let roots: Vec<String> = self
            .cfg
            .hosts
            .iter()
            .map(|(a, r)| format!("{a}:{r}"))
            .collect();
        let rec = MemberRecord {
            name: self.cfg.node.clone(),
            addresses,
            roots,
            version: env!("CARGO_PKG_VERSION").to_string(),
            left,
            binary: self.binary.clone(),
        };
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        let key = owner_key(&me, "");
        self.put_if_changed(Kind::Member, &key, Some(bytes));
        if self.note_member(&me) {
            self.rebind_after(&me);
        }
    }

    /// Every member known, with its liveness.
    pub fn members(&self) -> Vec<(NodeId, MemberRecord, Liveness)> {
        self.replica
            .all(Kind::Member)
            .into_iter()
            .filter_map(|(key, e)| {
                let rec: MemberRecord = serde_json::from_slice(e.value.as_ref()?).ok()?;
                let id = NodeId::new(key);
                let live = self.liveness(&id);
                Some((id, rec, live))
            })
            .collect()
    }

    /// Every member known, with its liveness, without reading their records (cheap
    /// enough to ask every second in a mesh of thousands).
    pub fn member_liveness(&self) -> impl Iterator<Item = (&NodeId, Liveness)> {
        self.member_info.keys().map(|id| (id, self.liveness(id)))
    }

    /// Whether `id` has a member record here.
    pub fn is_member(&self, id: &NodeId) -> bool {
        self.member_info.contains_key(id)
    }

    /// The addresses a member published.
    pub fn member_addresses(&self, id: &NodeId) -> Vec<String> {
        self.member_record(id.as_str())
            .map(|r| r.addresses)
            .unwrap_or_default()
    }

    /// The name a member published.
    pub fn member_name(&self, id: &NodeId) -> Option<String> {
        self.member_record(id.as_str()).map(|r| r.name)
    }

    /// A member's liveness as this node sees it.
    pub fn liveness(&self, id: &NodeId) -> Liveness {
        let me = &self.replica.origin().node;
        if self.has_left(id.as_str()) {
            Liveness::Left
        } else if id != me && self.successor(id).is_some() {
            Liveness::Retired
        } else if id == me {
            Liveness::Alive
        } else if self.dead.contains(id) || self.swim_down.contains(id) {
            Liveness::Dead
        } else if self.suspects.contains_key(id) {
            Liveness::Suspect
        } else if self.connected.contains(id) || self.swim_alive.contains(id) {
            Liveness::Alive
        } else {
            Liveness::Suspect
        }
    }

    /// Whether records owned by `node` count (it is not dead and has not left).
    pub(super) fn counts(&self, node: &str) -> bool {
        !self.dead.contains(node) && !self.swim_down.contains(node) && !self.has_left(node)
    }

    /// Whether the node's member record says it left.
    pub(super) fn has_left(&self, node: &str) -> bool {
        self.member_info.get(node).is_some_and(|m| m.left)
    }

    pub(super) fn peer_up(&mut self, node: NodeId) {
        let was = self.counts(node.as_str());
        self.suspects.remove(&node);
        self.connected.insert(node.clone());
        self.dead.remove(&node);
        self.verdict(&node, was);
    }

    pub(super) fn swim_verdict(&mut self, node: NodeId, alive: bool) {
        self.members_touched.insert(node.clone());
        let was = self.counts(node.as_str());
        if alive {
            self.swim_alive.insert(node.clone());
            self.suspects.remove(&node);
            self.swim_down.remove(&node);
            // SWIM heard from it: a death by silence on our side no longer holds.
            self.dead.remove(&node);
        } else {
            self.swim_alive.remove(&node);
            self.swim_down.insert(node.clone());
        }
        self.verdict(&node, was);
    }

    /// Whether a member's records count may have changed (`was`: they did before): if so,
    /// say it, bring the exporters in line and look again at who hosts its roots.
    fn verdict(&mut self, node: &NodeId, was: bool) {
        let now = self.counts(node.as_str());
        if now != was {
            self.out.push(super::Output::Event(super::Event::Liveness {
                node: node.clone(),
                dead: !now,
            }));
            self.owner_changed(node);
            self.rebind_after(node);
        }
    }

    pub(super) fn peer_down(&mut self, node: NodeId) {
        // A closed connection is the fast path for a crash: SWIM's earlier word that the
        // member was alive no longer vouches for it (until it says so again).
        self.connected.remove(&node);
        self.swim_alive.remove(&node);
        self.members_touched.insert(node.clone());
        if !self.dead.contains(&node) {
            self.suspects.insert(node, self.now_ms);
        }
    }

    /// Members this node cannot reach are suspect; suspects that do not come back in
    /// time are dead.
    pub(super) fn expire_suspects(&mut self) {
        let now = self.now_ms;
        let me = self.replica.origin().node.clone();
        // Only members nothing vouches for are parsed (to skip those that left).
        let touched = std::mem::take(&mut self.members_touched);
        let candidates: Vec<NodeId> = if std::mem::take(&mut self.scan_members) {
            self.replica
                .all(Kind::Member)
                .into_keys()
                .map(NodeId::new)
                .collect()
        } else {
            touched
                .into_iter()
                .filter(|id| self.replica.get(Kind::Member, id.as_str()).is_some())
                .collect()
        };
        let unreachable: Vec<NodeId> = candidates
            .into_iter()
            .filter(|id| {
                *id != me
                    && !self.connected.contains(id)
                    && !self.swim_alive.contains(id)
                    && !self.suspects.contains_key(id)
                    && !self.dead.contains(id)
                    && !self.swim_down.contains(id)
            })
            .filter(|id| !self.has_left(id.as_str()))
            .collect();
        // Given SWIM's time: they are suspects as of later than now.
        let t = self.cfg.timing.clone();
        let later = now + (t.unreached_dead_after_ms - t.dead_after_ms);
        for id in unreachable {
            self.suspects.insert(id, later);
        }
        // From half-way through their grace, members still unreached are asked to answer
        // SWIM (a join this node missed is then known in a round trip), again every
        // second: on a lossy link one announce or its answer may be lost.
        let halfway = now + (t.unreached_dead_after_ms / 2 - t.dead_after_ms);
        let due: Vec<NodeId> = self
            .suspects
            .iter()
            .filter(|(n, since)| {
                **since > now
                    && **since <= halfway
                    && self
                        .announced
                        .get(*n)
                        .is_none_or(|at| now.saturating_sub(*at) >= t.announce_every_ms)
            })
            .map(|(n, _)| n.clone())
            .collect();
        let suspects = &self.suspects;
        self.announced.retain(|n, _| suspects.contains_key(n));
        for id in due {
            self.announced.insert(id.clone(), now);
            self.out.push(super::Output::Announce(id));
        }
        let expired: Vec<NodeId> = self
            .suspects
            .iter()
            .filter(|(_, since)| now.saturating_sub(**since) >= t.dead_after_ms)
            .map(|(n, _)| n.clone())
            .collect();
        for n in expired {
            let was = self.counts(n.as_str());
            self.suspects.remove(&n);
            self.dead.insert(n.clone());
            self.verdict(&n, was);
        }
    }

    /// A member's records start or stop counting: bring the exporters in line.
    pub(super) fn owner_changed(&mut self, node: &NodeId) {
        let counts = self.counts(node.as_str());
        let mut changes: Vec<(String, String, Option<SharedExports>)> = Vec::new();
        for (key, e) in self.replica.owned_by(Kind::Exports, node) {
            let Some((_, app, path)) = split_exports_key(key) else {
                continue;
            };
            let shared = if counts {
                e.value
                    .as_ref()
                    .and_then(|v| serde_json::from_slice(v).ok())
            } else {
                None
            };
            changes.push((app.to_string(), path.to_string(), shared));
        }
        for (app, path, shared) in changes {
            self.apply_remote_exports(app, path, shared);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Core, Input, Output};
    use crate::mesh::replica::Replica;

    /// A member known only by its record, which neither a connection nor SWIM vouches for:
    /// from half-way through its grace SWIM is asked to announce itself to it every
    /// second (one announce or its answer may be lost), until SWIM finds it alive.
    #[test]
    fn an_unreached_member_is_announced_to_every_second_until_swim_finds_it() {
        let t0 = 1_767_225_600_000;
        let mut core = Core::new(Config {
            node: "a".into(),
            node_id: NodeId::new("a"),
            generation: 1,
            ..Config::default()
        });
        core.step(Input::Now(t0));
        let rec = MemberRecord {
            name: "b".into(),
            addresses: vec!["/sim/b".into()],
            roots: Vec::new(),
            version: "0".into(),
            left: false,
            binary: None,
        };
        let value = serde_json::to_vec(&rec).ok();
        let entry = Replica::new(NodeId::new("b"), 1).write(Kind::Member, "b", value, t0, 0);
        core.step(Input::Remote {
            entries: vec![entry],
            at_ms: t0,
        });
        let mut announces = Vec::new();
        let mut dead_at = None;
        for ms in (0..=12_000).step_by(250) {
            if ms == 8_000 {
                core.step(Input::SwimUp(NodeId::new("b")));
            }
            core.step(Input::Now(t0 + ms));
            for out in core.take_outputs() {
                match out {
                    Output::Announce(n) if n.as_str() == "b" => announces.push(ms),
                    Output::Event(crate::engine::Event::Liveness { dead: true, .. }) => {
                        dead_at = Some(ms)
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(announces, vec![5_000, 6_000, 7_000], "announced at");
        assert_eq!(
            dead_at, None,
            "SWIM found it alive before its grace ran out"
        );
    }
}
