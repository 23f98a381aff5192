//! The life cycle (DESIGN §5, Roboconf's rules): each instance is moved towards its
//! desired state one action at a time, parents before children on the way up and
//! children before parents on the way down; an instance starts only when its parent is
//! started and its mandatory imports are there (else UNRESOLVED / WAITING_FOR_ANCESTOR),
//! stops when a mandatory import goes, and runs `update` once per changed import. A failed
//! script leaves the previous stable state, keeps the error and blocks retries until the
//! operator acts again.

use super::records::{instance_key, run_key, RunRecord, Vars, Write, TREE_INSTANCES, TREE_RUNS};
use super::{Core, Event, Output, PendingRun, PluginRun, RunResult};
use crate::api::{Desired, State};
use roboconf_plugins::{Action, Ancestor, ChangedImport, ImportedInstance, Invocation};
use std::collections::BTreeMap;

/// Most reconciliation steps per input: a bound against a logic loop, far above need.
const MAX_STEPS: usize = 1_000_000;

/// The stable state an interrupted action started from (its script runs again).
pub fn stable_before(s: State) -> State {
    match s {
        State::Deploying => State::NotDeployed,
        State::Starting | State::Undeploying => State::DeployedStopped,
        State::Stopping => State::DeployedStarted,
        other => other,
    }
}

/// What to do about one instance.
enum Step {
    Nothing,
    /// Its children must move first (stop, or undeploy): look at them.
    Children,
    Set(State),
    Run(Action, Option<(String, Option<Vars>)>),
}

impl Core {
    pub(super) fn mark(&mut self, app: &str, path: &str) {
        self.dirty.insert((app.to_string(), path.to_string()));
    }

    fn mark_family(&mut self, app: &str, path: &str) {
        let Some(a) = self.apps.get(app) else { return };
        let Some(i) = a.insts.get(path) else { return };
        let mut keys: Vec<String> = i.children.iter().cloned().collect();
        keys.extend(i.parent.clone());
        keys.push(path.to_string());
        for k in keys {
            self.mark(app, &k);
        }
    }

    pub(super) fn mark_importers(&mut self, app: &str, prefixes: impl IntoIterator<Item = String>) {
        let Some(a) = self.apps.get(app) else { return };
        let mut keys = Vec::new();
        for p in prefixes {
            if let Some(set) = a.importers.get(&p) {
                keys.extend(set.iter().cloned());
            }
        }
        for k in keys {
            self.mark(app, &k);
        }
    }

    pub(super) fn persist_instance(&mut self, app: &str, path: &str) {
        if let Some(i) = self.apps.get(app).and_then(|a| a.insts.get(path)) {
            self.writes
                .push(Write::put(TREE_INSTANCES, instance_key(app, path), &i.rec));
            self.share_observed(app, path);
        }
    }

    /// Moves an instance to `state`, persisting it and telling observers; false when it
    /// was in that state already (nothing written).
    fn set_state(&mut self, app: &str, path: &str, state: State) -> bool {
        let Some(i) = self.apps.get_mut(app).and_then(|a| a.insts.get_mut(path)) else {
            return false;
        };
        if i.rec.state == state {
            return false;
        }
        i.rec.state = state;
        self.persist_instance(app, path);
        self.mark_family(app, path);
        self.out.push(Output::Event(Event::StateChanged {
            app: app.into(),
            path: path.into(),
            state,
        }));
        true
    }

    /// Re-examines every instance marked dirty, parents first, until nothing changes.
    pub(super) fn reconcile(&mut self) {
        let mut steps = 0;
        while let Some((app, path)) = self.dirty.pop_first() {
            steps += 1;
            if steps > MAX_STEPS {
                break;
            }
            match self.decide(&app, &path) {
                Step::Nothing => {}
                Step::Children => {
                    let children: Vec<String> = self
                        .apps
                        .get(&app)
                        .and_then(|a| a.insts.get(&path))
                        .map(|i| i.children.iter().cloned().collect())
                        .unwrap_or_default();
                    for c in children {
                        self.mark(&app, &c);
                    }
                }
                Step::Set(s) => {
                    self.set_state(&app, &path, s);
                }
                Step::Run(action, changed) => self.start_run(&app, &path, action, changed),
            }
        }
    }

    /// Whether the instance may exist (be deployed): its root is hosted here and neither
    /// it nor an ancestor is wanted undeployed.
    fn may_exist(&self, app: &str, path: &str) -> bool {
        self.up_to_hosted_root(app, path, |_, i| i.rec.desired != Desired::NotDeployed)
    }

