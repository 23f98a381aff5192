//! The coordinator's leader as Roboconf's autonomic manager: it takes the event
//! occurrences the hosting nodes publish, fires the rules they trigger, fires the jobs
//! whose instant came and takes the operators' `exec` requests — each as a Raft entry,
//! which the replicated state (`crate::coord::autonomic`) accepts at most once — then
//! carries out the queued executions one at a time per application: it resolves the
//! commands file into a plan against the live model, commits the plan, applies its
//! idempotent steps through the engine (and asks its driver for the steps outside the
//! mesh: files and e-mails), and commits the outcome. A new leader finds every queued
//! or planned execution in the state and carries it on; a plan applied twice changes
//! nothing the first application did. Ended executions are published to the mesh as
//! history records, so that any agent answers `roboconf history`.
//!
//! Jobs' misfire policy: a job whose instant passed while the mesh had no leader (or
//! its leader was busy electing) fires once, for the latest instant passed, when a
//! leader looks; the instants before it are skipped (Quartz's "fire once now").

use super::{Effect, Node};
use crate::autonomic::records::{
    history_key, EventRecord, ExecRequest, JobSpec, EXEC_PREFIX, JOB_PREFIX,
};
use crate::autonomic::{due, plan, Occurrence};
use crate::coord::autonomic::{
    Execution, Op, Outcome, Phase, Plan, Step, MAX_EXECUTING_APPS, MAX_PLAN_BYTES,
};
use crate::coord::machine::Command;
use crate::engine::{self, Coordination};
use crate::mesh::replica::{Entry, Kind};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How long a plan's `delete` waits for what is under the instance to be undeployed.
const DELETE_WAIT_MS: u64 = 180_000;
/// History records kept per application in the mesh.
const HISTORY_KEPT: usize = 1_000;
/// Records watched after they were touched, until nothing is left to do for them.
const WATCH_MAX: usize = 10_000;

/// A step outside the mesh the leader's driver carries out (`Effect::External`),
/// answered by `Input::ExternalDone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub execution: u64,
    pub index: usize,
    pub app: String,
    pub step: Step,
}

/// What the leader tracks of its office (rebuilt by each leader from the state).
#[derive(Debug, Default)]
pub(super) struct Lead {
    term: u64,
    /// Look at every autonomic record (a new office, or too many touched).
    scan_all: bool,
    /// Records touched and not settled yet.
    watch: BTreeSet<(Kind, String)>,
    /// Executions this leader carries out.
    carrying: BTreeMap<u64, Progress>,
    /// History items published in this office.
    published: BTreeSet<u64>,
    schedules: HashMap<String, Option<crate::autonomic::Schedule>>,
    /// Counters: rules fired, jobs fired, executions ended (proposed by this node).
    pub fired: u64,
    pub jobs: u64,
    pub executed: u64,
}

#[derive(Debug, Default)]
struct Progress {
    started_ms: u64,
    /// External steps not asked yet, in order (one runs at a time: a `write` then an
    /// `append` to the same file keep their order), the one running, and the errors of
    /// those that ended.
    externals: std::collections::VecDeque<(usize, Step)>,
    running: Option<usize>,
    external_errors: Vec<(usize, String)>,
    /// Deletions waiting for an undeployment: (index, path).
    deletes: Vec<(usize, String)>,
    errors: Vec<String>,
}

impl Node {
    /// A probe of an instance hosted here hit.
    pub(super) fn probe_hit(&mut self, rec: EventRecord) {
        self.engine.step(engine::Input::Autonomic(rec));
    }

    /// An external step ended.
    pub(super) fn external_done(&mut self, execution: u64, index: usize, error: Option<String>) {
        if let Some(p) = self.auto.carrying.get_mut(&execution) {
            if p.running == Some(index) {
                p.running = None;
                if let Some(e) = error {
                    p.external_errors.push((index, e));
                }
            }
        }
    }

