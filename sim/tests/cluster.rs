//! The simulated mesh: one seed gives one run (the whole event trace fingerprinted), the
//! invariants hold over many seeds of mixed faults at N = 50, and they do catch a mesh
//! that cannot converge.

use roboconf_core::mesh::replica::{Entry, Kind as ReplicaKind};
use roboconf_sim::net::{Cpu, Link};
use roboconf_sim::scenario::{run, Kind, Params};

fn params(agents: usize, seed: u64, kind: Kind, duration_s: u64, loss: f64) -> Params {
    Params {
        agents,
        seed,
        duration_s,
        link: Link {
            latency_us: 10_000,
            jitter_us: 5_000,
            loss,
            duplicate: 0.02,
        },
        cpu: Cpu::PerNode {
            recv_us: 100,
            send_us: 20,
        },
        duplicate_us: None,
        collect_ms: Some((2_000, 4_000)),
        voters: 0,
        skew_ms: 50,
        kind,
        exporters: 5,
    }
}

#[test]
fn one_seed_one_run() {
    let p = params(20, 7, Kind::Churn, 20, 0.05);
    let (a, ta) = run(&p, false);
    let (b, tb) = run(&p, false);
    assert_eq!(ta, tb);
    assert_eq!(a, b);
    let (_, tc) = run(&params(20, 8, Kind::Churn, 20, 0.05), false);
    assert_ne!(ta, tc, "another seed, another run");
    assert!(a.propagation_ms.samples > 0, "{a:?}");
}

/// Runs `check` for seeds `0..seeds` on two threads (the machine's two cores, each taking
/// every other seed); the failures it reported, in one list.
fn over_seeds(seeds: u64, check: impl Fn(u64) -> Vec<String> + Sync) -> Vec<String> {
    let check = &check;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2u64)
            .map(|w| scope.spawn(move || (w..seeds).step_by(2).flat_map(check).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec!["a worker panicked".into()])
            })
            .collect()
    })
}

