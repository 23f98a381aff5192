//! Reading an agent's log, in either of its formats (`--log-format human|json`): the
//! one place the tests and benchmarks parse it. What they read is the agent's stable
//! events — each a fixed message with fields:
//!
//! | message | fields |
//! |---|---|
//! | `instance state` | `app`, `path`, `state` (Roboconf's name), `at_ms` |
//! | `remote exports` | `app`, `path`, `exports` (`in` or `out`), `at_ms` |
//! | `member verdict` | `node` (its id), `name`, `verdict` (`dead` or `alive`), `at_ms` |
//!
//! (`at_ms`: the agent's wall clock, ms since the epoch, when it handed the change on),
//! and the announcements, `roboconf agent: listening on <address>` in the human format
//! (target `roboconf::announce`, field `address`, in JSON). A human line is
//! `<time> <LEVEL> <spans>: <target>: <message> <key>=<value>...`, a string value quoted
//! as Rust's `Debug` writes it; a JSON line has `fields.message` and the fields.

use std::collections::BTreeMap;

/// An event's fields (the message left out), values as text.
pub type Fields = BTreeMap<String, String>;

/// The fields of every event of `message` in `text`, in order.
pub fn events(text: &str, message: &str) -> Vec<Fields> {
    text.lines().filter_map(|l| fields(l, message)).collect()
}

/// The fields of the line if it is an event of `message`.
pub fn fields(line: &str, message: &str) -> Option<Fields> {
    if line.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let f = v.get("fields")?.as_object()?;
        if f.get("message")?.as_str()? != message {
            return None;
        }
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        return Some(
            f.iter()
                .filter(|(k, _)| *k != "message")
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
        );
    }
    let anchor = format!(": {message}");
    let at = line.find(&anchor)? + anchor.len();
    let rest = &line[at..];
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return None;
    }
    Some(key_values(rest))
}

/// `key=value` pairs, a value bare (up to a space) or quoted with escapes.
fn key_values(text: &str) -> Fields {
    let mut out = Fields::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ').is_some() {}
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && *c != ' ') {
            key.push(c);
        }
        if chars.next_if_eq(&'=').is_none() {
            if chars.peek().is_none() {
                return out;
            }
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('t') => value.push('\t'),
                        Some('r') => value.push('\r'),
                        Some(other) => value.push(other),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ') {
                value.push(c);
            }
        }
        out.insert(key, value);
    }
}

/// An instance's state change on the agent that hosts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    pub at_ms: u64,
    pub app: String,
    pub path: String,
    pub state: String,
}

/// Every `instance state` event, in order.
pub fn state_changes(text: &str) -> Vec<StateChange> {
    events(text, "instance state")
        .into_iter()
        .filter_map(|f| {
            Some(StateChange {
                at_ms: f.get("at_ms")?.parse().ok()?,
                app: f.get("app")?.clone(),
                path: f.get("path")?.clone(),
                state: f.get("state")?.clone(),
            })
        })
        .collect()
}

/// Exports of an instance hosted elsewhere that arrived (`present`) or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportsChange {
    pub at_ms: u64,
    pub app: String,
    pub path: String,
    pub present: bool,
}

/// Every `remote exports` event, in order.
pub fn exports_changes(text: &str) -> Vec<ExportsChange> {
    events(text, "remote exports")
        .into_iter()
        .filter_map(|f| {
            Some(ExportsChange {
                at_ms: f.get("at_ms")?.parse().ok()?,
                app: f.get("app")?.clone(),
                path: f.get("path")?.clone(),
                present: f.get("exports")? == "in",
            })
        })
        .collect()
}

/// A member's liveness verdict as this agent gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub at_ms: u64,
    /// The member's id.
    pub node: String,
    pub name: String,
    pub dead: bool,
}

/// Every `member verdict` event, in order.
pub fn verdicts(text: &str) -> Vec<Verdict> {
    events(text, "member verdict")
        .into_iter()
        .filter_map(|f| {
            Some(Verdict {
                at_ms: f.get("at_ms")?.parse().ok()?,
                node: f.get("node")?.clone(),
                name: f.get("name").cloned().unwrap_or_default(),
                dead: f.get("verdict")? == "dead",
            })
        })
        .collect()
}

/// The addresses an agent announced it listens on, in order.
pub fn addresses(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| match l.strip_prefix("roboconf agent: listening on ") {
            Some(a) => Some(a.trim().to_string()),
            None if l.starts_with('{') => {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["target"] == "roboconf::announce")
                    .then(|| v["fields"]["address"].as_str().map(String::from))
                    .flatten()
            }
            None => None,
        })
        .collect()
}

/// The HTTP API's base URLs an agent announced (`http: serving on http://…`).
pub fn http_addresses(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            if l.starts_with('{') {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                return (v["target"] == "roboconf::announce")
                    .then(|| v["fields"]["address"].as_str().map(String::from))
                    .flatten()
                    .filter(|a| a.starts_with("http"));
            }
            let rest = &l[l.find("http: serving on ")? + "http: serving on ".len()..];
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"' || c == ')')
                .unwrap_or(rest.len());
            Some(rest[..end].to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HUMAN: &str = "\
2025-01-02T03:04:05.678901Z  INFO roboconf_agent::runtime::effects: instance state app=\"shop\" path=\"/vm/db one\" state=\"DEPLOYED_STARTED\" at_ms=1700000000123
2025-01-02T03:04:05.678901Z  INFO term{term=3}: roboconf_agent::runtime::effects: remote exports app=\"shop\" path=\"/vm/app\" exports=\"out\" at_ms=1700000000124
2025-01-02T03:04:05.678901Z  WARN roboconf_agent::runtime::effects: member verdict node=\"12D3\" name=\"n\\\"1\" verdict=\"dead\" at_ms=1700000000125
2025-01-02T03:04:05.678901Z  INFO roboconf_agent::runtime::effects: instance states are not this
roboconf agent: listening on /ip4/127.0.0.1/tcp/1234/p2p/12D3
";

    const JSON: &str = r#"{"timestamp":"t","level":"INFO","fields":{"message":"instance state","app":"shop","path":"/vm/db","state":"UNRESOLVED","at_ms":1700000000200},"target":"roboconf_agent::runtime::effects"}
{"timestamp":"t","level":"INFO","fields":{"message":"listening on /ip4/1","address":"/ip4/1"},"target":"roboconf::announce"}
not json, not an event
"#;

    #[test]
    fn reads_both_formats() {
        let s = state_changes(HUMAN);
        assert_eq!(
            s,
            vec![StateChange {
                at_ms: 1_700_000_000_123,
                app: "shop".into(),
                path: "/vm/db one".into(),
                state: "DEPLOYED_STARTED".into(),
            }]
        );
        let e = exports_changes(HUMAN);
        assert_eq!(e.len(), 1);
        assert!(!e[0].present && e[0].path == "/vm/app");
        let v = verdicts(HUMAN);
        assert_eq!(v.len(), 1);
        assert!(v[0].dead && v[0].name == "n\"1");
        assert_eq!(addresses(HUMAN), vec!["/ip4/127.0.0.1/tcp/1234/p2p/12D3"]);
        let s = state_changes(JSON);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].state, "UNRESOLVED");
        assert_eq!(s[0].at_ms, 1_700_000_000_200);
        assert_eq!(addresses(JSON), vec!["/ip4/1"]);
    }
}
