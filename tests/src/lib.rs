//! Shared helpers of the end-to-end tests: where the Roboconf corpus and the example
//! applications are, and how to run the real `roboconf` binary built by this workspace.

pub mod broker;
pub mod dockerd;
pub mod gen;
pub mod http;
pub mod launch;
pub mod log;
pub mod netns;
pub mod rabbit;
pub mod smtp;
pub mod sshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `../shared/roboconf-corpus` beside the checkout (or `$ROBOCONF_CORPUS`), if present.
/// When it is absent: `None` with a message, or a panic when `CI=true`, since CI always
/// has it.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("ROBOCONF_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/roboconf-corpus"));
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the Roboconf corpus is missing at {} (CI must have it)",
            dir.display()
        );
    }
    eprintln!("SKIPPED: the Roboconf corpus is not at {}", dir.display());
    None
}

/// The `roboconf` binary of this build (`target/<profile>/roboconf`).
pub fn roboconf_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("roboconf");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p roboconf-agent` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Writes the application `shop` under `root/app`: the graph and instances given, an
/// `embedded` target without an address for the `VM` root component (machines started by
/// hand, with `--host` or `instance bind`: the coordinator launches none), and `files` (relative path, text), e.g.
/// scripts. Returns its folder.
pub fn shop_app(root: &Path, graph: &str, instances: &str, files: &[(&str, &str)]) -> PathBuf {
    let app = root.join("app");
    let w = |rel: &str, text: &str| {
        let p = app.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w("descriptor/application.properties", "application-name = shop\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n");
    w("graph/main.graph", graph);
    w("instances/main.instances", instances);
    w(
        "graph/VM/local.target.properties",
        "id = by-hand\nhandler = embedded\nname = machines started by hand\n",
    );
    for (rel, text) in files {
        w(rel, text);
    }
    app
}

/// Runs `roboconf ARGS...` from the workspace root and returns its output.
pub fn roboconf(args: &[&str]) -> Output {
    let mut cmd = Command::new(roboconf_bin());
    with_random_ports(&mut cmd)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot run roboconf: {e}"))
}

/// A `roboconf agent` process for a test, killed (with SIGKILL) when dropped.
pub struct Agent {
    pub data_dir: PathBuf,
    pub child: std::process::Child,
    pub log: PathBuf,
    /// Where this run's lines start in the log (it is appended to across restarts).
    log_start: usize,
}

impl Agent {
    /// Starts an agent on `data_dir` with extra arguments and environment, and waits (with
    /// a deadline) until its control socket answers.
    pub fn start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Agent {
        Agent::start_in(None, data_dir, args, envs)
    }

    /// `start`, inside the network namespace `ns` when given (`ip netns exec`, which
    /// execs the agent: the child is the agent itself).
    pub fn start_in(
        ns: Option<&str>,
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Agent {
        Agent::start_binary(ns, &roboconf_bin(), data_dir, args, envs)
    }

    /// `start_in` with another `roboconf` binary (a copy, another build).
    pub fn start_binary(
        ns: Option<&str>,
        binary: &Path,
        data_dir: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Agent {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension("log");
        let log_start = std::fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("agent log");
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        with_random_ports(&mut cmd);
        cmd.arg("agent")
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .envs(envs.iter().copied());
        let child = cmd
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start the agent");
        let agent = Agent {
            data_dir: data_dir.to_path_buf(),
            child,
            log,
            log_start,
        };
        agent.wait_until(
            "the control socket answers",
            std::time::Duration::from_secs(20),
            |a| a.cli(&["app", "list"]).status.success(),
        );
        agent
    }

    /// Runs `roboconf --data-dir <this agent's> ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(roboconf_bin())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .current_dir(workspace())
            .output()
            .unwrap_or_else(|e| panic!("cannot run roboconf: {e}"))
    }

    /// `roboconf ARGS` (a `--json` command), as a JSON value (`Null` when it failed).
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.cli(args).stdout).unwrap_or(serde_json::Value::Null)
    }

    /// `status APP --json`, as a JSON value.
    pub fn status(&self, app: &str) -> serde_json::Value {
        self.json(&["status", app, "--json"])
    }

    /// The state of one instance.
    pub fn state(&self, app: &str, path: &str) -> String {
        let s = self.status(app);
        s["instances"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["path"] == path))
            .map(|i| i["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// Polls `cond` until it holds, or panics after `timeout` with the agent's log.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: std::time::Duration,
        cond: impl Fn(&Agent) -> bool,
    ) {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let members = self.cli(&["members"]);
        panic!(
            "timed out waiting for {what}; members:\n{}\nagent log (last lines):\n{}",
            String::from_utf8_lossy(&members.stdout),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// Waits until every listed instance is in `state`.
    pub fn wait_states(&self, app: &str, paths: &[&str], state: &str) {
        self.wait_until(
            &format!("{paths:?} {state}"),
            std::time::Duration::from_secs(30),
            |a| paths.iter().all(|p| a.state(app, p) == state),
        );
    }

    /// This run's part of the agent's log (the file is appended to across restarts).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .get(self.log_start..)
            .unwrap_or_default()
            .to_string()
    }

    /// One request on the agent's control socket (a JSON line), and its answer.
    pub fn control(&self, request: &serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead, Write};
        let path = self.data_dir.join("control.sock");
        let stream = std::os::unix::net::UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("control socket {}: {e}", path.display()));
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(30)));
        let mut line = request.to_string();
        line.push('\n');
        (&stream)
            .write_all(line.as_bytes())
            .expect("send the request");
        let mut answer = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut answer)
            .expect("read the answer");
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("answer {answer:?}: {e}"))
    }

    /// The first address this run of the agent announced in its log (`--listen` agents).
    pub fn address(&self) -> String {
        let find = |a: &Agent| log::addresses(&a.log_text()).into_iter().next();
        self.wait_until(
            "the listening address",
            std::time::Duration::from_secs(20),
            |a| find(a).is_some(),
        );
        find(self).unwrap_or_default()
    }

    /// `mesh init`: this agent starts a new mesh.
    pub fn init_mesh(&self) {
        let o = self.cli(&["mesh", "init"]);
        assert!(
            o.status.success(),
            "mesh init: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// `mesh token`: a fresh join token (the last word printed).
    pub fn token(&self) -> String {
        let o = self.cli(&["mesh", "token", "--ttl", "10m"]);
        assert!(
            o.status.success(),
            "mesh token: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string()
    }

    /// Joins the mesh of `member` with a token it issued.
    pub fn join(&self, member: &Agent) {
        let token = member.token();
        let o = self.cli(&["join", &member.address(), "--token", &token]);
        assert!(
            o.status.success(),
            "join: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
        // The machines this agent's coordinator may have launched with the `local`
        // target (by default beside its data dir) go with it.
        if let Some(parent) = self.data_dir.parent() {
            kill_machines(&parent.join("roboconf-machines"));
        }
    }
}

/// Kills the agents of the `local` target's machines under `dir` (by the PID and
/// session their `machine.json` records); returns how many were alive.
pub fn kill_machines(dir: &Path) -> usize {
    let mut n = 0;
    for pid in live_machines(dir) {
        n += 1;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    n
}

/// Kills (SIGKILL) every process whose command line names `dir`: what a test's
/// machines started and left running on their own (daemons of the scripts, in their own
/// sessions), so that nothing outlives the test. Returns how many were killed.
pub fn kill_processes_under(dir: &Path) -> usize {
    let needle = dir.display().to_string();
    let me = std::process::id();
    let mut n = 0;
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .contains(&needle)
        {
            n += 1;
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    n
}

/// A free TCP port on loopback, for a server a test names before it starts (see
/// [`free_ports`]).
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>();
    port
}

/// The low end of the kernel's ephemeral range (`ip_local_port_range`): ports below it
/// are never given to a `bind` to port 0 or to an outgoing connection.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768)
}

/// Ports the tests name themselves ([`free_ports`]) are below this one; from it up to
/// the ephemeral range, blocks for the agents' random ports ([`random_ports`]).
const AGENT_BLOCKS_LOW: u16 = 20_000;
const AGENT_BLOCK: u16 = 500;

/// Random numbers for port draws (the std's random hasher keys; no extra crate).
fn draws() -> impl Iterator<Item = u64> {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new();
    (0u64..10_000).map(move |i| {
        let mut h = random.build_hasher();
        h.write_u64(i);
        h.finish()
    })
}

/// `N` distinct free TCP ports on loopback, for the applications' own servers, whose
/// ports a test writes in their instances file seconds before they bind them. They are
/// drawn at random in 10000–19999, below the kernel's ephemeral range where no other
/// test's `bind` to port 0 or outgoing connection can take one meanwhile (a port 0
/// reservation once lost its port to a parallel test's connection, and an app server
/// never started), and apart from the agents' random ports ([`random_ports`]); each is
/// checked free by binding it, all at once so that they differ.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::net::TcpListener;
    let (low, high) = (10_000u16, AGENT_BLOCKS_LOW.min(ephemeral_low()));
    let mut held: Vec<TcpListener> = Vec::with_capacity(N);
    if high > low {
        for d in draws() {
            if held.len() == N {
                break;
            }
            let port = low + (d % u64::from(high - low)) as u16;
            if let Ok(l) = TcpListener::bind(("0.0.0.0", port)) {
                held.push(l);
            }
        }
    }
    // A kernel whose ephemeral range starts that low leaves only port 0.
    while held.len() < N {
        held.push(TcpListener::bind("127.0.0.1:0").expect("a free port"));
    }
    let mut ports = [0; N];
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr().expect("a bound port").port();
    }
    ports
}

/// This test's range for its agents' `random[port]` variables, inclusive (every agent
/// and `roboconf` command a test starts gets it as `ROBOCONF_RANDOM_PORTS`, and the
/// machines a `local` target launches inherit it). Agents
/// allocate the lowest free port of their range when an instance is registered and bind
/// it when it starts: two tests' meshes in the default range would both pick 10000.
/// Each test process takes a block of 499 ports above 20000 at random and holds the
/// block's first port bound for as long as it runs, so that no parallel test takes the
/// same block. `None` (the agents' default range) when the ephemeral range leaves no
/// room for blocks.
pub fn random_ports() -> Option<(u16, u16)> {
    static BLOCK: std::sync::OnceLock<Option<(std::net::TcpListener, (u16, u16))>> =
        std::sync::OnceLock::new();
    BLOCK
        .get_or_init(|| {
            let blocks = ephemeral_low().checked_sub(AGENT_BLOCKS_LOW)? / AGENT_BLOCK;
            if blocks == 0 {
                return None;
            }
            draws().find_map(|d| {
                let start = AGENT_BLOCKS_LOW + (d % u64::from(blocks)) as u16 * AGENT_BLOCK;
                let held = std::net::TcpListener::bind(("0.0.0.0", start)).ok()?;
                Some((held, (start + 1, start + AGENT_BLOCK - 1)))
            })
        })
        .as_ref()
        .map(|&(_, range)| range)
}

/// `cmd` with this test's [`random_ports`] in its environment.
fn with_random_ports(cmd: &mut Command) -> &mut Command {
    if let Some((low, high)) = random_ports() {
        cmd.env("ROBOCONF_RANDOM_PORTS", format!("{low}-{high}"));
    }
    cmd
}

/// A copy of examples/lamp under `root/lamp`, its balancer and database on free ports.
pub fn lamp_copy(root: &Path) -> PathBuf {
    lamp_copy_on(root, free_port())
}

/// A copy of `examples/<name>` under `root/<name>`.
pub fn example_copy(root: &Path, name: &str) -> PathBuf {
    let app = root.join(name);
    let copy = Command::new("cp")
        .arg("-r")
        .arg(workspace().join("examples").join(name))
        .arg(&app)
        .status()
        .is_ok_and(|s| s.success());
    assert!(copy, "copy examples/{name}");
    app
}

/// A free port (`free_port`) other than `taken`, one the caller holds no socket on.
pub fn free_port_besides(taken: u16) -> u16 {
    loop {
        let p = free_port();
        if p != taken {
            return p;
        }
    }
}

/// `roboconf`'s output of a command that must succeed (its stdout), or a panic with
/// what it printed.
pub fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A copy of examples/lamp under `root/lamp`, its balancer on port `lb`, its database on
/// a free port.
pub fn lamp_copy_on(root: &Path, lb: u16) -> PathBuf {
    let app = example_copy(root, "lamp");
    // The database's port differs from the balancer's, both taken by the caller.
    let db = free_port_besides(lb);
    let instances = format!(
        "instance of VM {{\n\tname: vm-lb;\n\tinstance of LB {{\n\t\tname: lb;\n\t\tport: {lb};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-1;\n\tinstance of App {{\n\t\tname: app-1;\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-2;\n\tinstance of App {{\n\t\tname: app-2;\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-db;\n\tinstance of Db {{\n\t\tname: db;\n\t\tport: {db};\n\t}}\n}}\n"
    );
    std::fs::write(app.join("instances/lamp.instances"), instances).expect("instances");
    app
}

/// Kills, when dropped (also when the test panics), the `local` target's machines under
/// its folder and whatever their scripts left running there.
pub struct MachinesGuard(pub PathBuf);

impl Drop for MachinesGuard {
    fn drop(&mut self) {
        kill_machines(&self.0);
        kill_processes_under(&self.0);
    }
}

/// The PIDs of the `local` target's machines under `dir` that are alive.
pub fn live_machines(dir: &Path) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let rec = std::fs::read_to_string(e.path().join("machine.json")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&rec).unwrap_or_default();
        let Some(pid) = v["pid"].as_u64() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().map(str::trim_start).unwrap_or("");
        if !stat.is_empty() && !state.starts_with('Z') && !state.starts_with('X') {
            out.push(pid as u32);
        }
    }
    out
}

/// Polls `cond` every 20 ms until it holds; fails the test after `timeout`.
pub fn wait(what: &str, timeout: std::time::Duration, cond: impl FnMut() -> bool) {
    wait_or_tell(what, timeout, cond, String::new)
}

/// `wait`, whose failure also says what `tell` gathers then (logs, files).
pub fn wait_or_tell(
    what: &str,
    timeout: std::time::Duration,
    mut cond: impl FnMut() -> bool,
    tell: impl FnOnce() -> String,
) {
    let end = std::time::Instant::now() + timeout;
    while !cond() {
        if std::time::Instant::now() >= end {
            panic!("timed out waiting for {what}\n{}", tell());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The servers in the balancer's configuration (wherever its machine keeps it).
pub fn lamp_servers(machines: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![machines.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "lb.conf") {
                found = std::fs::read_to_string(&p)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.starts_with("server "))
                    .map(String::from)
                    .collect();
            }
        }
    }
    found.sort();
    found
}
