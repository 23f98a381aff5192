//! Member names and who hosts a root. A member is known by its id (its peer id) and
//! shown by its name (`--node`). A machine rebuilt with a new identity (its data dir
//! lost) comes back under the same name with a new id, and the old id stays in the
//! member records, dead. Decision: the name follows the live member — a root bound to a
//! member whose records no longer count (dead or left) is hosted by the one member that
//! carries the same name and counts, if there is exactly one; the old member is then
//! *retired* (`members` says so). The successor writes the binding to its own id as soon
//! as it sees that, so the move is durable: its own restart does not undo it (a node
//! starts before it knows who is dead), and an old identity that returns finds its roots
//! taken. An operator's `instance bind` by name picks the member that counts.

use super::Core;
use crate::mesh::replica::Kind;
use crate::mesh::NodeId;

/// What the core keeps of each member record for quick questions, in 16 bytes (a node
/// keeps one per member of the mesh): a hash of its name, and whether it left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct MemberInfo {
    pub name_hash: u64,
    pub left: bool,
}

/// FNV-1a of a name: equal names, equal hashes (names are compared for real before
/// anything is decided on a match). Also a node's phase of the collection rounds.
pub(super) fn name_hash(name: &str) -> u64 {
    crate::mesh::fnv1a(name.as_bytes())
}

impl Core {
    /// The member record of `id`, parsed.
    pub(super) fn member_record(&self, id: &str) -> Option<super::members::MemberRecord> {
        self.replica
            .get(Kind::Member, id)
            .and_then(|e| e.value.as_ref())
            .and_then(|v| serde_json::from_slice(v).ok())
    }

    /// Takes in the member record of `id` as the replica holds it now. True when it
    /// shares its name with another member (or did before): who hosts what may change.
    pub(super) fn note_member(&mut self, id: &NodeId) -> bool {
        let info = self.member_record(id.as_str()).map(|rec| MemberInfo {
            name_hash: name_hash(&rec.name),
            left: rec.left,
        });
        let old = match info {
            Some(i) => self.member_info.insert(id.clone(), i),
            None => self.member_info.remove(id),
        };
        if let (Some(o), Some(n)) = (old, info) {
            if o.name_hash == n.name_hash {
                // The same name as before: at most whether it left changed.
                return o.left != n.left && self.namesakes(n.name_hash) > 1;
            }
        }
        if let Some(o) = old {
            if let Some(c) = self.name_counts.get_mut(&o.name_hash) {
                *c -= 1;
                if *c == 0 {
                    self.name_counts.remove(&o.name_hash);
                }
            }
        }
        if let Some(n) = info {
            *self.name_counts.entry(n.name_hash).or_default() += 1;
        }
        [old, info]
            .into_iter()
            .flatten()
            .any(|m| self.namesakes(m.name_hash) > usize::from(Some(m) == info))
    }

    /// How many members have a name of this hash.
    fn namesakes(&self, h: u64) -> usize {
        self.name_counts.get(&h).map_or(0, |c| *c as usize)
    }

    /// Takes in every member record (at start).
    pub(super) fn note_all_members(&mut self) {
        let ids: Vec<NodeId> = self
            .replica
            .all(Kind::Member)
            .into_keys()
            .map(NodeId::new)
            .collect();
        for id in ids {
            self.note_member(&id);
        }
    }

    /// The members whose name is `name`.
    fn named(&self, name: &str) -> Vec<NodeId> {
        let h = name_hash(name);
        self.member_info
            .iter()
            .filter(|(_, m)| m.name_hash == h)
            .map(|(id, _)| id.clone())
            .filter(|id| {
                self.member_record(id.as_str())
                    .is_some_and(|r| r.name == name)
            })
            .collect()
    }

    /// A member other than `node` that carries `name` and counts (alive, not left): a
    /// second live member of one name is refused at admission.
    pub(super) fn live_namesake(&self, name: &str, node: &str) -> Option<String> {
        let me = &self.replica.origin().node;
        if name == self.cfg.node && me.as_str() != node {
            return Some(me.to_string());
        }
        self.named(name)
            .into_iter()
            .find(|id| id.as_str() != node && self.counts(id.as_str()))
            .map(|id| id.to_string())
    }

