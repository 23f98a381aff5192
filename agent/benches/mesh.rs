//! Benchmark with N real agent processes on loopback, joined to one mesh with tokens:
//! export propagation (an instance starts on one agent → every other agent holds its
//! exports), end-to-end reconfiguration (that instance is DEPLOYED_STARTED → the load
//! balancer's `update.sh` has finished on another agent), dead-node detection (`kill -9`
//! → the survivors withdraw its exports), idle RSS and idle traffic per agent (all its TCP
//! bytes, from `ss`) and SWIM suspicions while idle (there should be none). Run with
//! `cargo bench -p roboconf-agent --bench mesh` (N = 10 and 30; `MESH_SIZES=10` to
//! choose, `MESH_RUNS=5` for several runs and their medians, `MESH_IDLE_SECS=600` for a
//! long idle window). Times come from the agents' logs and scripts (same clock).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");
const ROUNDS: usize = 20;

struct Agents(Vec<Child>);
impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("roboconf")
}

/// The instance events of a log, as (ms, `<app> <path> <STATE>`) and (ms, `<app>
/// <path> exports-in|out`), in the order of each kind.
fn events(log: &Path) -> Vec<(u64, String)> {
    use roboconf_tests::log::{exports_changes, state_changes};
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let states = state_changes(&text)
        .into_iter()
        .map(|c| (c.at_ms, format!("{} {} {}", c.app, c.path, c.state)));
    let exports = exports_changes(&text).into_iter().map(|c| {
        let way = if c.present { "in" } else { "out" };
        (c.at_ms, format!("{} {} exports-{way}", c.app, c.path))
    });
    states.chain(exports).collect()
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn rss_mb(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time (user + system) used so far by a process, in milliseconds.
fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime is the 14th field.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) * 10.0
}

