//! A private RabbitMQ node beside the machine's, for broker-loss tests and benchmarks: its
//! own node name (`rabbit-test-<pid>-<n>@localhost`), its own ports (AMQP, Erlang
//! distribution, and an EPMD of its own, each taken from a socket bound to port 0 and
//! released), its own `HOME` (the Erlang cookie), database, logs and configuration, all
//! in a folder under the temporary directory. It can be stopped and started again on
//! the same ports and data (durable queues and persistent messages survive; transient
//! exchanges do not, except those given as definitions, which the node imports at every
//! boot before it opens its listener). Dropping it stops the node, kills its EPMD and
//! removes the folder.
//!
//! It runs Debian's scripts from `/usr/lib/rabbitmq/bin` (the `/usr/sbin` wrappers switch
//! to the `rabbitmq` user, which would drop this environment), as the test's user.
//!
//! Cost on this project's machine (2 cores; RabbitMQ 3.10 on Erlang 25), measured: a
//! start takes 5.0–6.6 s until the AMQP listener answers, and `rabbitmqctl
//! await_startup` returns 0.4–1.4 s later (7.8 s in all at most; 10 s while a cargo
//! build competed for the cores); a stop takes 1.5 s; a restart of a node with data
//! costs the same as a first start.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where Debian's package keeps the server's and the CLI's scripts.
pub const SCRIPTS: &str = "/usr/lib/rabbitmq/bin";
/// How long a start may take, until `await_startup` returns.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stop may take, until the port is closed and the node's process gone.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two looks while polling (a deadline bounds every wait).
const POLL: Duration = Duration::from_millis(50);

/// `guest`'s password hash for definitions: base64(salt ‖ SHA-256(salt ‖ "guest")) with
/// the 4-byte salt `Robo`, RabbitMQ's `rabbit_password_hashing_sha256` format.
const GUEST_HASH: &str = "Um9ib0SfH6YcphMRndYZ9LcIazXA9lN0Bm5A0ghUAaABD5sx";

/// Whether this machine can run one (Debian's `rabbitmq-server` installed).
pub fn available() -> bool {
    Path::new(SCRIPTS).join("rabbitmq-server").is_file()
}

/// A private RabbitMQ node (see the module's documentation).
pub struct PrivateBroker {
    /// `rabbit-test-<pid>-<n>@localhost`.
    pub node: String,
    /// The AMQP listener, on 127.0.0.1.
    pub port: u16,
    /// The node's Erlang distribution port (what `rabbitmqctl` talks to).
    pub dist_port: u16,
    /// The port of this node's own EPMD.
    pub epmd_port: u16,
    /// Everything of the node: `home/`, `mnesia/`, `log/`, its configuration.
    pub dir: PathBuf,
    /// The server's script (`sh`), leader of its own process group; `None` when stopped.
    child: Option<Child>,
    accepting_since: Option<Instant>,
    last_start: Duration,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Whether an AMQP server answers on the port: the protocol header written, a method
/// frame (`Connection.Start`, frame type 1) read back.
fn amqp_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
        return false;
    }
    let mut frame = [0u8; 7];
    s.read_exact(&mut frame).is_ok() && frame[0] == 1
}

fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&addr(port), Duration::from_millis(500)).is_ok()
}

/// Whether a process is gone or a zombie (this machine's PID 1 reaps nothing).
fn dead(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().map(str::trim_start).unwrap_or("");
    stat.is_empty() || state.starts_with('Z') || state.starts_with('X')
}

/// Live `epmd` processes started with `ERL_EPMD_PORT=<port>` in their environment.
fn epmd_pids(port: u16) -> Vec<u32> {
    let want = format!("ERL_EPMD_PORT={port}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        if comm.trim() != "epmd" {
            continue;
        }
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let has = env.split(|b| *b == 0).any(|kv| kv == want.as_bytes());
        if has && !dead(pid) {
            out.push(pid);
        }
    }
    out
}

fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Default for PrivateBroker {
    fn default() -> Self {
        PrivateBroker::new()
    }
}

