//! The Puppet modules a recipe lists in `modules.properties` (beside its `roboconf_*`
//! folder; Java properties, `author-name = version`, an empty version meaning any):
//! made present in the instance's working folder before `deploy`, which is where Roboconf
//! has `puppet module install` put them.
//!
//! Roboconf downloads every listed module from the Forge at every deploy, which an
//! air-gapped site cannot do. Here a module is looked for, in order: in the recipe itself
//! (a folder of that name shipped beside `roboconf_*`), in the application's
//! `puppet-modules/` folder, in the agent's `[puppet] module-dirs` (by default where
//! Debian's `puppet-module-*` packages put them); a module found is linked into the
//! working folder, and so are the modules its `metadata.json` depends on (found the same
//! way). Only a module found nowhere is installed from the Forge, when the agent's config
//! allows it and the Forge answers; otherwise `deploy` fails with a message naming the
//! module and every place it was looked for.

use super::{first_error, Puppet};
use crate::process::{self, Limits};
use crate::{Error, Invocation};
use roboconf_model::puppet::forge_module_folder;
use std::collections::{BTreeSet, VecDeque};
use std::fmt::Write;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The file listing a recipe's modules.
pub const MODULES_FILE: &str = "modules.properties";

/// The application folder holding modules shipped with it.
pub const APP_MODULES_DIR: &str = "puppet-modules";

/// Where the Forge is and whether it may be used.
#[derive(Debug, Clone)]
pub struct Forge {
    /// Modules found nowhere else may be installed from the Forge.
    pub allowed: bool,
    /// Another Forge (`puppet module install --module_repository`); `None`: Puppet's.
    pub url: Option<String>,
    /// How long to wait for the Forge to accept a connection before giving up on it.
    pub probe_timeout: Duration,
}

impl Default for Forge {
    fn default() -> Self {
        Forge {
            allowed: true,
            url: None,
            probe_timeout: Duration::from_secs(3),
        }
    }
}

const DEFAULT_FORGE: &str = "https://forgeapi.puppet.com";

/// A module to make present, and why.
struct Wanted {
    full_name: String,
    folder: String,
    /// A plain version (`1.2.3`) to match exactly; ranges and empty: any.
    version: Option<String>,
    required_by: Option<String>,
}

/// What a module folder's `metadata.json` says.
#[derive(Default)]
struct Metadata {
    version: Option<String>,
    dependencies: Vec<String>,
}

