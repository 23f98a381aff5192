//! The control socket under abuse, with a real `roboconf agent`: a 100 MB request line
//! costs the agent no memory and the connection goes on; more idle clients than the cap,
//! or one that never finishes its line, do not lock the operator out; out of descriptors,
//! the agent pauses instead of spinning and answers again once they are back. Also the
//! join token lifetime (1 s to 7 days, checked by the agent whatever the client, `d` in
//! `--ttl`), and `wait` for an application that does not exist yet.

use roboconf_tests::{roboconf_bin, shop_app, Agent};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The agent's `control::MAX_CLIENTS` (this crate does not link the agent).
const MAX_CLIENTS: usize = 64;

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A field of `/proc/<pid>/status`, in kB (`VmRSS`...).
fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("ticks");
    field(14) + field(15)
}

fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn connect(data_dir: &Path) -> UnixStream {
    UnixStream::connect(data_dir.join("control.sock")).expect("connect to the control socket")
}

/// Sends one line and reads the answer line (at most 30 s).
fn ask(stream: &mut UnixStream, line: &str) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(line.as_bytes()).expect("write");
    stream.write_all(b"\n").expect("write");
    read_line(stream)
}

fn read_line(stream: &UnixStream) -> String {
    let mut answer = String::new();
    let _ = BufReader::new(stream).read_line(&mut answer);
    answer
}