    /// The leader's autonomic round.
    pub(super) fn lead_autonomic(&mut self, now: u64, term: u64) {
        if self.auto.term != term {
            let counters = (self.auto.fired, self.auto.jobs, self.auto.executed);
            self.auto = Lead {
                term,
                scan_all: true,
                ..Lead::default()
            };
            (self.auto.fired, self.auto.jobs, self.auto.executed) = counters;
        }
        match self.engine.take_autonomic_touched() {
            Some(t) => self.auto.watch.extend(t),
            None => self.auto.scan_all = true,
        }
        if self.auto.watch.len() > WATCH_MAX {
            self.auto.scan_all = true;
        }
        let records: Vec<(Kind, String, Entry)> = if std::mem::take(&mut self.auto.scan_all) {
            self.auto.watch.clear();
            let mut all = Vec::new();
            for kind in [Kind::Event, Kind::Operator] {
                for (k, e) in self.engine.autonomic_records(kind) {
                    all.push((kind, k, e));
                }
            }
            // An event's latest occurrence is what a new office looks at: keep only the
            // newest record of each application and event.
            latest_events(all)
        } else {
            let watch = std::mem::take(&mut self.auto.watch);
            watch
                .into_iter()
                .filter_map(|(kind, k)| {
                    let e = self.engine.autonomic_record(kind, &k)?;
                    Some((kind, k, e))
                })
                .collect()
        };
        for (kind, key, e) in records {
            let keep = match kind {
                Kind::Event => self.on_event(&e, now),
                _ if key.starts_with(EXEC_PREFIX) => self.on_exec_request(&key, &e, now),
                _ => false,
            };
            if keep {
                self.auto.watch.insert((kind, key));
            }
        }
        self.fire_jobs(now);
        self.carry_executions(now);
        self.publish_history(term, now);
    }

    fn state(&self) -> Option<&crate::coord::autonomic::Autonomic> {
        self.coord.group.as_ref().map(|g| &g.machine().autonomic)
    }

