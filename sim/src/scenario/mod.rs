//! Scenarios as lists of timed operations, and the run that plays one: the cluster boots,
//! one node adds the application (one exporter per hosting node, a balancer importing
//! them), a warm-up lets it deploy everywhere, then the scenario's operations run —
//! export churn by operator commands from random nodes, crashes and restarts (with and
//! without the disk), partitions and heals — then faults stop and the invariants are
//! checked (`invariants.rs`).

use crate::cluster::{Cluster, Ev};
use crate::metrics::Report;
use crate::net::{Cpu, Link, Micros};
use roboconf_core::engine::Command;
use roboconf_core::mesh::replica::Origin;
use roboconf_core::rng::Rng;

use crate::invariants::delivered;
pub use crate::invariants::{check, no_resurrection, Watch};

mod app;
mod apply;
pub use app::{application, application_with, APP};
pub use apply::apply;

/// Seconds of warm-up before the scenario (the application spreads and starts).
const WARM_UP_S: u64 = 10;
/// Seconds after the faults stop for the mesh to settle before the final checks.
const SETTLE_S: u64 = 20;
/// After the settling time, how long a write made just before the end has to reach
/// every live node (anti-entropy's longest round is 2 s: two of them, and some).
pub(crate) const CONVERGE_WITHIN_MS: u64 = 5_000;
/// Simulated seconds between progress lines.
const SAY_EVERY_S: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Nothing happens after the warm-up: the mesh's own traffic (membership,
    /// anti-entropy) is what is measured.
    Idle,
    /// Export churn only.
    Steady,
    /// Export churn, and crashes with restarts (half of them losing the disk).
    Churn,
    /// Export churn, and a split in two halves healed later.
    Partition,
    /// Export churn, and one node cut off alone (long enough for it and the others to
    /// declare each other down), healed later.
    Isolate,
    /// All of the above, drawn from the seed.
    Mixed,
    /// The coordinator: machines launched and retired for roots deployed and
    /// undeployed, the leader crashed in the middle of launches, a partition, loss.
    Coordinator,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "idle" => Kind::Idle,
            "steady" => Kind::Steady,
            "churn" => Kind::Churn,
            "partition" => Kind::Partition,
            "isolate" => Kind::Isolate,
            "mixed" => Kind::Mixed,
            "coordinator" => Kind::Coordinator,
            _ => return None,
        })
    }
}

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Params {
    pub agents: usize,
    pub seed: u64,
    pub duration_s: u64,
    pub link: Link,
    pub cpu: Cpu,
    /// Processor time for a copy of a gossip message the node has already seen (the
    /// real agent's gossipsub drops it by its id, before decoding); `None`: the same as
    /// a new message.
    pub duplicate_us: Option<u64>,
    pub skew_ms: u64,
    pub kind: Kind,
    /// Nodes hosting an exporter (the first ones).
    pub exporters: usize,
    /// Tombstone collection's round and age in ms (`None`: the agent's, 30 s and 60 s).
    pub collect_ms: Option<(u64, u64)>,
    /// The coordinator's voters (0: node 0 founds no coordinator; the `coordinator`
    /// scenario takes 5).
    pub voters: u32,
}

/// Roots of the `coordinator` scenario that the coordinator launches machines for.
const BOXES: usize = 4;

/// What a scenario does at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Node `from` sets exporter `exporter` to started or deployed.
    Toggle {
        from: usize,
        exporter: usize,
        start: bool,
    },
    Crash {
        node: usize,
        lose_disk: bool,
    },
    Restart {
        node: usize,
    },
    /// Node `from` creates exporter `name` on the machine of exporter `host` and starts
    /// it (scale-out), or stops and deletes it (scale-in).
    Scale {
        from: usize,
        host: usize,
        name: String,
        out: bool,
    },
    /// A node leaves the mesh (the `leave` command); it comes back at the calm.
    Leave {
        node: usize,
    },
    Split {
        side: Vec<usize>,
    },
    Heal,
    /// Faults are over: restart every crashed node, heal.
    Calm,
    /// Crash the coordinator's leader (if there is one), restart it `after` µs later.
    CrashLeader {
        after: Micros,
    },
    /// Node `from` starts or undeploys the root `/box<k>` (the coordinator launches or
    /// retires its machine).
    Box {
        from: usize,
        k: usize,
        deploy: bool,
    },
    /// Node `from` publishes an autonomic event (a probe hit).
    Event {
        from: usize,
        event: &'static str,
    },
    /// Node `from` asks the coordinator to run a commands file (`roboconf exec`).
    Exec {
        from: usize,
        command: &'static str,
    },
    /// Node `from` schedules a job (`roboconf job add`).
    Job {
        from: usize,
    },
}

