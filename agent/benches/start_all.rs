//! Benchmark with a real agent process: start-all of 1,001 instances whose scripts are
//! `exit 0` (goal <= 5 s), `roboconf status --json` on them (goal <= 100 ms), and the
//! agent's idle RSS (goal <= 20 MB). Medians of several runs, each on a fresh data dir.
//! Run with `cargo bench -p roboconf-agent --bench start_all`.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");
const RUNS: usize = 3;

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("roboconf")
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn started(data: &Path) -> usize {
    let o = cli(data, &["status", "tiers", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
    v["instances"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|i| i["state"] == "DEPLOYED_STARTED")
                .count()
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let machines = 100;
    let total_started = 1 + machines * 10 + machines + 1;
    let mut start_all = Vec::new();
    let mut status = Vec::new();
    let mut rss = Vec::new();
    for run in 0..RUNS {
        let root =
            std::env::temp_dir().join(format!("roboconf-start-all-{}-{run}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let app = root.join("app");
        roboconf_tests::gen::write(&app, &roboconf_tests::gen::tiers(machines, 9, true))
            .expect("write app");
        let hosts: Vec<String> = (0..=machines)
            .map(|m| format!("\"tiers:/vm{m}\""))
            .collect();
        let cfg = root.join("agent.toml");
        std::fs::write(&cfg, format!("host = [{}]\n", hosts.join(", "))).expect("config");
        let data = root.join("data");
        let agent = Command::new(BIN)
            .arg("agent")
            .arg("--data-dir")
            .arg(&data)
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("agent");
        let agent = Killed(agent);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cli(&data, &["app", "list"]).status.success() {
            assert!(Instant::now() < deadline, "the agent did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        let t = Instant::now();
        let o = cli(
            &data,
            &["app", "add", app.to_str().expect("path"), "--start"],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let n = started(&data);
            if n >= total_started {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "start-all did not finish: {n}/{total_started} started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start_all.push(t.elapsed().as_secs_f64());
        for _ in 0..10 {
            let t = Instant::now();
            let o = cli(&data, &["status", "--json"]);
            status.push(t.elapsed().as_secs_f64() * 1000.0);
            assert!(o.status.success());
        }
        std::thread::sleep(Duration::from_secs(2));
        rss.push(rss_kib(agent.0.id()) as f64 / 1024.0);
        drop(agent);
        let _ = std::fs::remove_dir_all(&root);
    }
    let (m, lo, hi) = median(start_all);
    println!("start_all: 1,001 instances (+101 roots), scripts `exit 0`, {RUNS} runs: median {m:.2} s (min {lo:.2}, max {hi:.2}); goal 5 s");
    let (m, lo, hi) = median(status);
    println!("start_all: `roboconf status --json` on 1,102 instances, {} calls: median {m:.1} ms (min {lo:.1}, max {hi:.1}); goal 100 ms", RUNS * 10);
    let (m, lo, hi) = median(rss);
    println!("start_all: agent RSS when idle after start-all: median {m:.1} MB (min {lo:.1}, max {hi:.1}); goal 20 MB");
}
