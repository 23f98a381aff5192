//! Roboconf's probe files: `probes/<Component>.measures`, templated with the optional
//! `probes/<Component>.measures.properties` (`{{ key }}`), one section per probe:
//! `[EVENT <handler> <event-name>]` and a body its handler reads. The handlers are
//! Roboconf's: `file` (`Delete if exists <path>`, `Notify if not exists <path>`, or a
//! bare path: a hit when it exists), `rest` (`Check <url> THAT <key> <op> <value>`),
//! `nagios` (an optional `Nagios configuration at http://host[:port]` line, then a
//! LiveStatus query) and `docker` (a container name, by default the instance's clean
//! reversed path). A section of an unknown handler is reported and skipped; the agent
//! that hosts the instance evaluates the others (`agent/src/runtime/autonomic.rs`).
//!
//! Where Roboconf is silent or lax, this reader decides: handler names and keywords are
//! read in any case; a `rest` probe is one line; a header line must be exactly
//! `[EVENT <handler> <event-name>]` (a malformed one is an error and its body is
//! skipped); text before the first header is reported once. Every finding carries its
//! line and column (a section's findings are at its header).

use crate::diag::{Code, Diagnostic};
use crate::limits::preview;
use std::collections::BTreeMap;
use std::path::Path;

/// One probe: a hit is the autonomic event `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub event: String,
    pub check: Check,
    /// The line of its `[EVENT ...]` header.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    File(FileCheck),
    Rest(RestCheck),
    Nagios(NagiosCheck),
    /// The container's name (may hold `ROBOCONF_*` variables: see
    /// [`docker_container_name`]); a hit when it does not run.
    Docker {
        container: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileCheck {
    /// Deleted (recursively) when it exists: a hit.
    DeleteIfExists(String),
    NotifyIfNotExists(String),
    NotifyIfExists(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
}

/// `Check <url> THAT <key> <op> <value>`: a hit when the answer's `key` compares so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCheck {
    pub url: String,
    pub key: String,
    pub op: Op,
    pub value: String,
}

/// A LiveStatus query: every answer is a hit (as Roboconf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NagiosCheck {
    pub host: String,
    pub port: u16,
    pub query: String,
    /// The text after `Columns:`, if the query has such a line.
    pub columns: Option<String>,
}

impl RestCheck {
    /// Whether an answer holds: Roboconf's naive reading (braces dropped, one `key: value`
    /// per line — and, beyond Roboconf, per comma, so one-line JSON reads too — quotes
    /// dropped), compared as numbers when both sides are, else only `=`/`==` as text.
    pub fn holds(&self, body: &str) -> bool {
        let text = body.replace(['{', '}'], "");
        let found = text
            .lines()
            .flat_map(|l| l.split(','))
            .filter_map(|p| p.split_once(':'))
            .map(|(k, v)| (unquote(k), unquote(v)))
            .find(|(k, _)| *k == self.key);
        let Some((_, v)) = found else {
            return false;
        };
        match (v.parse::<f64>(), self.value.parse::<f64>()) {
            (Ok(a), Ok(b)) => match self.op {
                Op::Eq => a == b,
                Op::Ge => a >= b,
                Op::Gt => a > b,
                Op::Le => a <= b,
                Op::Lt => a < b,
            },
            _ => self.op == Op::Eq && v == self.value,
        }
    }
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '"' || c == '\'').trim()
}

impl NagiosCheck {
    /// The event's details: the columns (`;`-separated) then the answer.
    pub fn event_info(&self, response: &str) -> String {
        match &self.columns {
            Some(c) => format!(
                "{}\n{response}",
                c.split_whitespace().collect::<Vec<_>>().join(";")
            ),
            None => response.to_string(),
        }
    }
}

/// The variables of a docker probe's container name, longest first.
const DOCKER_VARIABLES: [&str; 4] = [
    "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH",
    "ROBOCONF_CLEAN_INSTANCE_PATH",
    "ROBOCONF_INSTANCE_PATH",
    "ROBOCONF_INSTANCE_NAME",
];