/// The operations of a scenario, timed (µs), from the seed.
pub fn plan(p: &Params, rng: &mut Rng) -> Vec<(Micros, Op)> {
    let mut ops = Vec::new();
    let start = WARM_UP_S * 1_000_000;
    let end = start + p.duration_s * 1_000_000;
    let n = p.agents;
    let exporters = p.exporters.min(n).max(1);
    let kind = match p.kind {
        Kind::Mixed => [Kind::Steady, Kind::Churn, Kind::Partition][rng.below(3)],
        k => k,
    };
    // Export churn: each exporter stopped and started again about every 10 s.
    // (A quarter second off the whole seconds the checks run at.)
    let mut t = if kind == Kind::Idle {
        end
    } else {
        start + 250_000
    };
    let gap = 10_000_000 / exporters as u64;
    while t + 1_000_000 < end {
        let exporter = rng.below(exporters);
        ops.push((
            t,
            Op::Toggle {
                from: rng.below(n),
                exporter,
                start: false,
            },
        ));
        ops.push((
            t + 500_000,
            Op::Toggle {
                from: rng.below(n),
                exporter,
                start: true,
            },
        ));
        t += gap.max(1_000_000);
    }
    // Scale-out and scale-in: an exporter added on an exporter's machine, removed 5 s
    // later, every 15 s.
    if kind != Kind::Idle {
        let mut t = start + 3_250_000;
        let mut k = 0;
        while t + 6_000_000 < end {
            let host = rng.below(exporters);
            let name = format!("x{k}");
            k += 1;
            let from = rng.below(n);
            ops.push((
                t,
                Op::Scale {
                    from,
                    host,
                    name: name.clone(),
                    out: true,
                },
            ));
            ops.push((
                t + 5_000_000,
                Op::Scale {
                    from: rng.below(n),
                    host,
                    name,
                    out: false,
                },
            ));
            t += 15_000_000;
        }
    }
    match kind {
        Kind::Coordinator => {
            let mut t = start + 500_000;
            while t + 2_000_000 < end {
                ops.push((
                    t,
                    Op::Box {
                        from: rng.below(n),
                        k: rng.below(BOXES),
                        deploy: rng.chance(0.6),
                    },
                ));
                t += 1_000_000 + rng.below(2_000_000) as u64;
            }
            // Autonomic: load events (high more often than low, so the machine limit is
            // reached), an operator's exec now and then, a job every 5 s.
            let mut t = start + 700_000;
            while t + 2_000_000 < end {
                let event = if rng.chance(0.6) {
                    "load-high"
                } else {
                    "load-low"
                };
                ops.push((
                    t,
                    Op::Event {
                        from: rng.below(n),
                        event,
                    },
                ));
                t += 300_000 + rng.below(1_500_000) as u64;
            }
            let mut t = start + 1_300_000;
            while t + 2_000_000 < end {
                ops.push((
                    t,
                    Op::Exec {
                        from: rng.below(n),
                        command: "tick",
                    },
                ));
                t += 5_000_000 + rng.below(5_000_000) as u64;
            }
            ops.push((start + 100_000, Op::Job { from: rng.below(n) }));
            // The first crash once the voters are in place.
            let mut t = start + 8_000_000;
            while t + 8_000_000 < end {
                let after = 2_000_000 + rng.below(4_000_000) as u64;
                ops.push((t, Op::CrashLeader { after }));
                t += 7_000_000 + rng.below(4_000_000) as u64;
            }
            if p.duration_s >= 30 {
                let side: Vec<usize> = (0..n).filter(|_| rng.chance(0.5)).collect();
                ops.push((start + (end - start) / 2, Op::Split { side }));
                ops.push((start + (end - start) / 2 + 6_000_000, Op::Heal));
            }
        }
        Kind::Churn => {
            // A node that is not an exporter's host leaves gracefully, every 20 s.
            let mut t = start + 7_250_000;
            while t + 2_000_000 < end && n > exporters + 2 {
                let node = exporters + 1 + rng.below(n - exporters - 1);
                ops.push((t, Op::Leave { node }));
                t += 20_000_000;
            }
            let mut t = start + 2_000_000;
            while t + 8_000_000 < end {
                // Half the crashes hit an exporter's host: their detection is measured.
                let node = if rng.chance(0.5) {
                    rng.below(exporters)
                } else {
                    rng.below(n)
                };
                ops.push((
                    t,
                    Op::Crash {
                        node,
                        lose_disk: rng.chance(0.5),
                    },
                ));
                ops.push((
                    t + 3_000_000 + rng.below(5_000_000) as u64,
                    Op::Restart { node },
                ));
                t += 5_000_000 + rng.below(5_000_000) as u64;
            }
        }
        Kind::Partition => {
            let mut side: Vec<usize> = (0..n).filter(|_| rng.chance(0.5)).collect();
            if side.is_empty() {
                side.push(n - 1);
            }
            let span = end - start;
            ops.push((start + span / 3, Op::Split { side }));
            ops.push((start + 2 * span / 3, Op::Heal));
        }
        Kind::Isolate => {
            let side = vec![rng.below(n)];
            let span = end - start;
            ops.push((start + span / 3, Op::Split { side }));
            ops.push((start + 2 * span / 3, Op::Heal));
        }
        _ => {}
    }
    ops.push((end, Op::Calm));
    ops.sort_by_key(|(t, _)| *t);
    ops
}

