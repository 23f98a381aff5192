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
//! runs of parts 1 and 2, `HTTP_BENCH_ONLY=1,2,3` to choose parts.

use futures::StreamExt;
use std::collections::HashMap;
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
    if v.is_empty() {
        return f64::NAN;
    }
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

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
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
        let mut a = Agent {
            child,
            root,
            data,
            log,
            base: String::new(),
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

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Registers the application in `dir` and waits until it has `n` instances.
    fn register(&self, dir: &Path, app: &str, n: usize) {
        self.ok(&["app", "add", dir.to_str().expect("path")]);
        let mut http = Http::connect(&self.base);
        let target = format!("/roboconf-dm/app/{app}/instances?all-children=true");
        wait(
            "the application registered",
            Duration::from_secs(60),
            || {
                let (status, body) = http.get(&target);
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                status == 200 && v.as_array().is_some_and(|l| l.len() == n)
            },
        );
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
                status = l
                    .split(' ')
                    .nth(1)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse::<usize>().ok();
                }
            }
        }
        let len = len.expect("an answer without Content-Length (this client reads no other)");
        let mut body = vec![0; len];
        self.conn.read_exact(&mut body).expect("read the body");
        (status, body)
    }
}

/// `tiers` with exactly 1,000 instances: vm0 and its db, 83 machines each with an app
/// server and 10 web apps, and vm84 with an app server (85 roots). Returns the roots.
fn thousand(dir: &Path, with_scripts: bool) -> Vec<String> {
    let mut files = roboconf_tests::gen::tiers(83, 10, with_scripts);
    let inst = files
        .get_mut("instances/main.instances")
        .expect("instances file");
    inst.push_str("instance of VM {\n\tname: vm84;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n");
    roboconf_tests::gen::write(dir, &files).expect("write tiers");
    (0..=84).map(|m| format!("/vm{m}")).collect()
}

/// Part 1, one run.
struct GetRun {
    p50: f64,
    p99: f64,
    bytes: usize,
    instances: usize,
    /// `roboconf status <app> --json`, median ms.
    cli_ms: f64,
}

fn get_instances(run: usize) -> GetRun {
    let agent = Agent::start(&format!("get-{run}"), &[]);
    let dir = agent.root.join("app");
    let files = roboconf_tests::gen::application(42, roboconf_tests::gen::Shape::BENCH);
    roboconf_tests::gen::write(&dir, &files).expect("write the application");
    agent.ok(&["app", "add", dir.to_str().expect("path")]);
    let app = "generated-42";
    let target = format!("/roboconf-dm/app/{app}/instances?all-children=true");
    let mut http = Http::connect(&agent.base);
    let (status, body) = http.get(&target);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let instances = list.as_array().map_or(0, Vec::len);
    assert!(instances >= 10_000, "only {instances} instances");
    for _ in 0..WARM_UP {
        http.get(&target);
    }
    let mut ms = Vec::with_capacity(REQUESTS);
    let mut bytes = 0;
    for _ in 0..REQUESTS {
        let t = Instant::now();
        let (status, body) = http.get(&target);
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status, 200);
        bytes = body.len();
    }
    let mut cli = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let o = agent.cli(&["status", app, "--json"]);
        cli.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(o.status.success());
    }
    let (p50, p99) = (pct(&ms, 0.5), pct(&ms, 0.99));
    println!(
        "http 1/{run}: GET instances ({instances} instances, {bytes} B): p50 {p50:.1} ms, p99 {p99:.1} ms, max {:.1} ms; status --json median {:.1} ms",
        pct(&ms, 1.0),
        pct(&cli, 0.5)
    );
    GetRun {
        p50,
        p99,
        bytes,
        instances,
        cli_ms: pct(&cli, 0.5),
    }
}