impl PrivateBroker {
    /// A node ready to start (folder, ports and configuration chosen; nothing runs).
    /// Without definitions, the node creates the vhost `/` and `guest`/`guest` (allowed
    /// from loopback only, RabbitMQ's default) on its first boot.
    pub fn new() -> PrivateBroker {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let node = format!("rabbit-test-{pid}-{n}@localhost");
        let dir = std::env::temp_dir().join(format!("rabbit-test-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["home", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).expect("broker dir");
        }
        let [port, dist_port, epmd_port] = crate::free_ports::<3>();
        let b = PrivateBroker {
            node,
            port,
            dist_port,
            epmd_port,
            dir,
            child: None,
            accepting_since: None,
            last_start: Duration::ZERO,
        };
        // An empty environment file instead of the machine's (which names its node and
        // sets ERL_FLAGS), no plugins.
        std::fs::write(b.dir.join("rabbitmq-env.conf"), "").expect("env file");
        std::fs::write(b.dir.join("enabled_plugins"), "[].\n").expect("plugins file");
        b.write_config(None);
        b
    }

    /// [`PrivateBroker::new`], with definitions the node imports at every boot, before it
    /// opens its AMQP listener: `defs` holds RabbitMQ's definitions arrays (`exchanges`,
    /// `queues`, `bindings`, …); the vhost `/` and `guest`/`guest` with every permission
    /// on it are added (a node loading definitions seeds no default user).
    pub fn with_definitions(defs: &serde_json::Value) -> PrivateBroker {
        let b = PrivateBroker::new();
        let mut d = defs.clone();
        let obj = d.as_object_mut().expect("definitions are a JSON object");
        obj.entry("vhosts")
            .or_insert_with(|| serde_json::json!([{ "name": "/" }]));
        obj.entry("users").or_insert_with(|| {
            serde_json::json!([{
                "name": "guest",
                "password_hash": GUEST_HASH,
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": ["administrator"],
            }])
        });
        obj.entry("permissions").or_insert_with(|| {
            serde_json::json!([{
                "user": "guest", "vhost": "/",
                "configure": ".*", "write": ".*", "read": ".*",
            }])
        });
        let path = b.dir.join("definitions.json");
        std::fs::write(&path, d.to_string()).expect("definitions");
        b.write_config(Some(&path));
        b
    }

    fn write_config(&self, definitions: Option<&Path>) {
        let mut conf = format!(
            "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users.guest = true\nlog.console = false\nlog.file.level = info\n",
            self.port
        );
        if let Some(p) = definitions {
            conf.push_str(&format!("load_definitions = {}\n", p.display()));
        }
        std::fs::write(self.dir.join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
    }

    /// The environment of the server and of `rabbitmqctl`.
    fn env(&self) -> Vec<(&'static str, String)> {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        vec![
            ("HOME", d("home")),
            ("RABBITMQ_NODENAME", self.node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_NODE_PORT", self.port.to_string()),
            ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
            ("ERL_EPMD_PORT", self.epmd_port.to_string()),
            ("ERL_EPMD_ADDRESS", "127.0.0.1".into()),
            ("RABBITMQ_MNESIA_BASE", d("mnesia")),
            ("RABBITMQ_LOG_BASE", d("log")),
            ("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf")),
            ("RABBITMQ_ADVANCED_CONFIG_FILE", d("advanced.config")),
            ("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf")),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins")),
            ("RABBITMQ_PID_FILE", d("rabbitmq.pid")),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".into(),
            ),
        ]
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Whether the node's process runs (started and not stopped).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// When the last start's AMQP listener first answered.
    pub fn accepting_since(&self) -> Option<Instant> {
        self.accepting_since
    }

    /// How long the last start took, until `await_startup` returned.
    pub fn last_start(&self) -> Duration {
        self.last_start
    }

