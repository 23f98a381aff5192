//! Reading a commands file: splitting it into logical lines (continuations joined,
//! comments removed), substituting the `$(name)` variables, and recognising each
//! instruction and its parts (keywords, paths, names, statuses, bulk actions) without
//! checking them against the application.

use super::{BulkAction, BulkTarget, Instruction, Logical, Parser, Read, TargetStatus};
use crate::diag::Code::{self, *};

impl Parser<'_> {
    /// Replaces `$(name)` by known variables: static ones only, or all with stand-ins.
    pub(super) fn substitute(&self, s: &str, stand_ins: bool) -> String {
        let mut out = String::with_capacity(s.len());
        let mut rest = s;
        while let Some(i) = rest.find("$(") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find(')').map(|j| i + j) else {
                break;
            };
            match self.vars.get(&rest[i + 2..j]) {
                Some(v) if stand_ins || !v.dynamic => out.push_str(&v.value),
                _ => out.push_str(&rest[i..=j]),
            }
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        out
    }

    pub(super) fn read(&self, l: &str, line: usize) -> Read {
        use Instruction::*;
        if let Some((action, target)) = read_bulk(l) {
            return Read::Ok(Bulk {
                line,
                action,
                target,
            });
        }
        let Some(kw) = KEYWORDS.split(' ').find(|k| starts_ci(l, k)) else {
            return Read::Unknown;
        };
        let full = if kw == "change" {
            "change status of"
        } else {
            kw
        };
        let Some(r) = strip_words(l, full) else {
            return Read::Invalid;
        };
        let s = |x: &str| x.to_string();
        let split = |sep, last| split_word(r, sep, last);
        let path = |sep| split(sep, true).filter(|(p, _)| p.starts_with('/'));
        let ins = match kw {
            "associate" => path("with").map(|(p, t)| Associate {
                line,
                path: s(p),
                target_id: s(t),
            }),
            "change" => {
                let Some((p, st)) = path("to") else {
                    return Read::Invalid;
                };
                return match parse_status(&self.substitute(st, true)) {
                    Ok(status) => Read::Ok(ChangeStatus {
                        line,
                        path: s(p),
                        status,
                    }),
                    Err(code) => Read::Fail(code, s(st)),
                };
            }
            "email" => split("with", false).map(|(to, msg)| {
                let to = to.split(',').map(str::trim).filter(|t| !t.is_empty());
                let message = msg.replace("\\n", "\n");
                Email {
                    line,
                    to: to.map(s).collect(),
                    message,
                }
            }),
            "define" => r.split_once('=').map(|(k, v)| {
                let (value, under) = split_under(v.trim());
                let (name, value, under) = (s(k.trim()), s(value), under.map(s));
                Define {
                    line,
                    name,
                    value,
                    under,
                }
            }),
            "create" => split("as", false).map(|(c, rest)| {
                let (name, parent) = split_under(rest);
                let (component, name, parent) = (s(c), s(name), parent.map(s));
                Create {
                    line,
                    component,
                    name,
                    parent,
                }
            }),
            "replicate" => path("as").map(|(p, n)| Replicate {
                line,
                path: s(p),
                new_name: s(n),
            }),
            "rename" => path("as").map(|(p, n)| Rename {
                line,
                path: s(p),
                new_name: s(n),
            }),
            "write" => split("into", true).map(|(c, f)| Write {
                line,
                content: s(c),
                file: s(f),
            }),
            "append" => split("into", true).map(|(c, f)| Append {
                line,
                content: s(c),
                file: s(f),
            }),
            _ => {
                let command = s(r.strip_suffix(".commands").unwrap_or(r).trim());
                Some(Execute { line, command })
            }
        };
        ins.map_or(Read::Invalid, Read::Ok)
    }
}

const KEYWORDS: &str = "associate change email define create replicate rename write append execute";

pub(super) fn logical_lines(text: &str) -> Vec<Logical<'_>> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, &str, String)> = None;
    // The extra empty line ends a continuation on the last line.
    for (i, raw) in text.split('\n').chain([""]).enumerate() {
        let phys = raw.strip_suffix('\r').unwrap_or(raw);
        let body = phys.strip_suffix('\\');
        let (line, first, mut acc) = match cur.take() {
            Some((line, first, acc)) => (line, first, acc + phys.trim_start()),
            None => (i + 1, phys, phys.to_string()),
        };
        if body.is_some() {
            acc.pop(); // the backslash
            cur = Some((line, first, acc));
            continue;
        }
        let text = acc.split('#').next().unwrap_or_default().trim().to_string();
        if !text.is_empty() {
            let col = first.chars().take_while(|c| c.is_whitespace()).count() + 1;
            out.push(Logical {
                line,
                col,
                first,
                text,
            });
        }
    }
    out
}

