//! What the mesh shares of applications and roots: an application registered on one
//! node travels as a record naming its bundle by hash, which the others fetch from a peer
//! that has it (nothing not named by a SHA-256 is fetched); each root is bound to the
//! node that hosts it, a binding every node reads the same way.

use super::mesh::desired_key;
use super::{Core, Output};
use crate::mesh::replica::Kind;
use crate::mesh::NodeId;

/// An application as it travels: enough to fetch and check its bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SharedApplication {
    pub name: String,
    pub version: String,
    pub hash: String,
}

impl Core {
    /// An application registered here: tell the mesh (with its bundle's hash), and, when
    /// it was added with `--start`, what every instance should be.
    pub(super) fn share_application(&mut self, name: &str, start: bool) {
        let Some(a) = self.apps.get(name) else { return };
        if a.hash.is_empty() {
            return;
        }
        let value = SharedApplication {
            name: a.name.clone(),
            version: a.version.clone(),
            hash: a.hash.clone(),
        };
        let paths: Vec<String> = a.insts.keys().cloned().collect();
        self.put(
            Kind::Application,
            name,
            Some(serde_json::to_vec(&value).unwrap_or_default()),
        );
        if start {
            for p in paths {
                self.share_desired(name, &p, crate::api::Desired::Started);
            }
        }
    }

    /// Asks for the bundles of applications known to the mesh but not registered here.
    pub(super) fn fetch_missing(&mut self) {
        if !std::mem::take(&mut self.scan_apps) {
            return;
        }
        let mut wanted = Vec::new();
        for (name, e) in self.replica.all(Kind::Application) {
            if self.apps.contains_key(name) || self.fetching.contains(name) {
                continue;
            }
            let Some(s) = e
                .value
                .as_ref()
                .and_then(|v| serde_json::from_slice::<SharedApplication>(v).ok())
            else {
                continue;
            };
            // A bundle is named by a SHA-256 in hex; a record naming anything else is
            // not fetched (no bundle could ever match it).
            if s.hash.len() != 64 || !s.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            // The name becomes a folder (`instances/<name>`): only a valid one is taken.
            if !roboconf_model::dsl::text::is_app_name(name)
                || roboconf_model::limits::check_name("application", name).is_err()
            {
                continue;
            }
            wanted.push((name.to_string(), s.hash, e.origin.node.clone()));
        }
        for (name, hash, from) in wanted {
            self.fetching.insert(name.clone());
            self.out.push(Output::Fetch { name, hash, from });
        }
    }
}

impl Core {
    /// The node a root instance is bound to, if a binding exists.
    pub(super) fn binding(&self, app: &str, root: &str) -> Option<NodeId> {
        self.replica
            .get(Kind::Binding, &desired_key(app, root))
            .and_then(|e| e.value.as_ref())
            .and_then(|v| serde_json::from_slice::<NodeId>(v).ok())
    }

    /// Binds a root instance to a node (shared; last writer wins).
    pub(super) fn bind(&mut self, app: &str, root: &str, node: &NodeId) {
        let bytes = serde_json::to_vec(node).unwrap_or_default();
        self.put(Kind::Binding, &desired_key(app, root), Some(bytes));
        self.rebound(app, root);
    }

    /// Claims the roots of `--host` that nobody is bound to yet.
    pub(super) fn claim_hosts(&mut self, app: &str) {
        let me = self.node_id();
        let roots: Vec<String> = self
            .cfg
            .hosts
            .iter()
            .filter(|(a, _)| a == app)
            .map(|(_, r)| r.clone())
            .collect();
        for r in roots {
            if self.binding(app, &r).is_none()
                && self.apps.get(app).is_some_and(|a| a.insts.contains_key(&r))
            {
                self.bind(app, &r, &me);
            }
        }
    }

    /// A root changed hands: everything under it is looked at again.
    pub(super) fn rebound(&mut self, app: &str, root: &str) {
        let prefix = format!("{root}/");
        let paths: Vec<String> = self
            .apps
            .get(app)
            .map(|a| {
                a.insts
                    .keys()
                    .filter(|p| *p == root || p.starts_with(&prefix))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for p in paths {
            self.mark(app, &p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Config, Input};
    use crate::mesh::replica::Replica;

    /// A peer's application record naming something other than a SHA-256 is never
    /// fetched (its name would become a folder name).
    #[test]
    fn only_bundles_named_by_a_hash_are_fetched() {
        let mut core = Core::new(Config::default());
        let peer = Replica::new(NodeId::new("peer"), 1);
        let record = |hash: &str| {
            serde_json::to_vec(&SharedApplication {
                name: "x".into(),
                version: "1".into(),
                hash: hash.into(),
            })
            .ok()
        };
        let mut peer = peer;
        let hash = "ab".repeat(32);
        for (name, hash) in [
            ("bad", "../../etc"),
            ("good", hash.as_str()),
            ("/etc", hash.as_str()),
            ("../up", hash.as_str()),
        ] {
            let e = peer.write(Kind::Application, name, record(hash), 1_000, 0);
            core.step(Input::Remote {
                entries: vec![e],
                at_ms: 1_000,
            });
        }
        core.step(Input::Now(1_250));
        let fetched: Vec<String> = core
            .take_outputs()
            .into_iter()
            .filter_map(|o| match o {
                Output::Fetch { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        assert_eq!(fetched, vec!["good".to_string()]);
    }
}