    /// The node's log and the server's output (last lines), for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "server output:\n{}\nnode log:\n{}",
            tail(&self.dir.join("server.out"), 20),
            tail(&self.dir.join("log").join(format!("{}.log", self.node)), 30)
        )
    }

    /// Starts the node and waits until its AMQP listener answers and
    /// `rabbitmqctl await_startup` returns (within [`START_TIMEOUT`]); panics otherwise.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.node);
        let t0 = Instant::now();
        let deadline = t0 + START_TIMEOUT;
        let out = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("server.out"))
            .expect("server output");
        let child = Command::new(Path::new(SCRIPTS).join("rabbitmq-server"))
            .envs(self.env())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("server output"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPTS}/rabbitmq-server: {e}"));
        self.child = Some(child);
        self.accepting_since = None;
        loop {
            if amqp_answers(self.port) {
                break;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "{} exited ({status}) while starting\n{}",
                    self.node,
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "{} did not accept AMQP on {} within {START_TIMEOUT:?}\n{}",
                    self.node,
                    self.port,
                    self.logs()
                );
            }
            std::thread::sleep(POLL);
        }
        let accepting = Instant::now();
        self.accepting_since = Some(accepting);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let o = self.ctl_until(
            &["await_startup", "--timeout", &left.to_string()],
            deadline + Duration::from_secs(5),
        );
        assert!(
            o.status.success(),
            "rabbitmqctl await_startup: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.logs()
        );
        self.last_start = t0.elapsed();
        eprintln!(
            "private RabbitMQ {} on 127.0.0.1:{}: accepting AMQP after {:.1} s, started after {:.1} s",
            self.node,
            self.port,
            (accepting - t0).as_secs_f64(),
            self.last_start.as_secs_f64()
        );
    }

    /// `rabbitmqctl -n <node> ARGS` with the node's environment (within 60 s; killed
    /// after, and then reported as failed).
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_until(args, Instant::now() + Duration::from_secs(60))
    }

    fn ctl_until(&self, args: &[&str], deadline: Instant) -> Output {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let (out_path, err_path) = (
            self.dir.join(format!("ctl-{n}.out")),
            self.dir.join(format!("ctl-{n}.err")),
        );
        let mut child = Command::new(Path::new(SCRIPTS).join("rabbitmqctl"))
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .envs(self.env())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("ctl output"))
            .stderr(File::create(&err_path).expect("ctl output"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SCRIPTS}/rabbitmqctl: {e}"));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                _ => {
                    let _ = child.kill();
                    break child.wait().expect("rabbitmqctl");
                }
            }
        };
        let read = |p: &Path| {
            let v = std::fs::read(p).unwrap_or_default();
            let _ = std::fs::remove_file(p);
            v
        };
        Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }

    /// Stops the node (`rabbitmqctl stop`) and waits until its AMQP port is closed and
    /// its process gone (within [`STOP_TIMEOUT`], then killed). The data stays.
    pub fn stop(&mut self) {
        if self.child.is_none() {
            return;
        }
        let t0 = Instant::now();
        let deadline = t0 + STOP_TIMEOUT;
        let o = self.ctl_until(&["stop"], deadline);
        if !o.status.success() {
            eprintln!(
                "rabbitmqctl stop {}: {}{}; terminating it",
                self.node,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if let Some(c) = &self.child {
                signal_group(c.id(), "TERM");
            }
        }
        loop {
            let exited = match self.child.as_mut() {
                Some(c) => !matches!(c.try_wait(), Ok(None)),
                None => true,
            };
            if exited && !port_open(self.port) {
                break;
            }
            if Instant::now() > deadline {
                eprintln!("{} still up after {STOP_TIMEOUT:?}: killed", self.node);
                self.kill();
                break;
            }
            std::thread::sleep(POLL);
        }
        self.child = None;
        eprintln!(
            "private RabbitMQ {} stopped in {:.1} s",
            self.node,
            t0.elapsed().as_secs_f64()
        );
    }

    /// Stops the node if it runs, then starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.start();
    }

    /// SIGKILL to the node's process group, and reaps its script.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal_group(c.id(), "KILL");
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Ends the node's EPMD: `epmd -kill` (accepted once no node is registered), then
    /// SIGKILL to whatever EPMD of this port is left.
    fn kill_epmd(&self) {
        let port = self.epmd_port.to_string();
        let _ = Command::new("epmd")
            .args(["-port", &port, "-kill"])
            .env("ERL_EPMD_PORT", &port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let left = epmd_pids(self.epmd_port);
            if left.is_empty() {
                return;
            }
            if Instant::now() > end {
                eprintln!("epmd on {port} still alive: {left:?}");
                return;
            }
            for pid in left {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            // RabbitMQ stops cleanly on SIGTERM (its script passes it on); faster than
            // `rabbitmqctl stop`, whose CLI alone takes seconds to start.
            signal_group(c.id(), "TERM");
            let end = Instant::now() + Duration::from_secs(20);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < end {
                std::thread::sleep(POLL);
            }
            if matches!(c.try_wait(), Ok(None)) {
                self.kill();
            }
            self.child = None;
        }
        self.kill_epmd();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
