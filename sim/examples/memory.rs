//! What one simulated agent costs in memory, per member of the mesh: runs an idle mesh
//! of N agents, then takes agents apart one piece at a time and counts the bytes each
//! piece gave back (a counting allocator; shared data stays with the other agents, so
//! the figures are marginal costs). `cargo run --release -p roboconf-sim --example memory -- 1000`

use roboconf_sim::net::{Cpu, Link};
use roboconf_sim::scenario::{play, Kind, Params};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes the allocator holds now.
fn live() -> usize {
    let s = GLOBAL.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let secs: u64 = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let p = Params {
        agents: n,
        seed: 1,
        duration_s: secs,
        link: Link {
            latency_us: 10_000,
            jitter_us: 5_000,
            loss: 0.0,
            duplicate: 0.0,
        },
        cpu: Cpu::PerNode {
            recv_us: 100,
            send_us: 20,
        },
        duplicate_us: None,
        skew_ms: 50,
        kind: Kind::Idle,
        exporters: 0,
        collect_ms: None,
    };
    let (_, _, mut c) = play(&p, false);
    let total = live();
    println!(
        "N = {n}: {} MB live, {:.0} B per agent per member",
        total / 1_000_000,
        total as f64 / (n * n) as f64
    );
    let sample = 20.min(n);
    let mut parts: Vec<(&str, usize)> = Vec::new();
    let mut add = |name: &'static str, b: usize| match parts.iter_mut().find(|(k, _)| *k == name) {
        Some((_, v)) => *v += b,
        None => parts.push((name, b)),
    };
    for _ in 0..sample {
        let Some(mut node) = c.nodes.pop() else { break };
        let before = live();
        drop(std::mem::take(&mut node.durable));
        add("store (what the node made durable)", before - live());
        let before = live();
        let core = std::mem::replace(
            &mut node.node,
            roboconf_core::node::Node::new(Default::default(), Default::default(), false, 0, 0),
        );
        drop(node);
        add(
            "simulator's per-agent state (ids seen...)",
            before.saturating_sub(live()),
        );
        let before = live();
        let rest = core;
        for (name, b) in rest.dismantle(&live) {
            add(name, b);
        }
        add(
            "the node, all of it (the pieces above and the rest)",
            before - live(),
        );
    }
    for (name, b) in parts {
        println!(
            "  {name:40} {:>6.0} B per member",
            b as f64 / sample as f64 / n as f64
        );
    }
    let before = live();
    let queued = c.queue.len();
    drop(std::mem::take(&mut c.queue));
    println!(
        "  events queued ({queued})                 {:>6.0} B per agent per member",
        (before - live()) as f64 / (n * n) as f64
    );
    let before = live();
    let rest = c.nodes.len();
    drop(std::mem::take(&mut c.nodes));
    println!(
        "  the other {rest} agents                  {:>6.0} B per agent per member",
        (before - live()) as f64 / (rest * n) as f64
    );
    let before = live();
    drop(c);
    println!(
        "  the cluster's own (links, metrics)       {:>6.0} B per agent per member",
        (before - live()) as f64 / (n * n) as f64
    );
}
