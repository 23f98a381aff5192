//! The real agent core deploys `examples/lamp` on a virtual clock with fake plug-ins:
//! start-all in parent-before-child order, imports gating starts, cascades when an
//! exporter stops, `update` once per changed import, failures keeping the previous state,
//! undeploy reversing deploy, and a crash in the middle of a start-all converging without
//! repeating completed steps.

use roboconf_core::api::{Desired, Response, State};
use roboconf_core::engine::Command;
use roboconf_plugins::Action;
use roboconf_sim::engine::{hosting_all, load, started, Behaviour, Harness};
use std::path::PathBuf;

fn lamp() -> roboconf_core::engine::LoadedApp {
    load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/lamp"))
}

fn started_lamp() -> Harness {
    let app = lamp();
    let mut h = Harness::new(hosting_all(&app));
    let r = h.command(Command::AppAdd {
        app: Box::new(app),
        start: true,
    });
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    h.settle();
    h
}

#[test]
fn start_all_reaches_started_parents_first() {
    let mut h = started_lamp();
    let states = h.states("lamp");
    assert_eq!(started(&states).len(), 8, "{states:?}");
    // Deploys before starts of the same instance; Db and Apps before the LB (imports).
    let starts = h.runs_of(Action::Start);
    let pos = |p: &str| starts.iter().position(|x| x == p).unwrap_or(usize::MAX);
    assert!(pos("/vm-db/db") < pos("/vm-app-1/app-1"));
    assert!(pos("/vm-app-1/app-1") < pos("/vm-lb/lb"));
    assert_eq!(h.runs_of(Action::Deploy).len(), 4);
    assert_eq!(starts.len(), 4);
}

#[test]
fn importers_wait_unresolved_and_cascade() {
    let mut h = started_lamp();
    // Stopping the database cascades: apps lose a mandatory import, then the LB.
    let r = h.command(Command::InstanceSet {
        app: "lamp".into(),
        path: "/vm-db/db".into(),
        target: Desired::Deployed,
    });
    assert!(matches!(r, Response::Ok { .. }));
    h.settle();
    let s = h.states("lamp");
    assert_eq!(s["/vm-db/db"], State::DeployedStopped);
    assert_eq!(s["/vm-app-1/app-1"], State::Unresolved);
    assert_eq!(s["/vm-app-2/app-2"], State::Unresolved);
    assert_eq!(s["/vm-lb/lb"], State::Unresolved);
    // Starting it again restores everything.
    h.command(Command::InstanceSet {
        app: "lamp".into(),
        path: "/vm-db/db".into(),
        target: Desired::Started,
    });
    h.settle();
    assert_eq!(started(&h.states("lamp")).len(), 8);
}

#[test]
fn an_import_change_runs_update_once() {
    let mut h = started_lamp();
    let before = h.runs_of(Action::Update).len();
    // A third app server: the LB runs `update` once for it, and nothing else does.
    h.command(Command::InstanceCreate {
        app: "lamp".into(),
        path: "/vm-app-1/app-3".into(),
        component: "App".into(),
    });
    h.command(Command::InstanceSet {
        app: "lamp".into(),
        path: "/vm-app-1/app-3".into(),
        target: Desired::Started,
    });
    h.settle();
    let updates: Vec<String> = h.runs_of(Action::Update).into_iter().skip(before).collect();
    assert_eq!(updates, vec!["/vm-lb/lb".to_string()]);
    assert_eq!(h.states("lamp")["/vm-app-1/app-3"], State::DeployedStarted);
}

