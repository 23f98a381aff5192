//! The `local` target: a machine is an agent process on this host, in its own folder
//! (`<local.dir>/<app>-<root>-g<generation>`, by default `roboconf-machines` beside the
//! leader's data dir, so that every agent of the host finds the machines of a key),
//! with its own data dir, identity and log file. It is started detached with `setsid`
//! (its own session: it outlives the agent that launched it) and known by its PID and
//! the start time `/proc` gives, never by `kill -0` alone (a PID is reused). Terminate
//! asks it to leave the mesh, then kills its session and removes its folder. The
//! record is written only once the agent runs, so an agent whose launcher died in
//! between runs unrecorded: it is then found by its data dir's lock (`agent.lock`,
//! which the agent takes first thing and writes its PID in) and recorded, never started
//! a second time. This
//! module also owns that process handling for the `netns` target, which starts the
//! same agent inside a network namespace (`running`, `start`, `stop`, `alive_in`).

use super::{machine_name, Created, Failure, Target, UserData};
use roboconf_core::coord::MachineKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new agent has to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long `leave` may take before the machine is killed.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Local {
    base: PathBuf,
    binary: PathBuf,
}

/// What `machine.json` records of a started agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    pid: u32,
    /// Its start time, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    start: u64,
    node: String,
}

impl Local {
    pub fn new(props: &BTreeMap<String, String>, data_dir: &Path) -> Result<Local, String> {
        let base = match props.get("local.dir") {
            Some(d) => PathBuf::from(d),
            None => data_dir.parent().map_or_else(
                || data_dir.join("machines"),
                |p| p.join("roboconf-machines"),
            ),
        };
        let binary = match props.get("local.binary") {
            Some(b) => PathBuf::from(b),
            None => std::env::current_exe().map_err(|e| format!("the agent's binary: {e}"))?,
        };
        Ok(Local { base, binary })
    }

    fn dir(&self, key: &MachineKey) -> PathBuf {
        self.base.join(machine_name(key))
    }
}

