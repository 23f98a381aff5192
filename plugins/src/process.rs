//! Running one program for a plug-in: spawned in its own process group with the output of
//! both streams kept (only its last `capture_limit` bytes), waited for at most `timeout`,
//! and killed when it outlives it: its process group and every process under it, even
//! those that made a session of their own (Puppet's `exec` resources do). The `script`
//! and `puppet` plug-ins run their programs through here, so both have the same bounds.

use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Held for reading while a program is spawned, and for writing while recipe files are
/// written. A child forked while another thread still has a script open for writing
/// would keep that file open and make its `exec` fail with "text file busy".
pub static EXEC_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// How long output may still be read once the program is gone (background processes may
/// hold the pipes open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The limits of one run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub timeout: Duration,
    /// Most bytes of output kept (the end of it).
    pub capture_limit: usize,
}

/// How a run ended.
#[derive(Debug)]
pub struct Ended {
    /// `None`: killed at its timeout.
    pub status: Option<ExitStatus>,
    /// Both streams, interleaved as they came, bounded.
    pub output: String,
}

/// Output kept from a run: the last `limit` bytes, and how many were dropped before.
#[derive(Debug)]
struct Tail {
    bytes: VecDeque<u8>,
    dropped: u64,
    limit: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(self.limit);
        if excess > 0 {
            self.bytes.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut v = a.to_vec();
        v.extend_from_slice(b);
        let body = String::from_utf8_lossy(&v).into_owned();
        if self.dropped > 0 {
            format!("[... {} earlier bytes dropped ...]\n{body}", self.dropped)
        } else {
            body
        }
    }
}

fn drain(
    mut from: impl Read + Send + 'static,
    into: Arc<Mutex<Tail>>,
    done_tx: mpsc::SyncSender<()>,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut t) = into.lock() {
                t.push(&buf[..n]);
            }
        }
        let _ = done_tx.send(());
    });
}

/// Runs `cmd` (its stdin, stdout, stderr and process group are set here) to its end or
/// its timeout. An error only when it could not be started.
pub fn run(mut cmd: Command, limits: Limits) -> std::io::Result<Ended> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let guard = EXEC_LOCK.read();
    let spawned = cmd.spawn();
    drop(guard);
    let mut child = spawned?;
    let tail = Arc::new(Mutex::new(Tail {
        bytes: VecDeque::new(),
        dropped: 0,
        limit: limits.capture_limit,
    }));
    // One word from each of the two readers.
    let (drained_tx, drained_rx) = mpsc::sync_channel(2);
    let mut readers = 0;
    if let Some(o) = child.stdout.take() {
        drain(o, tail.clone(), drained_tx.clone());
        readers += 1;
    }
    if let Some(e) = child.stderr.take() {
        drain(e, tail.clone(), drained_tx);
        readers += 1;
    }
    let pid = child.id();
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = done_tx.send(status);
    });
    let status = match done_rx.recv_timeout(limits.timeout) {
        Ok(status) => Some(status?),
        Err(_) => {
            kill_tree(pid);
            None
        }
    };
    let _ = waiter.join();
    let deadline = std::time::Instant::now() + DRAIN_GRACE;
    for _ in 0..readers {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if drained_rx.recv_timeout(left).is_err() {
            break;
        }
    }
    let output = tail.lock().map(|t| t.text()).unwrap_or_default();
    Ok(Ended { status, output })
}

/// The processes under `root` (children, their children...), read from `/proc`.
fn descendants(root: u32) -> Vec<u32> {
    let mut children: std::collections::HashMap<u32, Vec<u32>> = Default::default();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the command may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut next = vec![root];
    while let Some(p) = next.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            out.push(c);
            next.push(c);
        }
    }
    out
}

fn signal(sig: &str, pids: &[String]) {
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .args(["-s", sig, "--"])
            .args(pids)
            .stderr(Stdio::null())
            .status();
    }
}

/// Kills the program `pid` leads and everything under it: the tree is frozen first (so
/// that nothing forks away or is orphaned while it is killed), then killed with the
/// process group.
fn kill_tree(pid: u32) {
    let mut stopped: std::collections::BTreeSet<u32> = std::collections::BTreeSet::new();
    for _ in 0..5 {
        let fresh: Vec<String> = std::iter::once(pid)
            .chain(descendants(pid))
            .filter(|p| stopped.insert(*p))
            .map(|p| p.to_string())
            .collect();
        if fresh.is_empty() {
            break;
        }
        signal("STOP", &fresh);
    }
    let mut all: Vec<String> = stopped.iter().map(|p| p.to_string()).collect();
    all.push(format!("-{pid}"));
    signal("KILL", &all);
}