/// What one WebSocket client saw.
#[derive(Default)]
struct Seen {
    /// `CHANGED` events of the application.
    changed: AtomicU64,
    /// The connection ended (or a `dropped` notice came) before the bench closed it.
    cut: AtomicBool,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The reference client's view: every instance's last state, and when all started.
struct Reference {
    states: HashMap<String, String>,
    by_state: HashMap<String, u64>,
    t0: Instant,
    all_started: Arc<AtomicU64>,
}

/// Reads one client's events until the connection ends; the cheap count for the 100,
/// a parse of each event for the reference.
async fn read_events(mut ws: Ws, app: String, seen: Arc<Seen>, mut reference: Option<Reference>) {
    let tag = format!("\"app\":{{\"name\":\"{app}\"}}");
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        if text.contains("\"msg\"") && text.contains("dropped") {
            break;
        }
        if !(text.contains("\"CHANGED\"") && text.contains(&tag) && text.contains("\"inst\"")) {
            continue;
        }
        seen.changed.fetch_add(1, Relaxed);
        if let Some(r) = reference.as_mut() {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let (path, state) = (&v["inst"]["path"], &v["inst"]["status"]);
            let state = state.as_str().unwrap_or_default().to_string();
            *r.by_state.entry(state.clone()).or_default() += 1;
            r.states
                .insert(path.as_str().unwrap_or_default().to_string(), state);
            if r.all_started.load(Relaxed) == 0
                && r.states.values().all(|s| s == "DEPLOYED_STARTED")
            {
                r.all_started
                    .store(r.t0.elapsed().as_nanos().max(1) as u64, Relaxed);
            }
        }
    }
    seen.cut.store(true, Relaxed);
    if let Some(r) = reference {
        let mut by: Vec<_> = r.by_state.into_iter().collect();
        by.sort();
        println!("http 2: events by new state (reference client): {by:?}");
    }
}

