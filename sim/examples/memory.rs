//! What one simulated agent costs in memory, per member of the mesh: runs an idle mesh
//! of N agents, then takes agents apart one piece at a time and counts the bytes each
//! piece gave back (a counting allocator; shared data stays with the other agents, so
//! the figures are marginal costs). `cargo run --release -p roboconf-sim --example memory -- 1000`

use roboconf_core::engine::Account;
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
        voters: 0,
    };
    let (_, _, mut c) = play(&p, false);
    let total = live();
    println!(
        "N = {n}: {} MB live, {:.0} B per agent per member",
        total / 1_000_000,
        total as f64 / (n * n) as f64
    );
    let sample = 20.min(n);
    let mut account = Account::new(&live);
    for _ in 0..sample {
        let Some(mut node) = c.nodes.pop() else { break };
        account.drop(
            "store (what the node made durable)",
            std::mem::take(&mut node.durable),
        );
        // The node is swapped for an empty one before the rest of the agent goes: what
        // that gives back, the empty one included, is the simulator's own.
        let before = live();
        let core = std::mem::replace(
            &mut node.node,
            roboconf_core::node::Node::new(Default::default(), Default::default(), false, 0, 0),
        );
        drop(node);
        let own = before.saturating_sub(live());
        account
            .parts
            .push(("simulator's per-agent state (ids seen...)", own));
        let before = live();
        core.dismantle(&mut account);
        let all = before.saturating_sub(live());
        account
            .parts
            .push(("the node, all of it (the pieces above and the rest)", all));
    }
    // Summed over the sample, by piece, in the order first seen.
    let mut parts: Vec<(&str, usize)> = Vec::new();
    for (name, b) in account.parts {
        match parts.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => *v += b,
            None => parts.push((name, b)),
        }
    }
    for (name, b) in parts {
        println!(
            "  {name:52} {:>6.0} B per member",
            b as f64 / sample as f64 / n as f64
        );
    }
    let rest = c.nodes.len();
    let mut whole = Account::new(&live);
    whole.drop("events queued", std::mem::take(&mut c.queue));
    whole.drop("the other agents", std::mem::take(&mut c.nodes));
    whole.drop("the cluster's own (links, metrics)", c);
    for (name, b) in whole.parts {
        let per = if name == "the other agents" { rest } else { n };
        println!(
            "  {name:52} {:>6.0} B per agent per member",
            b as f64 / (per * n) as f64
        );
    }
}