fn metadata(dir: &Path) -> Metadata {
    let Ok(text) = std::fs::read(dir.join("metadata.json")) else {
        return Metadata::default();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&text) else {
        return Metadata::default();
    };
    Metadata {
        version: v["version"].as_str().map(str::to_string),
        dependencies: v["dependencies"]
            .as_array()
            .map(|deps| {
                deps.iter()
                    .filter_map(|d| d["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// A plain version, compared exactly; anything else (a range, `1.x`) matches any.
fn plain_version(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.')).then(|| v.to_string())
}

/// Reads `modules.properties` (ISO-8859-1, as Java reads it), sorted by module name.
fn listed(file: &Path) -> Result<Vec<(String, String)>, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let mut out: Vec<(String, String)> = roboconf_model::props::parse(&text)
        .into_iter()
        .map(|e| (e.key.trim().to_string(), e.value.trim().to_string()))
        .collect();
    out.sort();
    Ok(out)
}

/// Makes every module of the recipe's `modules.properties` present in its working folder;
/// returns what was done (for the run's output).
pub(super) fn install(
    puppet: &Puppet,
    action: &'static str,
    inv: &Invocation,
) -> Result<String, Error> {
    let file = inv.recipe_dir.join(MODULES_FILE);
    if !file.is_file() {
        return Ok(String::new());
    }
    let refuse = |message: String, output: String| Error::Refused {
        action,
        message,
        output,
    };
    let entries = listed(&file).map_err(|m| refuse(m, String::new()))?;
    let mut queue: VecDeque<Wanted> = VecDeque::new();
    for (key, version) in entries {
        let Some(folder) = forge_module_folder(&key) else {
            return Err(refuse(
                format!(
                    "`{key}` in {} is not a Forge module name (author-name)",
                    file.display()
                ),
                String::new(),
            ));
        };
        queue.push_back(Wanted {
            folder: folder.to_string(),
            full_name: key,
            version: plain_version(&version),
            required_by: None,
        });
    }
    let mut log = String::new();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut from_forge: Vec<Wanted> = Vec::new();
    while let Some(w) = queue.pop_front() {
        if !done.insert(w.folder.clone()) {
            continue;
        }
        let dest = inv.recipe_dir.join(&w.folder);
        if std::fs::symlink_metadata(&dest).is_ok() {
            let _ = writeln!(log, "module {}: shipped with the recipe", w.full_name);
            continue;
        }
        let mut notes = vec![format!("{} (the recipe)", dest.display())];
        let candidates = std::iter::once(inv.application_dir.join(APP_MODULES_DIR))
            .chain(puppet.module_dirs.iter().cloned())
            .map(|d| d.join(&w.folder));
        let mut found: Option<(PathBuf, Metadata)> = None;
        for c in candidates {
            if !c.is_dir() {
                notes.push(c.display().to_string());
                continue;
            }
            let meta = metadata(&c);
            match (&w.version, &meta.version) {
                (Some(want), Some(has)) if want != has => {
                    notes.push(format!("{} (version {has}, not {want})", c.display()));
                }
                _ => {
                    found = Some((c, meta));
                    break;
                }
            }
        }
        match found {
            Some((dir, meta)) => {
                std::os::unix::fs::symlink(&dir, &dest).map_err(|e| {
                    refuse(
                        format!("cannot link {} into {}: {e}", dir.display(), dest.display()),
                        log.clone(),
                    )
                })?;
                let _ = writeln!(
                    log,
                    "module {}{}: {}",
                    w.full_name,
                    meta.version
                        .as_deref()
                        .map(|v| format!(" {v}"))
                        .unwrap_or_default(),
                    dir.display()
                );
                for dep in meta.dependencies {
                    if let Some(folder) = forge_module_folder(&dep) {
                        queue.push_back(Wanted {
                            folder: folder.to_string(),
                            full_name: dep.clone(),
                            version: None,
                            required_by: Some(w.full_name.clone()),
                        });
                    }
                }
            }
            None if puppet.forge.allowed => from_forge.push(w),
            None => {
                return Err(refuse(
                    format!(
                        "{} not found: looked in {}; the Forge is off for this agent \
                         ([puppet] forge = false)",
                        describe(&w, &file),
                        notes.join(", ")
                    ),
                    log,
                ))
            }
        }
    }
    if from_forge.is_empty() {
        return Ok(log);
    }
    let url = puppet.forge.url.as_deref().unwrap_or(DEFAULT_FORGE);
    if let Err(why) = reachable(url, puppet.forge.probe_timeout) {
        let w = &from_forge[0];
        return Err(refuse(
            format!(
                "{} not found in the recipe, {}/ or {}, and the Forge ({url}) cannot be reached: {why}",
                describe(w, &file),
                APP_MODULES_DIR,
                if puppet.module_dirs.is_empty() {
                    "any module folder of the agent".to_string()
                } else {
                    puppet
                        .module_dirs
                        .iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            log,
        ));
    }
    for w in from_forge {
        let mut cmd = Command::new(&puppet.program);
        cmd.arg("module").arg("install");
        if let Some(v) = &w.version {
            cmd.arg("--version").arg(v);
        }
        cmd.arg(&w.full_name)
            .arg("--target-dir")
            .arg(&inv.recipe_dir)
            .arg("--color=false");
        if let Some(u) = &puppet.forge.url {
            cmd.arg("--module_repository").arg(u);
        }
        cmd.current_dir(&inv.recipe_dir);
        let ended = process::run(
            cmd,
            Limits {
                timeout: puppet.timeout,
                capture_limit: puppet.capture_limit,
            },
        )
        .map_err(|e| refuse(super::spawn_error(puppet, &e), log.clone()))?;
        log.push_str(&ended.output);
        match ended.status {
            Some(s) if s.success() => {
                let _ = writeln!(log, "module {}: installed from {url}", w.full_name);
            }
            status => {
                let why = match status {
                    None => format!("timed out after {} s", puppet.timeout.as_secs()),
                    Some(s) => format!(
                        "exit code {}{}",
                        s.code().unwrap_or(-1),
                        first_error(&ended.output)
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    ),
                };
                return Err(refuse(
                    format!(
                        "{} could not be installed from the Forge ({url}): {why}",
                        describe(&w, &file)
                    ),
                    log,
                ));
            }
        }
    }
    Ok(log)
}

fn describe(w: &Wanted, file: &Path) -> String {
    let version = w
        .version
        .as_deref()
        .map(|v| format!(" {v}"))
        .unwrap_or_default();
    match &w.required_by {
        Some(by) => format!(
            "the Puppet module {}{version} (needed by {by})",
            w.full_name
        ),
        None => format!(
            "the Puppet module {}{version} listed in {}",
            w.full_name,
            file.display()
        ),
    }
}

/// Whether something accepts connections at the Forge's address within `timeout`.
fn reachable(url: &str, timeout: Duration) -> Result<(), String> {
    let (default_port, rest) = match url.split_once("://") {
        Some(("http", rest)) => (80, rest),
        Some((_, rest)) => (443, rest),
        None => (443, url),
    };
    let authority = rest.split('/').next().unwrap_or(rest).to_string();
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority
    } else {
        format!("{authority}:{default_port}")
    };
    // Name resolution may hang where there is no network: done aside, waited for a while.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let result = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {with_port}: {e}"))
            .and_then(|addrs| {
                let mut last = format!("{with_port} has no address");
                for a in addrs {
                    match std::net::TcpStream::connect_timeout(&a, timeout) {
                        Ok(_) => return Ok(()),
                        Err(e) => last = format!("{a}: {e}"),
                    }
                }
                Err(last)
            });
        let _ = tx.send(result);
    });
    rx.recv_timeout(timeout + Duration::from_millis(100))
        .unwrap_or_else(|_| Err(format!("no answer within {} s", timeout.as_secs_f32())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_forge_addresses() {
        assert_eq!(plain_version(" 0.3.0 "), Some("0.3.0".into()));
        assert_eq!(plain_version(">= 1.0.0 < 2.0.0"), None);
        assert_eq!(plain_version(""), None);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = closed.local_addr().expect("addr").port();
        drop(closed);
        let err = reachable(&format!("http://127.0.0.1:{port}/"), Duration::from_secs(2))
            .expect_err("closed port");
        assert!(err.contains("127.0.0.1"), "{err}");
        let open = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = open.local_addr().expect("addr").port();
        reachable(&format!("http://127.0.0.1:{port}"), Duration::from_secs(2)).expect("open");
    }
}
