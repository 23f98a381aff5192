//! Roboconf's probe files: `probes/<Component>.measures`, templated with the optional
//! `probes/<Component>.measures.properties` (`{{ key }}`), one section per probe:
//! `[EVENT <handler> <event-name>]` and a body its handler reads. The handlers are
//! Roboconf's: `file` (`Delete if exists <path>`, `Notify if not exists <path>`, or a
//! bare path: a hit when it exists), `rest` (`Check <url> THAT <key> <op> <value>`),
//! `nagios` (an optional `Nagios configuration at http://host[:port]` line, then a
//! LiveStatus query) and `docker` (a container name, by default the instance's clean
//! reversed path). A section of an unknown handler is reported and skipped; the agent
//! that hosts the instance evaluates the others (`agent/src/runtime/autonomic.rs`).

use crate::diag::{Code, Diagnostic};
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

/// A container name with the instance's variables: `ROBOCONF_INSTANCE_NAME`,
/// `ROBOCONF_INSTANCE_PATH`, `ROBOCONF_CLEAN_INSTANCE_PATH` (no leading `/`, `/` and
/// spaces as `_`), `ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH` (`/vm/server` → `server_vm`).
pub fn docker_container_name(template: &str, name: &str, path: &str) -> String {
    let clean = path.trim_start_matches('/').replace(['/', ' '], "_");
    let reversed: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .rev()
        .map(|s| s.replace(' ', "_"))
        .collect();
    template
        .replace("ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH", &reversed.join("_"))
        .replace("ROBOCONF_CLEAN_INSTANCE_PATH", &clean)
        .replace("ROBOCONF_INSTANCE_PATH", path)
        .replace("ROBOCONF_INSTANCE_NAME", name)
}

/// Reads Java-style properties (`key=value`, `key: value`, `#`/`!` comments).
pub fn properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let at = l.find(['=', ':'])?;
            Some((l[..at].trim().to_string(), l[at + 1..].trim().to_string()))
        })
        .collect()
}

/// `{{ key }}` replaced by the properties; the keys not found, for warnings.
fn expand(line: &str, props: &BTreeMap<String, String>, missing: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("{{") {
        let Some(j) = rest[i..].find("}}").map(|j| i + j) else {
            break;
        };
        out.push_str(&rest[..i]);
        let key = rest[i + 2..j].trim();
        match props.get(key) {
            Some(v) => out.push_str(v),
            None => {
                missing.push(key.to_string());
                out.push_str(&rest[i..j + 2]);
            }
        }
        rest = &rest[j + 2..];
    }
    out.push_str(rest);
    out
}

/// A section as read: its header's line, handler and event, and its body's lines.
type Section = (usize, String, String, Vec<(usize, String)>);

