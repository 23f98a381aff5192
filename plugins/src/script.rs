//! The `script` installer: for an action, runs the file of the recipe's `scripts/` folder
//! whose name starts with the action (`deploy.sh`, `start.py`...), with the instance's
//! working copy of the recipe as working directory and the Roboconf environment
//! (DESIGN §6) added to the agent's own. A missing script is a no-op. The exit code
//! decides success; a script that outlives its timeout is killed with its process group;
//! only the last `capture_limit` bytes of its output are kept (`process`).

use crate::env::script_environment;
use crate::process::{self, Limits};
use crate::{Action, Error, Invocation, Outcome, Plugin};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

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

impl Plugin for Script {
    fn installer(&self) -> &'static str {
        "script"
    }

    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error> {
        let Some(script) = find_script(&inv.recipe_dir, action) else {
            return Ok(Outcome::default());
        };
        let mut perms = std::fs::metadata(&script)?.permissions();
        if perms.mode() & 0o100 == 0 {
            perms.set_mode(perms.mode() | 0o755);
            std::fs::set_permissions(&script, perms)?;
        }
        let mut cmd = Command::new(&script);
        cmd.current_dir(&inv.recipe_dir)
            .envs(script_environment(action, inv));
        let ended = process::run(
            cmd,
            Limits {
                timeout: self.timeout,
                capture_limit: self.capture_limit,
            },
        )?;
        let output = ended.output;
        match ended.status {
            None => Err(Error::TimedOut {
                action: action.as_str(),
                seconds: self.timeout.as_secs(),
                output,
            }),
            Some(s) if s.success() => Ok(Outcome {
                ran: true,
                output,
                ..Outcome::default()
            }),
            Some(s) => Err(Error::Failed {
                action: action.as_str(),
                code: s.code().unwrap_or(-1),
                detail: None,
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
