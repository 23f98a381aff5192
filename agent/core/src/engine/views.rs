//! The operator's views of the core's state: the status of an application's instances
//! (what this node runs, and what the mesh says of the rest), the list of applications
//! (counted from those same views, so "started" means one thing), and the members.

use super::app::AppState;
use super::Core;
use crate::api::{AppStatus, AppSummary, Desired, InstanceView, MemberView, Response, State};
use std::collections::BTreeMap;

impl Core {
    /// Every instance of an application as `status` shows it.
    pub fn instance_views(&self, a: &AppState) -> Vec<InstanceView> {
        let remote = self.remote_view(&a.name);
        a.insts
            .values()
            .map(|i| {
                let mut view = self.instance_view(a, i, &remote);
                if i.parent.is_none() {
                    self.with_machine(&a.name, &mut view);
                }
                view
            })
            .collect()
    }

    /// A launched root shows its machine; until its agent reports, the launch's state
    /// is the root's (Roboconf's: DEPLOYING while it is created, NOT_DEPLOYED with the
    /// error when creation failed, PROBLEM when the machine is not right).
    fn with_machine(&self, app: &str, view: &mut InstanceView) {
        let Some(m) = self.machine_view(app, &view.path) else {
            return;
        };
        let reported = view.node.is_some();
        match m.state.as_str() {
            "launching" | "running" if !reported && view.desired != Desired::NotDeployed => {
                view.state = State::Deploying;
            }
            "terminating" if !reported || view.state == State::NotDeployed => {
                view.state = State::Undeploying;
            }
            "failed" => {
                view.state = State::NotDeployed;
                view.last_error = m.reason.clone();
            }
            "problem" => {
                view.state = State::Problem;
                view.last_error = m.reason.clone();
            }
            _ => {}
        }
        view.machine = Some(m);
    }

    fn instance_view(
        &self,
        a: &AppState,
        i: &super::app::Inst,
        remote: &BTreeMap<String, (super::mesh::SharedObserved, super::records::Vars)>,
    ) -> InstanceView {
        {
            {
                let root = super::app::root_path(&i.rec.path);
                let hosted = self.is_hosted(&a.name, &root);
                if !hosted {
                    if let Some((obs, exports)) = remote.get(&i.rec.path) {
                        return InstanceView {
                            path: i.rec.path.clone(),
                            component: i.rec.component.clone(),
                            state: obs.state,
                            desired: i.rec.desired,
                            node: Some(obs.node.clone()),
                            exports: if obs.state == State::DeployedStarted {
                                exports.clone()
                            } else {
                                BTreeMap::new()
                            },
                            last_error: obs.last_error.clone(),
                            retry: obs.retry,
                            machine: None,
                        };
                    }
                }
                let exports = if i.rec.state == State::DeployedStarted {
                    a.exports(&i.rec.path, &self.cfg.ip)
                } else {
                    BTreeMap::new()
                };
                InstanceView {
                    path: i.rec.path.clone(),
                    component: i.rec.component.clone(),
                    state: i.rec.state,
                    desired: i.rec.desired,
                    node: hosted.then(|| self.cfg.node.clone()),
                    exports,
                    last_error: i.rec.last_error.clone(),
                    retry: i.rec.retry,
                    machine: None,
                }
            }
        }
    }

    pub(super) fn status(&self, app: Option<&str>) -> Response {
        let apps: Vec<AppStatus> = self
            .apps
            .values()
            .filter(|a| app.is_none_or(|n| n == a.name))
            .map(|a| AppStatus {
                app: a.name.clone(),
                instances: self.instance_views(a),
            })
            .collect();
        if let (Some(name), true) = (app, apps.is_empty()) {
            return Response::error(format!("no application named `{name}`"));
        }
        Response::Status { apps }
    }

