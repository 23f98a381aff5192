//! Benchmark: the agent core's own cost per life-cycle transition, without scripts. The
//! real core deploys and starts 1,001 instances (a database, and 100 machines each with
//! an app server importing it and 9 web apps) on the virtual clock with instant fake plug-ins; the time per state change
//! is reported (goal <= 50 µs). Run with `cargo bench -p roboconf-sim --bench engine`.

use roboconf_core::engine::Command;
use roboconf_sim::engine::{hosting_all, load, started, Harness};
use roboconf_tests::gen::{tiers, write};
use std::time::Instant;

const RUNS: usize = 7;

fn main() {
    let dir = std::env::temp_dir().join(format!("roboconf-engine-bench-{}", std::process::id()));
    write(&dir, &tiers(100, 9, false)).expect("write");
    let app = load(&dir);
    let mut per_transition = Vec::new();
    let mut totals = Vec::new();
    let mut transitions = 0;
    for _ in 0..RUNS {
        let mut h = Harness::new(hosting_all(&app));
        let t = Instant::now();
        h.command(Command::AppAdd {
            app: Box::new(app.clone()),
            start: true,
        });
        h.settle();
        let elapsed = t.elapsed();
        let states = h.states("tiers");
        assert_eq!(
            started(&states).len(),
            1102,
            "every instance and root started"
        );
        // Each script run is two state changes (to the transient state and out of it).
        transitions = h.trace.len() * 2;
        totals.push(elapsed.as_secs_f64() * 1000.0);
        per_transition.push(elapsed.as_secs_f64() * 1e6 / transitions as f64);
    }
    let _ = std::fs::remove_dir_all(&dir);
    per_transition.sort_by(f64::total_cmp);
    totals.sort_by(f64::total_cmp);
    println!("engine: 1,001 instances below 101 roots, {transitions} transitions per start-all, {RUNS} runs");
    println!(
        "engine: start-all without scripts: median {:.1} ms (min {:.1}, max {:.1})",
        totals[RUNS / 2],
        totals[0],
        totals[RUNS - 1]
    );
    println!(
        "engine: cost per transition: median {:.1} µs (min {:.1}, max {:.1}); goal 50 µs",
        per_transition[RUNS / 2],
        per_transition[0],
        per_transition[RUNS - 1]
    );
}
