//! Benchmark of the agent's HTTP surface (issue 19), each part on a real `roboconf agent`
//! process (release) serving `--http 127.0.0.1:0`, on a fresh temp data dir per run:
//!
//! 1. `GET /roboconf-dm/app/<app>/instances?all-children=true` on an application of
//!    about 10,000 instances (`gen::application(42, Shape::BENCH)`, registered, not
//!    deployed), over one keep-alive HTTP/1.1 connection (a minimal client on a std
//!    `TcpStream`, `Content-Length` bodies): p50 and p99 of 200 sequential requests
//!    after 20 of warm-up, and the response's size (goal p99 <= 50 ms); beside it, the
//!    whole `roboconf status <app> --json` CLI process on the same application.
//! 2. 100 WebSocket clients (`tokio-tungstenite`) on `/roboconf-dm-websocket`, plus one
//!    reference client, during `app start` of 1,000 instances whose scripts are
//!    `exit 0` (85 roots hosted with `--host`): the `CHANGED` events of the application
//!    each client receives against those the agent published (its `instance state`
//!    log lines), the time from `app start` until the reference client has seen every
//!    instance `DEPLOYED_STARTED`, and the agent's VmRSS (peak sampled every 20 ms, and
//!    at the end with the clients still connected). Goals: every event to every client,
//!    RSS <= 40 MB.
//! 3. The console's first paint of those 1,000 instances (registered) in headless
//!    Chromium: `node tests/console/first-paint.mjs` (5 page loads, median; goal <= 1 s).
//!    Needs node and Chromium (`$CHROMIUM`, default /usr/bin/chromium); runs `npm ci` in
//!    tests/console when its node_modules is missing.
//!
//! Run with `cargo bench -p roboconf-agent --bench http`; `HTTP_BENCH_RUNS` (default 3)
//! runs of parts 1 and 2, `HTTP_BENCH_ONLY=1,2,3` to choose parts, `HTTP_BENCH_CLIENTS`
//! (default 100) clients beside the reference in part 2 (0: the reference alone).

use futures::StreamExt;
use roboconf_tests::wait;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");
const CLIENTS: usize = 100;
const WARM_UP: usize = 20;
const REQUESTS: usize = 200;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Median (min, max) of several runs, as a table cell.
fn cell(v: &[f64], unit: &str, digits: usize) -> String {
    let (lo, hi) = (pct(v, 0.0), pct(v, 1.0));
    format!(
        "{:.digits$} {unit} (min {lo:.digits$}, max {hi:.digits$})",
        pct(v, 0.5)
    )
}

/// User + system CPU in clock ticks (1/100 s) of a process (`pid`) or of one of its
/// threads (`pid/task/tid`).
fn cpu_ticks(pid: impl std::fmt::Display) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = &s[s.rfind(')').map_or(0, |i| i + 2)..];
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11..13)
        .map_or(0, |t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
}

/// The machine's 1-minute load average (the two cores are shared).
fn load() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().next().unwrap_or("?").to_string()
}