    /// An event occurrence: the rules it fires. True while a proposal is on its way.
    fn on_event(&mut self, e: &Entry, now: u64) -> bool {
        let Some(rec) = e
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<EventRecord>(v).ok())
        else {
            return false;
        };
        let o = Occurrence {
            trigger: format!("{}:{}:{}", e.origin.node, e.origin.generation, e.seq),
            app: rec.app,
            event: rec.event,
            at_ms: rec.at_ms,
        };
        let Some(state) = self.state() else {
            return false;
        };
        let Some((_, rules)) = self.engine.autonomic_of(&o.app) else {
            return false;
        };
        let fires: Vec<(String, u64, Vec<String>)> = due(rules, &o, &state.rules, now)
            .into_iter()
            .map(|r| {
                let sleep = u64::from(r.sleep_period) * 1000;
                (r.name.clone(), sleep, r.commands.clone())
            })
            .collect();
        let mut waiting = false;
        for (rule, sleep_ms, commands) in fires {
            waiting = true;
            let key = format!("fire\u{0}{}\u{0}{rule}\u{0}{}", o.app, o.trigger);
            if self.pending(&key, now) {
                continue;
            }
            let op = Op::Fire {
                app: o.app.clone(),
                rule,
                trigger: o.trigger.clone(),
                at_ms: now,
                sleep_ms,
                commands,
            };
            if self.propose(Command::Autonomic(op)) {
                self.auto.fired += 1;
            }
        }
        waiting
    }

    /// An operator's `exec`: queued once, then the request is withdrawn.
    fn on_exec_request(&mut self, key: &str, e: &Entry, now: u64) -> bool {
        let id = &key[EXEC_PREFIX.len()..];
        let taken = self
            .state()
            .is_some_and(|s| s.requests.iter().any(|r| r == id));
        if taken {
            self.engine.withdraw_request(key);
            return false;
        }
        let Some(rec) = e
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<ExecRequest>(v).ok())
        else {
            return false;
        };
        if !self.pending(&format!("exec\u{0}{id}"), now) {
            self.propose(Command::Autonomic(Op::Exec {
                app: rec.app,
                request: id.to_string(),
                command: rec.command,
                at_ms: now,
            }));
        }
        true
    }

    /// Jobs whose instant came.
    fn fire_jobs(&mut self, now: u64) {
        let jobs = self.engine.jobs(None);
        for job in jobs {
            let last = self
                .state()
                .and_then(|s| s.jobs.get(&job.id).copied())
                .unwrap_or(job.created_ms);
            let Some(instant) = self.due_instant(&job, last, now) else {
                continue;
            };
            if self.pending(&format!("job\u{0}{}\u{0}{instant}", job.id), now) {
                continue;
            }
            let op = Op::Job {
                app: job.app.clone(),
                job: job.id.clone(),
                name: job.name.clone(),
                instant_ms: instant,
                command: job.command.clone(),
                at_ms: now,
            };
            if self.propose(Command::Autonomic(op)) {
                self.auto.jobs += 1;
            }
        }
    }

    /// The instant a job fires for now, if one passed since `last` (the latest passed).
    fn due_instant(&mut self, job: &JobSpec, last: u64, now: u64) -> Option<u64> {
        let schedule = self
            .auto
            .schedules
            .entry(job.cron.clone())
            .or_insert_with(|| crate::autonomic::parse_cron(&job.cron).ok())
            .as_ref()?;
        let mut instant = schedule.next_after(last).filter(|n| *n <= now)?;
        // Missed instants: only the latest fires.
        for _ in 0..100_000 {
            match schedule.next_after(instant) {
                Some(n) if n <= now => instant = n,
                _ => break,
            }
        }
        Some(instant)
    }

    /// Plans and carries out the queued executions.
    fn carry_executions(&mut self, now: u64) {
        let Some(state) = self.state() else { return };
        let queue: Vec<(u64, Execution)> =
            state.queue.iter().map(|(id, e)| (*id, e.clone())).collect();
        let mut executing: BTreeSet<String> = queue
            .iter()
            .filter(|(_, e)| matches!(e.phase, Phase::Planned(_)))
            .map(|(_, e)| e.app.clone())
            .collect();
        // What this leader carried and is no longer in the state ended.
        let open: BTreeSet<u64> = queue.iter().map(|(id, _)| *id).collect();
        self.auto.carrying.retain(|id, _| open.contains(id));
        for (id, e) in queue {
            match &e.phase {
                Phase::Planned(plan) => self.carry(id, &e, plan, now),
                Phase::Queued => {
                    if executing.contains(&e.app) || executing.len() >= MAX_EXECUTING_APPS {
                        continue;
                    }
                    executing.insert(e.app.clone());
                    if self.pending(&format!("plan\u{0}{id}"), now) {
                        continue;
                    }
                    let plan = self.resolve(&e, now);
                    self.propose(Command::Autonomic(Op::Planned { id, plan }));
                }
            }
        }
    }

    /// Resolves an execution's commands file against the model as this leader sees it.
    fn resolve(&mut self, e: &Execution, now: u64) -> Result<Plan, String> {
        let Some(g) = self.coord.group.as_ref() else {
            return Err("no coordinator".into());
        };
        let m = g.machine();
        // The nearer of the two limits (the mesh's, the application's).
        let mesh = (m.machines(None), m.max_machines as usize);
        let app = (m.machines(Some(&e.app)), m.max_per_app as usize);
        let room = |(used, max): (usize, usize)| max.saturating_sub(used);
        let (used, max) = if room(mesh) <= room(app) { mesh } else { app };
        let Some(model) = self.engine.app_model(&e.app) else {
            return Err(format!("no application named `{}`", e.app));
        };
        let Some((commands, _)) = self.engine.autonomic_of(&e.app) else {
            return Err(format!("no application named `{}`", e.app));
        };
        let rng = &mut self.rng;
        let mut random = || (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
        let mut ctx = plan::Context {
            model: &model,
            commands,
            now_ms: now,
            random: &mut random,
            machines: used,
            max_machines: max,
        };
        let plan = plan::plan(&mut ctx, &e.command)?;
        let size = serde_json::to_vec(&plan).map_or(usize::MAX, |v| v.len());
        if size > MAX_PLAN_BYTES {
            return Err(format!(
                "`{}` resolves to a plan of {size} bytes, more than {MAX_PLAN_BYTES}: split it",
                e.command
            ));
        }
        Ok(plan)
    }

    /// Carries a planned execution on: its steps applied once in this office, the
    /// waiting deletions tried again, the outcome proposed once everything answered.
    fn carry(&mut self, id: u64, e: &Execution, plan: &Plan, now: u64) {
        if !self.auto.carrying.contains_key(&id) {
            let mut p = Progress {
                started_ms: now,
                ..Progress::default()
            };
            for (index, step) in plan.steps.iter().enumerate() {
                let r = match step {
                    Step::Create { path, component } => {
                        self.engine.step_create(&e.app, path, component)
                    }
                    Step::Set { path, target } => self.engine.step_set(&e.app, path, *target),
                    Step::Target { root, target } => self.engine.step_target(&e.app, root, target),
                    Step::Delete { path } => match self.engine.step_delete(&e.app, path) {
                        Ok(true) => Ok(()),
                        Ok(false) => {
                            p.deletes.push((index, path.clone()));
                            Ok(())
                        }
                        Err(err) => Err(err),
                    },
                    Step::Write { .. } | Step::Email { .. } => {
                        p.externals.push_back((index, step.clone()));
                        Ok(())
                    }
                };
                if let Err(err) = r {
                    p.errors
                        .push(format!("step {} ({}): {err}", index + 1, word(step)));
                }
            }
            self.engine.step(engine::Input::Now(now));
            self.auto.carrying.insert(id, p);
        }
        let Some(p) = self.auto.carrying.get_mut(&id) else {
            return;
        };
        let deletes = std::mem::take(&mut p.deletes);
        let started = p.started_ms;
        let mut still = Vec::new();
        let mut errors = Vec::new();
        for (index, path) in deletes {
            match self.engine.step_delete(&e.app, &path) {
                Ok(true) => {}
                Ok(false) if now < started + DELETE_WAIT_MS => still.push((index, path)),
                Ok(false) => errors.push(format!(
                    "step {} (delete): {path} was still deployed after {} s",
                    index + 1,
                    DELETE_WAIT_MS / 1000
                )),
                Err(err) => errors.push(format!("step {} (delete): {err}", index + 1)),
            }
        }
        let Some(p) = self.auto.carrying.get_mut(&id) else {
            return;
        };
        p.deletes = still;
        p.errors.extend(errors);
        if p.running.is_none() {
            if let Some((index, step)) = p.externals.pop_front() {
                p.running = Some(index);
                self.effects.push(Effect::External(External {
                    execution: id,
                    index,
                    app: e.app.clone(),
                    step,
                }));
                return;
            }
        }
        if !p.deletes.is_empty() || p.running.is_some() || !p.externals.is_empty() {
            return;
        }
        let mut errors = p.errors.clone();
        errors.extend(p.external_errors.iter().map(|(i, err)| {
            let w = plan.steps.get(*i).map_or("step", word);
            format!("step {} ({w}): {err}", i + 1)
        }));
        let (result, reason) = match (errors.is_empty(), plan.skipped) {
            (false, _) => (Outcome::Error, Some(errors.join("; "))),
            (true, true) => (Outcome::OkWithSkipped, None),
            (true, false) => (Outcome::Ok, None),
        };
        if self.pending(&format!("done\u{0}{id}"), now) {
            return;
        }
        let op = Op::Executed {
            id,
            result,
            reason,
            ended_ms: now,
        };
        if self.propose(Command::Autonomic(op)) {
            self.auto.executed += 1;
        }
    }

    /// Publishes the ended executions to the mesh, then says so in the log.
    fn publish_history(&mut self, term: u64, now: u64) {
        let Some(state) = self.state() else { return };
        let recent: Vec<crate::coord::autonomic::HistoryItem> =
            state.recent.iter().cloned().collect();
        if recent.is_empty() {
            return;
        }
        let mut ids = Vec::new();
        let mut apps = BTreeSet::new();
        for item in recent {
            if self.auto.published.insert(item.id) {
                let key = history_key(&item.app, item.id);
                let value = serde_json::to_vec(&item).ok();
                self.engine
                    .step(engine::Input::Coordination(Coordination::Publish {
                        key,
                        value,
                        term,
                    }));
                apps.insert(item.app.clone());
            }
            ids.push(item.id);
        }
        for app in apps {
            let keys = self.engine.history_keys(&app);
            let over = keys.len().saturating_sub(HISTORY_KEPT);
            for key in keys.into_iter().take(over) {
                self.engine
                    .step(engine::Input::Coordination(Coordination::Publish {
                        key,
                        value: None,
                        term,
                    }));
            }
        }
        if !self.pending("published", now) {
            self.propose(Command::Autonomic(Op::Published { ids }));
        }
    }

    /// The autonomic counters of this node.
    pub fn autonomic_counts(&self) -> Vec<(&'static str, u64)> {
        let s = self.state();
        vec![
            ("autonomic_rules_fired", self.auto.fired),
            ("autonomic_jobs_fired", self.auto.jobs),
            ("autonomic_executions_ended", self.auto.executed),
            ("autonomic_queued", s.map_or(0, |s| s.queue.len() as u64)),
            ("autonomic_refused", s.map_or(0, |s| s.refused)),
        ]
    }
}