fn parse_status(s: &str) -> Result<TargetStatus, Code> {
    let words: Vec<&str> = s.split_whitespace().collect();
    match words
        .join("_")
        .to_ascii_uppercase()
        .replace("_AND_", "_")
        .as_str()
    {
        "NOT_DEPLOYED" => Ok(TargetStatus::NotDeployed),
        "DEPLOYED_STOPPED" => Ok(TargetStatus::DeployedStopped),
        "DEPLOYED_STARTED" => Ok(TargetStatus::DeployedStarted),
        "DEPLOYING"
        | "STARTING"
        | "STOPPING"
        | "UNDEPLOYING"
        | "PROBLEM"
        | "UNRESOLVED"
        | "WAITING_FOR_ANCESTOR" => Err(CMD_INSTABLE_INSTANCE_STATUS),
        _ => Err(CMD_INVALID_INSTANCE_STATUS),
    }
}

fn read_bulk(l: &str) -> Option<(BulkAction, BulkTarget)> {
    use BulkAction::*;
    let actions = [
        ("deploy and start all", DeployAndStartAll),
        ("stop all", StopAll),
        ("undeploy all", UndeployAll),
        ("delete", Delete),
    ];
    actions.into_iter().find_map(|(phrase, action)| {
        let rest = strip_words(l, phrase)?;
        let rest = strip_words(rest, "all").unwrap_or(rest);
        if rest.starts_with('/') {
            return Some((action, BulkTarget::Instance(rest.into())));
        }
        let component = strip_words(rest, "instances of")?;
        Some((action, BulkTarget::Component(component.into())))
    })
}

pub(super) fn is_special(name: &str) -> bool {
    matches!(name, "MILLI_TIME" | "NANO_TIME" | "UUID" | "SMART_INDEX")
        || name.starts_with("FORMATTED_TIME ")
        || name.starts_with("EXISTING_INDEX ")
}

/// The names of the `$(name)` references in `s`.
pub(super) fn refs(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let i = rest.find("$(")?;
        let j = i + rest[i..].find(')')?;
        let name = &rest[i + 2..j];
        rest = &rest[j + 1..];
        Some(name)
    })
}

/// Whether `s` starts with `p`, ignoring ASCII case.
pub(crate) fn starts_ci(s: &str, p: &str) -> bool {
    s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
}

/// If `s` starts with the words of `phrase` (ignoring ASCII case, any blanks between
/// them), what follows, trimmed.
fn strip_words<'a>(s: &'a str, phrase: &str) -> Option<&'a str> {
    let mut rest = s;
    for w in phrase.split(' ') {
        rest = rest.trim_start();
        if !starts_ci(rest, w) {
            return None;
        }
        rest = &rest[w.len()..];
        if !rest.starts_with(|c: char| c.is_whitespace() || c == '/') && !rest.is_empty() {
            return None;
        }
    }
    Some(rest.trim())
}

/// Byte offsets where the ASCII word `kw` stands alone (ignoring case) in `s`.
pub(crate) fn find_word(s: &str, kw: &str) -> Vec<usize> {
    let word = |i: usize| {
        starts_ci(&s[i..], kw)
            && s[..i].chars().next_back().is_none_or(char::is_whitespace)
            && s[i + kw.len()..]
                .chars()
                .next()
                .is_none_or(char::is_whitespace)
    };
    s.char_indices()
        .map(|(i, _)| i)
        .filter(|&i| word(i))
        .collect()
}

/// Splits around the first or last standalone `kw`.
fn split_word<'a>(s: &'a str, kw: &str, last: bool) -> Option<(&'a str, &'a str)> {
    let found = find_word(s, kw);
    let i = if last { found.last() } else { found.first() }?;
    Some((s[..*i].trim(), s[*i + kw.len()..].trim()))
}

/// Splits `name under /path`: at the first `under` followed by a path, else the last one.
fn split_under(s: &str) -> (&str, Option<&str>) {
    let found: Vec<usize> = find_word(s, "under")
        .into_iter()
        .filter(|&i| i > 0)
        .collect();
    let with_path = found
        .iter()
        .find(|&&i| s[i + 5..].trim_start().starts_with('/'));
    match with_path.or(found.last()) {
        Some(&i) => (s[..i].trim(), Some(s[i + 5..].trim())),
        None => (s, None),
    }
}
