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

/// What the hosting node says of an instance, as it travels.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedObserved {
    pub state: crate::api::State,
    pub last_error: Option<String>,
    /// The hosting node's name.
    pub node: String,
    /// The next attempt of a failed action that is tried again by itself (left out when
    /// there is none: this record travels with every state change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<super::records::Retry>,
}

/// `node␟app␟path` (exports and observed records).
pub fn exports_key(node: &NodeId, app: &str, path: &str) -> String {
    owner_key(node, &format!("{app}{OWNER_SEP}{path}"))
}

/// What an operator wants of an instance, as it travels: its state, and its component
/// (so that an instance created on one node exists on every node).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DesiredRecord {
    pub target: crate::api::Desired,
    pub component: String,
    /// A root's target file chosen by the operator (`instance target`), by id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_target: Option<String>,
}

/// `app␟path` (desired records).
pub fn desired_key(app: &str, path: &str) -> String {
    format!("{app}{OWNER_SEP}{path}")
}

/// How a peer's record is stored: member records durably (a node that restarts must still
/// know where its peers are, or it cannot reach them to catch up), the others as `Peer`
/// writes (anti-entropy brings back what a crash lost).
fn peer_write(e: &Entry) -> Write {
    let (tree, key, value) = (TREE_REPLICA, Replica::store_key(e), e.to_stored());
    if e.kind == Kind::Member {
        Write::Put { tree, key, value }
    } else {
        Write::Peer { tree, key, value }
    }
}

pub(super) fn split_exports_key(key: &str) -> Option<(&str, &str, &str)> {
    let mut it = key.splitn(3, OWNER_SEP);
    Some((it.next()?, it.next()?, it.next()?))
}

impl Core {
    pub(super) fn node_id(&self) -> NodeId {
        self.replica.origin().node.clone()
    }

    /// Writes an entry of this node's own, stores it and spreads it.
    pub(super) fn put(&mut self, kind: Kind, key: &str, value: Option<Vec<u8>>) {
        let e = self.replica.write(kind, key, value, self.now_ms, 0);
        self.writes.push(Write::Put {
            tree: TREE_REPLICA,
            key: Replica::store_key(&e),
            value: e.to_stored(),
        });
        self.broadcast.push(e);
        if matches!(kind, Kind::Event | Kind::Operator) {
            self.autonomic_touch(kind, key.to_string());
        }
    }

    /// `put`, unless the replica already holds that value for the key (absent counts as
    /// withdrawn): nothing is gossiped for nothing.
    pub(super) fn put_if_changed(&mut self, kind: Kind, key: &str, value: Option<Vec<u8>>) {
        let same = match self.replica.get(kind, key) {
            Some(e) => e.value.as_deref() == value.as_deref(),
            None => value.is_none(),
        };
        if !same {
            self.put(kind, key, value);
        }
    }

    /// The exports of a local instance changed (`None`: withdrawn): tell the mesh.
    pub(super) fn share_exports(&mut self, app: &str, path: &str, vars: Option<(String, Vars)>) {
        let key = exports_key(&self.node_id(), app, path);
        let value = vars.map(|(component, vars)| {
            serde_json::to_vec(&SharedExports { component, vars }).unwrap_or_default()
        });
        self.put_if_changed(Kind::Exports, &key, value);
    }

    /// The state of an instance hosted here changed: tell the mesh.
    pub(super) fn share_observed(&mut self, app: &str, path: &str) {
        let root = super::app::root_path(path);
        if !self.is_hosted(app, &root) {
            return;
        }
        let Some(i) = self.apps.get(app).and_then(|a| a.insts.get(path)) else {
            return;
        };
        let value = SharedObserved {
            state: i.rec.state,
            last_error: i.rec.last_error.clone(),
            node: self.cfg.node.clone(),
            retry: i.rec.retry,
        };
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        let key = exports_key(&self.node_id(), app, path);
        self.put_if_changed(Kind::Observed, &key, Some(bytes));
    }