/// A container name with the instance's variables: `ROBOCONF_INSTANCE_NAME`,
/// `ROBOCONF_INSTANCE_PATH`, `ROBOCONF_CLEAN_INSTANCE_PATH` (no leading `/`, `/` and
/// spaces as `_`), `ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH` (the path's names in reverse
/// order joined with `_`, spaces as `_`: `/vm/server` → `server_vm`). The template is
/// read once, left to right, so a value that holds a variable's name stays as it is.
pub fn docker_container_name(template: &str, name: &str, path: &str) -> String {
    let clean = path.trim_start_matches('/').replace(['/', ' '], "_");
    let reversed: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .rev()
        .map(|s| s.replace(' ', "_"))
        .collect();
    let reversed = reversed.join("_");
    let values = [reversed.as_str(), clean.as_str(), path, name];
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(at) = rest.find("ROBOCONF_") {
        out.push_str(rest.get(..at).unwrap_or_default());
        rest = rest.get(at..).unwrap_or_default();
        let found = DOCKER_VARIABLES
            .iter()
            .zip(values)
            .find_map(|(var, value)| rest.strip_prefix(var).map(|after| (after, value)));
        match found {
            Some((after, value)) => {
                out.push_str(value);
                rest = after;
            }
            None => {
                out.push_str("ROBOCONF_");
                rest = rest.get("ROBOCONF_".len()..).unwrap_or_default();
            }
        }
    }
    out.push_str(rest);
    out
}

