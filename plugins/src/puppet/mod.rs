//! The `puppet` installer, Roboconf's contract run on Puppet 7: for an action, the one
//! `roboconf_*` folder of the instance's working copy is the module; its class
//! `<module>::<action>` when `manifests/<action>.pp` exists, else `<module>` when
//! `manifests/init.pp` does, else the action does nothing. It runs
//! `puppet apply --verbose --detailed-exitcodes --color=false --modulepath
//! [$MODULEPATH:]<working copy> --execute "class{…}"` (`code` builds the class code) in the
//! working copy, with the agent's environment, under the same timeout, output bounds and
//! process-group kill as scripts (`process`). Exit codes 0 and 2 succeed, 6 succeeds with
//! a warning kept in the run's record, any other fails with Puppet's first error (which
//! names the manifest, its line and column). `deploy` first makes the modules of
//! `modules.properties` present (`modules`), as Roboconf's `initialize` does just before.

pub mod code;
pub mod modules;

use crate::process::{self, Limits};
use crate::{Action, Error, Invocation, Outcome, Plugin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use modules::Forge;

/// The Puppet plug-in and its settings.
#[derive(Debug, Clone)]
pub struct Puppet {
    /// The `puppet` program (looked up in `PATH` when it has no `/`).
    pub program: PathBuf,
    pub timeout: Duration,
    /// Most bytes of output kept per run (the end of it).
    pub capture_limit: usize,
    /// Folders holding modules that `modules.properties` may name, after the recipe and
    /// the application's `puppet-modules/`.
    pub module_dirs: Vec<PathBuf>,
    pub forge: Forge,
}

impl Default for Puppet {
    fn default() -> Self {
        Puppet {
            program: PathBuf::from("puppet"),
            timeout: Duration::from_secs(300),
            capture_limit: 64 * 1024,
            module_dirs: default_module_dirs(),
            forge: Forge::default(),
        }
    }
}

/// Debian's own module folders (Puppet's `basemodulepath` there): where the
/// `puppet-module-*` packages install.
pub fn default_module_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("/etc/puppet/code/modules"),
        PathBuf::from("/usr/share/puppet/modules"),
    ]
}

