//! `roboconf-sim`: plays one scenario on a simulated mesh of real agent cores and prints
//! its figures (a table, or one JSON object with `--json`). The same arguments always
//! print the same output; progress goes to stderr.

use clap::Parser;
use roboconf_sim::net::{Cpu, Link};
use roboconf_sim::scenario::{play, Kind, Params};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "roboconf-sim",
    about = "Deterministic simulation of a Roboconf mesh"
)]
struct Args {
    /// Number of agents.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated time of the scenario, after a 10 s warm-up (e.g. 60s, 10m).
    #[arg(long, default_value = "60s", value_parser = duration_ms)]
    duration: u64,
    /// Mean one-way link latency (e.g. 10ms).
    #[arg(long, default_value = "10ms", value_parser = duration_ms_f)]
    latency: f64,
    /// Uniform jitter around it (±).
    #[arg(long, default_value = "5ms", value_parser = duration_ms_f)]
    jitter: f64,
    /// Probability a message is lost.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Probability a message is delivered twice.
    #[arg(long, default_value_t = 0.0)]
    duplicate: f64,
    /// Largest clock skew between a node and true time (±).
    #[arg(long, default_value = "50ms", value_parser = duration_ms)]
    skew: u64,
    /// idle, steady, churn, partition, isolate, mixed or coordinator.
    #[arg(long, default_value = "steady")]
    scenario: String,
    /// The coordinator's voters (node 0 founds it); 0: none (the `coordinator`
    /// scenario takes 5).
    #[arg(long, default_value_t = 0)]
    voters: u32,
    /// Nodes hosting an exporter.
    #[arg(long, default_value_t = 10)]
    exporters: usize,
    /// Processor time to handle one received message, in µs.
    #[arg(long, default_value_t = 100)]
    recv_us: u64,
    /// Processor time to drop a copy of a gossip message already seen, in µs (default:
    /// `--recv-us`).
    #[arg(long)]
    dup_us: Option<u64>,
    /// Tombstone collection's round (the agent's: 30s), e.g. `2s`: a short run then
    /// sees collections.
    #[arg(long, value_parser = duration_ms)]
    collect_every: Option<u64>,
    /// How long a deletion stands before it is acknowledged (default: twice the round).
    #[arg(long, value_parser = duration_ms)]
    collect_after: Option<u64>,
    /// Processor time to send one message, in µs.
    #[arg(long, default_value_t = 20)]
    send_us: u64,
    /// All agents share this many cores (agents as processes on one machine); 0: each
    /// agent has its own.
    #[arg(long, default_value_t = 0)]
    cores: usize,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// On a violation, look for fewer agents and a shorter scenario that still break an
    /// invariant (more runs), and print how to replay that.
    #[arg(long)]
    shrink: bool,
}

