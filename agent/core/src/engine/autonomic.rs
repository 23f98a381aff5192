//! What the autonomic side of the node (`crate::node::autonomic`) reads of the engine and
//! writes through it: the records that carry autonomic events (`Kind::Event`, owner
//! records of the hosting node: one per application and event name, rewritten at each
//! hit, so each write is a new occurrence), the operator's wishes (`Kind::Operator`:
//! scheduled jobs by application and name, `exec` requests by id), the published
//! history of executions, the application model as the command planner sees it, and the
//! idempotent steps of a plan applied to the instances.

use super::Core;
use crate::api::{Desired, Response, State};
use crate::autonomic::records::{
    history_key, EventRecord, ExecRequest, JobSpec, EXEC_PREFIX, HISTORY_PREFIX, JOB_PREFIX,
};
use crate::autonomic::Model;
use crate::mesh::replica::{owner_key, Entry, Kind, OWNER_SEP};
use std::collections::{BTreeMap, BTreeSet};

/// Touched autonomic records kept between two rounds of the leader; past it, the leader
/// looks at all of them.
const TOUCHED_MAX: usize = 10_000;

/// An application as the command planner sees it.
pub struct AppModel<'a> {
    core: &'a Core,
    app: &'a super::AppState,
}

impl Model for AppModel<'_> {
    fn instances(&self) -> BTreeMap<String, (String, Desired)> {
        self.app
            .insts
            .iter()
            .map(|(p, i)| (p.clone(), (i.rec.component.clone(), i.rec.desired)))
            .collect()
    }

    fn component_exists(&self, component: &str) -> bool {
        self.app.graph.component(component).is_some()
    }

    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
        let Some(c) = self.app.graph.component(child) else {
            return false;
        };
        let ancestors = &self.app.resolved.views[c].ancestors;
        match parent.and_then(|p| self.app.graph.component(p)) {
            None if parent.is_some() => false,
            None => ancestors.is_empty(),
            Some(p) => ancestors.contains(&p),
        }
    }

    fn is_machine(&self, component: &str) -> bool {
        self.app.targets.iter().any(|t| t.component == component)
    }

    fn has_target(&self, component: &str, target: &str) -> bool {
        self.app
            .targets
            .iter()
            .any(|t| t.component == component && t.id == target)
    }

    fn machine_target(&self, root: &str) -> Option<String> {
        self.core.machine_target(&self.app.name, root)
    }
}