fn read_record(dir: &Path) -> Option<Record> {
    let text = std::fs::read_to_string(dir.join("machine.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The start time of a live (not zombie) process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

fn alive(r: &Record) -> bool {
    start_time(r.pid) == Some(r.start)
}

/// The agent's data dir lock: held by the agent running there, which writes its PID in.
fn lock_path(dir: &Path) -> PathBuf {
    dir.join("agent").join("agent.lock")
}

/// The PID written in the lock of `dir` (read only: the lock is not touched).
fn locked_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(lock_path(dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The PID of the agent that holds the lock of `dir`, if one does. Probing takes the
/// lock for a moment: call it only when no agent of this launcher may be starting there.
fn lock_holder(dir: &Path) -> Option<u32> {
    let file = std::fs::File::open(lock_path(dir)).ok()?;
    match file.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => {}
        // Free (or no lock to take): no agent runs there.
        _ => return None,
    }
    // The holder writes its PID right after taking the lock.
    let mut pid = None;
    wait_until(Duration::from_secs(2), || {
        pid = locked_pid(dir);
        pid.is_some()
    });
    pid
}

/// The agent running in `dir`: the one `machine.json` records, or else the one holding
/// its data dir's lock — started by a launcher that died before recording it (a leader
/// killed during `create`) —, which is recorded now.
fn find(dir: &Path) -> Option<Record> {
    if let Some(r) = read_record(dir).filter(alive) {
        return Some(r);
    }
    let pid = lock_holder(dir)?;
    let node = crate::meshio::identity(&dir.join("agent"))
        .ok()?
        .public()
        .to_peer_id()
        .to_string();
    let rec = Record {
        pid,
        start: start_time(pid)?,
        node,
    };
    write_record(dir, &rec).ok()?;
    tracing::info!(
        pid,
        folder = %dir.display(),
        "an agent its launcher did not record runs in the machine's folder: recorded"
    );
    Some(rec)
}

fn write_record(dir: &Path, rec: &Record) -> std::io::Result<()> {
    let tmp = dir.join("machine.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(rec).unwrap_or_default())
        .and_then(|()| std::fs::rename(&tmp, dir.join("machine.json")))
}

/// The end of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill_session(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// How a machine's agent is started: what `local` and `netns` do differently.
pub(super) struct Launch<'a> {
    /// The target's name, for the reasons given.
    pub target: &'a str,
    /// Runs `setsid <binary> …` (`ip netns exec <ns>`); empty: `setsid` itself.
    pub prefix: &'a [String],
    /// The agent's `--listen` multiaddr.
    pub listen: String,
    /// More arguments of `agent` (`--ip <address>`).
    pub extra: &'a [String],
}

/// The member id of the agent already running in `dir`, whose user data then gets this
/// leader's token and addresses; `None` when none runs there.
pub(super) fn running(dir: &Path, user: &UserData) -> Option<String> {
    let r = find(dir)?;
    // Created for this key already (by this leader or the one before): its user data
    // gets this leader's token and addresses, which the agent reads again before each
    // attempt to join (the first leader may have died before its token reached anyone
    // else).
    let ud_path = dir.join("user-data.json");
    let tmp = dir.join("user-data.json.tmp");
    let ud = serde_json::to_vec_pretty(user).unwrap_or_default();
    let _ = std::fs::write(&tmp, ud).and_then(|()| std::fs::rename(&tmp, &ud_path));
    Some(r.node)
}

/// Whether the agent recorded in `dir` is alive.
pub(super) fn alive_in(dir: &Path) -> bool {
    find(dir).is_some()
}

/// Makes the agent's folder in `dir` (identity, user data, log), starts it as `how`
/// says, records it and waits for its control socket; its member id. When it fails the
/// folder is removed, unless the agent runs on (`left_behind`).
pub(super) fn start(
    dir: &Path,
    binary: &Path,
    how: &Launch,
    user: &UserData,
) -> Result<String, Failure> {
    let agent_dir = dir.join("agent");
    let target = how.target;
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::clean(format!("{target} target: {what} {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(&agent_dir).map_err(|e| fail("cannot create", &e))?;
    for d in [dir, &agent_dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("cannot set the permissions of", &e))?;
    }
    let identity = crate::meshio::identity(&agent_dir)
        .map_err(|e| fail("cannot make the agent's identity in", &e))?;
    let node = identity.public().to_peer_id().to_string();
    let ud_path = dir.join("user-data.json");
    let ud = serde_json::to_vec_pretty(user).unwrap_or_default();
    std::fs::write(&ud_path, ud).map_err(|e| fail("cannot write the user data in", &e))?;
    let _ = std::fs::set_permissions(&ud_path, std::fs::Permissions::from_mode(0o600));
    let log_path = dir.join("agent.log");
    // Appended to: an agent may be writing it already (see `find`).
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| fail("cannot create a log in", &e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| fail("cannot open the log in", &e))?;
    let mut cmd = match how.prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg("setsid");
            c
        }
        None => Command::new("setsid"),
    };
    let child = cmd
        .arg(binary)
        .arg("--data-dir")
        .arg(&agent_dir)
        .args(["agent", "--listen", &how.listen])
        .args(how.extra)
        .arg("--user-data")
        .arg(&ud_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(dir);
            return Err(Failure::clean(format!(
                "{target} target: cannot start {}: {e}",
                binary.display()
            )));
        }
    };
    let pid = child.id();
    let start = start_time(pid).unwrap_or(0);
    let rec = Record {
        pid,
        start,
        node: node.clone(),
    };
    let written = write_record(dir, &rec);
    // The agent is this process's child until this process ends: reap it when it
    // exits, so that it leaves no zombie behind.
    std::thread::spawn(move || {
        let _ = child.wait();
    });
    if let Err(e) = written {
        kill_session(pid, "-KILL");
        let _ = std::fs::remove_dir_all(dir);
        return Err(fail("cannot record the machine in", &e));
    }
    // Started once it holds its data dir's lock and its control socket is there (a
    // socket alone may be another agent's, or a dead one's).
    let socket = agent_dir.join("control.sock");
    let started = wait_until(START_TIMEOUT, || {
        (locked_pid(dir) == Some(pid) && socket.exists()) || !alive(&rec)
    });
    if !alive(&rec) {
        // It found another agent on its data dir (one started by a launcher that died
        // before recording it, not yet running when `running` looked): that one is the
        // machine, now recorded.
        if let Some(r) = find(dir) {
            return Ok(r.node);
        }
        let why = tail(&log_path);
        let _ = std::fs::remove_dir_all(dir);
        return Err(Failure::clean(format!(
            "{target} target: the agent exited at start: {why}"
        )));
    }
    if !started {
        return Err(Failure {
            reason: format!(
                "{target} target: the agent did not open its control socket within {} s (log: {})",
                START_TIMEOUT.as_secs(),
                log_path.display()
            ),
            left_behind: true,
        });
    }
    Ok(node)
}

/// Ends the agent recorded in `dir`: `leave` first (the mesh learns it is gone, not
/// dead), then its session is killed. Ok when nothing of it runs any more.
pub(super) fn stop(dir: &Path, binary: &Path, target: &str) -> Result<(), String> {
    let Some(r) = find(dir).or_else(|| read_record(dir)) else {
        return Ok(());
    };
    if alive(&r) {
        let leave = Command::new(binary)
            .arg("--data-dir")
            .arg(dir.join("agent"))
            .arg("leave")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut c) = leave {
            let ended = wait_until(LEAVE_TIMEOUT, || !matches!(c.try_wait(), Ok(None)));
            if !ended {
                let _ = c.kill();
            }
            let _ = c.wait();
        }
        let _ = wait_until(Duration::from_secs(5), || !alive(&r));
        if alive(&r) {
            kill_session(r.pid, "-TERM");
            let _ = wait_until(Duration::from_secs(3), || !alive(&r));
        }
    }
    // Whatever is left in its session (scripts it started) goes too.
    kill_session(r.pid, "-KILL");
    if !wait_until(Duration::from_secs(5), || !alive(&r)) {
        return Err(format!("{target} target: process {} does not die", r.pid));
    }
    Ok(())
}

impl Target for Local {
    fn create(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure> {
        let dir = self.dir(key);
        let node = match running(&dir, user) {
            Some(node) => node,
            None => {
                let how = Launch {
                    target: "local",
                    prefix: &[],
                    listen: "/ip4/127.0.0.1/tcp/0".into(),
                    extra: &[],
                };
                start(&dir, &self.binary, &how, user)?
            }
        };
        Ok(Created {
            machine_id: machine_name(key),
            address: "127.0.0.1".into(),
            node,
        })
    }

    fn terminate(&self, key: &MachineKey, machine_id: &str) -> Result<(), String> {
        let dir = match machine_id.is_empty() {
            true => self.dir(key),
            false => self.base.join(machine_id),
        };
        if !dir.exists() {
            return Ok(());
        }
        stop(&dir, &self.binary, "local")?;
        std::fs::remove_dir_all(&dir)
            .map_err(|e| format!("local target: cannot remove {}: {e}", dir.display()))
    }

    fn is_running(&self, key: &MachineKey) -> bool {
        alive_in(&self.dir(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for the agent (`<bin> --data-dir DIR agent …` or `… leave`): like the
    /// agent, it takes its data dir's lock first (and exits when another agent holds
    /// it), writes its PID in, then opens its "control socket" and stays; `leave` ends
    /// the agent holding the lock.
    const FAKE_AGENT: &str = r#"#!/bin/sh
dir="$2"
if [ "$3" = leave ]; then kill "$(cat "$dir/agent.lock")"; exit 0; fi
exec 9>>"$dir/agent.lock"
flock -n 9 || { echo "another agent is already running on the data dir $dir"; exit 1; }
echo $$ > "$dir/agent.lock"
: > "$dir/control.sock"
sleep 60
"#;

    /// Kills the session of an agent when dropped (also when the test fails).
    struct Session(u32);

    impl Drop for Session {
        fn drop(&mut self) {
            kill_session(self.0, "-KILL");
        }
    }

    fn user(token: &str) -> UserData {
        UserData {
            peers: Vec::new(),
            token: token.into(),
            name: "m".into(),
            app: "a".into(),
            root: "/vm".into(),
        }
    }

    #[test]
    fn an_agent_whose_launcher_died_before_recording_it_is_found_not_started_again() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let bin = tmp.path().join("fake-agent");
        std::fs::write(&bin, FAKE_AGENT).expect("write");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let props = BTreeMap::from([
            (
                "local.dir".to_string(),
                tmp.path().join("machines").display().to_string(),
            ),
            ("local.binary".to_string(), bin.display().to_string()),
        ]);
        let local = Local::new(&props, tmp.path()).expect("local");
        let key = MachineKey {
            app: "a".into(),
            root: "/vm".into(),
            generation: 1,
        };
        let dir = local.dir(&key);
        let first = local.create(&key, &user("t1")).expect("created");
        let rec = read_record(&dir).expect("recorded");
        let _session = Session(rec.pid);
        assert!(alive(&rec));
        // The leader is killed after starting the agent, before recording it.
        std::fs::remove_file(dir.join("machine.json")).expect("rm");
        // The next leader's `create` finds that agent, records it and gives it its token;
        // it does not start a second one (which would find the data dir locked and die,
        // leaving the record naming it while the first runs unrecorded).
        let again = local.create(&key, &user("t2")).expect("found");
        assert_eq!(again.node, first.node);
        let found = read_record(&dir).expect("recorded again");
        let _second = Session(found.pid);
        assert_eq!((found.pid, found.start), (rec.pid, rec.start));
        assert!(alive(&found));
        let ud = UserData::read(&dir.join("user-data.json")).expect("user data");
        assert_eq!(ud.token, "t2");
        assert!(local.is_running(&key));
        // A termination without the record ends it too (its folder is not removed under
        // a running agent).
        std::fs::remove_file(dir.join("machine.json")).expect("rm");
        local.terminate(&key, "").expect("terminated");
        assert!(!alive(&rec), "the agent runs on");
        assert!(!dir.exists());
    }
}