fn duration_ms_f(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        return Err(format!("`{s}`: give a unit (us, ms, s or m)"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(v * scale)
}

fn duration_ms(s: &str) -> Result<u64, String> {
    duration_ms_f(s).map(|v| v.round() as u64)
}

fn main() -> ExitCode {
    let a = Args::parse();
    let Some(kind) = Kind::parse(&a.scenario) else {
        eprintln!(
            "roboconf-sim: unknown scenario `{}` (idle, steady, churn, partition, isolate, mixed, coordinator)",
            a.scenario
        );
        return ExitCode::from(2);
    };
    if a.agents < 2 || !(0.0..=1.0).contains(&a.loss) || !(0.0..=1.0).contains(&a.duplicate) {
        eprintln!("roboconf-sim: --agents must be at least 2, --loss and --duplicate within 0..1");
        return ExitCode::from(2);
    }
    let p = Params {
        agents: a.agents,
        seed: a.seed,
        duration_s: a.duration.div_ceil(1000).max(1),
        link: Link {
            latency_us: (a.latency * 1000.0) as u64,
            jitter_us: (a.jitter * 1000.0) as u64,
            loss: a.loss,
            duplicate: a.duplicate,
        },
        cpu: if a.cores == 0 {
            Cpu::PerNode {
                recv_us: a.recv_us,
                send_us: a.send_us,
            }
        } else {
            Cpu::Shared {
                cores: a.cores,
                recv_us: a.recv_us,
                send_us: a.send_us,
            }
        },
        duplicate_us: a.dup_us,
        skew_ms: a.skew,
        kind,
        exporters: a.exporters,
        collect_ms: a
            .collect_every
            .map(|every| (every, a.collect_after.unwrap_or(2 * every))),
        voters: a.voters,
    };
    let (r, trace, cluster) = play(&p, true);
    if !cluster.coord.elected.is_empty() {
        let mut f = cluster.failovers_ms();
        f.sort_by(|a, b| a.total_cmp(b));
        let q = |x: f64| {
            f.get(((f.len() as f64 - 1.0) * x).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        eprintln!(
            "coordinator: {} leaders elected, {} leader crashes, failover p50 {:.0} ms p99 {:.0} ms max {:.0} ms ({} measured); {} creates, {} terminates, {} machines at the end",
            cluster.coord.elected.len(),
            cluster.coord.leader_crashes.len(),
            q(0.5),
            q(0.99),
            f.last().copied().unwrap_or(f64::NAN),
            f.len(),
            cluster.coord.creates,
            cluster.coord.terminates,
            cluster.coord.machines.len()
        );
        let runs = cluster.executions();
        let count = |origin: &str| runs.iter().filter(|h| h.origin == origin).count();
        let failed: Vec<String> = runs
            .iter()
            .filter_map(|h| h.reason.clone())
            .take(3)
            .collect();
        eprintln!(
            "autonomic: {} events, executions by rule {}, by job {}, by operator {}; {} failed {:?}",
            cluster.coord.events,
            count("rule"),
            count("job"),
            count("operator"),
            runs.iter()
                .filter(|h| h.result == roboconf_core::coord::autonomic::Outcome::Error)
                .count(),
            failed
        );
    }
    // The process ends below: the cluster's memory goes back with it, without freeing
    // every simulated agent's maps one allocation at a time.
    std::mem::forget(cluster);
    if a.json {
        let mut v = serde_json::to_value(&r).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("seed".into(), a.seed.into());
            o.insert("scenario".into(), a.scenario.clone().into());
            o.insert("trace".into(), format!("{trace:016x}").into());
        }
        println!("{v}");
    } else {
        let pc = |p: &roboconf_sim::metrics::Percentiles| {
            format!(
                "p50 {} ms, p99 {} ms, max {} ms ({} samples)",
                p.p50, p.p99, p.max, p.samples
            )
        };
        println!(
            "scenario                  {} (seed {}, {} agents)",
            a.scenario, a.seed, r.nodes
        );
        println!("export propagation        {}", pc(&r.propagation_ms));
        println!("dead-node detection       {}", pc(&r.detection_ms));
        println!(
            "suspicions (false)        {} ({})",
            r.suspicions, r.false_suspicions
        );
        println!("false deaths              {}", r.false_deaths);
        println!(
            "missed detections         {} (restarted first); unfinished changes {}",
            r.missed_detections, r.unfinished
        );
        println!(
            "traffic per node          {} B/s, {} msgs/s",
            r.bytes_per_node_per_s, r.msgs_per_node_per_s
        );
        let kinds: Vec<String> = r
            .bytes_by_kind
            .iter()
            .map(|(k, b)| format!("{k} {b}"))
            .collect();
        println!("  by kind (B/s)           {}", kinds.join(", "));
        println!(
            "convergence after heal    {}",
            pc(&r.convergence_after_heal_ms)
        );
        println!(
            "connections per node      p99 {}, max {} (bound {})",
            r.connections_p99, r.connections_max, r.connections_bound
        );
        println!("tombstones collected      {}", r.collected);
        println!("invariant violations      {}", r.invariant_violations.len());
        for v in &r.invariant_violations {
            println!("  {v}");
        }
        println!("trace                     {trace:016x}");
    }
    if r.invariant_violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "roboconf-sim: invariant violated; replay with --seed {} --scenario {} --agents {} --duration {}s",
            a.seed, a.scenario, a.agents, p.duration_s
        );
        if a.shrink {
            let q = roboconf_sim::scenario::shrink(&p);
            eprintln!(
                "roboconf-sim: shrunk: --seed {} --scenario {} --agents {} --duration {}s also fails",
                q.seed, a.scenario, q.agents, q.duration_s
            );
        }
        ExitCode::from(1)
    }
}