    /// Whether the instance should be running: wanted started, its mandatory imports
    /// there, and the same for every ancestor (a root: hosted here).
    fn should_run(&self, app: &str, path: &str) -> bool {
        self.leaving.is_none()
            && self.up_to_hosted_root(app, path, |a, i| {
                i.rec.desired == Desired::Started && a.current_imports(&i.rec.path).1.is_empty()
            })
    }

    /// Whether `ok` holds for the instance and every ancestor below its root, and that
    /// root is hosted here.
    fn up_to_hosted_root(
        &self,
        app: &str,
        path: &str,
        ok: impl Fn(&super::app::AppState, &super::app::Inst) -> bool,
    ) -> bool {
        let Some(a) = self.apps.get(app) else {
            return false;
        };
        let mut cur = a.insts.get(path);
        while let Some(i) = cur {
            match &i.parent {
                None => return self.is_hosted(app, &i.rec.path),
                Some(_) if !ok(a, i) => return false,
                Some(p) => cur = a.insts.get(p),
            }
        }
        false
    }

    fn decide(&self, app: &str, path: &str) -> Step {
        let Some(a) = self.apps.get(app) else {
            return Step::Nothing;
        };
        let Some(i) = a.insts.get(path) else {
            return Step::Nothing;
        };
        if i.running.is_some() {
            return Step::Nothing;
        }
        let Some(parent_path) = &i.parent else {
            let target = if self.is_hosted(app, path) {
                State::DeployedStarted
            } else {
                State::NotDeployed
            };
            return if i.rec.state == target {
                Step::Nothing
            } else {
                Step::Set(target)
            };
        };
        let Some(parent) = a.insts.get(parent_path) else {
            return Step::Nothing;
        };
        let exist = self.may_exist(app, path);
        // A failed action waits for the operator, or for its retry to be due.
        let blocked = i.rec.blocked || i.rec.retry.is_some_and(|r| r.at_ms > self.now_ms);
        let children_states = || {
            i.children
                .iter()
                .filter_map(|c| a.insts.get(c))
                .map(|c| (c.rec.state, c.running.is_some()))
        };
        match i.rec.state {
            State::NotDeployed => {
                if exist && !blocked && parent.rec.state.is_deployed() {
                    Step::Run(Action::Deploy, None)
                } else {
                    Step::Nothing
                }
            }
            State::DeployedStopped | State::Unresolved | State::WaitingForAncestor => {
                if !exist {
                    let children_gone =
                        children_states().all(|(s, running)| s == State::NotDeployed && !running);
                    return match (children_gone, blocked) {
                        (false, _) => Step::Children,
                        (true, false) => Step::Run(Action::Undeploy, None),
                        (true, true) => Step::Nothing,
                    };
                }
                if i.rec.desired != Desired::Started {
                    return if i.rec.state == State::DeployedStopped {
                        Step::Nothing
                    } else {
                        Step::Set(State::DeployedStopped)
                    };
                }
                if parent.rec.state != State::DeployedStarted || !self.should_run(app, parent_path)
                {
                    return set_if(i.rec.state, State::WaitingForAncestor);
                }
                if !a.current_imports(path).1.is_empty() {
                    return set_if(i.rec.state, State::Unresolved);
                }
                if blocked {
                    Step::Nothing
                } else {
                    Step::Run(Action::Start, None)
                }
            }
            State::DeployedStarted => {
                if !self.should_run(app, path) {
                    let children_down = children_states()
                        .all(|(s, running)| !running && !matches!(s, State::DeployedStarted));
                    return match (children_down, blocked) {
                        (false, _) => Step::Children,
                        (true, false) => Step::Run(Action::Stop, None),
                        (true, true) => Step::Nothing,
                    };
                }
                if blocked {
                    return Step::Nothing;
                }
                // Imports that changed since the instance was configured: one update each.
                let (now, _) = a.current_imports(path);
                for (exporter, (_, vars)) in &now {
                    if i.rec.configured.get(exporter) != Some(vars) {
                        return Step::Run(
                            Action::Update,
                            Some((exporter.clone(), Some(vars.clone()))),
                        );
                    }
                }
                for exporter in i.rec.configured.keys() {
                    if !now.contains_key(exporter) {
                        return Step::Run(Action::Update, Some((exporter.clone(), None)));
                    }
                }
                Step::Nothing
            }
            _ => Step::Nothing,
        }
    }

