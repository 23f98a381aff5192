//! The core's side of replication: what this node publishes (the exports of the
//! instances it runs, as owner records) goes into its replica, to be persisted and
//! spread; what peers send is applied to the replica, and exports of instances run
//! elsewhere join the local index of exporters, so importers here see them. The
//! anti-entropy exchange (digest in, delta out) is answered from the replica.

use super::records::{Vars, Write};
use super::{Core, Output};
use crate::mesh::replica::{owner_key, Delta, Digest, Entry, Kind, Replica, OWNER_SEP};
use crate::mesh::NodeId;
use std::collections::BTreeSet;

/// Store tree of replicated entries.
pub const TREE_REPLICA: &str = "replica";

/// The exports record of an instance, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedExports {
    pub component: String,
    pub vars: Vars,
}

/// `node␟app␟path`.
pub fn exports_key(node: &NodeId, app: &str, path: &str) -> String {
    owner_key(node, &format!("{app}{OWNER_SEP}{path}"))
}

fn split_exports_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut it = key.splitn(3, OWNER_SEP);
    Some((it.next()?, it.next()?, it.next()?))
}

impl Core {
    fn node_id(&self) -> NodeId {
        self.replica.origin().node.clone()
    }

    /// Records and spreads an entry written here.
    fn share(&mut self, e: Entry) {
        self.writes.push(Write::Put {
            tree: TREE_REPLICA,
            key: Replica::store_key(&e),
            value: serde_json::to_vec(&e).unwrap_or_default(),
        });
        self.broadcast.push(e);
    }

    /// The exports of a local instance changed (`None`: withdrawn): tell the mesh.
    pub(super) fn share_exports(&mut self, app: &str, path: &str, vars: Option<(String, Vars)>) {
        let key = exports_key(&self.node_id(), app, path);
        let value = vars.map(|(component, vars)| {
            serde_json::to_vec(&SharedExports { component, vars }).unwrap_or_default()
        });
        if self.replica.get(Kind::Exports, &key).map(|e| &e.value) == Some(&value)
            || (value.is_none() && self.replica.get(Kind::Exports, &key).is_none())
        {
            return;
        }
        let e = self
            .replica
            .write(Kind::Exports, &key, value, self.now_ms, 0);
        self.share(e);
    }

    /// Entries from a peer (gossip or an anti-entropy answer).
    pub(super) fn remote_entries(&mut self, entries: Vec<Entry>) {
        let mut touched = BTreeSet::new();
        for e in entries {
            if let Ok(true) = self.replica.apply(e.clone(), self.now_ms) {
                self.writes.push(Write::Put {
                    tree: TREE_REPLICA,
                    key: Replica::store_key(&e),
                    value: serde_json::to_vec(&e).unwrap_or_default(),
                });
                touched.insert((e.kind, e.key));
            }
        }
        self.refresh(touched);
    }

    pub(super) fn remote_delta(&mut self, delta: Delta) {
        let entries = delta.entries.clone();
        let keys: BTreeSet<(Kind, String)> =
            entries.iter().map(|e| (e.kind, e.key.clone())).collect();
        let before = self.replica.digest();
        let (_, _) = self.replica.apply_delta(delta, self.now_ms);
        for e in entries {
            let have = self.replica.get(e.kind, &e.key).is_some_and(|x| x == &e);
            if have || before.get(&e.origin).copied().unwrap_or(0) < e.seq {
                self.writes.push(Write::Put {
                    tree: TREE_REPLICA,
                    key: Replica::store_key(&e),
                    value: serde_json::to_vec(&e).unwrap_or_default(),
                });
            }
        }
        self.refresh(keys);
    }

    pub(super) fn answer_digest(&mut self, id: u64, digest: Digest) {
        let delta = self.replica.delta_for(&digest, 5_000);
        self.out.push(Output::Delta { id, delta });
    }

    /// The digest to send to a peer for anti-entropy.
    pub fn digest(&self) -> Digest {
        self.replica.digest()
    }

    /// Brings the local view in line with the replica for the records touched.
    fn refresh(&mut self, touched: BTreeSet<(Kind, String)>) {
        let me = self.node_id();
        for (kind, key) in touched {
            if kind != Kind::Exports {
                continue;
            }
            let Some((owner, app, path)) = split_exports_key(&key) else {
                continue;
            };
            if owner == me.as_str() {
                continue;
            }
            let shared: Option<SharedExports> = self
                .replica
                .get(kind, &key)
                .and_then(|e| e.value.as_ref())
                .and_then(|v| serde_json::from_slice(v).ok());
            let (app, path) = (app.to_string(), path.to_string());
            let Some(a) = self.apps.get_mut(&app) else {
                continue;
            };
            let mut changed = a.withdraw(&path);
            if let Some(s) = shared {
                changed.extend(a.publish_vars(&path, s.vars));
            }
            self.mark_importers_of(&app, changed);
        }
    }
}
