//! Member names and who hosts a root. A member is known by its id (its peer id) and
//! shown by its name (`--node`). A machine rebuilt with a new identity (its data dir
//! lost) comes back under the same name with a new id, and the old id stays in the
//! member records, dead. Decision: the name follows the live member — a root bound to a
//! member whose records no longer count (dead or left) is hosted by the one member that
//! carries the same name and counts, if there is exactly one; the old member is then
//! *retired* (`members` says so). If the old identity comes back, its records count
//! again and its bound roots are its own again. An operator's `instance bind` by name
//! picks the member that counts.

use super::Core;
use crate::mesh::replica::Kind;
use crate::mesh::NodeId;
use std::collections::BTreeSet;

/// What the core keeps of each member record for quick questions.
#[derive(Debug, Clone, Default)]
pub(super) struct MemberInfo {
    pub name: String,
    pub left: bool,
}

impl Core {
    /// Takes in the member record of `id` as the replica holds it now.
    pub(super) fn note_member(&mut self, id: &NodeId) {
        let rec = self
            .replica
            .get(Kind::Member, id.as_str())
            .and_then(|e| e.value.as_ref())
            .and_then(|v| serde_json::from_slice::<super::members::MemberRecord>(v).ok());
        if let Some(old) = self.member_info.remove(id) {
            if let Some(set) = self.by_name.get_mut(&old.name) {
                set.remove(id);
                if set.is_empty() {
                    self.by_name.remove(&old.name);
                }
            }
        }
        if let Some(rec) = rec {
            self.by_name
                .entry(rec.name.clone())
                .or_default()
                .insert(id.clone());
            self.member_info.insert(
                id.clone(),
                MemberInfo {
                    name: rec.name,
                    left: rec.left,
                },
            );
        }
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

    /// The member that carries `node`'s name now that `node`'s records do not count: the
    /// one other member of that name whose records count, if there is exactly one.
    pub(super) fn successor(&self, node: &NodeId) -> Option<NodeId> {
        if self.counts(node.as_str()) {
            return None;
        }
        let name = &self.member_info.get(node)?.name;
        let mut live = self
            .by_name
            .get(name)?
            .iter()
            .filter(|id| *id != node && self.counts(id.as_str()));
        let first = live.next()?;
        live.next().is_none().then(|| first.clone())
    }

    /// The member that hosts a root: the one it is bound to, or, when that one's records
    /// no longer count, its successor by name. `None` when the root is bound to no one.
    pub(super) fn host_of(&self, app: &str, root: &str) -> Option<NodeId> {
        let bound = self.binding(app, root)?;
        if bound == self.replica.origin().node {
            return Some(bound);
        }
        Some(self.successor(&bound).unwrap_or(bound))
    }

    /// The member an operator means by `node`: an id, else the one member of that name
    /// whose records count, else the only member of that name.
    pub(super) fn member_named(&self, node: &str) -> Result<NodeId, String> {
        let id = NodeId::new(node);
        if self.member_info.contains_key(&id) {
            return Ok(id);
        }
        let all: Vec<NodeId> = self
            .by_name
            .get(node)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
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
        let name = self.member_info.get(node).map(|m| m.name.clone());
        let namesakes: BTreeSet<NodeId> = name
            .and_then(|n| self.by_name.get(&n).cloned())
            .unwrap_or_default();
        let mut roots = Vec::new();
        for (key, e) in self.replica.all(Kind::Binding) {
            let Some(bound) = e
                .value
                .as_ref()
                .and_then(|v| serde_json::from_slice::<NodeId>(v).ok())
            else {
                continue;
            };
            if bound == *node || namesakes.contains(&bound) {
                if let Some((app, root)) = key.split_once(crate::mesh::replica::OWNER_SEP) {
                    roots.push((app.to_string(), root.to_string()));
                }
            }
        }
        for (app, root) in roots {
            self.rebound(&app, &root);
        }
    }
}
