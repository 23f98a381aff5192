//! What the coordinator (`crate::node::coordinate`) reads of the engine and writes
//! through it. It reads the roots a machine may be launched for — instances of `target`
//! components with a launchable target file, with their desired state and its stamp,
//! their host and whether what runs under them is undeployed — and member liveness. The
//! leader writes, through the engine, the mesh's view of the coordination
//! (`Kind::LaunchIntent`, fenced by its term: the coordinator's record and one machine
//! view per root, which `status` shows) and the binding of a launched root to the agent
//! of its machine.

use super::mesh::{desired_key, DesiredRecord};
use super::Core;
use crate::api::{CoordinatorView, Desired, MachineView, State};
use crate::mesh::replica::Kind;
use crate::mesh::NodeId;

/// The key of the coordinator's record.
pub const COORDINATOR_KEY: &str = "coordinator";

/// A root instance the coordinator may launch a machine for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launchable {
    pub app: String,
    pub root: String,
    /// What the operator wants, and the stamp of that wish (a newer deploy has a newer
    /// one).
    pub desired: Desired,
    pub stamp: (u64, u32),
    /// The launchable target files of its component, by id.
    pub targets: Vec<roboconf_model::targets::TargetDef>,
    /// The member it is bound to, and whether that member's records count (alive).
    pub host: Option<(NodeId, bool)>,
    /// A live member started by hand declares it (`--host`): it is not the
    /// coordinator's to launch.
    pub by_hand: bool,
}

/// What the leader writes through the engine.
#[derive(Debug, Clone)]
pub enum Coordination {
    /// A coordination record (`None`: withdrawn), stamped with the leader's term.
    Publish {
        key: String,
        value: Option<Vec<u8>>,
        term: u64,
    },
    /// Bind a launched root to its machine's agent.
    Bind {
        app: String,
        root: String,
        node: NodeId,
    },
    /// Its machine is gone: the root is bound to no one.
    Unbind { app: String, root: String },
}

impl Core {
    pub(super) fn coordination(&mut self, c: Coordination) {
        match c {
            Coordination::Publish { key, value, term } => {
                let same = match self.replica.get(Kind::LaunchIntent, &key) {
                    Some(e) => e.value.as_deref() == value.as_deref() && e.term == term,
                    None => value.is_none(),
                };
                if !same {
                    let e = self
                        .replica
                        .write(Kind::LaunchIntent, &key, value, self.now_ms, term);
                    self.writes.push(super::records::Write::Put {
                        tree: super::mesh::TREE_REPLICA,
                        key: crate::mesh::replica::Replica::store_key(&e),
                        value: e.to_stored(),
                    });
                    self.broadcast.push(e);
                }
            }
            Coordination::Bind { app, root, node } => {
                if self.binding(&app, &root).as_ref() != Some(&node) {
                    self.bind(&app, &root, &node);
                }
            }
            Coordination::Unbind { app, root } => {
                if self.binding(&app, &root).is_some() {
                    self.put(Kind::Binding, &desired_key(&app, &root), None);
                    self.rebound(&app, &root);
                }
            }
        }
    }

    /// Every root instance of a `target` component that has a launchable target file.
    pub fn launchable_roots(&self) -> Vec<Launchable> {
        let mut out = Vec::new();
        let mut by_hand: Option<std::collections::BTreeSet<String>> = None;
        for a in self.apps.values() {
            if a.targets.is_empty() {
                continue;
            }
            for i in a.insts.values().filter(|i| i.parent.is_none()) {
                let chosen = self.machine_target(&a.name, &i.rec.path);
                let targets: Vec<_> = a
                    .targets
                    .iter()
                    .filter(|t| t.component == i.rec.component)
                    .filter(|t| chosen.as_ref().is_none_or(|c| *c == t.id))
                    .filter(|t| roboconf_model::targets::LAUNCHABLE.contains(&t.handler.as_str()))
                    // Roboconf's `embedded` without an address: machines started by hand.
                    .filter(|t| t.handler != "embedded" || t.properties.contains_key("embedded.ip"))
                    .cloned()
                    .collect();
                if targets.is_empty() {
                    continue;
                }
                let key = desired_key(&a.name, &i.rec.path);
                let (desired, stamp) = match self.replica.get(Kind::Desired, &key) {
                    Some(e) => {
                        let d = e
                            .value
                            .as_deref()
                            .and_then(|v| serde_json::from_slice::<DesiredRecord>(v).ok())
                            .map_or(Desired::NotDeployed, |r| r.target);
                        (d, (e.hlc.ms, e.hlc.logical))
                    }
                    None => (i.rec.desired, (0, 0)),
                };
                let host = self
                    .host_of(&a.name, &i.rec.path)
                    .map(|h| (h.clone(), self.counts(h.as_str())));
                let declared = by_hand.get_or_insert_with(|| {
                    self.members()
                        .into_iter()
                        .filter(|(id, _, _)| self.counts(id.as_str()))
                        .flat_map(|(_, rec, _)| rec.roots)
                        .collect()
                });
                let by_hand = declared.contains(&format!("{}:{}", a.name, i.rec.path));
                out.push(Launchable {
                    app: a.name.clone(),
                    root: i.rec.path.clone(),
                    desired,
                    stamp,
                    targets,
                    host,
                    by_hand,
                });
            }
        }
        out
    }