/// Bytes sent plus received so far on the TCP connections of each process (`ss`).
fn tcp_bytes() -> std::collections::HashMap<u32, u64> {
    let out = Command::new("ss")
        .args(["-tinpH"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut per_pid = std::collections::HashMap::new();
    let mut pid = None;
    for line in out.lines() {
        if let Some(i) = line.find("pid=") {
            pid = line[i + 4..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            continue;
        }
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(p) = pid.take() {
            *per_pid.entry(p).or_insert(0) += field("bytes_sent:") + field("bytes_received:");
        }
    }
    per_pid
}

/// An agent's counters (`roboconf stats --json`).
fn stats(data: &Path) -> std::collections::HashMap<String, u64> {
    let o = cli(data, &["stats", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// UDP bytes in and out so far (SWIM's datagrams to members without a connection).
fn udp_bytes(data: &Path) -> u64 {
    let s = stats(data);
    s.get("udp_sent_bytes").copied().unwrap_or(0)
        + s.get("udp_received_bytes").copied().unwrap_or(0)
}

/// One run's figures.
struct Figures {
    prop_p50: f64,
    prop_p99: f64,
    cpu_per_change: f64,
    reconf_p50: f64,
    detect_p50: f64,
    rss_p50: f64,
    rss_max: f64,
    traffic_p50: f64,
    udp_p50: f64,
    conns_max: f64,
    conns_p99: f64,
    conns_bound: u64,
    false_suspicions: usize,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn run(n: usize, idle: Duration) -> Figures {
    let root = std::env::temp_dir().join(format!("roboconf-mesh-bench-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let app = root.join("app");
    let w = |rel: &str, text: &str| {
        let p = app.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w("descriptor/application.properties", "application-name = prop\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n");
    w("graph/main.graph", "VM {\n\tinstaller: target;\n\tchildren: Src, Lb;\n}\nSrc {\n\tinstaller: script;\n\texports: v = 1;\n}\nLb {\n\tinstaller: script;\n\timports: Src.v (optional);\n}\n");
    let mut inst = String::from(
        "instance of VM {\n\tname: vm0;\n\tinstance of Src {\n\t\tname: src;\n\t}\n}\ninstance of VM {\n\tname: vm1;\n\tinstance of Lb {\n\t\tname: lb;\n\t}\n}\n",
    );
    for k in 2..n {
        inst.push_str(&format!("instance of VM {{\n\tname: vm{k};\n}}\n"));
    }
    w("instances/main.instances", &inst);
    w(
        "graph/VM/t.target.properties",
        "id = l\nhandler = l\nname = l\n",
    );
    w("graph/Src/scripts/README", "no scripts\n");
    // The balancer's update: when it has finished, the time goes to $MARK.
    let mark_file = root.join("lb-updates");
    w(
        "graph/Lb/scripts/update.sh",
        "#!/bin/bash\necho $(date +%s%3N) >> \"$MARK\"\n",
    );
    let dirs: Vec<PathBuf> = (0..n).map(|k| root.join(format!("n{k}"))).collect();
    let logs: Vec<PathBuf> = (0..n).map(|k| root.join(format!("n{k}.log"))).collect();
    let mut agents = Agents(Vec::new());
    let spawn = |k: usize| -> Child {
        std::fs::create_dir_all(&dirs[k]).expect("dir");
        let mut c = Command::new(BIN);
        c.arg("agent").arg("--data-dir").arg(&dirs[k]).args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--host",
            &format!("prop:/vm{k}"),
            "--node",
            &format!("n{k}"),
        ]);
        c.env("MARK", &mark_file)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&logs[k]).expect("log"))
            .spawn()
            .expect("agent")
    };
    agents.0.push(spawn(0));
    let mut addr = String::new();
    wait("n0's address", Duration::from_secs(30), || {
        addr =
            roboconf_tests::log::addresses(&std::fs::read_to_string(&logs[0]).unwrap_or_default())
                .into_iter()
                .next()
                .unwrap_or_default();
        !addr.is_empty()
    });
    // n0 makes the mesh; every other agent joins it with a token from n0.
    let ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let up = |k: usize| {
        wait("the agent", Duration::from_secs(60), || {
            cli(&dirs[k], &["app", "list"]).status.success()
        })
    };
    up(0);
    ok(cli(&dirs[0], &["mesh", "init"]));
    for k in 1..n {
        agents.0.push(spawn(k));
        up(k);
        let out = ok(cli(&dirs[0], &["mesh", "token"]));
        let token = out.split_whitespace().last().unwrap_or_default();
        ok(cli(&dirs[k], &["join", &addr, "--token", token]));
    }
    let o = cli(
        &dirs[0],
        &["app", "add", app.to_str().expect("path"), "--start"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let holds = |k: usize, after: u64, what: &str| {
        events(&logs[k])
            .iter()
            .any(|(ms, l)| *ms >= after && l == &format!("prop /vm0/src exports-{what}"))
    };
    wait("the first propagation", Duration::from_secs(120), || {
        (1..n).all(|k| holds(k, 0, "in"))
    });
    // Rounds: stop, wait until everyone saw it go; start, measure until everyone holds it.
    let mut prop = Vec::new();
    let mut reconf = Vec::new();
    let lb_updates = || -> Vec<u64> {
        std::fs::read_to_string(&mark_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    // First the propagation rounds with the balancer stopped (its script would share the
    // two cores with the propagation), then the reconfiguration rounds with it started.
    let lb = |action: &str| {
        let o = cli(&dirs[0], &["instance", action, "prop", "/vm1/lb"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    lb("stop");
    wait("the balancer stopped", Duration::from_secs(60), || {
        events(&logs[1])
            .iter()
            .any(|(_, l)| l == "prop /vm1/lb DEPLOYED_STOPPED")
    });
    let cpu_all = |agents: &Agents| agents.0.iter().map(|c| cpu_ms(c.id())).sum::<f64>();
    // The agents' background work (heartbeats, SWIM, anti-entropy) over a quiet window,
    // subtracted from the rounds' CPU so that what remains is the work of the changes.
    let quiet = Instant::now();
    let cpu_quiet = cpu_all(&agents);
    std::thread::sleep(Duration::from_secs(5));
    let background_ms_per_s = (cpu_all(&agents) - cpu_quiet) / quiet.elapsed().as_secs_f64();
    let rounds_started = Instant::now();
    eprintln!("mesh N={n}: rounds start");
    let cpu_before = cpu_all(&agents);
    let mut cpu_per_change = 0.0;
    for round in 0..2 * ROUNDS {
        let reconfiguring = round >= ROUNDS;
        if round == ROUNDS {
            // Two export changes per round (stop, start), each learned by n - 1 agents.
            let background = background_ms_per_s * rounds_started.elapsed().as_secs_f64();
            cpu_per_change =
                (cpu_all(&agents) - cpu_before - background).max(0.0) / (2 * ROUNDS) as f64;
        }
        if round == ROUNDS {
            lb("start");
        }
        let mark = events(&logs[0])
            .iter()
            .map(|(ms, _)| *ms)
            .max()
            .unwrap_or(0);
        assert!(cli(&dirs[0], &["instance", "stop", "prop", "/vm0/src"])
            .status
            .success());
        wait("the withdrawal", Duration::from_secs(60), || {
            (1..n).all(|k| holds(k, mark, "out"))
        });
        let mark = events(&logs[0])
            .iter()
            .map(|(ms, _)| *ms)
            .max()
            .unwrap_or(0);
        assert!(cli(&dirs[0], &["instance", "start", "prop", "/vm0/src"])
            .status
            .success());
        wait("the propagation", Duration::from_secs(60), || {
            (1..n).all(|k| holds(k, mark, "in"))
        });
        let t0 = events(&logs[0])
            .iter()
            .filter(|(ms, l)| *ms >= mark && l == "prop /vm0/src DEPLOYED_STARTED")
            .map(|(ms, _)| *ms)
            .min()
            .expect("start time");
        let last = (1..n)
            .map(|k| {
                events(&logs[k])
                    .iter()
                    .filter(|(ms, l)| *ms >= t0 && l == "prop /vm0/src exports-in")
                    .map(|(ms, _)| *ms)
                    .min()
                    .unwrap_or(t0)
            })
            .max()
            .unwrap_or(t0);
        if !reconfiguring {
            prop.push((last - t0) as f64);
            continue;
        }
        wait("the balancer's update", Duration::from_secs(60), || {
            lb_updates().iter().any(|t| *t >= t0)
        });
        let done = lb_updates()
            .into_iter()
            .filter(|t| *t >= t0)
            .min()
            .unwrap_or(t0);
        reconf.push((done - t0) as f64);
    }
    std::thread::sleep(Duration::from_secs(3));
    let suspicions = || -> usize {
        logs.iter()
            .map(|l| {
                std::fs::read_to_string(l)
                    .unwrap_or_default()
                    .matches("SWIM suspects")
                    .count()
            })
            .sum()
    };
    let suspicions_before = suspicions();
    let mut rss: Vec<f64> = agents.0.iter().map(|c| rss_mb(c.id())).collect();
    // Idle traffic: all TCP bytes (in and out) of each agent over a quiet interval, plus
    // its UDP bytes (SWIM's datagrams to members it holds no connection to).
    let udp_before: Vec<u64> = dirs.iter().map(|d| udp_bytes(d)).collect();
    let before = tcp_bytes();
    std::thread::sleep(idle);
    let after = tcp_bytes();
    let udp_after: Vec<u64> = dirs.iter().map(|d| udp_bytes(d)).collect();
    let mut udp: Vec<f64> = (0..n)
        .map(|k| udp_after[k].saturating_sub(udp_before[k]) as f64 / idle.as_secs_f64())
        .collect();
    let mut traffic: Vec<f64> = agents
        .0
        .iter()
        .enumerate()
        .map(|(k, c)| {
            (after
                .get(&c.id())
                .copied()
                .unwrap_or(0)
                .saturating_sub(before.get(&c.id()).copied().unwrap_or(0))) as f64
                / idle.as_secs_f64()
                + udp[k]
        })
        .collect();
    // Connections each agent holds (admitted peers), against the policy's bound.
    let all_stats: Vec<_> = dirs.iter().map(|d| stats(d)).collect();
    let mut conns: Vec<f64> = all_stats
        .iter()
        .map(|s| s.get("connections").copied().unwrap_or(0) as f64)
        .collect();
    let conns_bound = all_stats
        .iter()
        .map(|s| s.get("connections_target").copied().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let false_suspicions = suspicions() - suspicions_before;
    // Dead-node detection: kill the exporter's agent; every survivor withdraws its exports.
    let mark = (1..n)
        .flat_map(|k| events(&logs[k]))
        .map(|(ms, _)| ms)
        .max()
        .unwrap_or(0);
    let t_kill = now_ms();
    let _ = agents.0[0].kill();
    let _ = agents.0[0].wait();
    wait("the detection", Duration::from_secs(60), || {
        (1..n).all(|k| holds(k, mark.max(t_kill), "out"))
    });
    let detect: Vec<f64> = (1..n)
        .map(|k| {
            events(&logs[k])
                .iter()
                .filter(|(ms, l)| *ms >= t_kill && l == "prop /vm0/src exports-out")
                .map(|(ms, _)| (*ms - t_kill) as f64)
                .next()
                .unwrap_or(0.0)
        })
        .collect();
    let mut detect_sorted = detect.clone();
    drop(agents);
    let _ = std::fs::remove_dir_all(&root);
    let (p50, p99, max) = (
        pct(&mut prop.clone(), 0.5),
        pct(&mut prop.clone(), 0.99),
        pct(&mut prop, 1.0),
    );
    let f = Figures {
        prop_p50: p50,
        prop_p99: p99,
        cpu_per_change,
        reconf_p50: pct(&mut reconf.clone(), 0.5),
        detect_p50: pct(&mut detect_sorted.clone(), 0.5),
        rss_p50: pct(&mut rss.clone(), 0.5),
        rss_max: pct(&mut rss, 1.0),
        traffic_p50: pct(&mut traffic.clone(), 0.5),
        udp_p50: pct(&mut udp, 0.5),
        conns_max: pct(&mut conns.clone(), 1.0),
        conns_p99: pct(&mut conns, 0.99),
        conns_bound,
        false_suspicions,
    };
    println!(
        "mesh N={n}: propagation to all {} others ({ROUNDS} rounds) p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms, \
         CPU of all agents per export change {:.1} ms; \
         reconfiguration p50 {:.0} ms, max {:.0} ms; kill -9 detection median {:.0} ms, max {:.0} ms; \
         idle RSS median {:.1} MB, max {:.1} MB; idle traffic median {:.0} B/s (UDP {:.0}), max {:.0} B/s over {} s; \
         connections per agent p99 {:.0}, max {:.0} (target {}); SWIM suspicions while idle: {}",
        n - 1,
        f.cpu_per_change,
        f.reconf_p50,
        pct(&mut reconf, 1.0),
        f.detect_p50,
        pct(&mut detect_sorted, 1.0),
        f.rss_p50,
        f.rss_max,
        f.traffic_p50,
        f.udp_p50,
        pct(&mut traffic, 1.0),
        idle.as_secs(),
        f.conns_p99,
        f.conns_max,
        f.conns_bound,
        f.false_suspicions,
    );
    f
}

fn main() {
    let sizes: Vec<usize> = std::env::var("MESH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 30]);
    let runs: usize = std::env::var("MESH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let idle = Duration::from_secs(
        std::env::var("MESH_IDLE_SECS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(20),
    );
    for n in sizes {
        let all: Vec<Figures> = (0..runs).map(|_| run(n, idle)).collect();
        let med = |f: fn(&Figures) -> f64| pct(&mut all.iter().map(f).collect::<Vec<_>>(), 0.5);
        println!(
            "mesh N={n}, median of {runs} runs: propagation p50 {:.0} ms, p99 {:.0} ms; CPU per change {:.1} ms; reconfiguration p50 {:.0} ms; \
             detection {:.0} ms; idle RSS {:.1} MB (max {:.1}); idle traffic {:.0} B/s; connections max {:.0} (target {}); SWIM suspicions while idle: {} in all",
            med(|f| f.prop_p50),
            med(|f| f.prop_p99),
            med(|f| f.cpu_per_change),
            med(|f| f.reconf_p50),
            med(|f| f.detect_p50),
            med(|f| f.rss_p50),
            med(|f| f.rss_max),
            med(|f| f.traffic_p50),
            med(|f| f.conns_max),
            all.iter().map(|f| f.conns_bound).max().unwrap_or(0),
            all.iter().map(|f| f.false_suspicions).sum::<usize>(),
        );
    }
}
