//! Operator commands applied to the core's state: registering and removing
//! applications, creating and deleting instances, setting what instances should be, and
//! the status views. Random ports are allocated here, lowest free first, unique on this
//! agent and kept in the instance's record so they survive restarts.

use super::app::{parent_path, AppState};
use super::records::{
    instance_key, AppRecord, InstanceRecord, Write, TREE_APPS, TREE_INSTANCES, TREE_RUNS,
};
use super::{Command, Core};
use crate::api::{Desired, Response, State};
use roboconf_model::dsl::text::is_flex_id;
use std::collections::BTreeMap;

impl Core {
    pub(super) fn command(&mut self, c: Command) -> Response {
        match c {
            Command::AppAdd { app, start } => self.app_add(*app, start, false),
            Command::AppRemove { name } => self.app_remove(&name),
            Command::AppList => Response::Apps {
                apps: self.app_list(),
            },
            Command::AppSet { name, target } => self.app_set(&name, target),
            Command::InstanceCreate {
                app,
                path,
                component,
            } => self.instance_create(&app, &path, &component),
            Command::InstanceDelete { app, path } => self.instance_delete(&app, &path),
            Command::InstanceSet { app, path, target } => self.instance_set(&app, &path, target),
            Command::Status { app } => self.status(app.as_deref()),
            Command::Members => Response::Members {
                members: self.member_views(),
            },
            Command::Leave => Response::error("leave is handled by the core's step"),
            Command::Bind { app, root, node } => self.instance_bind(&app, &root, &node),
            Command::Target { app, root, target } => self.choose_target(&app, &root, &target),
            Command::TokenIssue {
                id,
                hash,
                expires_ms,
            } => self.token_issue(&id, hash, expires_ms),
            Command::Exec { id, app, command } => self.exec_request(&id, &app, &command),
            Command::JobAdd(spec) => self.job_add(spec),
            Command::JobRemove { app, name } => self.job_remove(&app, &name),
            Command::TokenRedeem {
                id,
                hash,
                node,
                name,
            } => self.token_redeem(&id, &hash, &node, &name),
        }
    }

    fn allocate_ports(&mut self, app: &str, path: &str) {
        let Some(a) = self.apps.get(app) else { return };
        let Some(i) = a.insts.get(path) else { return };
        let wanted: Vec<String> = a
            .random_vars(i.comp)
            .into_iter()
            .filter(|v| {
                !i.rec.ports.contains_key(v)
                    && !i
                        .rec
                        .overrides
                        .iter()
                        .any(|(k, _)| k == v || k.ends_with(&format!(".{v}")))
            })
            .collect();
        let mut got = BTreeMap::new();
        for var in wanted {
            let (lo, hi) = self.cfg.port_range;
            let port = (lo..=hi)
                .find(|p| !self.ports_used.contains(p) && !self.cfg.forbidden_ports.contains(p));
            if let Some(port) = port {
                self.ports_used.insert(port);
                got.insert(var, port);
            }
        }
        if let Some(i) = self.apps.get_mut(app).and_then(|a| a.insts.get_mut(path)) {
            i.rec.ports.extend(got);
        }
    }

    /// Registers an application: added by the operator, or `fetched` from the mesh
    /// because another node shares it.
    pub(super) fn app_add(
        &mut self,
        loaded: super::LoadedApp,
        start: bool,
        fetched: bool,
    ) -> Response {
        if self.apps.contains_key(&loaded.name) {
            return Response::error(format!(
                "an application named `{}` is already registered",
                loaded.name
            ));
        }
        let record = AppRecord {
            name: loaded.name.clone(),
            version: loaded.version.clone(),
            bundle: loaded.bundle.clone(),
            hash: loaded.hash.clone(),
        };
        let state = AppState::new(loaded.clone());
        let mut recs = state.declared_instances(&loaded.model);
        let name = loaded.name.clone();
        self.apps.insert(name.clone(), state);
        self.out
            .push(super::Output::Event(super::Event::Application {
                name: name.clone(),
                present: true,
            }));
        self.writes
            .push(Write::put(TREE_APPS, name.clone().into_bytes(), &record));
        let n = recs.len();
        for rec in recs.iter_mut() {
            if start {
                rec.desired = Desired::Started;
            }
        }
        for rec in recs {
            let path = rec.path.clone();
            if let Some(a) = self.apps.get_mut(&name) {
                a.insert(rec);
            }
            self.allocate_ports(&name, &path);
            self.persist_instance(&name, &path);
            self.mark(&name, &path);
        }
        self.adopt_remote(&name);
        self.claim_hosts(&name);
        let hosted: Vec<&str> = self
            .cfg
            .hosts
            .iter()
            .filter(|(a, _)| *a == name)
            .map(|(_, r)| r.as_str())
            .collect();
        let hosts_it = !hosted.is_empty();
        let note = if hosts_it {
            format!(" (hosting {})", hosted.join(", "))
        } else {
            " (this agent hosts none of its roots)".to_string()
        };
        // The operator's node shares the application; of the nodes that fetch it, only
        // those that host one of its roots share it too (every fetcher writing it would
        // gossip N records to N nodes for each application added). Replicas keep a dead
        // node's writes, so the record outlives the node it was added on.
        if !fetched || hosts_it {
            self.share_application(&name, start);
        }
        Response::ok(format!(
            "application `{name}` added: {n} instances{}{note}",
            if start { ", starting all" } else { "" }
        ))
    }