fn status_answers(data_dir: &Path) -> bool {
    Command::new(roboconf_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("status")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn a_100_mb_line_costs_no_memory_and_the_connection_goes_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&tmp.path().join("data"), &[], &[]);
    let pid = agent.child.id();
    let before = proc_status_kb(pid, "VmRSS");
    let bound_kb = before + 32 * 1024;
    let mut stream = connect(&agent.data_dir);
    let chunk = vec![b'x'; 64 * 1024];
    let mut highest = before;
    for i in 0..1600 {
        stream
            .write_all(&chunk)
            .expect("the agent reads the long line");
        if i % 64 == 0 {
            highest = highest.max(proc_status_kb(pid, "VmRSS"));
        }
    }
    let answer = ask(&mut stream, "");
    assert!(
        answer.contains("\"kind\":\"error\"") && answer.contains("larger than"),
        "{answer}"
    );
    highest = highest.max(proc_status_kb(pid, "VmRSS"));
    assert!(
        highest < bound_kb,
        "the agent's RSS went from {before} kB to {highest} kB for one long line"
    );
    // The same connection answers the next request.
    let answer = ask(&mut stream, r#"{"op":"status","app":null}"#);
    assert!(answer.contains("\"kind\":\"status\""), "{answer}");
    // Several long lines at once cost no more.
    let mut streams: Vec<UnixStream> = (0..3).map(|_| connect(&agent.data_dir)).collect();
    for _ in 0..320 {
        for s in &mut streams {
            s.write_all(&chunk).expect("write");
        }
    }
    for s in &mut streams {
        let answer = ask(s, "");
        assert!(answer.contains("larger than"), "{answer}");
    }
    let after = proc_status_kb(pid, "VmRSS");
    // The figures docs/BENCHMARKS.md reports (`--no-capture`).
    eprintln!("control socket, 100 MB line: RSS {before} kB before, {highest} kB at most while read, {after} kB after three 20 MB lines in parallel");
    assert!(after < bound_kb, "RSS {before} kB, then {after} kB");
}

/// Whether the agent has closed `stream` (it may say why first: kept in `said`).
fn closed_by_agent(stream: &mut UnixStream, said: &mut Vec<u8>) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => said.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn more_idle_clients_than_the_cap_do_not_lock_the_operator_out() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&tmp.path().join("data"), &[], &[]);
    let pid = agent.child.id();
    let baseline = open_descriptors(pid);
    let mut idle: Vec<(UnixStream, Vec<u8>, bool)> = (0..MAX_CLIENTS * 3)
        .map(|_| (connect(&agent.data_dir), Vec::new(), false))
        .collect();
    // Each newcomer over the cap takes the place of the longest idle connection, or is
    // told the agent is busy when none has been idle for a second (a burst like this).
    let over = idle.len() - MAX_CLIENTS;
    wait_for(
        "the agent to close the idle connections over its cap",
        Duration::from_secs(20),
        || {
            for (stream, said, closed) in idle.iter_mut() {
                if !*closed {
                    *closed = closed_by_agent(stream, said);
                }
            }
            idle.iter().filter(|c| c.2).count() >= over
        },
    );
    for (_, said, _) in idle.iter().filter(|c| c.2) {
        let said = String::from_utf8_lossy(said);
        assert!(
            said.contains("longest idle") || said.contains("busy"),
            "{said:?}"
        );
    }
    assert!(
        open_descriptors(pid) <= baseline + MAX_CLIENTS + 2,
        "the agent holds {} descriptors (it had {baseline})",
        open_descriptors(pid)
    );
    // The operator gets in at once, although the cap is reached (by connections idle
    // for more than a second now).
    let idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_millis(1100) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let o = agent.cli(&["status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "status took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_that_never_finishes_its_line_is_let_go() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&tmp.path().join("data"), &[], &[]);
    // One says half a request and stops; another trickles a byte every 200 ms.
    let mut silent = connect(&agent.data_dir);
    silent.write_all(br#"{"op":"#).expect("write");
    let mut trickling = connect(&agent.data_dir);
    let writer = {
        let mut stream = trickling.try_clone().expect("clone");
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(30);
            while Instant::now() < end && stream.write_all(b" ").is_ok() {
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let started = Instant::now();
    for stream in [&mut silent, &mut trickling] {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let answer = read_line(stream);
        assert!(
            answer.contains("no complete request within 10 s"),
            "after {:?}: {answer:?}",
            started.elapsed()
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
    let _ = trickling.shutdown(std::net::Shutdown::Both);
    writer.join().expect("writer");
    assert!(status_answers(&agent.data_dir));
}

/// An agent started with at most `limit` open descriptors (`ulimit -n`), killed when
/// dropped.
struct LimitedAgent {
    data_dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl LimitedAgent {
    fn start(data_dir: &Path, limit: u32) -> LimitedAgent {
        std::fs::create_dir_all(data_dir).expect("data dir");
        let log = data_dir.with_extension("log");
        let out = std::fs::File::create(&log).expect("log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"ulimit -n {limit} && exec "$0" agent --data-dir "$1""#
            ))
            .arg(roboconf_bin())
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start the agent");
        let agent = LimitedAgent {
            data_dir: data_dir.to_path_buf(),
            log,
            child,
        };
        wait_for("the agent to answer", Duration::from_secs(20), || {
            status_answers(&agent.data_dir)
        });
        agent
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LimitedAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn out_of_descriptors_the_agent_pauses_then_answers_again() {
    const LIMIT: usize = 64;
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = LimitedAgent::start(&tmp.path().join("data"), LIMIT as u32);
    let pid = agent.child.id();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.contains(&format!(" {LIMIT} "))),
        "{limits}"
    );
    // More connections than the agent has descriptors for: the rest wait in the backlog.
    let mut held: Vec<UnixStream> = (0..LIMIT * 2).map(|_| connect(&agent.data_dir)).collect();
    wait_for(
        "the agent to use all its descriptors",
        Duration::from_secs(20),
        || open_descriptors(pid) >= LIMIT,
    );
    // Measuring over an interval, not waiting for anything: a spinning accept loop
    // would burn a whole core meanwhile.
    let ticks_per_second = clock_ticks_per_second();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    eprintln!("control socket, out of descriptors: {used} ticks of CPU in 2 s ({ticks_per_second} a second)");
    assert!(
        used * 4 < 2 * ticks_per_second,
        "the agent used {used} ticks of CPU in 2 s ({ticks_per_second} a second)"
    );
    assert!(
        agent.log().contains("cannot accept a connection"),
        "{}",
        agent.log()
    );
    // A client connected before keeps being answered.
    let answer = ask(&mut held[0], r#"{"op":"status","app":null}"#);
    assert!(answer.contains("\"kind\":\"status\""), "{answer}");
    drop(held);
    wait_for(
        "status to answer once the descriptors are back",
        Duration::from_secs(10),
        || status_answers(&agent.data_dir),
    );
    wait_for("the agent to say so", Duration::from_secs(10), || {
        agent.log().contains("accepting connections again")
    });
}

const LISTEN: [&str; 2] = ["--listen", "/ip4/127.0.0.1/tcp/0"];

#[test]
fn mesh_token_ttl_takes_days_up_to_seven() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&tmp.path().join("data"), &LISTEN, &[]);
    agent.init_mesh();
    for ttl in ["7d", "6d", "1d12h"] {
        let o = agent.cli(&["mesh", "token", "--ttl", ttl]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains("rcm1-"),
            "--ttl {ttl}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    for ttl in ["8d", "7d1s", "0s", "999ms", "forever"] {
        let o = agent.cli(&["mesh", "token", "--ttl", ttl]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "--ttl {ttl}: {err}");
        assert!(err.contains("from 1s to 7 days"), "{err}");
    }
}

#[test]
fn mesh_token_requests_outside_one_second_to_seven_days_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let agent = Agent::start(&tmp.path().join("data"), &LISTEN, &[]);
    agent.init_mesh();
    let ten_years: u64 = 3650 * 86_400_000;
    let mut accepted = Vec::new();
    for ttl_ms in [ten_years, 0, 999, 7 * 86_400_000 + 1, u64::MAX] {
        let mut stream = connect(&agent.data_dir);
        let answer = ask(
            &mut stream,
            &format!(r#"{{"op":"mesh_token","ttl_ms":{ttl_ms}}}"#),
        );
        if !answer.contains("\"kind\":\"error\"") {
            accepted.push(format!("ttl_ms {ttl_ms}: {answer:?}"));
        }
    }
    assert!(
        accepted.is_empty(),
        "not refused:\n{}\nagent log:\n{}",
        accepted.join("\n"),
        std::fs::read_to_string(&agent.log).unwrap_or_default()
    );
    let mut stream = connect(&agent.data_dir);
    let answer = ask(
        &mut stream,
        &format!(r#"{{"op":"mesh_token","ttl_ms":{}}}"#, 7 * 86_400_000u64),
    );
    assert!(answer.contains("604800 s"), "{answer}");
}

/// Where the process is blocked in the kernel (`hrtimer_nanosleep` while it sleeps),
/// or `None` when this kernel does not say.
fn kernel_wait_channel(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/wchan"))
        .ok()
        .filter(|w| !w.is_empty() && w != "0")
}

/// Kills a `roboconf wait` left running by a failed test.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn wait_waits_for_an_application_to_appear() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let graph = "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n}\n";
    let instances = "instance of VM {\n\tname: vm;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n";
    let app = shop_app(tmp.path(), graph, instances, &[]);
    let agent = Agent::start(&tmp.path().join("data"), &["--host", "shop:/vm"], &[]);
    let waiting = Command::new(roboconf_bin())
        .arg("--data-dir")
        .arg(&agent.data_dir)
        .args([
            "wait",
            "shop",
            "--state",
            "DEPLOYED_STARTED",
            "--timeout",
            "30s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start roboconf wait");
    let mut waiting = Reaped(waiting);
    // `wait` sleeps only between two status answers: once it sleeps, it has been told
    // that there is no `shop` (or it has already given up).
    let pid = waiting.0.id();
    wait_for(
        "roboconf wait to get its first answer",
        Duration::from_secs(20),
        || {
            kernel_wait_channel(pid).is_none_or(|w| w.contains("nanosleep"))
                || waiting.0.try_wait().ok().flatten().is_some()
        },
    );
    let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut exited = None;
    wait_for("roboconf wait to end", Duration::from_secs(40), || {
        exited = waiting.0.try_wait().ok().flatten();
        exited.is_some()
    });
    let mut err = String::new();
    if let Some(mut stderr) = waiting.0.stderr.take() {
        let _ = stderr.read_to_string(&mut err);
    }
    assert_eq!(exited.and_then(|s| s.code()), Some(0), "{err}");
    assert_eq!(agent.state("shop", "/vm/db"), "DEPLOYED_STARTED");
    // An application that never comes: a timeout that says so.
    let o = agent.cli(&[
        "wait",
        "ghost",
        "--state",
        "DEPLOYED_STARTED",
        "--timeout",
        "300ms",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("timed out") && err.contains("no application named `ghost` appeared"),
        "{err}"
    );
}