/// Parses a probe file (with its properties, if any).
pub fn parse(text: &str, props: Option<&str>, file: &Path) -> (Vec<Probe>, Vec<Diagnostic>) {
    let props = props.map(properties).unwrap_or_default();
    let mut diags = Vec::new();
    let mut sections: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut missing = Vec::new();
        let l = expand(l, &props, &mut missing);
        for key in missing {
            diags.push(Diagnostic::new(
                Code::PROBE_UNKNOWN_PROPERTY,
                file,
                line,
                1,
                format!("`{{{{ {key} }}}}`: no such key in the .measures.properties file"),
            ));
        }
        if l.starts_with('[') && l.get(1..6).is_some_and(|w| w.eq_ignore_ascii_case("event")) {
            let inner = l[1..].strip_suffix(']').map(|s| s[5..].trim());
            let words: Vec<&str> = inner
                .map(|s| s.split_whitespace().collect())
                .unwrap_or_default();
            if words.len() != 2 || !l[6..].starts_with(char::is_whitespace) {
                diags.push(Diagnostic::new(
                    Code::PROBE_INVALID_SYNTAX,
                    file,
                    line,
                    1,
                    format!("expected `[EVENT <handler> <event-name>]`, found `{l}`"),
                ));
                // Its body is skipped with it.
                sections.push((line, String::new(), String::new(), Vec::new()));
                continue;
            }
            sections.push((line, words[0].to_string(), words[1].to_string(), Vec::new()));
            continue;
        }
        match sections.last_mut() {
            Some(s) => s.3.push((line, l)),
            None => diags.push(Diagnostic::new(
                Code::PROBE_INVALID_SYNTAX,
                file,
                line,
                1,
                "text before the first `[EVENT <handler> <event-name>]`",
            )),
        }
    }
    let mut probes = Vec::new();
    for (line, handler, event, body) in sections {
        if handler.is_empty() {
            continue;
        }
        let bad = |why: String| Diagnostic::new(Code::PROBE_INVALID_SYNTAX, file, line, 1, why);
        let check = match handler.to_ascii_lowercase().as_str() {
            "file" => match body.as_slice() {
                [(_, l)] => Ok(Check::File(file_check(l))),
                _ => Err(bad(format!(
                    "a `file` probe has one line (`Delete if exists <path>`, `Notify if not exists <path>` or a path); `{event}` has {}",
                    body.len()
                ))),
            },
            "rest" => match body.as_slice() {
                [(_, l)] => rest_check(l).ok_or_else(|| {
                    bad(format!("expected `Check <url> THAT <key> <op> <value>`, found `{l}`"))
                }),
                _ => Err(bad(format!("a `rest` probe has one line; `{event}` has {}", body.len()))),
            },
            "nagios" => nagios_check(&body).map_err(bad),
            "docker" => match body.as_slice() {
                [] => Ok(Check::Docker {
                    container: "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH".into(),
                }),
                [(_, l)] => Ok(Check::Docker { container: l.clone() }),
                _ => Err(bad("a `docker` probe has at most one line: the container's name".into())),
            },
            other => {
                diags.push(Diagnostic::new(
                    Code::PROBE_UNKNOWN_HANDLER,
                    file,
                    line,
                    1,
                    format!("unknown probe handler `{other}` (file, rest, nagios, docker): `{event}` is skipped"),
                ));
                continue;
            }
        };
        match check {
            Ok(check) => probes.push(Probe { event, check, line }),
            Err(d) => diags.push(d),
        }
    }
    (probes, diags)
}

fn strip_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.get(..prefix.len())
        .filter(|h| h.eq_ignore_ascii_case(prefix))
        .map(|_| s[prefix.len()..].trim())
}

