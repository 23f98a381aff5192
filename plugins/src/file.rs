//! The `file` installer (as in Roboconf): for an action, runs the instructions of the
//! instance's `instructions.properties` whose keys are `<action>.<n>.<kind>`, in the order
//! of `n`: `copy` and `move` (`source -> target`), `delete` (a file or a folder) and
//! `download` (`http://` or `file://`, saved as `roboconf_tmp_file` in the working
//! directory). Relative paths are taken from the instance's working directory.

use crate::{Action, Error, Invocation, Outcome, Plugin};
use roboconf_model::props;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The file plug-in.
#[derive(Debug, Default, Clone)]
pub struct File;

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Copy(String, String),
    Move(String, String),
    Delete(String),
    Download(String),
}

/// The instructions for `action`, in order.
pub fn instructions(text: &str, action: Action) -> Result<Vec<Instruction>, String> {
    let prefix = format!("{}.", action.as_str());
    let mut found: Vec<(u32, Instruction)> = Vec::new();
    for e in props::parse(text) {
        let key = e.key.to_ascii_lowercase();
        let Some(rest) = key.strip_prefix(&prefix) else {
            continue;
        };
        let Some((n, kind)) = rest.split_once('.') else {
            continue;
        };
        let Ok(n) = n.parse::<u32>() else { continue };
        let pair = || match e.value.split_once("->") {
            Some((a, b)) => Ok((a.trim().to_string(), b.trim().to_string())),
            None => Err(format!("`{}` must be `source -> target`", e.key)),
        };
        let ins = match kind {
            "copy" => pair().map(|(a, b)| Instruction::Copy(a, b))?,
            "move" => pair().map(|(a, b)| Instruction::Move(a, b))?,
            "delete" => Instruction::Delete(e.value.trim().to_string()),
            "download" => Instruction::Download(e.value.trim().to_string()),
            other => return Err(format!("unknown instruction `{other}` in `{}`", e.key)),
        };
        found.push((n, ins));
    }
    found.sort_by_key(|(n, _)| *n);
    Ok(found.into_iter().map(|(_, i)| i).collect())
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    base.join(p)
}

fn download(url: &str, to: &Path) -> std::io::Result<()> {
    if let Some(path) = url.strip_prefix("file://") {
        std::fs::copy(path, to)?;
        return Ok(());
    }
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        std::io::Error::other(format!("unsupported URL `{url}` (http:// or file:// only)"))
    })?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    let split = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("malformed HTTP answer"))?;
    let head = String::from_utf8_lossy(&body[..split]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1));
    if status != Some("200") {
        return Err(std::io::Error::other(format!(
            "download of {url} failed: {}",
            head.lines().next().unwrap_or("")
        )));
    }
    std::fs::write(to, &body[split + 4..])
}

fn remove(p: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

impl Plugin for File {
    fn installer(&self) -> &'static str {
        "file"
    }

    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error> {
        let base = &inv.recipe_dir;
        let text = match std::fs::read_to_string(base.join("instructions.properties")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Outcome::default()),
            Err(e) => return Err(e.into()),
        };
        let list = instructions(&text, action).map_err(std::io::Error::other)?;
        let mut log = String::new();
        for ins in &list {
            log.push_str(&format!("{ins:?}\n"));
            match ins {
                Instruction::Copy(a, b) => {
                    std::fs::copy(resolve(base, a), resolve(base, b))?;
                }
                Instruction::Move(a, b) => std::fs::rename(resolve(base, a), resolve(base, b))?,
                Instruction::Delete(p) => remove(&resolve(base, p))?,
                Instruction::Download(url) => download(url, &base.join("roboconf_tmp_file"))?,
            }
        }
        Ok(Outcome {
            ran: !list.is_empty(),
            output: log,
            ..Outcome::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_the_instructions_of_the_action_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(d.join("a.txt"), "hello").unwrap();
        std::fs::write(d.join("src.txt"), "from file url").unwrap();
        std::fs::write(
            d.join("instructions.properties"),
            format!("deploy.2.move = b.txt -> c.txt\ndeploy.1.copy = a.txt -> b.txt\ndeploy.3.download = file://{}\nundeploy.1.delete = c.txt\n", d.join("src.txt").display()),
        )
        .unwrap();
        let inv = Invocation {
            recipe_dir: d.to_path_buf(),
            ..Invocation::default()
        };
        let out = File.run(Action::Deploy, &inv).expect("deploy");
        assert!(out.ran);
        assert_eq!(std::fs::read_to_string(d.join("c.txt")).unwrap(), "hello");
        assert!(!d.join("b.txt").exists());
        assert_eq!(
            std::fs::read_to_string(d.join("roboconf_tmp_file")).unwrap(),
            "from file url"
        );
        File.run(Action::Undeploy, &inv).expect("undeploy");
        assert!(!d.join("c.txt").exists());
        assert!(!File.run(Action::Start, &inv).expect("nothing to start").ran);
        assert!(instructions("start.1.frobnicate = x", Action::Start).is_err());
    }
}