    /// The applications, with their instances counted as `status` shows them.
    pub(super) fn app_list(&self) -> Vec<AppSummary> {
        self.apps
            .values()
            .map(|a| {
                let views = self.instance_views(a);
                AppSummary {
                    name: a.name.clone(),
                    version: a.version.clone(),
                    instances: views.len(),
                    started: views
                        .iter()
                        .filter(|i| i.state == State::DeployedStarted)
                        .count(),
                }
            })
            .collect()
    }

    /// Where the script runs of an instance are kept: here (`None`), or on the member
    /// that hosts it. An unknown application or path, or a host that is dead, is an error.
    pub fn runs_host(&self, app: &str, path: &str) -> Result<Option<crate::mesh::NodeId>, String> {
        let Some(a) = self.apps.get(app) else {
            return Err(format!("no application named `{app}`"));
        };
        if !a.insts.contains_key(path) {
            return Err(format!("`{app}` has no instance `{path}`"));
        }
        let root = super::app::root_path(path);
        if self.is_hosted(app, &root) {
            return Ok(None);
        }
        let Some(host) = self.host_of(app, &root) else {
            return Ok(None);
        };
        if !self.counts(host.as_str()) {
            let name = self
                .members()
                .into_iter()
                .find(|(id, _, _)| *id == host)
                .map_or(host.to_string(), |(_, rec, _)| rec.name);
            return Err(format!(
                "{path} is hosted by {name}, which is {}: its script runs are kept there",
                if self.has_left(host.as_str()) {
                    "gone"
                } else {
                    "dead"
                }
            ));
        }
        Ok(Some(host))
    }

    /// The members as `members` shows them. A member's roots are those it was started
    /// with (`--host`) and those bound to it since (a machine the coordinator launched,
    /// `instance bind`), as `APP:/ROOT`.
    pub(super) fn member_views(&self) -> Vec<MemberView> {
        let mut bound: BTreeMap<crate::mesh::NodeId, Vec<String>> = BTreeMap::new();
        for (name, a) in &self.apps {
            for (path, i) in &a.insts {
                if i.parent.is_none() {
                    if let Some(host) = self.host_of(name, path) {
                        bound
                            .entry(host)
                            .or_default()
                            .push(format!("{name}:{path}"));
                    }
                }
            }
        }
        let all = self.members();
        // The build most live members run: (version, binary hash) by count.
        let build = |r: &super::members::MemberRecord| {
            (
                r.version.clone(),
                r.binary.as_ref().map(|b| b.sha256.clone()),
            )
        };
        let mut builds: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
        for (_, rec, live) in &all {
            if *live == super::members::Liveness::Alive && rec.binary.is_some() {
                *builds.entry(build(rec)).or_default() += 1;
            }
        }
        let usual = builds
            .iter()
            .max_by_key(|(b, n)| (**n, std::cmp::Reverse((*b).clone())))
            .map(|(b, _)| b.clone());
        all.into_iter()
            .map(|(id, rec, live)| {
                let differs =
                    rec.binary.is_some() && usual.as_ref().is_some_and(|u| *u != build(&rec));
                // A declared root that is bound elsewhere now is not this member's.
                let mut roots: Vec<String> = rec
                    .roots
                    .into_iter()
                    .filter(|r| match r.split_once(':') {
                        Some((app, root))
                            if self
                                .apps
                                .get(app)
                                .is_some_and(|a| a.insts.contains_key(root)) =>
                        {
                            self.host_of(app, root).as_ref() == Some(&id)
                        }
                        _ => true,
                    })
                    .collect();
                for r in bound.remove(&id).unwrap_or_default() {
                    if !roots.contains(&r) {
                        roots.push(r);
                    }
                }
                MemberView {
                    id: id.to_string(),
                    name: rec.name,
                    addresses: rec.addresses,
                    state: serde_json::to_value(live)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    roots,
                    version: rec.version,
                    binary: rec.binary,
                    differs,
                }
            })
            .collect()
    }
}