/// The first error Puppet reported in `output` (colour codes and the node name taken
/// out; Facter's complaints about the host are not the run's error).
pub fn first_error(output: &str) -> Option<String> {
    output.lines().find_map(|l| {
        let l = strip_ansi(l);
        let e = l.trim().strip_prefix("Error: ")?;
        if e.starts_with("Facter:") {
            return None;
        }
        let e = match e.rfind(" on node ") {
            Some(i) => &e[..i],
            None => e,
        };
        Some(e.trim().to_string())
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ … final byte in @..~
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Why the `puppet` program could not be started, for people.
fn spawn_error(puppet: &Puppet, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!(
            "the Puppet program `{}` is not on this agent (install Debian's `puppet` package, \
             or set `program` in the agent's [puppet] settings)",
            puppet.program.display()
        )
    } else {
        format!("cannot start `{}`: {e}", puppet.program.display())
    }
}

/// The module folder of a working copy: its one `roboconf_*` folder.
pub fn module_folder(recipe_dir: &Path) -> Result<PathBuf, String> {
    let mut found = roboconf_model::puppet::module_folders(recipe_dir);
    match found.len() {
        0 => Err(format!(
            "no Puppet module in {}: the module to run is a folder whose name starts with \
             `roboconf_`",
            recipe_dir.display()
        )),
        1 => {
            let m = found.remove(0);
            let name = m
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if roboconf_model::puppet::is_module_folder_name(&name) {
                Ok(m)
            } else {
                Err(format!(
                    "Puppet 7 does not load the module folder {} (module names are \
                     lower-case letters, digits and `_`)",
                    m.display()
                ))
            }
        }
        _ => Err(format!(
            "several Puppet modules in {}: {} (there must be one `roboconf_*` folder)",
            recipe_dir.display(),
            found
                .iter()
                .filter_map(|m| m.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The class to apply for `action` in `module`, and its manifest; `None`: no manifest.
pub fn class_for(module: &Path, action: Action) -> Option<(String, PathBuf)> {
    let name = module.file_name()?.to_string_lossy().into_owned();
    let own = module
        .join("manifests")
        .join(format!("{}.pp", action.as_str()));
    if own.is_file() {
        return Some((format!("{name}::{}", action.as_str()), own));
    }
    let init = module.join("manifests").join("init.pp");
    init.is_file().then_some((name, init))
}

/// `--modulepath`: `$MODULEPATH` first, as Roboconf, then the working copy.
fn module_path(recipe_dir: &Path) -> Result<String, String> {
    let dir = recipe_dir
        .to_str()
        .filter(|d| !d.contains(':'))
        .ok_or_else(|| {
            format!(
                "the working folder {} cannot be on a Puppet module path (it has a `:` or is not \
             UTF-8)",
                recipe_dir.display()
            )
        })?;
    Ok(match std::env::var("MODULEPATH") {
        Ok(mp) if !mp.is_empty() => {
            if mp.ends_with(':') {
                format!("{mp}{dir}")
            } else {
                format!("{mp}:{dir}")
            }
        }
        _ => dir.to_string(),
    })
}

impl Puppet {
    fn limits(&self) -> Limits {
        Limits {
            timeout: self.timeout,
            capture_limit: self.capture_limit,
        }
    }

    /// The `puppet apply` command for `action` (what `run` starts) and the manifest it
    /// applies; `None` when the module has no manifest for it.
    pub fn command(
        &self,
        action: Action,
        inv: &Invocation,
    ) -> Result<Option<(Command, PathBuf)>, Error> {
        let refuse = |message: String| Error::Refused {
            action: action.as_str(),
            message,
            output: String::new(),
        };
        let module = module_folder(&inv.recipe_dir).map_err(refuse)?;
        let Some((class, manifest)) = class_for(&module, action) else {
            return Ok(None);
        };
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "apply",
            "--verbose",
            "--detailed-exitcodes",
            "--color=false",
        ])
        .arg("--modulepath")
        .arg(module_path(&inv.recipe_dir).map_err(refuse)?)
        .arg("--execute")
        .arg(code::class_code(&class, action, inv))
        .current_dir(&inv.recipe_dir);
        Ok(Some((cmd, manifest)))
    }
}

impl Plugin for Puppet {
    fn installer(&self) -> &'static str {
        "puppet"
    }

    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error> {
        let mut output = String::new();
        if matches!(action, Action::Initialize | Action::Deploy) {
            output = modules::install(self, action.as_str(), inv)?;
            if action == Action::Initialize {
                return Ok(Outcome {
                    ran: !output.is_empty(),
                    output,
                    ..Outcome::default()
                });
            }
        }
        let Some((cmd, manifest)) = self.command(action, inv)? else {
            // No manifest for this action: nothing to do (as Roboconf).
            output.push_str(&format!(
                "no manifest for {0} (neither {0}.pp nor init.pp)\n",
                action.as_str()
            ));
            return Ok(Outcome {
                output,
                ..Outcome::default()
            });
        };
        let ended = process::run(cmd, self.limits()).map_err(|e| Error::Refused {
            action: action.as_str(),
            message: spawn_error(self, &e),
            output: output.clone(),
        })?;
        output.push_str(&ended.output);
        let Some(status) = ended.status else {
            return Err(Error::TimedOut {
                action: action.as_str(),
                seconds: self.timeout.as_secs(),
                output,
            });
        };
        let code = status.code().unwrap_or(-1);
        match code {
            0 | 2 => Ok(Outcome {
                ran: true,
                output,
                code: Some(code),
                warning: None,
            }),
            6 => Ok(Outcome {
                ran: true,
                code: Some(code),
                warning: Some(format!(
                    "Puppet made changes and some failed (exit code 6){}",
                    first_error(&output)
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )),
                output,
            }),
            _ => {
                let detail = first_error(&output).map(|e| {
                    if e.contains("(file: ") {
                        e
                    } else {
                        format!("{e} (applying {})", manifest.display())
                    }
                });
                Err(Error::Failed {
                    action: action.as_str(),
                    code,
                    detail: Some(detail.unwrap_or_else(|| {
                        format!(
                            "puppet apply of {} failed without an error message",
                            manifest.display()
                        )
                    })),
                    output,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puppet_errors_are_picked_from_its_output() {
        let out = "\u{1b}[1;31mError: Facter: Permission denied @ rb_sysopen - /proc/1/environ\u{1b}[0m\n\
                   Notice: Compiled catalog\n\
                   \u{1b}[1;31mError: Could not parse for environment production: Syntax error at '}' (file: /w/roboconf_x/manifests/init.pp, line: 3, column: 1) on node vm\u{1b}[0m\n";
        assert_eq!(
            first_error(out).as_deref(),
            Some(
                "Could not parse for environment production: Syntax error at '}' \
                 (file: /w/roboconf_x/manifests/init.pp, line: 3, column: 1)"
            )
        );
        assert_eq!(first_error("Notice: fine\n"), None);
    }

    #[test]
    fn module_and_class_of_each_action() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(module_folder(dir.path())
            .expect_err("none")
            .contains("no Puppet module"));
        let m = dir.path().join("roboconf_db_module");
        std::fs::create_dir_all(m.join("manifests")).expect("mkdir");
        assert_eq!(module_folder(dir.path()).expect("one"), m);
        assert_eq!(class_for(&m, Action::Start), None);
        std::fs::write(m.join("manifests/init.pp"), "class roboconf_db_module {}").expect("w");
        std::fs::write(m.join("manifests/start.pp"), "").expect("w");
        assert_eq!(
            class_for(&m, Action::Start).map(|c| c.0).as_deref(),
            Some("roboconf_db_module::start")
        );
        assert_eq!(
            class_for(&m, Action::Stop).map(|c| c.0).as_deref(),
            Some("roboconf_db_module")
        );
        std::fs::create_dir(dir.path().join("Roboconf_Other")).expect("mkdir");
        assert!(module_folder(dir.path())
            .expect_err("two")
            .contains("several Puppet modules"));
    }
}