    /// An operator set what an instance should be: every node learns it (last writer wins).
    pub(super) fn share_desired(&mut self, app: &str, path: &str, target: crate::api::Desired) {
        let component = self
            .apps
            .get(app)
            .and_then(|a| a.insts.get(path))
            .map(|i| i.rec.component.clone())
            .unwrap_or_default();
        let machine_target = self.machine_target(app, path);
        let rec = DesiredRecord {
            target,
            component,
            machine_target,
        };
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        self.put(Kind::Desired, &desired_key(app, path), Some(bytes));
    }

    /// The target file chosen for a root (`instance target`), if any.
    pub(super) fn machine_target(&self, app: &str, root: &str) -> Option<String> {
        self.replica
            .get(Kind::Desired, &desired_key(app, root))
            .and_then(|e| e.value.as_deref())
            .and_then(|v| serde_json::from_slice::<DesiredRecord>(v).ok())
            .and_then(|r| r.machine_target)
    }

    /// An operator deleted an instance: every node forgets it.
    pub(super) fn share_deletion(&mut self, app: &str, path: &str) {
        self.put(Kind::Desired, &desired_key(app, path), None);
    }

    /// What the mesh says of the instances of `app` this node does not host: path →
    /// (observed state, exports). When several members said something of one path (it
    /// moved, or its host was rebuilt under a new identity), the word of the member that
    /// hosts its root now wins, then that of a member whose records count.
    pub fn remote_view(
        &self,
        app: &str,
    ) -> std::collections::BTreeMap<String, (SharedObserved, Vars)> {
        let mut out: std::collections::BTreeMap<String, (u8, (SharedObserved, Vars))> =
            std::collections::BTreeMap::new();
        let mut hosts: std::collections::BTreeMap<String, Option<NodeId>> = Default::default();
        let me = self.node_id();
        for (key, e) in self.replica.all(Kind::Observed) {
            let Some((owner, a, path)) = split_exports_key(key) else {
                continue;
            };
            if a != app || owner == me.as_str() {
                continue;
            }
            let Some(mut obs) = e
                .value
                .as_ref()
                .and_then(|v| serde_json::from_slice::<SharedObserved>(v).ok())
            else {
                continue;
            };
            let root = super::app::root_path(path);
            let host = hosts
                .entry(root.clone())
                .or_insert_with(|| self.host_of(app, &root));
            let rank = if host.as_ref().is_some_and(|h| h.as_str() == owner) {
                2
            } else {
                u8::from(self.counts(owner))
            };
            if out.get(path).is_some_and(|(r, _)| *r >= rank) {
                continue;
            }
            if !self.counts(owner) && host.as_ref().is_none_or(|h| h.as_str() != owner) {
                // A dead or departed agent the root is no longer bound to (its machine
                // was replaced, or retired and the root unbound): what it said is stale,
                // nothing runs there any more.
                continue;
            }
            if !self.counts(owner) {
                // What a dead or departed node hosted: its machine is in trouble, the
                // rest is not running as far as anyone knows.
                let root = path.matches('/').count() == 1;
                obs.state = if root {
                    crate::api::State::Problem
                } else {
                    crate::api::State::NotDeployed
                };
                obs.last_error = Some(format!(
                    "its host {} is {}",
                    obs.node,
                    if self.has_left(owner) {
                        "gone (it left)"
                    } else {
                        "dead"
                    }
                ));
            }
            let exports = self
                .replica
                .get(Kind::Exports, key)
                .and_then(|x| x.value.as_ref())
                .and_then(|v| serde_json::from_slice::<SharedExports>(v).ok())
                .map(|s| s.vars)
                .unwrap_or_default();
            out.insert(path.to_string(), (rank, (obs, exports)));
        }
        out.into_iter().map(|(p, (_, v))| (p, v)).collect()
    }

    /// Entries from a peer (gossip or an anti-entropy answer).
    pub(super) fn remote_entries(&mut self, entries: Vec<Entry>) {
        let mut touched = BTreeSet::new();
        for e in entries {
            if let Ok(true) = self.replica.apply(e.clone(), self.now_ms) {
                if self.replica.holds(&e) {
                    self.writes.push(peer_write(&e));
                } else {
                    self.collected_on_arrival(&e);
                }
                touched.insert((e.kind, e.key));
            }
        }
        self.refresh(touched);
    }