/// A `roboconf agent` in its own temp folder, killed and removed when dropped (also on
/// a panic).
struct Agent {
    child: Child,
    root: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`.
    base: String,
}

impl Agent {
    fn start(tag: &str, extra: &[String]) -> Agent {
        let root = std::env::temp_dir().join(format!("roboconf-http-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("temp dir");
        let (data, log) = (root.join("data"), root.join("agent.log"));
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new(BIN)
            .arg("agent")
            .arg("--data-dir")
            .arg(&data)
            .args(["--http", "127.0.0.1:0"])
            .args(extra)
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start the agent");
        let base = String::new();
        let mut a = Agent {
            child,
            root,
            data,
            log,
            base,
        };
        let find = |a: &Agent| {
            let text = std::fs::read_to_string(&a.log).unwrap_or_default();
            let rest = &text[text.find("serving on http://")? + "serving on ".len()..];
            let end = rest.find(|c: char| c.is_whitespace() || c == '"' || c == ')')?;
            Some(rest[..end].to_string())
        };
        wait("the agent's HTTP address", Duration::from_secs(20), || {
            find(&a).is_some()
        });
        a.base = find(&a).unwrap_or_default();
        wait("the control socket", Duration::from_secs(20), || {
            a.cli(&["app", "list"]).status.success()
        });
        a
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("roboconf")
    }

    fn ok(&self, args: &[&str]) {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "roboconf {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// VmRSS, MB.
    fn rss_mb(&self) -> f64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()));
        let s = s.unwrap_or_default();
        let kib = s
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix(" kB"));
        kib.and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }

    /// Registers the application in `dir`, waits until it has `n` instances or more, and
    /// returns how many.
    fn register(&self, dir: &Path, app: &str, n: usize) -> usize {
        self.ok(&["app", "add", dir.to_str().expect("path")]);
        let mut http = Http::connect(&self.base);
        let target = format!("/roboconf-dm/app/{app}/instances?all-children=true");
        let mut count = || {
            let v: serde_json::Value =
                serde_json::from_slice(&http.get(&target).1).unwrap_or_default();
            v.as_array().map_or(0, Vec::len)
        };
        wait(
            "the application registered",
            Duration::from_secs(60),
            || count() >= n,
        );
        count()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A keep-alive HTTP/1.1 client on one connection: GET only, `Content-Length` bodies.
struct Http {
    host: String,
    conn: BufReader<TcpStream>,
}

impl Http {
    fn connect(base: &str) -> Http {
        let host = base.strip_prefix("http://").expect("http://").to_string();
        let s = TcpStream::connect(&host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        Http {
            host,
            conn: BufReader::with_capacity(1 << 16, s),
        }
    }

    fn get(&mut self, target: &str) -> (u16, Vec<u8>) {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", self.host);
        self.conn
            .get_mut()
            .write_all(head.as_bytes())
            .expect("send");
        let (mut status, mut len) = (0, None);
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.conn.read_line(&mut line).expect("read the head");
            assert!(n > 0, "the server closed the connection");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status == 0 {
                status = l.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
            }
            if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            }
        }
        let len = len.expect("an answer without Content-Length (this client reads no other)");
        let mut body = vec![0; len];
        self.conn.read_exact(&mut body).expect("read the body");
        (status, body)
    }
}

/// `tiers` with exactly 1,000 instances: vm0 and its db, 83 machines each with an app
/// server and 10 web apps, and vm84 with an app server (85 roots).
fn thousand(dir: &Path, with_scripts: bool) {
    let mut files = roboconf_tests::gen::tiers(83, 10, with_scripts);
    let inst = files
        .get_mut("instances/main.instances")
        .expect("instances file");
    inst.push_str("instance of VM {\n\tname: vm84;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n");
    roboconf_tests::gen::write(dir, &files).expect("write tiers");
}

/// Part 1, one run.
struct GetRun {
    p50: f64,
    p99: f64,
    bytes: usize,
    instances: usize,
    /// The agent's CPU per request; `roboconf status <app> --json`, median.
    cpu_ms: f64,
    cli_ms: f64,
}

fn get_instances(run: usize) -> GetRun {
    let agent = Agent::start(&format!("get-{run}"), &[]);
    let dir = agent.root.join("app");
    let files = roboconf_tests::gen::application(42, roboconf_tests::gen::Shape::BENCH);
    roboconf_tests::gen::write(&dir, &files).expect("write the application");
    let app = "generated-42";
    let instances = agent.register(&dir, app, 10_000);
    let target = format!("/roboconf-dm/app/{app}/instances?all-children=true");
    let mut http = Http::connect(&agent.base);
    for _ in 0..WARM_UP {
        http.get(&target);
    }
    let mut ms = Vec::with_capacity(REQUESTS);
    let (mut bytes, cpu0) = (0, cpu_ticks(agent.child.id()));
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let (status, body) = http.get(&target);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
        bytes = body.len();
    }
    let cpu_ms = (cpu_ticks(agent.child.id()) - cpu0) as f64 * 10.0 / REQUESTS as f64;
    let mut cli = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let o = agent.cli(&["status", app, "--json"]);
        cli.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(o.status.success());
    }
    let (p50, p99) = (pct(&ms, 0.5), pct(&ms, 0.99));
    println!(
        "http 1/{run}: GET instances ({instances} instances, {bytes} B): p50 {p50:.1} ms, \
         p90 {:.1}, p99 {p99:.1}, max {:.1}; agent CPU {cpu_ms:.1} ms per GET; \
         status --json median {:.1} ms; load {}",
        pct(&ms, 0.9),
        pct(&ms, 1.0),
        pct(&cli, 0.5),
        load()
    );
    let cli_ms = pct(&cli, 0.5);
    GetRun {
        p50,
        p99,
        bytes,
        instances,
        cpu_ms,
        cli_ms,
    }
}

/// What one WebSocket client saw.
#[derive(Default)]
struct Seen {
    /// `CHANGED` events of the application.
    changed: AtomicU64,
    /// When (ns after `app start`) it had seen every instance DEPLOYED_STARTED.
    all_started: AtomicU64,
    /// The connection ended (or a `dropped` notice came) before the bench closed it.
    cut: AtomicBool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Counts one client's events of `tiers` until the connection ends, and notes when
/// `to_start` of them were DEPLOYED_STARTED.
async fn read_events(mut ws: Ws, seen: Arc<Seen>, to_start: u64, t0: Instant) {
    let mut started = 0;
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if text.contains("\"msg\"") && text.contains("dropped") {
            break;
        }
        let ours = text.contains("\"CHANGED\"") && text.contains("\"app\":{\"name\":\"tiers\"}");
        if !(ours && text.contains("\"inst\"")) {
            continue;
        }
        seen.changed.fetch_add(1, Relaxed);
        started += u64::from(text.contains("\"status\":\"DEPLOYED_STARTED\""));
        if started == to_start {
            let ns = t0.elapsed().as_nanos() as u64;
            seen.all_started.store(ns, Relaxed);
        }
    }
    seen.cut.store(true, Relaxed);
}

/// Part 2, one run: seconds, events, MB.
struct WsRun {
    start_all: f64,
    /// The agent's CPU seconds from `app start` to the end of the deliveries: all its
    /// threads (scripts are prepared and run on tokio's blocking pool), and its event
    /// loop's (the core, the HTTP server and the WebSocket sends).
    cpu: f64,
    cpu_loop: f64,
    published: u64,
    /// The fewest and most events one of the clients (the reference too) received.
    lo: u64,
    hi: u64,
    /// Clients whose connection ended early.
    cut: usize,
    /// RSS with the application registered, then with the clients connected, the peak
    /// from `app start` on, and at the end.
    rss: [f64; 4],
}

fn websockets(rt: &tokio::runtime::Runtime, run: usize, clients: usize) -> WsRun {
    let hosts: Vec<String> = (0..=84)
        .flat_map(|m| ["--host".to_string(), format!("tiers:/vm{m}")])
        .collect();
    let agent = Agent::start(&format!("ws-{run}"), &hosts);
    thousand(&agent.root.join("tiers"), true);
    agent.register(&agent.root.join("tiers"), "tiers", 1000);
    std::thread::sleep(Duration::from_secs(1));
    let rss_registered = agent.rss_mb();
    // The instances to start (the hosted roots are already DEPLOYED_STARTED).
    let mut http = Http::connect(&agent.base);
    let (_, body) = http.get("/roboconf-dm/app/tiers/instances?all-children=true");
    let list: Vec<serde_json::Value> = serde_json::from_slice(&body).expect("JSON");
    let to_start = list
        .iter()
        .filter(|i| i["status"] != "DEPLOYED_STARTED")
        .count() as u64;
    let url = format!("ws://{}/roboconf-dm-websocket", &agent.base[7..]);
    let connect = |_| async {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("WebSocket connect");
        ws
    };
    let conns: Vec<Ws> = rt.block_on(futures::future::join_all((0..=clients).map(connect)));
    // Subscribed: the agent's gauge counts a client once it listens.
    let gauge = format!("roboconf_http_websocket_clients {}\n", clients + 1);
    wait(
        "the agent counts every client",
        Duration::from_secs(20),
        || String::from_utf8_lossy(&http.get("/metrics").1).contains(&gauge),
    );
    std::thread::sleep(Duration::from_secs(1));
    let rss_connected = agent.rss_mb();
    let seen: Vec<Arc<Seen>> = (0..=clients).map(|_| Arc::default()).collect();
    let log_before = std::fs::metadata(&agent.log).map_or(0, |m| m.len() as usize);
    let (pid, t0) = (agent.child.id(), Instant::now());
    let (cpu0, loop0) = (cpu_ticks(pid), cpu_ticks(format!("{pid}/task/{pid}")));
    let tasks: Vec<_> = (conns.into_iter().zip(&seen))
        .map(|(ws, s)| rt.spawn(read_events(ws, s.clone(), to_start, t0)))
        .collect();
    agent.ok(&["app", "start", "tiers"]);
    // RSS is sampled every 20 ms from here on.
    let reference = &seen[clients].all_started;
    let mut peak = agent.rss_mb();
    wait("every instance started", Duration::from_secs(180), || {
        peak = peak.max(agent.rss_mb());
        reference.load(Relaxed) > 0
    });
    let start_all = reference.load(Relaxed) as f64 / 1e9;
    // Published: the agent's `instance state` lines of the application since t0, by state.
    let by_state = || {
        let text = std::fs::read_to_string(&agent.log).unwrap_or_default();
        let changes =
            roboconf_tests::log::state_changes(text.get(log_before..).unwrap_or_default());
        let mut by = BTreeMap::<String, u64>::new();
        for c in changes.into_iter().filter(|c| c.app == "tiers") {
            *by.entry(c.state).or_default() += 1;
        }
        by
    };
    let published = || by_state().values().sum::<u64>();
    // Until every client has every published event, or nothing moves for 3 s.
    let (mut last, mut still) = (Vec::new(), Instant::now());
    loop {
        let now: Vec<u64> = seen.iter().map(|s| s.changed.load(Relaxed)).collect();
        let p = published();
        if now.iter().all(|&n| n >= p) || still.elapsed() > Duration::from_secs(3) {
            break;
        }
        if now != last {
            (last, still) = (now, Instant::now());
        }
        peak = peak.max(agent.rss_mb());
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0;
    let cpu_loop = (cpu_ticks(format!("{pid}/task/{pid}")) - loop0) as f64 / 100.0;
    let rss_end = agent.rss_mb();
    let published = published();
    let got = || seen.iter().map(|s| s.changed.load(Relaxed));
    let (lo, hi) = (got().min().unwrap_or(0), got().max().unwrap_or(0));
    let cut = seen.iter().filter(|s| s.cut.load(Relaxed)).count();
    let last = seen.iter().map(|s| s.all_started.load(Relaxed)).max();
    println!(
        "http 2/{run}: start-all {start_all:.2} s (last client {:.2} s), agent CPU {cpu:.2} s (loop {cpu_loop:.2} s); \
         {published} events published, the {} clients got {lo}..{hi}, {cut} cut; RSS registered \
         {rss_registered:.1} MB, clients connected {rss_connected:.1} MB, peak {peak:.1} MB, end \
         {rss_end:.1} MB; load {}",
        last.unwrap_or(0) as f64 / 1e9,
        clients + 1,
        load()
    );
    if run == 0 {
        println!("http 2: events published by new state: {:?}", by_state());
    }
    // Closes the clients before the agent goes.
    for t in &tasks {
        t.abort();
    }
    rt.block_on(futures::future::join_all(tasks));
    let rss = [rss_registered, rss_connected, peak, rss_end];
    WsRun {
        start_all,
        cpu,
        cpu_loop,
        published,
        lo,
        hi,
        cut,
        rss,
    }
}

/// Fails (never skips) when node or Chromium is missing; `npm ci` when needed.
fn require_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    let hint = "(apt-get install nodejs npm chromium; HTTP_BENCH_ONLY=1,2 leaves part 3 out)";
    let found = node.is_ok_and(|o| o.status.success());
    assert!(
        found,
        "node is missing: part 3 needs Node.js 20+ and Chromium {hint}"
    );
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let c = chromium.display();
    assert!(
        chromium.is_file(),
        "{c} is missing: part 3 drives Chromium (or $CHROMIUM) {hint}"
    );
    let dir = roboconf_tests::workspace().join("tests/console");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let mut npm = Command::new("npm");
        let o = npm
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output();
        let o = o.expect("npm ci in tests/console");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success(),
            "npm ci in {} failed:\n{err}",
            dir.display()
        );
    }
    chromium
}

/// Part 3: (first paint ms, tree rendered ms), medians of the script's runs.
fn first_paint() -> (f64, f64) {
    let chromium = require_tools();
    let agent = Agent::start("paint", &[]);
    let dir = agent.root.join("tiers");
    thousand(&dir, false);
    agent.register(&dir, "tiers", 1000);
    let o = Command::new("node")
        .arg("first-paint.mjs")
        .current_dir(roboconf_tests::workspace().join("tests/console"))
        .env("BASE_URL", &agent.base)
        .env("APP", "tiers")
        .env("INSTANCES", "1000")
        .env("RUNS", "5")
        .env("CHROMIUM", &chromium)
        .stdin(Stdio::null())
        .output()
        .expect("node first-paint.mjs");
    let out = String::from_utf8_lossy(&o.stdout);
    print!("{out}");
    assert!(
        o.status.success(),
        "first-paint.mjs failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let figure = |key: &str| -> f64 {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in the script's output"))
    };
    (figure("first_paint_ms="), figure("tree_rendered_ms="))
}

/// A figure of the summary: label, value of a run, unit, goal.
type Figure<T> = (&'static str, fn(&T) -> f64, &'static str, &'static str);

/// One row per figure: the median over the runs, with min and max.
fn summarize<T>(row: &mut impl FnMut(&str, String, &str), runs: &[T], figures: &[Figure<T>]) {
    for (label, f, unit, goal) in figures {
        let digits = if *unit == "s" { 2 } else { 1 };
        row(
            label,
            cell(&runs.iter().map(f).collect::<Vec<_>>(), unit, digits),
            goal,
        );
    }
}

fn main() {
    let runs: usize = env_or("HTTP_BENCH_RUNS", 3).max(1);
    let only = std::env::var("HTTP_BENCH_ONLY").unwrap_or_else(|_| "1,2,3".into());
    let part = |p: &str| only.split(',').any(|x| x.trim() == p);
    let mut table = String::new();
    let mut row = |figure: &str, result: String, goal: &str| {
        table.push_str(&format!("| {figure} | {result} | {goal} |\n"));
    };
    if part("1") {
        let r: Vec<GetRun> = (0..runs).map(get_instances).collect();
        let size = format!("{} B, {} instances", r[0].bytes, r[0].instances);
        row("GET instances?all-children=true: size", size, "");
        let figures: [Figure<GetRun>; 4] = [
            ("GET instances, p50 of 200", |x| x.p50, "ms", ""),
            ("GET instances, p99 of 200", |x| x.p99, "ms", "<= 50 ms"),
            ("agent CPU per GET", |x| x.cpu_ms, "ms", ""),
            ("`status <app> --json` CLI", |x| x.cli_ms, "ms", ""),
        ];
        summarize(&mut row, &r, &figures);
    }
    if part("2") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let n: usize = env_or("HTTP_BENCH_CLIENTS", CLIENTS);
        let r: Vec<WsRun> = (0..runs).map(|k| websockets(&rt, k, n)).collect();
        let all = r
            .iter()
            .all(|x| x.lo == x.published && x.hi == x.published && x.cut == 0);
        let verdict = if all { "all delivered" } else { "MISSING" };
        let per_run: Vec<String> = r
            .iter()
            .map(|x| format!("{} / {}..{}", x.published, x.lo, x.hi))
            .collect();
        let events = format!("{} ({verdict})", per_run.join(", "));
        row(
            &format!("events published / received by the {} clients", n + 1),
            events,
            "all",
        );
        let figures: [Figure<WsRun>; 7] = [
            ("`app start` → all started", |x| x.start_all, "s", ""),
            ("agent CPU during it, all threads", |x| x.cpu, "s", ""),
            ("… of which its event loop thread", |x| x.cpu_loop, "s", ""),
            ("RSS registered, no client", |x| x.rss[0], "MB", ""),
            ("RSS clients connected", |x| x.rss[1], "MB", ""),
            ("RSS peak during the start", |x| x.rss[2], "MB", "<= 40 MB"),
            ("RSS at the end", |x| x.rss[3], "MB", "<= 40 MB"),
        ];
        summarize(&mut row, &r, &figures);
    }
    if part("3") {
        let (fp, tr) = first_paint();
        let paint = format!("{fp:.0} ms (tree rendered at {tr:.0} ms)");
        row("console first paint, median of 5 loads", paint, "<= 1 s");
    }
    println!("\nhttp: medians of {runs} runs (min, max)\n| figure | result | goal |\n|---|---|---|\n{table}");
}