/// The agent's `roboconf_http_websocket_clients` gauge.
fn ws_gauge(http: &mut Http) -> u64 {
    let (_, body) = http.get("/metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("roboconf_http_websocket_clients "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Part 2, one run: seconds, events, MB.
struct WsRun {
    start_all: f64,
    published: u64,
    /// The fewest and most events one of the 100 clients received.
    lo: u64,
    hi: u64,
    /// Clients whose connection ended early.
    cut: usize,
    peak: f64,
    end: f64,
}

fn websockets(rt: &tokio::runtime::Runtime, run: usize) -> WsRun {
    let dir = std::env::temp_dir().join(format!("roboconf-http-{}-tiers", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let roots = thousand(&dir, true);
    let hosts: Vec<String> = roots
        .iter()
        .flat_map(|r| ["--host".to_string(), format!("tiers:{r}")])
        .collect();
    let agent = Agent::start(&format!("ws-{run}"), &hosts);
    let _ = std::fs::rename(&dir, agent.root.join("tiers"));
    agent.register(&agent.root.join("tiers"), "tiers", 1000);
    // Every instance's state before the start, for the reference client.
    let mut http = Http::connect(&agent.base);
    let (_, body) = http.get("/roboconf-dm/app/tiers/instances?all-children=true");
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let states: HashMap<String, String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap_or_default().to_string(),
                i["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let url = format!(
        "ws://{}/roboconf-dm-websocket",
        agent.base.trim_start_matches("http://")
    );
    let conns: Vec<Ws> = rt.block_on(futures::future::join_all((0..=CLIENTS).map(|_| {
        let url = url.clone();
        async move {
            tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("WebSocket connect")
                .0
        }
    })));
    wait(
        "the agent counts every client",
        Duration::from_secs(20),
        || ws_gauge(&mut http) == CLIENTS as u64 + 1,
    );
    let seen: Vec<Arc<Seen>> = (0..=CLIENTS).map(|_| Arc::default()).collect();
    let all_started = Arc::new(AtomicU64::new(0));
    let log_before = agent.log_text().len();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (k, ws) in conns.into_iter().enumerate() {
        let reference = (k == CLIENTS).then(|| Reference {
            states: states.clone(),
            by_state: HashMap::new(),
            t0,
            all_started: all_started.clone(),
        });
        tasks.push(rt.spawn(read_events(ws, "tiers".into(), seen[k].clone(), reference)));
    }
    // RSS, sampled until the end of the run.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pid) = (stop.clone(), agent.pid());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        })
    };
    agent.ok(&["app", "start", "tiers"]);
    wait("every instance started", Duration::from_secs(180), || {
        all_started.load(Relaxed) > 0
    });
    let start_all = all_started.load(Relaxed) as f64 / 1e9;
    // Published: the agent's `instance state` lines of the application since t0.
    let published = || {
        let text = agent.log_text();
        roboconf_tests::log::state_changes(text.get(log_before..).unwrap_or_default())
            .iter()
            .filter(|c| c.app == "tiers")
            .count() as u64
    };
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
        std::thread::sleep(Duration::from_millis(50));
    }
    let end_rss = rss_kib(agent.pid()) as f64 / 1024.0;
    stop.store(true, Relaxed);
    let peak = sampler.join().unwrap_or(0) as f64 / 1024.0;
    let published = published();
    let got: Vec<u64> = seen[..CLIENTS]
        .iter()
        .map(|s| s.changed.load(Relaxed))
        .collect();
    let reference = seen[CLIENTS].changed.load(Relaxed);
    let cut = seen.iter().filter(|s| s.cut.load(Relaxed)).count();
    let (lo, hi) = (
        got.iter().copied().min().unwrap_or(0),
        got.iter().copied().max().unwrap_or(0),
    );
    println!(
        "http 2/{run}: start-all {start_all:.2} s; {published} events published, reference got {reference}, the {CLIENTS} got {lo}..{hi}, {cut} cut; RSS peak {peak:.1} MB, end {end_rss:.1} MB"
    );
    // Closes the clients before the agent goes.
    for t in &tasks {
        t.abort();
    }
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    WsRun {
        start_all,
        published,
        lo,
        hi,
        cut,
        peak,
        end: end_rss,
    }
}

/// Fails (never skips) when node or Chromium is missing; `npm ci` when needed.
fn require_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: part 3 (console first paint) needs Node.js 20 or later and Chromium \
         (apt-get install nodejs npm chromium; HTTP_BENCH_ONLY=1,2 to leave it out)"
    );
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} is missing: part 3 drives Chromium headless (apt-get install chromium, or set \
         CHROMIUM; HTTP_BENCH_ONLY=1,2 to leave it out)",
        chromium.display()
    );
    let dir = roboconf_tests::workspace().join("tests/console");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let o = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm ci in {}: {e}", dir.display()));
        assert!(
            o.status.success(),
            "npm ci in {} failed:\n{}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr)
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
        let col = |f: fn(&GetRun) -> f64| r.iter().map(f).collect::<Vec<_>>();
        let get = format!(
            "GET instances?all-children=true, {} instances",
            r[0].instances
        );
        row(
            &format!("{get}, p50 of {REQUESTS}"),
            cell(&col(|x| x.p50), "ms", 1),
            "",
        );
        let p99 = cell(&col(|x| x.p99), "ms", 1);
        row(&format!("{get}, p99 of {REQUESTS}"), p99, "<= 50 ms");
        let size = format!("{:.2} MB", r[0].bytes as f64 / 1e6);
        row("its response size", size, "");
        let status = cell(&col(|x| x.cli_ms), "ms", 1);
        row(
            "`roboconf status <app> --json` on it (CLI process), median of 20",
            status,
            "",
        );
    }
    if part("2") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let r: Vec<WsRun> = (0..runs).map(|k| websockets(&rt, k)).collect();
        let col = |f: fn(&WsRun) -> f64| r.iter().map(f).collect::<Vec<_>>();
        let all = r
            .iter()
            .all(|x| x.lo == x.published && x.hi == x.published && x.cut == 0);
        let per_run: Vec<String> = r
            .iter()
            .map(|x| format!("{} / {}..{}", x.published, x.lo, x.hi))
            .collect();
        let verdict = if all { "all delivered" } else { "MISSING" };
        let events = format!("{} ({verdict})", per_run.join(", "));
        row(&format!("events published / received by each of {CLIENTS} WebSocket clients (min..max), per run"), events, "all to all");
        let t = cell(&col(|x| x.start_all), "s", 2);
        row(
            "`app start` of 1,000 instances → all DEPLOYED_STARTED, 101 clients",
            t,
            "",
        );
        row(
            "agent RSS, peak during the run",
            cell(&col(|x| x.peak), "MB", 1),
            "<= 40 MB",
        );
        let end = cell(&col(|x| x.end), "MB", 1);
        row("agent RSS at the end, clients connected", end, "<= 40 MB");
    }
    if part("3") {
        let (fp, tr) = first_paint();
        let paint = format!("{fp:.0} ms (tree rendered at {tr:.0} ms)");
        row(
            "console first paint, 1,000 instances, median of 5 page loads",
            paint,
            "<= 1 s",
        );
    }
    println!("\nhttp: medians of {runs} runs (min, max)\n| figure | result | goal |\n|---|---|---|\n{table}");
}
