//! A private Docker engine for the `docker` target's tests: Debian's `dockerd` (package
//! `docker.io`, which `.ci/run` installs) with its data root, exec root, pid file and
//! socket in a folder of the test's, no bridge and no iptables rules (containers use the
//! host's network), started in about half a second. Dropped: every container removed,
//! the engine stopped (its containerd with it) and its folder deleted. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const DOCKERD: &str = "/usr/sbin/dockerd";

/// Whether this machine can run one (dockerd installed, tests running as root).
pub fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && Path::new(DOCKERD).exists() && docker_cli().is_some()
}

fn docker_cli() -> Option<PathBuf> {
    ["/usr/bin/docker", "/usr/local/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

pub struct Dockerd {
    /// `unix://<folder>/docker.sock`.
    pub endpoint: String,
    dir: tempfile::TempDir,
    child: Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        // A short path: a unix socket's path is limited to 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("rbd-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log");
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let e = Dockerd {
            endpoint: format!("unix://{}", d.join("docker.sock").display()),
            dir,
            child,
        };
        let end = Instant::now() + Duration::from_secs(30);
        while !e.cli(&["version"]).status.success() {
            assert!(
                Instant::now() < end,
                "dockerd did not answer: {}",
                std::fs::read_to_string(e.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        e
    }

    /// Runs the docker CLI against this engine.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(docker_cli().expect("the docker CLI"))
            .arg("-H")
            .arg(&self.endpoint)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// The names of the containers (all, or the running ones).
    pub fn containers(&self, all: bool) -> Vec<String> {
        let mut args = vec!["ps", "--format", "{{.Names}}"];
        if all {
            args.push("-a");
        }
        let o = self.cli(&args);
        let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let all = self.containers(true);
        if !all.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(all.iter().map(String::as_str));
            let _ = self.cli(&args);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(20);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Whatever the engine left mounted under its folder goes before the folder.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mine = self.dir.path().display().to_string();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&mine))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
}