    /// Whether every instance under a root is undeployed, as this node sees them (an
    /// unknown application or root: yes).
    pub fn subtree_undeployed(&self, app: &str, root: &str) -> bool {
        let Some(a) = self.apps.get(app) else {
            return true;
        };
        let prefix = format!("{root}/");
        self.instance_views(a)
            .iter()
            .filter(|v| v.path.starts_with(&prefix))
            .all(|v| v.state == State::NotDeployed)
    }

    /// Whether a member's records count (it is neither dead nor gone).
    pub fn member_counts(&self, node: &NodeId) -> bool {
        self.member_info.contains_key(node) && self.counts(node.as_str())
    }

    /// `instance target APP /ROOT ID`: the target file a root's machine is launched with
    /// (shared with its desired state; it applies to the next launch).
    pub(super) fn choose_target(
        &mut self,
        app: &str,
        root: &str,
        id: &str,
    ) -> crate::api::Response {
        use crate::api::Response;
        let Some(a) = self.apps.get(app) else {
            return Response::error(format!("no application named `{app}`"));
        };
        let Some(i) = a.insts.get(root) else {
            return Response::error(format!("`{app}` has no instance `{root}`"));
        };
        if i.parent.is_some() {
            return Response::error(format!(
                "{root} is not a root instance: only roots have machines"
            ));
        }
        let ids: Vec<&str> = a
            .targets
            .iter()
            .filter(|t| t.component == i.rec.component)
            .map(|t| t.id.as_str())
            .collect();
        if !ids.contains(&id) {
            return Response::error(format!(
                "the component {} of {root} has no target `{id}` (its targets: {})",
                i.rec.component,
                if ids.is_empty() {
                    "none".to_string()
                } else {
                    ids.join(", ")
                }
            ));
        }
        let (component, target) = (i.rec.component.clone(), i.rec.desired);
        let rec = DesiredRecord {
            target,
            component,
            machine_target: Some(id.to_string()),
        };
        let bytes = serde_json::to_vec(&rec).unwrap_or_default();
        self.put(Kind::Desired, &desired_key(app, root), Some(bytes));
        Response::ok(format!("{root} will be launched with target `{id}`"))
    }

    /// The member an operator means by `node` (an id or a name).
    pub fn member_id(&self, node: &str) -> Result<NodeId, String> {
        self.member_named(node)
    }

    /// Whether a member's record says it left the mesh.
    pub fn member_left(&self, node: &NodeId) -> bool {
        self.has_left(node.as_str())
    }

    /// The coordinator as the leader last published it.
    pub fn coordinator_record(&self) -> Option<(CoordinatorView, u64)> {
        let e = self.replica.get(Kind::LaunchIntent, COORDINATOR_KEY)?;
        let v = serde_json::from_slice(e.value.as_deref()?).ok()?;
        Some((v, e.term))
    }

    /// The machine view of a root, as the leader published it.
    pub fn machine_view(&self, app: &str, root: &str) -> Option<MachineView> {
        let e = self
            .replica
            .get(Kind::LaunchIntent, &desired_key(app, root))?;
        serde_json::from_slice(e.value.as_deref()?).ok()
    }
}