fn seeds(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn invariants_hold_over_many_seeds_of_mixed_faults() {
    let failed = over_seeds(seeds("SIM_SEEDS", 200), |seed| {
        let p = params(50, seed, Kind::Mixed, 20, 0.05);
        let (r, _) = run(&p, false);
        if r.invariant_violations.is_empty() {
            return Vec::new();
        }
        let q = roboconf_sim::scenario::shrink(&p);
        vec![format!(
            "seed {seed}: {:?} (replay: roboconf-sim --agents 50 --seed {seed} --scenario mixed --duration 20s --loss 0.05 --duplicate 0.02 --exporters 5; shrunk: --agents {} --duration {}s)",
            r.invariant_violations, q.agents, q.duration_s
        )]
    });
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The coordinator's invariants (one leader per term, terms and votes never going back,
/// machine operations only for intents committed in the leader's term, one machine per
/// root, no machine without an intent once calm) over seeds of leader crashes in the
/// middle of launches, a partition and 5% loss, with 5 voters among 20 nodes.
#[test]
/// With the autonomic invariants (`cluster::autonomic`): each event occurrence fires each
/// rule at most once, never inside its sleep period, each job instant at most once, the
/// machine limit never exceeded.
fn the_coordinator_s_invariants_hold_over_many_seeds() {
    let failed = over_seeds(seeds("SIM_COORD_SEEDS", 60), |seed| {
        let p = params(20, seed, Kind::Coordinator, 40, 0.05);
        let (r, _, c) = roboconf_sim::scenario::play(&p, false);
        let mut failed = Vec::new();
        if !r.invariant_violations.is_empty() {
            failed.push(format!(
                "seed {seed}: {:?} (replay: roboconf-sim --agents 20 --seed {seed} --scenario coordinator --duration 40s --loss 0.05 --duplicate 0.02 --exporters 5)",
                r.invariant_violations
            ));
        }
        if c.coord.elected.is_empty() {
            failed.push(format!("seed {seed}: no leader was ever elected"));
        }
        if c.coord.creates == 0 {
            failed.push(format!("seed {seed}: no machine was ever created"));
        }
        // The autonomic invariants are not vacuous: rules, jobs and operators ran
        // commands files.
        let runs = c.executions();
        for origin in ["rule", "job", "operator"] {
            if !runs.iter().any(|h| h.origin == origin) {
                failed.push(format!("seed {seed}: no execution by {origin}"));
            }
        }
        failed
    });
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn a_mesh_that_cannot_talk_is_caught_and_shrunk() {
    let p = params(12, 1, Kind::Steady, 8, 1.0);
    let (r, _) = run(&p, false);
    assert!(
        r.invariant_violations
            .iter()
            .any(|v| v.starts_with("convergence")),
        "{r:?}"
    );
    let q = roboconf_sim::scenario::shrink(&p);
    assert!(q.agents < p.agents && q.duration_s < p.duration_s, "{q:?}");
    assert!(!run(&q, false).0.invariant_violations.is_empty());
}

/// The watch over §12.2 does catch an importer left started with no exporter: the only
/// exporter's host vanishes without anyone being told, and time passes with nothing run.
#[test]
fn an_importer_left_without_its_exporter_is_caught() {
    use roboconf_core::engine::Command;
    use roboconf_sim::cluster::Cluster;
    use roboconf_sim::scenario::{application, Watch, APP};
    let app = application(1);
    let hosts = vec![
        vec![(APP.to_string(), "/vm0".to_string())],
        vec![(APP.to_string(), "/vm1".to_string())],
        Vec::new(),
    ];
    let link = params(3, 1, Kind::Steady, 1, 0.0).link;
    let cpu = Cpu::PerNode {
        recv_us: 100,
        send_us: 20,
    };
    let mut c = Cluster::new(3, 1, link, cpu, 0, hosts, vec![app.clone()]);
    c.boot();
    c.run_until(6_000_000);
    c.command(
        0,
        Command::AppAdd {
            app: Box::new(app),
            start: true,
        },
    );
    c.run_until(12_000_000);
    let mut watch = Watch::default();
    assert!(
        watch.step(&c).is_empty(),
        "all is well while the exporter runs"
    );
    let web = c.nodes[1]
        .node
        .engine()
        .app(APP)
        .and_then(|a| a.insts.get("/vm1/web"));
    assert_eq!(
        web.map(|i| i.rec.state),
        Some(roboconf_core::api::State::DeployedStarted)
    );
    c.nodes[0].up = false;
    assert!(watch.step(&c).is_empty(), "within the detection bound");
    c.queue.now += 16_000_000;
    let v = watch.step(&c);
    assert!(
        v.iter().any(|v| v.contains("/vm1/web")),
        "an orphaned importer is a violation: {v:?}"
    );
}

/// An application's record is written by the node it was added on and by the nodes
/// that host its roots, not by every node that fetched it (which would gossip N records
/// to N nodes for each application added); every node still holds and runs it.
#[test]
fn only_the_adder_and_the_hosts_share_an_application() {
    let p = params(40, 3, Kind::Steady, 10, 0.0);
    let (report, _, cluster) = roboconf_sim::scenario::play(&p, false);
    assert!(report.invariant_violations.is_empty(), "{report:?}");
    let hosts = p.exporters + 1;
    for node in &cluster.nodes {
        let writers: std::collections::BTreeSet<_> = node
            .durable
            .get("replica")
            .into_iter()
            .flat_map(|t| t.values())
            .filter_map(|v| Entry::from_stored(v))
            .filter(|e| e.kind == ReplicaKind::Application)
            .map(|e| e.origin)
            .collect();
        assert!(
            !writers.is_empty() && writers.len() <= hosts,
            "{}: {} writers of the application's record",
            node.name,
            writers.len()
        );
        assert!(
            node.node
                .engine()
                .app(roboconf_sim::scenario::APP)
                .is_some(),
            "{} has not registered the application",
            node.name
        );
    }
}

/// Members crash and come back while tombstones are collected (rounds every 2 s): every
/// one that was down across a collection catches up without holding any withdrawn export
/// again (the `no_resurrection` invariant), and collections did happen.
#[test]
fn members_down_across_a_collection_catch_up_without_resurrection() {
    for seed in [1, 2, 3] {
        let p = params(30, seed, Kind::Churn, 30, 0.0);
        let (r, _) = run(&p, false);
        assert!(r.collected > 0, "seed {seed}: nothing collected: {r:?}");
        assert!(
            r.invariant_violations.is_empty(),
            "seed {seed}: {:?}",
            r.invariant_violations
        );
    }
}

/// A node cut off alone declares every other member down, with no one to tell; once the
/// link is back none of those verdicts reaches the others (they would withdraw live
/// members' exports mesh-wide): no live member is declared down by anyone, and the mesh
/// converges after the heal. Over seeds, the cut node drawn from each.
#[test]
fn a_node_cut_off_alone_takes_no_live_member_down() {
    let failed = over_seeds(6, |seed| {
        let agents = if seed % 2 == 0 { 8 } else { 30 };
        let (r, _) = run(&params(agents, seed, Kind::Isolate, 45, 0.0), false);
        let mut failed = Vec::new();
        if r.false_deaths > 0 || !r.invariant_violations.is_empty() {
            failed.push(format!(
                "seed {seed}, N = {agents}: {} false deaths, {:?}",
                r.false_deaths, r.invariant_violations
            ));
        }
        failed
    });
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