    fn start_run(
        &mut self,
        app_name: &str,
        path: &str,
        action: Action,
        changed: Option<(String, Option<Vars>)>,
    ) {
        let ip = self.cfg.ip.clone();
        let run = self.next_run;
        self.next_run += 1;
        let Some(a) = self.apps.get_mut(app_name) else {
            return;
        };
        let Some(i) = a.insts.get(path) else { return };
        let comp = i.comp;
        let installer = a.graph.installer(comp).unwrap_or("").to_string();
        let (imports_now, _) = a.current_imports(path);
        let mut imports: BTreeMap<String, Vec<ImportedInstance>> = BTreeMap::new();
        for (exporter, (component, vars)) in &imports_now {
            let mut by_prefix: BTreeMap<String, Vars> = BTreeMap::new();
            for (k, v) in vars {
                by_prefix
                    .entry(roboconf_model::graph::split_var(k).0.to_string())
                    .or_default()
                    .insert(k.clone(), v.clone());
            }
            for (prefix, vs) in by_prefix {
                imports.entry(prefix).or_default().push(ImportedInstance {
                    path: exporter.clone(),
                    component: component.clone(),
                    variables: vs,
                });
            }
        }
        let mut ancestors = Vec::new();
        let mut cur = i.parent.clone();
        while let Some(p) = cur {
            let Some(pi) = a.insts.get(&p) else { break };
            let comp_name = a.graph.components[pi.comp].name.clone();
            let exports = a
                .exports(&p, &ip)
                .into_iter()
                .filter(|(k, _)| roboconf_model::graph::split_var(k).0 == comp_name)
                .collect();
            ancestors.push(Ancestor {
                component: comp_name,
                exports,
            });
            cur = pi.parent.clone();
        }
        let changed_import = changed.as_ref().map(|(exporter, vars)| {
            let component = a
                .insts
                .get(exporter)
                .map(|e| a.graph.components[e.comp].name.clone())
                .unwrap_or_default();
            let status = if vars.is_some() {
                "DEPLOYED_STARTED"
            } else {
                "DEPLOYED_STOPPED"
            };
            let variables = vars
                .clone()
                .unwrap_or_else(|| i.rec.configured.get(exporter).cloned().unwrap_or_default());
            ChangedImport {
                status: status.into(),
                import: ImportedInstance {
                    path: exporter.clone(),
                    component,
                    variables,
                },
            }
        });
        let components: Vec<String> = a
            .graph
            .extended_chain(comp)
            .into_iter()
            .map(|c| a.graph.components[c].name.clone())
            .collect();
        let work = self
            .cfg
            .work_dir
            .join(app_name)
            .join(super::folders::instance_folder(path));
        let mut import_prefixes: Vec<String> = a
            .graph
            .all_imports(comp)
            .keys()
            .map(|k| roboconf_model::graph::split_var(k).0.to_string())
            .collect();
        import_prefixes.dedup();
        let invocation = Invocation {
            application: app_name.to_string(),
            instance_name: i.rec.name.clone(),
            instance_path: path.to_string(),
            component: a.graph.components[comp].name.clone(),
            recipe_dir: work,
            application_dir: a.bundle.clone(),
            exports: a.exports(path, &ip),
            ancestors,
            imports,
            import_prefixes,
            changed: changed_import,
        };
        let pending = PendingRun {
            app: app_name.to_string(),
            path: path.to_string(),
            action,
            imports: imports_now.into_iter().map(|(k, (_, v))| (k, v)).collect(),
            changed,
        };
        let plugin_run = PluginRun {
            run,
            app: app_name.to_string(),
            path: path.to_string(),
            action,
            installer,
            components,
            fresh_copy: action == Action::Deploy,
            invocation,
        };
        if let Some(i) = a.insts.get_mut(path) {
            i.running = Some(run);
        }
        let transient = match action {
            Action::Deploy => Some(State::Deploying),
            Action::Start => Some(State::Starting),
            Action::Stop => Some(State::Stopping),
            Action::Undeploy => Some(State::Undeploying),
            _ => None,
        };
        if action == Action::Stop {
            // Exports are withdrawn as soon as the instance starts stopping.
            let gone = a.withdraw(path);
            self.mark_importers(app_name, gone);
            self.share_exports(app_name, path, None);
        }
        self.runs.insert(run, pending);
        match transient {
            Some(s) => {
                self.set_state(app_name, path, s);
            }
            None => self.persist_instance(app_name, path),
        }
        self.out.push(Output::Run(Box::new(plugin_run)));
    }