    pub(super) fn remote_delta(&mut self, delta: Delta) {
        let entries = delta.entries.clone();
        let mut keys: BTreeSet<(Kind, String)> =
            entries.iter().map(|e| (e.kind, e.key.clone())).collect();
        // The watermarks before, of the origins the delta brings (not the whole digest).
        let before: std::collections::BTreeMap<_, u64> = entries
            .iter()
            .map(|e| (e.origin.clone(), self.replica.watermark(&e.origin)))
            .collect();
        let applied = self.replica.apply_delta(delta, self.now_ms);
        for e in entries {
            if !self.replica.holds(&e) {
                self.collected_on_arrival(&e);
                continue;
            }
            let have = self.replica.get(e.kind, &e.key).is_some_and(|x| x == &e);
            if have || before.get(&e.origin).copied().unwrap_or(0) < e.seq {
                self.writes.push(peer_write(&e));
            }
        }
        keys.extend(applied.removed.iter().map(|e| (e.kind, e.key.clone())));
        self.forget_stored(applied.removed);
        self.refresh(keys);
    }

    pub(super) fn answer_digest(&mut self, id: u64, mask: u64, digest: Digest) {
        let delta = self
            .replica
            .delta_in(&digest, self.cfg.timing.sync_max_entries, mask);
        self.out.push(Output::Delta { id, delta });
    }

    /// The digest to send to a peer for anti-entropy.
    pub fn digest(&self) -> Digest {
        self.replica.digest()
    }

    /// The digest of the origins in the buckets of `mask`.
    pub fn digest_in(&self, mask: u64) -> Digest {
        self.replica.digest_in(mask)
    }

    /// The fingerprints of the digest's buckets.
    pub fn buckets(&self) -> Vec<u64> {
        self.replica.buckets()
    }

    /// The buckets whose fingerprints differ from a peer's.
    pub fn differing(&self, theirs: &[u64]) -> u64 {
        self.replica.differing(theirs)
    }

    /// Whether a peer with `theirs` holds writes this node lacks.
    pub fn lacks_from(&self, theirs: &Digest) -> bool {
        theirs
            .iter()
            .any(|(origin, w)| self.replica.watermark(origin) < *w)
    }

    /// Its fingerprint (kept up to date; nothing is built).
    pub fn digest_hash(&self) -> String {
        self.replica.digest_hash()
    }

    /// Brings the local view in line with the replica for the records touched.
    fn refresh(&mut self, touched: BTreeSet<(Kind, String)>) {
        let me = self.node_id();
        for (kind, key) in touched {
            if kind == Kind::Desired {
                self.refresh_desired(&key);
                continue;
            }
            if kind == Kind::Binding {
                if let Some((app, root)) = key.split_once(OWNER_SEP) {
                    let (app, root) = (app.to_string(), root.to_string());
                    if !self.claim_as_successor(&app, &root) {
                        self.rebound(&app, &root);
                    }
                }
                continue;
            }
            if kind == Kind::Application {
                self.scan_apps = true;
            }
            if kind == Kind::Ack {
                self.took_ack(&key);
                continue;
            }
            if matches!(kind, Kind::Event | Kind::Operator) {
                self.autonomic_touch(kind, key);
                continue;
            }
            if kind == Kind::Member {
                let id = NodeId::new(key.clone());
                // A namesake that appears or goes may move roots (`core::names`).
                if self.note_member(&id) {
                    self.rebind_after(&id);
                }
                self.members_touched.insert(NodeId::new(key.clone()));
                // A member that left: its records stop counting at once.
                self.owner_changed(&NodeId::new(key.clone()));
                continue;
            }
            if kind == Kind::Observed {
                self.remote_state(&key);
                continue;
            }
            if kind != Kind::Exports {
                continue;
            }
            let Some((owner, app, path)) = split_exports_key(&key) else {
                continue;
            };
            if owner == me.as_str() {
                continue;
            }
            let counts = self.counts(owner);
            let shared: Option<SharedExports> = self
                .replica
                .get(kind, &key)
                .and_then(|e| e.value.as_ref())
                .and_then(|v| serde_json::from_slice(v).ok())
                .filter(|_| counts);
            self.apply_remote_exports(app.to_string(), path.to_string(), shared);
        }
    }