    /// The member that carries `node`'s name now that `node`'s records do not count: the
    /// one other member of that name whose records count, if there is exactly one.
    pub(super) fn successor(&self, node: &NodeId) -> Option<NodeId> {
        if self.counts(node.as_str()) {
            return None;
        }
        let h = self.member_info.get(node)?.name_hash;
        // Cheap first: no other member has a name of that hash (the usual case).
        if self.namesakes(h) < 2 {
            return None;
        }
        let name = self.member_record(node.as_str())?.name;
        let live: Vec<NodeId> = self
            .named(&name)
            .into_iter()
            .filter(|id| id != node && self.counts(id.as_str()))
            .collect();
        match live.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        }
    }

    /// The member that hosts a root: the one it is bound to, or, when that one's records
    /// no longer count, its successor by name. `None` when the root is bound to no one.
    pub(super) fn host_of(&self, app: &str, root: &str) -> Option<NodeId> {
        let bound = self.binding(app, root)?;
        if bound == self.replica.origin().node
            || self
                .member_info
                .get(&bound)
                .is_none_or(|m| self.namesakes(m.name_hash) < 2)
        {
            return Some(bound);
        }
        Some(self.successor(&bound).unwrap_or(bound))
    }

    /// The member an operator means by `node`: an id, else the one member of that name
    /// whose records count, else the only member of that name.
    pub(super) fn member_named(&self, node: &str) -> Result<NodeId, String> {
        if self.member_info.contains_key(node) {
            return Ok(NodeId::new(node));
        }
        let all = self.named(node);
        let live: Vec<NodeId> = all
            .iter()
            .filter(|id| self.counts(id.as_str()))
            .cloned()
            .collect();
        match (live.as_slice(), all.as_slice()) {
            ([one], _) | ([], [one]) => Ok(one.clone()),
            ([], []) => Err(format!(
                "no member named `{}` (see `roboconf members`)",
                roboconf_model::limits::preview(node)
            )),
            _ => Err(format!(
                "several members are named `{node}`: give the id (see `roboconf members`)"
            )),
        }
    }

    /// Roots bound to `node`, or to a member of the same name: whoever hosts them may
    /// have changed with `node`'s liveness.
    pub(super) fn rebind_after(&mut self, node: &NodeId) {
        let h = self.member_info.get(node).map(|m| m.name_hash);
        let mut roots = Vec::new();
        for (key, e) in self.replica.all(Kind::Binding) {
            let Some(bound) = e
                .value
                .as_ref()
                .and_then(|v| serde_json::from_slice::<NodeId>(v).ok())
            else {
                continue;
            };
            let namesake = h.is_some() && self.member_info.get(&bound).map(|m| m.name_hash) == h;
            if bound == *node || namesake {
                if let Some((app, root)) = key.split_once(crate::mesh::replica::OWNER_SEP) {
                    roots.push((app.to_string(), root.to_string()));
                }
            }
        }
        for (app, root) in roots {
            if !self.claim_as_successor(&app, &root) {
                self.rebound(&app, &root);
            }
        }
    }

    /// A root bound to a member whose name this node now carries (it is dead, this node
    /// is the one live member of that name) becomes this node's for good: the binding is
    /// written to this node's id, so that a restart — which starts before anyone is known
    /// dead — keeps it, and the old identity does not take it back if it ever returns.
    /// True when it was claimed.
    pub(super) fn claim_as_successor(&mut self, app: &str, root: &str) -> bool {
        let me = self.replica.origin().node.clone();
        let Some(bound) = self.binding(app, root) else {
            return false;
        };
        if bound == me || self.successor(&bound).as_ref() != Some(&me) {
            return false;
        }
        self.bind(app, root, &me);
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    use crate::engine::members::{Liveness, MemberRecord};
    use crate::engine::{Config, Core, Input};
    use crate::mesh::replica::{Kind, Replica};
    use crate::mesh::NodeId;

    /// `core` takes in the member record of `id`, named `name`, written at `at`.
    pub(in crate::engine) fn member(core: &mut Core, id: &str, name: &str, at: u64) {
        let rec = MemberRecord {
            name: name.into(),
            addresses: vec![format!("/sim/{id}")],
            roots: Vec::new(),
            version: "0".into(),
            left: false,
            binary: None,
        };
        let e = Replica::new(NodeId::new(id), 1).write(
            Kind::Member,
            id,
            serde_json::to_vec(&rec).ok(),
            at,
            0,
        );
        core.step(Input::Remote {
            entries: vec![e],
            at_ms: at,
        });
    }

    /// An old identity that is dead and a live one of the same name: the old one is
    /// retired, names resolve to the live one; two live ones of one name are ambiguous.
    #[test]
    fn a_name_follows_the_live_member() {
        let t0 = 1_767_225_600_000;
        let mut core = Core::new(Config {
            node: "me".into(),
            node_id: NodeId::new("me"),
            ..Config::default()
        });
        core.step(Input::Now(t0));
        member(&mut core, "old", "b", t0);
        member(&mut core, "new", "b", t0);
        core.step(Input::PeerUp(NodeId::new("old")));
        core.step(Input::PeerUp(NodeId::new("new")));
        let (old, new) = (NodeId::new("old"), NodeId::new("new"));
        assert_eq!(core.successor(&old), None, "both count");
        assert_eq!(
            core.member_named("b"),
            Err("several members are named `b`: give the id (see `roboconf members`)".into())
        );
        // The old identity dies (its connection closed, no word for 1.5 s).
        core.step(Input::PeerDown(old.clone()));
        core.step(Input::Now(t0 + 2_000));
        assert_eq!(core.successor(&old), Some(new.clone()));
        assert_eq!(core.member_named("b"), Ok(new.clone()));
        assert_eq!(core.member_named("old"), Ok(old.clone()), "an id is exact");
        let states: Vec<(String, Liveness)> = core
            .members()
            .into_iter()
            .map(|(id, _, l)| (id.to_string(), l))
            .collect();
        assert!(
            states.contains(&("old".into(), Liveness::Retired)),
            "{states:?}"
        );
        assert!(
            states.contains(&("new".into(), Liveness::Alive)),
            "{states:?}"
        );
        // The old one comes back: nothing is retired any more.
        core.step(Input::PeerUp(old.clone()));
        assert_eq!(core.successor(&old), None);
    }
}