    pub(super) fn plugin_done(&mut self, run: u64, result: RunResult) {
        let Some(p) = self.runs.remove(&run) else {
            return;
        };
        let ip = self.cfg.ip.clone();
        let runs_kept = self.cfg.runs_kept;
        let Some(a) = self.apps.get_mut(&p.app) else {
            return;
        };
        let Some(i) = a.insts.get_mut(&p.path) else {
            return;
        };
        if i.running != Some(run) {
            return;
        }
        i.running = None;
        let retry = (!result.ok && result.retry).then(|| {
            let attempt = i.rec.retry.map_or(0, |r| r.attempt).saturating_add(1);
            super::records::Retry::after(
                attempt,
                self.now_ms,
                self.cfg.timing.retry_first_ms,
                self.cfg.timing.retry_max_ms,
            )
        });
        i.rec.retry = retry;
        let next = if result.ok {
            i.rec.last_error = None;
            match p.action {
                Action::Deploy => State::DeployedStopped,
                Action::Start => {
                    i.rec.configured = p.imports.clone();
                    State::DeployedStarted
                }
                Action::Stop => {
                    i.rec.configured.clear();
                    State::DeployedStopped
                }
                Action::Undeploy => State::NotDeployed,
                _ => {
                    if let Some((exporter, vars)) = &p.changed {
                        match vars {
                            Some(v) => i.rec.configured.insert(exporter.clone(), v.clone()),
                            None => i.rec.configured.remove(exporter),
                        };
                    }
                    i.rec.state
                }
            }
        } else {
            // The script's own failure waits for the operator; the environment's is
            // tried again by itself.
            i.rec.blocked = retry.is_none();
            i.rec.last_error = Some(format!(
                "{} failed: {}{}",
                p.action.as_str(),
                result
                    .error
                    .clone()
                    .unwrap_or_else(|| "unknown error".into()),
                retry.map_or(String::new(), |r| format!(
                    " (attempt {}; tried again by itself)",
                    r.attempt
                ))
            ));
            if let (Action::Update, Some((exporter, vars))) = (p.action, &p.changed) {
                match vars {
                    Some(v) => i.rec.configured.insert(exporter.clone(), v.clone()),
                    None => i.rec.configured.remove(exporter),
                };
            }
            stable_before(match p.action {
                Action::Deploy => State::Deploying,
                Action::Start => State::Starting,
                Action::Stop => State::Stopping,
                Action::Undeploy => State::Undeploying,
                _ => i.rec.state,
            })
        };
        i.rec.last_run_seq += 1;
        let seq = i.rec.last_run_seq;
        let record = RunRecord {
            app: p.app.clone(),
            path: p.path.clone(),
            seq,
            action: p.action.as_str().to_string(),
            at_ms: result.at_ms,
            ok: result.ok,
            code: result.code,
            error: result.error.clone(),
            output: result.output.clone(),
        };
        let published = if next == State::DeployedStarted {
            a.publish(&p.path, &ip)
        } else {
            Default::default()
        };
        let shared = (next == State::DeployedStarted).then(|| {
            let comp = a
                .insts
                .get(&p.path)
                .map(|i| a.graph.components[i.comp].name.clone())
                .unwrap_or_default();
            (comp, a.exports(&p.path, &ip))
        });
        self.writes.push(Write::put(
            TREE_RUNS,
            run_key(&p.app, &p.path, seq),
            &record,
        ));
        if seq > runs_kept {
            self.writes.push(Write::Delete {
                tree: TREE_RUNS,
                key: run_key(&p.app, &p.path, seq - runs_kept),
            });
        }
        self.mark_importers(&p.app, published);
        if let Some(shared) = shared {
            self.share_exports(&p.app, &p.path, Some(shared));
        }
        if let Some(r) = retry {
            self.retries
                .insert((r.at_ms, p.app.clone(), p.path.clone()));
        }
        // Written once: by `set_state` when the state changes, else here.
        if !self.set_state(&p.app, &p.path, next) {
            self.persist_instance(&p.app, &p.path);
        }
        self.mark_family(&p.app, &p.path);
    }

    /// Instances whose retry is due are looked at again.
    pub(super) fn retries_due(&mut self) {
        while let Some((at, app, path)) = self.retries.first().cloned() {
            if at > self.now_ms {
                break;
            }
            self.retries.pop_first();
            self.mark(&app, &path);
        }
    }

    /// An operator (here or elsewhere) changed what the instance should be: whatever
    /// failed before may be tried at once.
    pub(super) fn unblock(&mut self, app: &str, path: &str) {
        if let Some(i) = self.apps.get_mut(app).and_then(|a| a.insts.get_mut(path)) {
            i.rec.blocked = false;
            i.rec.retry = None;
        }
    }
}

fn set_if(current: State, target: State) -> Step {
    if current == target {
        Step::Nothing
    } else {
        Step::Set(target)
    }
}