/// The records a new office looks at: every operator record, and of the events only
/// the newest of each application and event name.
fn latest_events(all: Vec<(Kind, String, Entry)>) -> Vec<(Kind, String, Entry)> {
    let mut newest: BTreeMap<(String, String), (u64, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    let mut events = Vec::new();
    for (kind, key, e) in all {
        if kind != Kind::Event {
            if key.starts_with(EXEC_PREFIX) || key.starts_with(JOB_PREFIX) {
                out.push((kind, key, e));
            }
            continue;
        }
        let Some(rec) = e
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<EventRecord>(v).ok())
        else {
            continue;
        };
        let i = events.len();
        let slot = newest
            .entry((rec.app.clone(), rec.event.clone()))
            .or_insert((rec.at_ms, i));
        if rec.at_ms > slot.0 {
            *slot = (rec.at_ms, i);
        }
        events.push((kind, key, e));
    }
    let keep: BTreeSet<usize> = newest.values().map(|(_, i)| *i).collect();
    out.extend(
        events
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep.contains(i))
            .map(|(_, r)| r),
    );
    out
}

fn word(step: &Step) -> &'static str {
    match step {
        Step::Create { .. } => "create",
        Step::Set { .. } => "change state",
        Step::Delete { .. } => "delete",
        Step::Target { .. } => "associate",
        Step::Write { .. } => "write",
        Step::Email { .. } => "email",
    }
}