fn file_check(l: &str) -> FileCheck {
    if let Some(p) = strip_ci(l, "delete if exists ") {
        FileCheck::DeleteIfExists(p.to_string())
    } else if let Some(p) = strip_ci(l, "notify if not exists ") {
        FileCheck::NotifyIfNotExists(p.to_string())
    } else {
        FileCheck::NotifyIfExists(l.to_string())
    }
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

fn nagios_check(body: &[(usize, String)]) -> Result<Check, String> {
    let (mut host, mut port) = ("localhost".to_string(), 50_000u16);
    let mut lines: Vec<&str> = body.iter().map(|(_, l)| l.as_str()).collect();
    if let Some(at) = lines
        .first()
        .and_then(|l| strip_ci(l, "nagios configuration at "))
    {
        let hp = at
            .strip_prefix("http://")
            .ok_or_else(|| {
                format!("expected `Nagios configuration at http://host[:port]`, found `{at}`")
            })?
            .trim_end_matches('/');
        match hp.rsplit_once(':') {
            Some((h, p)) => {
                host = h.to_string();
                port = p.parse().map_err(|_| format!("bad port in `{at}`"))?;
            }
            None => host = hp.to_string(),
        }
        lines.remove(0);
    }
    if lines.is_empty() {
        return Err("a `nagios` probe needs a LiveStatus query".into());
    }
    let columns = lines
        .iter()
        .find_map(|l| strip_ci(l, "columns:"))
        .map(String::from);
    Ok(Check::Nagios(NagiosCheck {
        host,
        port,
        query: lines.join("\n"),
        columns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roboconf_s_mixed_example_with_templating() {
        let text = "[EVENT nagios myRuleName-nagios]\nGET hosts\nColumns: host_name accept_passive_checks acknowledged\nFilter: accept_passive_checks = {{ accept_passive_checks }}\n\n[EVENT file myRuleName-for-file]\nNotify if not exists /tmp/{{ a-directory-to-not-delete }}\n";
        let props = "accept_passive_checks=1\na-directory-to-not-delete=roboconf\n";
        let (p, d) = parse(text, Some(props), Path::new("probes/C.measures"));
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(p.len(), 2);
        let Check::Nagios(n) = &p[0].check else {
            panic!()
        };
        assert_eq!((n.host.as_str(), n.port), ("localhost", 50_000));
        assert!(n.query.ends_with("Filter: accept_passive_checks = 1"));
        assert_eq!(
            n.event_info("a;1;0"),
            "host_name;accept_passive_checks;acknowledged\na;1;0"
        );
        assert_eq!(
            p[1].check,
            Check::File(FileCheck::NotifyIfNotExists("/tmp/roboconf".into()))
        );
        assert_eq!(p[1].line, 6);
    }

    #[test]
    fn rest_checks_compare_numbers_and_text() {
        let (p, d) = parse(
            "[event rest high]\nCheck http://127.0.0.1:8080/load THAT load > 20\n[EVENT rest up]\ncheck http://x/s that status == OK",
            None,
            Path::new("p.measures"),
        );
        assert!(d.is_empty(), "{d:?}");
        let Check::Rest(r) = &p[0].check else {
            panic!()
        };
        assert!(r.holds("{\n\"load\": 25.5,\n\"x\": 1\n}"));
        assert!(r.holds("{\"x\": 1, \"load\": 21}"));
        assert!(!r.holds("{\"load\": 20}"));
        assert!(!r.holds("nothing"));
        let Check::Rest(r) = &p[1].check else {
            panic!()
        };
        assert!(r.holds("status: 'OK'"));
        assert!(!r.holds("status: KO"));
    }

    #[test]
    fn bad_sections_are_reported_with_their_line_and_unknown_handlers_skipped() {
        let (p, d) = parse(
            "stray\n[EVENT snmp e1]\nx\n[EVENT file e2]\na\nb\n[EVENT rest e3]\nGET /\n[EVENT docker e4]\n[EVENT broken]\n[EVENT file e5]\n/tmp/{{ nope }}",
            None,
            Path::new("p.measures"),
        );
        let codes: Vec<(Code, usize)> = d.iter().map(|d| (d.code, d.line)).collect();
        assert!(
            codes.contains(&(Code::PROBE_INVALID_SYNTAX, 1)),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::PROBE_UNKNOWN_HANDLER, 2)),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::PROBE_INVALID_SYNTAX, 4)),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::PROBE_INVALID_SYNTAX, 7)),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::PROBE_INVALID_SYNTAX, 10)),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::PROBE_UNKNOWN_PROPERTY, 12)),
            "{codes:?}"
        );
        let events: Vec<&str> = p.iter().map(|p| p.event.as_str()).collect();
        assert_eq!(events, ["e4", "e5"]);
    }

    #[test]
    fn docker_names() {
        assert_eq!(
            docker_container_name(
                "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH",
                "server",
                "/vm 1/server"
            ),
            "server_vm_1"
        );
        assert_eq!(
            docker_container_name(
                "c-ROBOCONF_CLEAN_INSTANCE_PATH-ROBOCONF_INSTANCE_NAME",
                "s",
                "/vm/s"
            ),
            "c-vm_s-s"
        );
    }
}
