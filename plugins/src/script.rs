//! The `script` installer: for an action, runs the file of the recipe's `scripts/` folder
//! whose name starts with the action (`deploy.sh`, `start.py`...), with the instance's
//! working copy of the recipe as working directory and the Roboconf environment
//! (DESIGN §6) added to the agent's own. A missing script is a no-op. The exit code
//! decides success; a script that outlives its timeout is killed with its process group;
//! only the last `capture_limit` bytes of its output are kept.

use crate::env::script_environment;
use crate::{Action, Error, Invocation, Outcome, Plugin};
use std::collections::VecDeque;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Held for reading while a script is spawned, and for writing while recipe files are
/// written. A child forked while another thread still has a script open for writing
/// would keep that file open and make its `exec` fail with "text file busy".
pub static EXEC_LOCK: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The script plug-in and its limits.
#[derive(Debug, Clone)]
pub struct Script {
    pub timeout: Duration,
    /// Most bytes of output kept per run (the end of it).
    pub capture_limit: usize,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            timeout: Duration::from_secs(300),
            capture_limit: 64 * 1024,
        }
    }
}

/// The script for `action` in `recipe_dir/scripts`, if any (first by name).
pub fn find_script(recipe_dir: &Path, action: Action) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(recipe_dir.join("scripts"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(action.as_str()))
        })
        .collect();
    found.sort();
    found.into_iter().next()
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

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<Tail>>, done_tx: mpsc::Sender<()>) {
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

/// How long output may still be read once the script is gone (background processes may
/// hold the pipes open forever).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

impl Plugin for Script {
    fn installer(&self) -> &'static str {
        "script"
    }

    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error> {
        let Some(script) = find_script(&inv.recipe_dir, action) else {
            return Ok(Outcome {
                ran: false,
                output: String::new(),
            });
        };
        let mut perms = std::fs::metadata(&script)?.permissions();
        if perms.mode() & 0o100 == 0 {
            perms.set_mode(perms.mode() | 0o755);
            std::fs::set_permissions(&script, perms)?;
        }
        let guard = EXEC_LOCK.read();
        let spawned = Command::new(&script)
            .current_dir(&inv.recipe_dir)
            .envs(script_environment(action, inv))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        drop(guard);
        let mut child = spawned?;
        let tail = Arc::new(Mutex::new(Tail {
            bytes: VecDeque::new(),
            dropped: 0,
            limit: self.capture_limit,
        }));
        let (drained_tx, drained_rx) = mpsc::channel();
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
        let status = match done_rx.recv_timeout(self.timeout) {
            Ok(status) => Some(status?),
            Err(_) => {
                // Kill the whole process group the script leads.
                let _ = Command::new("kill")
                    .args(["-s", "KILL", "--", &format!("-{pid}")])
                    .status();
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
        match status {
            None => Err(Error::TimedOut {
                action: action.as_str(),
                seconds: self.timeout.as_secs(),
                output,
            }),
            Some(s) if s.success() => Ok(Outcome { ran: true, output }),
            Some(s) => Err(Error::Failed {
                action: action.as_str(),
                code: s.code().unwrap_or(-1),
                output,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn recipe(scripts: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("scripts")).expect("mkdir");
        for (name, body) in scripts {
            std::fs::write(dir.path().join("scripts").join(name), body).expect("write");
        }
        dir
    }

    fn inv(dir: &Path) -> Invocation {
        Invocation {
            instance_name: "app".into(),
            instance_path: "/vm/app".into(),
            component: "App".into(),
            recipe_dir: dir.to_path_buf(),
            ..Invocation::default()
        }
    }

    #[test]
    fn runs_the_script_of_the_action_in_the_working_copy() {
        let dir = recipe(&[(
            "start.sh",
            "#!/bin/bash\necho \"$ROBOCONF_INSTANCE_PATH in $PWD\"\necho oops >&2\n",
        )]);
        let out = Script::default()
            .run(Action::Start, &inv(dir.path()))
            .expect("start");
        assert!(out.ran);
        let cwd = dir.path().canonicalize().expect("canonical");
        assert!(
            out.output
                .contains(&format!("/vm/app in {}", cwd.display())),
            "{}",
            out.output
        );
        assert!(out.output.contains("oops"));
        let none = Script::default()
            .run(Action::Stop, &inv(dir.path()))
            .expect("no stop script");
        assert!(!none.ran);
    }

    #[test]
    fn a_failing_script_reports_its_code_and_output() {
        let dir = recipe(&[(
            "deploy.py",
            "#!/usr/bin/env python3\nimport sys\nprint('cannot deploy')\nsys.exit(3)\n",
        )]);
        match Script::default().run(Action::Deploy, &inv(dir.path())) {
            Err(Error::Failed {
                code: 3, output, ..
            }) => assert!(output.contains("cannot deploy")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hanging_script_is_killed_at_its_timeout() {
        let dir = recipe(&[("start.sh", "#!/bin/bash\necho begun\nsleep 60\n")]);
        let plugin = Script {
            timeout: Duration::from_millis(300),
            ..Script::default()
        };
        let t = Instant::now();
        match plugin.run(Action::Start, &inv(dir.path())) {
            Err(Error::TimedOut { output, .. }) => assert!(output.contains("begun"), "{output}"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn output_is_bounded() {
        let dir = recipe(&[(
            "start.sh",
            "#!/bin/bash\nhead -c 5000000 /dev/zero | tr '\\0' x\necho END\n",
        )]);
        let plugin = Script {
            capture_limit: 1024,
            ..Script::default()
        };
        let out = plugin.run(Action::Start, &inv(dir.path())).expect("start");
        assert!(out.output.len() < 1200, "{}", out.output.len());
        assert!(out.output.ends_with("END\n") && out.output.contains("earlier bytes dropped"));
    }
}