#[test]
fn a_failed_script_keeps_the_previous_state_and_the_error() {
    let app = lamp();
    let mut h = Harness::new(hosting_all(&app));
    h.behaviours
        .insert(("Db".into(), Action::Start), Behaviour::Fail(3, 5));
    h.command(Command::AppAdd {
        app: Box::new(app),
        start: true,
    });
    h.settle();
    let s = h.states("lamp");
    assert_eq!(s["/vm-db/db"], State::DeployedStopped);
    assert_eq!(s["/vm-app-1/app-1"], State::Unresolved);
    assert!(h
        .last_error("lamp", "/vm-db/db")
        .is_some_and(|e| e.contains("start failed")));
    // Not retried by itself; the operator's next command retries.
    assert_eq!(
        h.runs_of(Action::Start)
            .iter()
            .filter(|p| *p == "/vm-db/db")
            .count(),
        1
    );
    h.behaviours.clear();
    h.command(Command::InstanceSet {
        app: "lamp".into(),
        path: "/vm-db/db".into(),
        target: Desired::Started,
    });
    h.settle();
    assert_eq!(started(&h.states("lamp")).len(), 8);
    assert_eq!(h.last_error("lamp", "/vm-db/db"), None);
}

#[test]
fn undeploy_reverses_deploy() {
    let mut h = started_lamp();
    h.command(Command::AppSet {
        name: "lamp".into(),
        target: Desired::NotDeployed,
    });
    h.settle();
    let s = h.states("lamp");
    for (p, st) in &s {
        let root = p.matches('/').count() == 1;
        assert_eq!(
            *st,
            if root {
                State::DeployedStarted
            } else {
                State::NotDeployed
            },
            "{p}"
        );
    }
    // Children stop before they are undeployed, and the LB stops before the apps go.
    let stops = h.runs_of(Action::Stop);
    assert_eq!(stops.len(), 4);
    assert_eq!(h.runs_of(Action::Undeploy).len(), 4);
    let r = h.command(Command::AppRemove {
        name: "lamp".into(),
    });
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
}

#[test]
fn a_crash_mid_start_converges_without_repeating_completed_steps() {
    let app = lamp();
    let cfg = hosting_all(&app);
    let mut h = Harness::new(cfg.clone());
    h.command(Command::AppAdd {
        app: Box::new(app.clone()),
        start: true,
    });
    // Deliver a few results, then crash with runs in flight.
    for _ in 0..5 {
        h.step();
    }
    let done_before: Vec<(String, Action)> = h.trace.iter().map(|t| (t.2.clone(), t.3)).collect();
    let mut h2 = h.crash_and_restore(cfg, vec![app]);
    h2.settle();
    assert_eq!(started(&h2.states("lamp")).len(), 8);
    // Every step ran once overall, except those interrupted by the crash (run again).
    let after: Vec<(String, Action)> = h2.trace.iter().map(|t| (t.2.clone(), t.3)).collect();
    let all: Vec<(String, Action)> = done_before.iter().chain(after.iter()).cloned().collect();
    let mut seen = std::collections::BTreeMap::new();
    for k in &all {
        *seen.entry(k.clone()).or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| k.clone())
        .collect();
    let interrupted = done_before.len() - 5;
    assert!(
        repeated.len() <= interrupted,
        "repeated {repeated:?}, interrupted {interrupted}"
    );
}

#[test]
fn random_ports_are_the_lowest_in_range_not_forbidden() {
    let app = lamp();
    let mut cfg = hosting_all(&app);
    cfg.port_range = (20_000, 20_010);
    cfg.forbidden_ports = [20_000, 20_001, 20_003].into();
    let mut h = Harness::new(cfg);
    let r = h.command(Command::AppAdd {
        app: Box::new(app),
        start: true,
    });
    assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    h.settle();
    let Response::Status { apps } = h.command(Command::Status {
        app: Some("lamp".into()),
    }) else {
        panic!("no status");
    };
    let port = |path: &str| {
        apps.iter()
            .flat_map(|a| &a.instances)
            .find(|i| i.path == path)
            .and_then(|i| i.exports.get("App.port").cloned())
            .unwrap_or_default()
    };
    assert_eq!(port("/vm-app-1/app-1"), "20002");
    assert_eq!(port("/vm-app-2/app-2"), "20004");
}