/// Plays a scenario; returns its report and the fingerprint of its whole event trace.
pub fn run(p: &Params, progress: bool) -> (Report, u64) {
    let (report, trace, _cluster) = play(p, progress);
    (report, trace)
}

/// `run`, handing back the cluster as it ended: a process that exits next may skip
/// freeing it (millions of small allocations: ≈ 8 s at N = 1,000).
pub fn play(p: &Params, progress: bool) -> (Report, u64, Cluster) {
    let mut rng = Rng::new(p.seed);
    let exporters = p.exporters.min(p.agents.saturating_sub(1)).max(1);
    let voters = match (p.kind, p.voters) {
        (Kind::Coordinator, 0) => 5,
        (_, v) => v,
    };
    let boxes = if p.kind == Kind::Coordinator {
        BOXES
    } else {
        0
    };
    let app = application_with(exporters, boxes);
    let hosts: Vec<Vec<(String, String)>> = (0..p.agents)
        .map(|k| {
            if k <= exporters {
                vec![(APP.to_string(), format!("/vm{k}"))]
            } else {
                Vec::new()
            }
        })
        .collect();
    let mut c = Cluster::new(
        p.agents,
        rng.next_u64(),
        p.link,
        p.cpu.clone(),
        p.skew_ms,
        hosts,
        vec![app.clone()],
    );
    if boxes > 0 {
        // The boxes, and one machine more for the rules to launch: they reach it.
        c.coord.limit = boxes + 1;
    }
    if let Some((every, after)) = p.collect_ms {
        c.compress_collection(every, after);
    }
    c.cpu.duplicate_us = p.duplicate_us;
    c.boot();
    let mut app = Some(app);
    let ops = plan(p, &mut rng);
    for (t, op) in ops {
        c.queue.at(t, Ev::Op(op));
    }
    let warm = WARM_UP_S * 1_000_000;
    // Wall time only for the progress lines (stderr); nothing in the run reads it.
    let started = std::time::Instant::now();
    let total_s = WARM_UP_S + p.duration_s + SETTLE_S;
    let say = |t: Micros, c: &Cluster| {
        if progress && (t / 1_000_000).is_multiple_of(SAY_EVERY_S) {
            eprintln!(
                "roboconf-sim: {} s simulated of {total_s} in {:.1} s, {} events queued",
                t / 1_000_000,
                started.elapsed().as_secs_f64(),
                c.queue.len()
            );
        }
    };
    let mut t = 0;
    while t < warm {
        t += 1_000_000;
        c.run_until(t);
        // Once the fleet is up, one node adds the application.
        if t >= crate::cluster::BOOT_SPREAD_US {
            if let Some(app) = app.take() {
                if voters > 0 {
                    c.found_coordinator(0, voters);
                }
                c.command(
                    0,
                    Command::AppAdd {
                        app: Box::new(app),
                        start: true,
                    },
                );
            }
        }
        say(t, &c);
    }
    c.metrics.start_measuring();
    let end = warm + p.duration_s * 1_000_000;
    let mut violations = Vec::new();
    t = warm;
    let mut watch = Watch::default();
    while t < end + SETTLE_S * 1_000_000 {
        t += 1_000_000;
        c.run_until(t);
        violations.extend(watch.step(&c));
        if !violations.is_empty() {
            break;
        }
        if let Some(h) = c.healed_at {
            if c.converged() {
                c.metrics.convergence_after_heal_us.push(c.queue.now - h);
                c.healed_at = None;
            }
        }
        say(t, &c);
    }
    // Convergence is eventual and the mesh never stops writing for good (rounds of
    // tombstone collection, observed states): what every live node wrote up to the end
    // must reach every live node within `CONVERGE_WITHIN_MS` after it.
    let written: Vec<(usize, Origin, u64)> = c
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.up)
        .map(|(k, n)| {
            let r = n.node.engine().replica();
            (k, r.origin().clone(), r.watermark(r.origin()))
        })
        .collect();
    let give_up = c.queue.now + CONVERGE_WITHIN_MS * 1000;
    while c.queue.now < give_up && !delivered(&c, &written) {
        let next = c.queue.now + 100_000;
        c.run_until(next);
    }
    let traffic_s = (c.queue.now.max(end + SETTLE_S * 1_000_000) - warm) as f64 / 1e6;
    if std::env::var_os("SIM_DEBUG").is_some() {
        for (k, n) in c.nodes.iter().enumerate() {
            eprintln!(
                "debug: n{k} up {} sync {:?} conns {:?} node-connected {:?} digest {} members {:?}",
                n.up,
                n.node.sync_counts(),
                n.conns,
                n.node.connected(),
                &n.node.engine().digest_hash()[..8],
                n.node
                    .engine()
                    .member_liveness()
                    .map(|(id, l)| format!("{id}:{l:?}"))
                    .collect::<Vec<_>>()
            );
        }
    }
    violations.extend(check(&c, &written));
    if voters > 0 {
        violations.extend(c.coord.violations.iter().cloned());
        if boxes > 0 {
            violations.extend(c.check_machines());
            violations.extend(c.check_autonomic());
        }
    }
    if c.healed_at.is_some() {
        violations.push("the mesh did not converge after the heal".into());
    }
    let mut report = c.metrics.report(p.agents, traffic_s, violations);
    (report.connections_max, report.connections_p99) = c.connection_counts();
    let policy = roboconf_core::node::PeerSettings::default();
    report.connections_bound = policy.target(p.agents) + policy.slack;
    report.collected = c
        .nodes
        .iter()
        .filter(|n| n.up)
        .map(|n| n.node.engine().collected())
        .sum();
    let trace = c.fingerprint();
    (report, trace, c)
}

/// A smaller run that still breaks an invariant: the agents, then the scenario's time,
/// halved while a violation remains (each candidate is one more deterministic run; the
/// seed stays, so the operations are drawn the same way, fewer of them).
pub fn shrink(p: &Params) -> Params {
    let mut best = p.clone();
    loop {
        let mut smaller = Vec::new();
        if best.agents / 2 >= 3 {
            let mut q = best.clone();
            q.agents /= 2;
            smaller.push(q);
        }
        if best.duration_s / 2 >= 1 {
            let mut q = best.clone();
            q.duration_s /= 2;
            smaller.push(q);
        }
        match smaller
            .into_iter()
            .find(|q| !run(q, false).0.invariant_violations.is_empty())
        {
            Some(q) => best = q,
            None => return best,
        }
    }
}
