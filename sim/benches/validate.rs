//! Benchmark: parse, resolve and validate a generated application of 200 components and
//! about 10,000 instances (the model issue's figure: <= 100 ms in release, <= 50 MB peak
//! RSS). Run with `cargo bench -p roboconf-sim --bench validate`. Each timed run loads the
//! project from disk as `roboconf validate` does; the peak RSS is measured in a child
//! process that does one validation and nothing else.

use roboconf_model::dsl::Limits;
use roboconf_model::validate::validate_path;
use roboconf_tests::gen::{application, write, Shape};
use std::path::Path;
use std::time::Instant;

const RUNS: usize = 21;

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    if let Ok(dir) = std::env::var("ROBOCONF_BENCH_CHILD") {
        let report = validate_path(Path::new(&dir), Limits::default()).expect("validate");
        assert!(report.valid);
        println!("{}", peak_rss_kib().unwrap_or(0));
        return;
    }
    let dir = std::env::temp_dir().join(format!("roboconf-bench-{}", std::process::id()));
    let files = application(42, Shape::BENCH);
    write(&dir, &files).expect("write the application");
    let bytes: usize = files.values().map(String::len).sum();

    let first = validate_path(&dir, Limits::default()).expect("validate");
    assert!(
        first.valid,
        "the generated application must be valid: {:?}",
        first.diagnostics.first()
    );
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        let r = validate_path(&dir, Limits::default()).expect("validate");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(r.valid);
    }
    times.sort_by(f64::total_cmp);
    let exe = std::env::current_exe().expect("current exe");
    let child = std::process::Command::new(exe)
        .env("ROBOCONF_BENCH_CHILD", &dir)
        .output()
        .expect("child");
    let rss_kib: u64 = String::from_utf8_lossy(&child.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "validate: {} components, {} facets, {} instances, {:.1} KiB of DSL",
        first.summary.components,
        first.summary.facets,
        first.summary.instances,
        bytes as f64 / 1024.0
    );
    println!(
        "validate: {RUNS} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms (budget 100 ms)",
        times[RUNS / 2],
        times[0],
        times[RUNS - 1]
    );
    println!(
        "validate: peak RSS of a process doing one validation: {:.1} MB (budget 50 MB)",
        rss_kib as f64 / 1024.0
    );
}