/// Reads the `.measures.properties` file: Java properties (`key=value`, `key: value`,
/// `key value`, `#`/`!` comments, continuations and escapes: `crate::props`).
pub fn properties(text: &str) -> BTreeMap<String, String> {
    crate::props::parse(text)
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

/// `{{ key }}` replaced by the properties (spaces around the key are optional; a key
/// has no space in it, so `{{ a b }}` is text); the keys not found, with their byte
/// offset in `line`, for warnings (they are left as they are).
fn expand(line: &str, props: &BTreeMap<String, String>) -> (String, Vec<(usize, String)>) {
    let mut out = String::with_capacity(line.len());
    let mut missing = Vec::new();
    let mut at = 0;
    while let Some(open) = line.get(at..).and_then(|r| r.find("{{")).map(|o| at + o) {
        let inner_at = open + 2;
        let Some(close) = line.get(inner_at..).and_then(|r| r.find("}}")) else {
            break;
        };
        let close = inner_at + close;
        let key = line.get(inner_at..close).unwrap_or_default().trim();
        out.push_str(line.get(at..open).unwrap_or_default());
        let template = line.get(open..close + 2).unwrap_or_default();
        match props.get(key) {
            _ if key.is_empty() || key.contains(char::is_whitespace) => out.push_str(template),
            Some(v) => out.push_str(v),
            None => {
                missing.push((open, key.to_string()));
                out.push_str(template);
            }
        }
        at = close + 2;
    }
    out.push_str(line.get(at..).unwrap_or_default());
    (out, missing)
}

/// The 1-based column (in characters) of byte `at` of `line`.
fn column(line: &str, at: usize) -> usize {
    line.get(..at)
        .map_or(1, |before| before.chars().count() + 1)
}

/// A section as read: its header's line and column, handler and event, and its
/// body's lines.
struct Section {
    line: usize,
    col: usize,
    handler: String,
    event: String,
    body: Vec<String>,
}

/// The handler and the event of a header line (trimmed), if it reads
/// `[EVENT <handler> <event-name>]` (`EVENT` in any case).
fn header(l: &str) -> Option<(&str, &str)> {
    let inner = l.strip_prefix('[')?.strip_suffix(']')?;
    let rest = strip_words(inner, &["event"])?;
    match rest.split_whitespace().collect::<Vec<_>>().as_slice() {
        [handler, event] => Some((*handler, *event)),
        _ => None,
    }
}

/// Whether a trimmed line is meant as a header: it starts with `[EVENT`.
fn is_header(l: &str) -> bool {
    l.strip_prefix('[')
        .and_then(|r| r.get(..5))
        .is_some_and(|w| w.eq_ignore_ascii_case("event"))
}

/// Parses a probe file (with its properties, if any): the probes it defines and what is
/// wrong with it. A section that cannot be used is reported (`PROBE_INVALID_SYNTAX`,
/// `PROBE_UNKNOWN_HANDLER`) and skipped; the others are kept.
pub fn parse(text: &str, props: Option<&str>, file: &Path) -> (Vec<Probe>, Vec<Diagnostic>) {
    let props = props.map(properties).unwrap_or_default();
    let mut diags = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    // Lines under a malformed header, or before the first header, belong to no section.
    let mut in_section = false;
    let mut stray_reported = false;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        let col = column(raw, indent);
        let (l, missing) = expand(l, &props);
        for (at, key) in missing {
            diags.push(Diagnostic::new(
                Code::PROBE_UNKNOWN_PROPERTY,
                file,
                line,
                column(raw, indent + at),
                format!(
                    "`{{{{ {key} }}}}`: no such key in the .measures.properties file, left as is"
                ),
            ));
        }
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        if is_header(l) {
            in_section = false;
            match header(l) {
                Some((handler, event)) => {
                    in_section = true;
                    sections.push(Section {
                        line,
                        col,
                        handler: handler.to_string(),
                        event: event.to_string(),
                        body: Vec::new(),
                    });
                }
                None => diags.push(Diagnostic::new(
                    Code::PROBE_INVALID_SYNTAX,
                    file,
                    line,
                    col,
                    format!(
                        "expected `[EVENT <handler> <event-name>]`, found `{}`: the section is skipped",
                        preview(l)
                    ),
                )),
            }
            continue;
        }
        let before_first = sections.is_empty();
        match sections.last_mut().filter(|_| in_section) {
            Some(s) => s.body.push(l.to_string()),
            None if before_first && !stray_reported => {
                stray_reported = true;
                diags.push(Diagnostic::new(
                    Code::PROBE_INVALID_SYNTAX,
                    file,
                    line,
                    col,
                    "text before the first `[EVENT <handler> <event-name>]` is ignored",
                ));
            }
            None => {}
        }
    }
    let mut probes = Vec::new();
    for s in sections {
        let at = |code: Code, why: String| Diagnostic::new(code, file, s.line, s.col, why);
        let event = &s.event;
        let count = s.body.len();
        let check = match s.handler.to_ascii_lowercase().as_str() {
            "file" => match s.body.as_slice() {
                [l] => file_check(l).map(Check::File),
                _ => Err(format!(
                    "a `file` probe has one line (`Delete if exists <path>`, `Notify if not exists <path>` or a path); `{event}` has {count}"
                )),
            },
            "rest" => match s.body.as_slice() {
                [l] => rest_check(l).ok_or_else(|| {
                    format!("expected `Check <url> THAT <key> <op> <value>`, found `{}`", preview(l))
                }),
                _ => Err(format!("a `rest` probe has one line; `{event}` has {count}")),
            },
            "nagios" => nagios_check(&s.body),
            "docker" => match s.body.as_slice() {
                [] => Ok(Check::Docker {
                    container: "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH".into(),
                }),
                [l] => Ok(Check::Docker { container: l.clone() }),
                _ => Err(format!(
                    "a `docker` probe has at most one line, the container's name; `{event}` has {count}"
                )),
            },
            _ => {
                diags.push(at(
                    Code::PROBE_UNKNOWN_HANDLER,
                    format!(
                        "unknown probe handler `{}` (known: file, rest, nagios, docker): `{event}` is skipped",
                        preview(&s.handler)
                    ),
                ));
                continue;
            }
        };
        match check {
            Ok(check) => probes.push(Probe {
                event: s.event.clone(),
                check,
                line: s.line,
            }),
            Err(why) => diags.push(at(Code::PROBE_INVALID_SYNTAX, why)),
        }
    }
    (probes, diags)
}