    fn app_remove(&mut self, name: &str) -> Response {
        let Some(a) = self.apps.get(name) else {
            return Response::error(format!("no application named `{name}`"));
        };
        let busy: Vec<&str> = a
            .insts
            .values()
            .filter(|i| {
                i.parent.is_some() && (i.rec.state != State::NotDeployed || i.running.is_some())
            })
            .map(|i| i.rec.path.as_str())
            .collect();
        if !busy.is_empty() {
            return Response::Error {
                message: format!("`{name}` still has deployed instances: undeploy it first (`roboconf app undeploy {name}`)"),
                details: busy.into_iter().map(String::from).collect(),
            };
        }
        if let Some(a) = self.apps.remove(name) {
            self.out
                .push(super::Output::Event(super::Event::Application {
                    name: name.to_string(),
                    present: false,
                }));
            for p in a.insts.keys() {
                self.writes.push(Write::Delete {
                    tree: TREE_INSTANCES,
                    key: instance_key(name, p),
                });
                self.writes.push(Write::DeletePrefix {
                    tree: TREE_RUNS,
                    prefix: instance_key(name, p),
                });
            }
            for i in a.insts.values() {
                for port in i.rec.ports.values() {
                    self.ports_used.remove(port);
                }
            }
        }
        self.writes.push(Write::Delete {
            tree: TREE_APPS,
            key: name.as_bytes().to_vec(),
        });
        Response::ok(format!("application `{name}` removed"))
    }

    pub(super) fn set_desired(&mut self, app: &str, path: &str, target: Desired) {
        let Some(i) = self.apps.get_mut(app).and_then(|a| a.insts.get_mut(path)) else {
            return;
        };
        if i.parent.is_none() {
            // A root's state is its machine's (hosted or not): its wish is only recorded
            // and shared, for the coordinator that launches and retires machines.
            // Shared even when unchanged: a newer wish to deploy replaces a failed launch.
            i.rec.desired = target;
            self.persist_instance(app, path);
            self.share_desired(app, path, target);
            return;
        }
        i.rec.desired = target;
        self.unblock(app, path);
        self.persist_instance(app, path);
        self.share_desired(app, path, target);
        self.mark(app, path);
    }

    fn app_set(&mut self, name: &str, target: Desired) -> Response {
        let Some(a) = self.apps.get(name) else {
            return Response::error(format!("no application named `{name}`"));
        };
        let paths: Vec<String> = a.insts.keys().cloned().collect();
        for p in &paths {
            self.set_desired(name, p, target);
        }
        Response::ok(format!(
            "`{name}`: {} instances set to {}",
            paths.len(),
            desired_word(target)
        ))
    }

    fn instance_set(&mut self, app: &str, path: &str, target: Desired) -> Response {
        let Some(a) = self.apps.get(app) else {
            return Response::error(format!("no application named `{app}`"));
        };
        let Some(i) = a.insts.get(path) else {
            return Response::error(format!("`{app}` has no instance `{path}`"));
        };
        if i.parent.is_none() {
            // A root stands for its machine: the target applies to what runs on it.
            let prefix = format!("{path}/");
            let below: Vec<String> = a
                .insts
                .keys()
                .filter(|p| p.starts_with(&prefix))
                .cloned()
                .collect();
            for p in &below {
                self.set_desired(app, p, target);
            }
            self.set_desired(app, path, target);
            return Response::ok(format!(
                "{} instances under {path} set to {}",
                below.len(),
                desired_word(target)
            ));
        }
        self.set_desired(app, path, target);
        Response::ok(format!("{path} set to {}", desired_word(target)))
    }