    /// What another node says of an instance it hosts changed: observers are told.
    fn remote_state(&mut self, key: &str) {
        let Some((owner, app, path)) = split_exports_key(key) else {
            return;
        };
        if owner == self.node_id().as_str() || !self.apps.contains_key(app) {
            return;
        }
        let shared: Option<SharedObserved> = self
            .replica
            .get(Kind::Observed, key)
            .and_then(|e| e.value.as_ref())
            .and_then(|v| serde_json::from_slice(v).ok());
        if let Some(s) = shared {
            self.out.push(Output::Event(super::Event::RemoteState {
                app: app.to_string(),
                path: path.to_string(),
                state: s.state,
                node: s.node,
            }));
        }
    }

    /// The exports a remote instance shares now (`None`: none): the application's view of
    /// them changes and its importers are marked for reconfiguration.
    pub(super) fn apply_remote_exports(
        &mut self,
        app: String,
        path: String,
        shared: Option<SharedExports>,
    ) {
        let Some(a) = self.apps.get_mut(&app) else {
            return;
        };
        let present = shared.is_some();
        let mut changed = a.withdraw(&path);
        if let Some(s) = shared {
            changed.extend(a.publish_vars(&path, s.vars));
        }
        self.mark_importers(&app, changed);
        self.out.push(Output::Event(super::Event::RemoteExports {
            app,
            path,
            present,
        }));
    }
}

impl Core {
    /// A desired state decided elsewhere: take it (without writing it again).
    fn refresh_desired(&mut self, key: &str) {
        let Some((app, path)) = key.split_once(OWNER_SEP) else {
            return;
        };
        let Some(latest) = self.replica.latest(Kind::Desired, key) else {
            return;
        };
        let (app, path) = (app.to_string(), path.to_string());
        let Some(value) = latest.value.as_ref() else {
            // Deleted elsewhere: delete here too when nothing runs.
            let _ = self.delete_instances(&app, &path);
            return;
        };
        let Ok(DesiredRecord {
            target, component, ..
        }) = serde_json::from_slice::<DesiredRecord>(value)
        else {
            return;
        };
        let exists = self
            .apps
            .get(&app)
            .is_some_and(|a| a.insts.contains_key(&path));
        if !exists {
            // Created elsewhere: create it here (its parent must be known already).
            if !self.create_instance(&app, &path, &component, target) {
                return;
            }
            self.adopt_remote(&app);
            return;
        }
        let Some(i) = self.apps.get_mut(&app).and_then(|a| a.insts.get_mut(&path)) else {
            return;
        };
        if i.rec.desired == target {
            return;
        }
        i.rec.desired = target;
        if i.parent.is_none() {
            // A root's wish is its machine's, for the coordinator: recorded here (every
            // node, leader or not, reads the same wish) but it runs nothing.
            self.persist_instance(&app, &path);
            return;
        }
        self.unblock(&app, &path);
        self.persist_instance(&app, &path);
        self.mark(&app, &path);
    }
}

impl Core {
    /// Takes in what the replica already knows about `app` (records that arrived before
    /// the application was registered here, or before a restart).
    pub(super) fn adopt_remote(&mut self, app: &str) {
        let prefix = format!("{app}{OWNER_SEP}");
        let mut touched = BTreeSet::new();
        for kind in [Kind::Exports, Kind::Desired, Kind::Binding] {
            for key in self.replica.all(kind).into_keys() {
                let rest = if kind.owned() {
                    key.split_once(OWNER_SEP).map_or("", |(_, r)| r)
                } else {
                    key
                };
                if rest.starts_with(&prefix) {
                    touched.insert((kind, key.to_string()));
                }
            }
        }
        self.refresh(touched);
    }
}