impl Core {
    /// The planner's view of an application.
    pub fn app_model(&self, app: &str) -> Option<AppModel<'_>> {
        self.apps.get(app).map(|a| AppModel { core: self, app: a })
    }

    /// An application's commands files and rules.
    pub fn autonomic_of(
        &self,
        app: &str,
    ) -> Option<(
        &[(String, roboconf_model::commands::Commands)],
        &crate::autonomic::Rules,
    )> {
        self.apps
            .get(app)
            .map(|a| (a.commands.as_slice(), &a.rules))
    }

    /// The instances hosted here whose probes run: DEPLOYED_STARTED, of a component
    /// with probes (application, path, component).
    pub fn probed_instances(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for a in self.apps.values().filter(|a| !a.probes.is_empty()) {
            for i in a.insts.values() {
                if i.rec.state == State::DeployedStarted
                    && a.probes.contains_key(&i.rec.component)
                    && self.is_hosted(&a.name, &super::app::root_path(&i.rec.path))
                {
                    out.push((a.name.clone(), i.rec.path.clone(), i.rec.component.clone()));
                }
            }
        }
        out
    }

    /// A probe of an instance hosted here hit: the mesh learns the occurrence.
    pub(super) fn autonomic_event(&mut self, rec: EventRecord) {
        let key = owner_key(
            &self.replica.origin().node,
            &format!("{}{OWNER_SEP}{}", rec.app, rec.event),
        );
        self.put(Kind::Event, &key, serde_json::to_vec(&rec).ok());
    }

    /// The autonomic records touched since the last call (`None`: too many; look at all).
    pub fn take_autonomic_touched(&mut self) -> Option<BTreeSet<(Kind, String)>> {
        if std::mem::take(&mut self.autonomic_overflow) {
            self.autonomic_touched.clear();
            return None;
        }
        Some(std::mem::take(&mut self.autonomic_touched))
    }

    pub(super) fn autonomic_touch(&mut self, kind: Kind, key: String) {
        if self.autonomic_touched.len() >= TOUCHED_MAX {
            self.autonomic_overflow = true;
        } else {
            self.autonomic_touched.insert((kind, key));
        }
    }

    /// Every record of a kind (for a leader that looks at all).
    pub fn autonomic_records(&self, kind: Kind) -> Vec<(String, Entry)> {
        self.replica
            .all(kind)
            .into_iter()
            .filter(|(_, e)| e.value.is_some())
            .map(|(k, e)| (k.to_string(), e.clone()))
            .collect()
    }

    pub fn autonomic_record(&self, kind: Kind, key: &str) -> Option<Entry> {
        self.replica
            .get(kind, key)
            .filter(|e| e.value.is_some())
            .cloned()
    }

    /// The leader withdraws an operator's request it has taken.
    pub fn withdraw_request(&mut self, key: &str) {
        if self
            .replica
            .get(Kind::Operator, key)
            .is_some_and(|e| e.value.is_some())
        {
            self.put(Kind::Operator, key, None);
        }
    }

    /// `roboconf exec`: the request the leader will take.
    pub(super) fn exec_request(&mut self, id: &str, app: &str, command: &str) -> Response {
        let Some(a) = self.apps.get(app) else {
            return Response::error(format!("no application named `{app}`"));
        };
        if !a.commands.iter().any(|(n, _)| n == command) {
            let known: Vec<&str> = a.commands.iter().map(|(n, _)| n.as_str()).collect();
            return Response::error(format!(
                "`{app}` has no commands file `{command}` (its commands: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        let rec = ExecRequest {
            app: app.to_string(),
            command: command.to_string(),
            at_ms: self.now_ms,
        };
        self.put(
            Kind::Operator,
            &format!("{EXEC_PREFIX}{id}"),
            serde_json::to_vec(&rec).ok(),
        );
        Response::ok(id.to_string())
    }

    /// `roboconf job add`.
    pub(super) fn job_add(&mut self, mut spec: JobSpec) -> Response {
        let Some(a) = self.apps.get(&spec.app) else {
            return Response::error(format!("no application named `{}`", spec.app));
        };
        if !a.commands.iter().any(|(n, _)| *n == spec.command) {
            return Response::error(format!(
                "`{}` has no commands file `{}`",
                spec.app, spec.command
            ));
        }
        if let Err(e) = crate::autonomic::check_cron(&spec.cron) {
            return Response::error(format!("invalid cron expression `{}`: {e}", spec.cron));
        }
        if spec.name.trim().is_empty() || spec.name.contains(OWNER_SEP) {
            return Response::error("a job needs a name");
        }
        spec.created_ms = self.now_ms;
        let key = format!("{JOB_PREFIX}{}{OWNER_SEP}{}", spec.app, spec.name);
        let existed = self.autonomic_record(Kind::Operator, &key).is_some();
        let msg = format!(
            "job `{}` {}: `{}` runs `{}`",
            spec.name,
            if existed { "replaced" } else { "added" },
            spec.cron,
            spec.command
        );
        self.put(Kind::Operator, &key, serde_json::to_vec(&spec).ok());
        Response::ok(msg)
    }

    /// `roboconf job remove`.
    pub(super) fn job_remove(&mut self, app: &str, name: &str) -> Response {
        let key = format!("{JOB_PREFIX}{app}{OWNER_SEP}{name}");
        if self.autonomic_record(Kind::Operator, &key).is_none() {
            return Response::error(format!("`{app}` has no job `{name}`"));
        }
        self.put(Kind::Operator, &key, None);
        Response::ok(format!("job `{name}` removed"))
    }

    /// The scheduled jobs (of one application).
    pub fn jobs(&self, app: Option<&str>) -> Vec<JobSpec> {
        let mut jobs: Vec<JobSpec> = self
            .replica
            .all(Kind::Operator)
            .into_iter()
            .filter(|(k, _)| k.starts_with(JOB_PREFIX))
            .filter_map(|(_, e)| {
                e.value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice(v).ok())
            })
            .filter(|j: &JobSpec| app.is_none_or(|a| a == j.app))
            .collect();
        jobs.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
        jobs
    }

    /// The history of executions the leader published, oldest first.
    pub fn history(&self, app: Option<&str>) -> Vec<crate::coord::autonomic::HistoryItem> {
        let mut items: Vec<crate::coord::autonomic::HistoryItem> = self
            .replica
            .all(Kind::LaunchIntent)
            .into_iter()
            .filter(|(k, _)| k.starts_with(HISTORY_PREFIX))
            .filter_map(|(_, e)| {
                e.value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice(v).ok())
            })
            .filter(|h: &crate::coord::autonomic::HistoryItem| app.is_none_or(|a| a == h.app))
            .collect();
        items.sort_by_key(|h| (h.start_ms, h.id));
        items
    }

    /// The history record keys of an application, oldest first (the leader prunes them).
    pub fn history_keys(&self, app: &str) -> Vec<String> {
        let prefix = history_key(app, 0);
        let prefix = &prefix[..prefix.len() - 20];
        self.replica
            .all(Kind::LaunchIntent)
            .into_iter()
            .filter(|(k, e)| k.starts_with(prefix) && e.value.is_some())
            .map(|(k, _)| k.to_string())
            .collect()
    }

    /// A plan's step `Create`: done when the instance exists.
    pub fn step_create(&mut self, app: &str, path: &str, component: &str) -> Result<(), String> {
        let exists = self.apps.get(app).and_then(|a| a.insts.get(path));
        match exists {
            Some(i) if i.rec.component == component => Ok(()),
            Some(_) => Err(format!("`{path}` exists, of another component")),
            None => {
                if let Some(e) = self.creation_error(app, path, component) {
                    return Err(e);
                }
                self.create_instance(app, path, component, Desired::NotDeployed);
                self.share_desired(app, path, Desired::NotDeployed);
                Ok(())
            }
        }
    }

    /// A plan's step `Set`: one instance's wish (unchanged when it is already that).
    pub fn step_set(&mut self, app: &str, path: &str, target: Desired) -> Result<(), String> {
        let Some(i) = self.apps.get(app).and_then(|a| a.insts.get(path)) else {
            return Err(format!("no instance `{path}`"));
        };
        if i.rec.desired != target {
            self.set_desired(app, path, target);
        }
        Ok(())
    }

    /// A plan's step `Target`.
    pub fn step_target(&mut self, app: &str, root: &str, target: &str) -> Result<(), String> {
        if self.machine_target(app, root).as_deref() == Some(target) {
            return Ok(());
        }
        match self.choose_target(app, root, target) {
            Response::Ok { .. } => Ok(()),
            Response::Error { message, .. } => Err(message),
            _ => Ok(()),
        }
    }

    /// A plan's step `Delete`: `Ok(true)` once deleted (or gone), `Ok(false)` while what
    /// is under it is still deployed somewhere.
    pub fn step_delete(&mut self, app: &str, path: &str) -> Result<bool, String> {
        let Some(a) = self.apps.get(app) else {
            return Ok(true);
        };
        if !a.insts.contains_key(path) {
            return Ok(true);
        }
        let prefix = format!("{path}/");
        let busy = self
            .instance_views(a)
            .iter()
            .any(|v| v.path.starts_with(&prefix) && v.state != State::NotDeployed);
        if busy {
            return Ok(false);
        }
        match self.delete_instances(app, path) {
            Ok(deleted) => {
                for p in &deleted {
                    self.share_deletion(app, p);
                }
                Ok(true)
            }
            Err(Response::Error { message, .. }) if message.starts_with("undeploy") => Ok(false),
            Err(Response::Error { message, .. }) => Err(message),
            Err(_) => Err(format!("{path} could not be deleted")),
        }
    }
}