    /// Why an instance cannot be created there, if it cannot.
    pub(super) fn creation_error(&self, app: &str, path: &str, component: &str) -> Option<String> {
        let Some(a) = self.apps.get(app) else {
            return Some(format!("no application named `{app}`"));
        };
        if a.insts.contains_key(path) {
            return Some(format!("`{app}` already has an instance `{path}`"));
        }
        if let Err(e) = roboconf_model::limits::check_instance_path(path) {
            return Some(e);
        }
        let name = path.rsplit('/').next().unwrap_or_default();
        if !path.starts_with('/') || !is_flex_id(name) {
            return Some(format!("invalid instance path `{path}`: expected /parent/.../name, names of letters, digits, spaces, `_`, `-`, `.`"));
        }
        let Some(c) = a.graph.component(component) else {
            return Some(format!("`{app}` has no component `{component}`"));
        };
        let view = &a.resolved.views[c];
        match parent_path(path) {
            None if !view.ancestors.is_empty() => Some(format!(
                "a {component} must be placed under an instance of another component"
            )),
            None => None,
            Some(p) => match a.insts.get(&p) {
                None => Some(format!("`{app}` has no instance `{p}`")),
                Some(parent) if !view.ancestors.contains(&parent.comp) => Some(format!(
                    "a {component} cannot be placed under a {}",
                    a.graph.components[parent.comp].name
                )),
                Some(_) => None,
            },
        }
    }

    /// Creates an instance (not shared): false when it cannot be created there.
    pub(super) fn create_instance(
        &mut self,
        app: &str,
        path: &str,
        component: &str,
        desired: Desired,
    ) -> bool {
        if self.creation_error(app, path, component).is_some() {
            return false;
        }
        let name = path.rsplit('/').next().unwrap_or_default();
        let rec = InstanceRecord::new(app, path, name, component, desired);
        if let Some(a) = self.apps.get_mut(app) {
            a.insert(rec);
        }
        self.allocate_ports(app, path);
        self.persist_instance(app, path);
        self.mark(app, path);
        true
    }

    fn instance_create(&mut self, app: &str, path: &str, component: &str) -> Response {
        if let Some(e) = self.creation_error(app, path, component) {
            return Response::error(e);
        }
        self.create_instance(app, path, component, Desired::NotDeployed);
        self.share_desired(app, path, Desired::NotDeployed);
        Response::ok(format!("{path} created (a {component}, not deployed)"))
    }

    /// Deletes an instance and what is under it (not shared), when none of it is deployed.
    pub(super) fn delete_instances(
        &mut self,
        app: &str,
        path: &str,
    ) -> Result<Vec<String>, Response> {
        let Some(a) = self.apps.get(app) else {
            return Err(Response::error(format!("no application named `{app}`")));
        };
        if !a.insts.contains_key(path) {
            return Err(Response::error(format!("`{app}` has no instance `{path}`")));
        }
        let prefix = format!("{path}/");
        let subtree: Vec<String> = a
            .insts
            .keys()
            .filter(|p| *p == path || p.starts_with(&prefix))
            .cloned()
            .collect();
        let busy: Vec<String> = subtree
            .iter()
            .filter(|p| {
                a.insts.get(*p).is_some_and(|i| {
                    i.parent.is_some() && (i.rec.state != State::NotDeployed || i.running.is_some())
                })
            })
            .cloned()
            .collect();
        if !busy.is_empty() {
            return Err(Response::Error {
                message: format!("undeploy {path} first: these are still deployed"),
                details: busy,
            });
        }
        for p in subtree.iter().rev() {
            if let Some(i) = self.apps.get_mut(app).and_then(|a| a.remove(p)) {
                for port in i.rec.ports.values() {
                    self.ports_used.remove(port);
                }
            }
            self.writes.push(Write::Delete {
                tree: TREE_INSTANCES,
                key: instance_key(app, p),
            });
            self.writes.push(Write::DeletePrefix {
                tree: TREE_RUNS,
                prefix: instance_key(app, p),
            });
        }
        if let Some(parent) = parent_path(path) {
            self.mark(app, &parent);
        }
        Ok(subtree)
    }

    fn instance_delete(&mut self, app: &str, path: &str) -> Response {
        match self.delete_instances(app, path) {
            Err(r) => r,
            Ok(deleted) => {
                for p in &deleted {
                    self.share_deletion(app, p);
                }
                Response::ok(format!("{} instance(s) deleted", deleted.len()))
            }
        }
    }

    fn instance_bind(&mut self, app: &str, root: &str, node: &str) -> Response {
        let Some(a) = self.apps.get(app) else {
            return Response::error(format!("no application named `{app}`"));
        };
        match a.insts.get(root) {
            Some(i) if i.parent.is_none() => {}
            Some(_) => {
                return Response::error(format!(
                    "{root} is not a root instance: only machines are bound to nodes"
                ))
            }
            None => return Response::error(format!("`{app}` has no instance `{root}`")),
        }
        let id = match self.member_named(node) {
            Ok(id) => id,
            Err(e) => return Response::error(e),
        };
        self.bind(app, root, &id);
        Response::ok(format!("{root} is now hosted by {node}"))
    }
}

fn desired_word(d: Desired) -> &'static str {
    match d {
        Desired::NotDeployed => "not deployed",
        Desired::Deployed => "deployed (stopped)",
        Desired::Started => "started",
    }
}