/// `s` without the leading `words` (in any case, separated and followed by
/// whitespace, or ending `s`), trimmed.
fn strip_words<'a>(s: &'a str, words: &[&str]) -> Option<&'a str> {
    let mut rest = s.trim_start();
    for (i, w) in words.iter().enumerate() {
        let head = rest.get(..w.len()).filter(|h| h.eq_ignore_ascii_case(w))?;
        let after = rest.get(head.len()..)?;
        let spaced = after.trim_start();
        if spaced.len() == after.len() && !after.is_empty() {
            return None;
        }
        if spaced.is_empty() && i + 1 < words.len() {
            return None;
        }
        rest = spaced;
    }
    Some(rest.trim_end())
}

/// A `file` probe's line: `Delete if exists <path>`, `Notify if not exists <path>` (the
/// words in any case) or a path.
fn file_check(l: &str) -> Result<FileCheck, String> {
    type Make = fn(String) -> FileCheck;
    let keyed: [(&[&str], Make); 2] = [
        (&["delete", "if", "exists"], FileCheck::DeleteIfExists),
        (
            &["notify", "if", "not", "exists"],
            FileCheck::NotifyIfNotExists,
        ),
    ];
    for (words, make) in keyed {
        if let Some(path) = strip_words(l, words) {
            if path.is_empty() {
                return Err(format!("`{}` needs a path", words.join(" ")));
            }
            return Ok(make(path.to_string()));
        }
    }
    Ok(FileCheck::NotifyIfExists(l.to_string()))
}

fn rest_check(l: &str) -> Option<Check> {
    let words: Vec<&str> = l.split_whitespace().collect();
    let [check, url, that, key, op, value] = words.as_slice() else {
        return None;
    };
    if !check.eq_ignore_ascii_case("check") || !that.eq_ignore_ascii_case("that") {
        return None;
    }
    if !key
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return None;
    }
    let op = match *op {
        "=" | "==" => Op::Eq,
        ">=" => Op::Ge,
        ">" => Op::Gt,
        "<=" => Op::Le,
        "<" => Op::Lt,
        _ => return None,
    };
    Some(Check::Rest(RestCheck {
        url: url.to_string(),
        key: key.to_string(),
        op,
        value: value.to_string(),
    }))
}

/// `http://host[:port][/...]`: the host (an IPv6 address in brackets) and the port.
fn nagios_address(url: &str) -> Result<(String, u16), String> {
    let bad = || {
        format!(
            "expected `Nagios configuration at http://host[:port]`, found `{}`",
            preview(url)
        )
    };
    let scheme = url.get(..7).filter(|s| s.eq_ignore_ascii_case("http://"));
    let authority = scheme
        .and_then(|s| url.get(s.len()..))
        .ok_or_else(bad)?
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        }
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(bad());
    }
    let port = match port {
        None => 50_000,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("`{}`: the port must be from 1 to 65535", preview(url)))?,
    };
    Ok((host.to_string(), port))
}

fn nagios_check(body: &[String]) -> Result<Check, String> {
    let config = body
        .first()
        .and_then(|l| strip_words(l, &["nagios", "configuration", "at"]));
    let ((host, port), query) = match config {
        Some(url) => (nagios_address(url)?, body.get(1..).unwrap_or_default()),
        None => (("localhost".to_string(), 50_000), body),
    };
    if query.is_empty() {
        return Err("a `nagios` probe needs a LiveStatus query".into());
    }
    let columns = query
        .iter()
        .find_map(|l| {
            l.get(..8)
                .filter(|h| h.eq_ignore_ascii_case("columns:"))
                .and_then(|_| l.get(8..))
        })
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from);
    Ok(Check::Nagios(NagiosCheck {
        host,
        port,
        query: query.join("\n"),
        columns,
    }))
}

#[cfg(test)]
mod tests;
