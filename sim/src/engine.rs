//! The agent core on a virtual clock: a deterministic harness that runs the real
//! `roboconf_core::engine::Core` with an in-memory store and fake plug-ins (instant,
//! delayed or failing, per component and action), delivering plug-in results in virtual
//! time order. It proves the core is sans-IO, and it is where the simulator grows from.

use roboconf_core::api::{Response, State};
use roboconf_core::engine::{
    Command, Config, Core, Input, InstanceRecord, LoadedApp, Output, PluginRun, RunResult,
};
use roboconf_plugins::Action;
use std::collections::{BTreeMap, BTreeSet};

/// How a fake plug-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Succeeds after this many virtual milliseconds.
    Succeed(u64),
    /// Fails with this exit code after this many virtual milliseconds.
    Fail(i32, u64),
}

/// The store as a map per tree.
pub use crate::node::Store;

/// A core driven on a virtual clock.
pub struct Harness {
    pub core: Core,
    pub now: u64,
    pub store: Store,
    /// (component, action) → behaviour; default: succeed after 1 ms.
    pub behaviours: BTreeMap<(String, Action), Behaviour>,
    /// Plug-in runs in flight: (end time, run id) → the run and its result.
    in_flight: BTreeMap<(u64, u64), (PluginRun, RunResult)>,
    /// Every run started, in order: (time, app, path, action).
    pub trace: Vec<(u64, String, String, Action)>,
    pub replies: BTreeMap<u64, Response>,
    next_id: u64,
}

impl Harness {
    pub fn new(cfg: Config) -> Harness {
        Harness::with_core(Core::new(cfg))
    }

    fn with_core(core: Core) -> Harness {
        let mut h = Harness {
            core,
            now: 0,
            store: Store::new(),
            behaviours: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            trace: Vec::new(),
            replies: BTreeMap::new(),
            next_id: 1,
        };
        h.collect();
        h
    }

    /// A new core restored from this harness's store (as after a crash: runs in flight are
    /// lost), with the same applications.
    pub fn crash_and_restore(&self, cfg: Config, apps: Vec<LoadedApp>) -> Harness {
        let instances: Vec<InstanceRecord> = self
            .store
            .get("instances")
            .map(|t| {
                t.values()
                    .filter_map(|v| serde_json::from_slice(v).ok())
                    .collect()
            })
            .unwrap_or_default();
        let mut h = Harness::with_core(Core::restore(cfg, apps, instances));
        h.store.extend(self.store.clone());
        h.now = self.now;
        h.collect();
        h
    }

    /// Sends an operator command; returns its id (the reply is in `replies`).
    pub fn command(&mut self, command: Command) -> Response {
        let id = self.next_id;
        self.next_id += 1;
        self.core.step(Input::Command { id, command });
        self.collect();
        self.replies
            .remove(&id)
            .unwrap_or_else(|| Response::error("no reply"))
    }

    fn collect(&mut self) {
        for out in self.core.take_outputs() {
            match out {
                Output::Persist(writes) => {
                    crate::node::apply(&mut self.store, writes, &mut Default::default())
                }
                Output::Run(run) => {
                    let comp = run.invocation.component.clone();
                    let b = self
                        .behaviours
                        .get(&(comp, run.action))
                        .copied()
                        .unwrap_or(Behaviour::Succeed(1));
                    let (delay, ok, code) = match b {
                        Behaviour::Succeed(d) => (d, true, 0),
                        Behaviour::Fail(c, d) => (d, false, c),
                    };
                    let at = self.now + delay;
                    self.trace
                        .push((self.now, run.app.clone(), run.path.clone(), run.action));
                    let result = RunResult {
                        ok,
                        code: Some(code),
                        error: (!ok).then(|| format!("exit code {code}")),
                        output: String::new(),
                        at_ms: at,
                        retry: false,
                    };
                    self.in_flight.insert((at, run.run), (*run, result));
                }
                Output::Reply { id, response } => {
                    self.replies.insert(id, response);
                }
                // One node: nothing to spread.
                Output::Event(_)
                | Output::Broadcast(_)
                | Output::Delta { .. }
                | Output::Left
                | Output::Announce(_)
                | Output::Fetch { .. }
                | Output::Differs { .. } => {}
            }
        }
    }

    /// Delivers the next plug-in result; false when none is in flight.
    pub fn step(&mut self) -> bool {
        let Some(((at, run), (_, result))) = self.in_flight.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        self.core.step(Input::PluginDone { run, result });
        self.collect();
        true
    }

    /// Runs until nothing is in flight (bounded).
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if !self.step() {
                return;
            }
        }
    }

    /// The state of every instance of an application.
    pub fn states(&mut self, app: &str) -> BTreeMap<String, State> {
        match self.command(Command::Status {
            app: Some(app.into()),
        }) {
            Response::Status { apps } => apps
                .into_iter()
                .flat_map(|a| a.instances)
                .map(|i| (i.path, i.state))
                .collect(),
            _ => BTreeMap::new(),
        }
    }

    /// The last error of an instance.
    pub fn last_error(&mut self, app: &str, path: &str) -> Option<String> {
        match self.command(Command::Status {
            app: Some(app.into()),
        }) {
            Response::Status { apps } => apps
                .into_iter()
                .flat_map(|a| a.instances)
                .find(|i| i.path == path)
                .and_then(|i| i.last_error),
            _ => None,
        }
    }

    /// Paths of runs of `action`, in the order they started.
    pub fn runs_of(&self, action: Action) -> Vec<String> {
        self.trace
            .iter()
            .filter(|t| t.3 == action)
            .map(|t| t.2.clone())
            .collect()
    }
}

/// Loads an application folder as the runtime would.
pub fn load(dir: &std::path::Path) -> LoadedApp {
    let (model, diags) =
        roboconf_model::app::load_application(dir, roboconf_model::dsl::Limits::default());
    assert!(!roboconf_model::diag::has_errors(&diags), "{diags:?}");
    LoadedApp {
        name: model.name().to_string(),
        version: model
            .descriptor
            .as_ref()
            .and_then(|d| d.version.clone())
            .unwrap_or_default(),
        bundle: dir.to_path_buf(),
        hash: String::new(),
        model,
    }
}

/// A config hosting every root of the app.
pub fn hosting_all(app: &LoadedApp) -> Config {
    let set = &app.model.instances;
    Config {
        hosts: set
            .roots
            .iter()
            .map(|&r| (app.name.clone(), set.path(r)))
            .collect(),
        ..Config::default()
    }
}

/// Set of started paths.
pub fn started(states: &BTreeMap<String, State>) -> BTreeSet<String> {
    states
        .iter()
        .filter(|(_, s)| **s == State::DeployedStarted)
        .map(|(p, _)| p.clone())
        .collect()
}
