//! Checking each instruction against the application (through the [`Context`]) and the
//! instances simulated so far, then simulating its effect (instances created, replicated,
//! renamed or deleted, variables defined with stand-ins for the values computed at
//! execution time) so that the later lines are checked against it.
//!
//! [`Context`]: super::Context

use super::read::refs;
use super::{BulkAction, BulkTarget, Finding, Instruction, Logical, Parser, Var};
use super::{EXISTING_INDEX_PREFIX, FAKE_COMPONENT, FORMATTED_TIME_PREFIX, MAX_SIMULATED};
use super::{MAX_WORK, MILLI_TIME, NANO_TIME, RANDOM_UUID, SMART_INDEX};
use crate::diag::Code::*;
use std::ops::Bound;

impl Parser<'_> {
    /// Validates an instruction against the simulated application.
    pub(super) fn check(&self, ins: &Instruction) -> Vec<Finding> {
        use Instruction::*;
        let m = |s: &str| self.substitute(s, true);
        let has = |p: &str| self.instances.contains_key(p);
        let mut e: Vec<Finding> = Vec::new();
        match ins {
            Replicate { path, new_name, .. } | Rename { path, new_name, .. } => {
                let (p, n) = (m(path), m(new_name));
                check_name(&n, new_name, &mut e);
                let sibling = format!("{}/{n}", parent_of(&p));
                if !has(&p) {
                    e.push((CMD_NO_MATCHING_INSTANCE, path.clone()));
                } else if matches!(ins, Replicate { .. }) && p.matches('/').count() > 1 {
                    e.push((CMD_NOT_A_ROOT_INSTANCE, path.clone()));
                } else if has(&sibling) {
                    e.push((CMD_CONFLICTING_INSTANCE_NAME, sibling));
                }
            }
            Create {
                component,
                name,
                parent,
                ..
            } => {
                let (c, n) = (m(component), m(name));
                let par = parent.as_deref().map(m).filter(|p| !p.is_empty());
                let parent_comp = par.as_deref().map(|p| (p, self.instances.get(p)));
                if c.is_empty() {
                    e.push((CMD_MISSING_COMPONENT_NAME, c.clone()));
                } else if !self.ctx.component_exists(&c) {
                    e.push((CMD_INEXISTING_COMPONENT, component.clone()));
                } else if self.ctx.is_root_component(&c) {
                    if let Some(p) = &par {
                        e.push((CMD_CANNOT_HAVE_ANY_PARENT, p.clone()));
                    }
                } else {
                    match parent_comp {
                        None => e.push((CMD_MISSING_PARENT_INSTANCE, c.clone())),
                        Some((p, None)) => e.push((CMD_NO_MATCHING_INSTANCE, p.into())),
                        Some((p, Some(pc))) if !self.ctx.can_be_child(Some(pc), &c) => {
                            e.push((CMD_NOT_AN_ACCEPTABLE_PARENT, p.into()));
                        }
                        Some(_) => {}
                    }
                }
                check_name(&n, name, &mut e);
                let path = format!("{}/{n}", par.unwrap_or_default());
                if has(&path) {
                    e.push((CMD_CONFLICTING_INSTANCE_NAME, path));
                }
            }
            ChangeStatus { path, .. }
            | Bulk {
                target: BulkTarget::Instance(path),
                ..
            } => {
                if !has(&m(path)) {
                    e.push((CMD_NO_MATCHING_INSTANCE, path.clone()));
                }
            }
            Bulk {
                target: BulkTarget::Component(c),
                ..
            } => {
                if c.is_empty() {
                    e.push((CMD_MISSING_COMPONENT_NAME, c.clone()));
                } else if !self.ctx.component_exists(&m(c)) {
                    e.push((CMD_INEXISTING_COMPONENT, c.clone()));
                }
            }
            Associate {
                path, target_id, ..
            } => {
                if m(target_id).is_empty() {
                    e.push((CMD_INVALID_TARGET_ID, target_id.clone()));
                }
                match self.instances.get(&m(path)) {
                    None => e.push((CMD_NO_MATCHING_INSTANCE, path.clone())),
                    Some(c) if !self.ctx.is_root_component(c) => {
                        e.push((CMD_NOT_A_SCOPED_INSTANCE, path.clone()));
                    }
                    Some(_) => {}
                }
            }
            Email { message, .. } if message.is_empty() => {
                e.push((CMD_EMAIL_NO_MESSAGE, String::new()))
            }
            Write { file, .. } | Append { file, .. } if file.is_empty() => {
                e.push((CMD_MISSING_TARGET_FILE, String::new()));
            }
            Execute { command, .. } if command.is_empty() => {
                e.push((CMD_MISSING_COMMAND_NAME, String::new()))
            }
            Execute { command, .. } if *command == self.name => {
                e.push((CMD_LOOPING_COMMAND, command.clone()));
            }
            Define {
                name, value, under, ..
            } => {
                let v = m(value);
                let whole = v
                    .strip_prefix(FORMATTED_TIME_PREFIX)
                    .and_then(|p| p.strip_suffix(')'));
                if name.is_empty() {
                    e.push((CMD_EMPTY_VARIABLE_NAME, String::new()));
                } else if let Some(pattern) = whole.map(str::trim).filter(|p| !p.contains("$(")) {
                    if !valid_date_pattern(pattern) {
                        e.push((CMD_INVALID_DATE_PATTERN, pattern.into()));
                    }
                } else if v.contains(FORMATTED_TIME_PREFIX) {
                    e.push((CMD_NO_MIX_FOR_PATTERNS, value.clone()));
                }
                if !valid_index_query(&v) {
                    e.push((CMD_INVALID_INDEX_PATTERN, value.clone()));
                }
                let under = under.as_ref().filter(|u| !has(&m(u)));
                if let Some(u) = under.filter(|_| e.is_empty()) {
                    e.push((CMD_NO_MATCHING_INSTANCE, u.clone()));
                }
            }
            Email { .. } | Write { .. } | Append { .. } | Execute { .. } => {}
        }
        e
    }

    /// Simulates the effect of a validated instruction.
    pub(super) fn apply(&mut self, ins: &Instruction, l: &Logical) {
        use Instruction::*;
        let m = |s: &str| self.substitute(s, true);
        match ins {
            Replicate { path, new_name, .. } | Rename { path, new_name, .. } => {
                let (p, n) = (m(path), m(new_name));
                let to = format!("{}/{n}", parent_of(&p));
                let moved = self
                    .subtree(&p)
                    .map(|(k, c)| (format!("{to}{}", &k[p.len()..]), c));
                let moved: Vec<(String, String)> = moved.collect();
                self.work += moved.len();
                if matches!(ins, Rename { .. }) {
                    self.remove_subtree(&p);
                }
                self.instances.extend(moved);
            }
            Create {
                component,
                name,
                parent,
                ..
            } => {
                let par = parent.as_deref().map(m).unwrap_or_default();
                self.instances
                    .insert(format!("{par}/{}", m(name)), m(component));
            }
            Bulk {
                action: BulkAction::Delete,
                target,
                ..
            } => {
                let roots: Vec<String> = match target {
                    BulkTarget::Instance(p) => vec![m(p)],
                    BulkTarget::Component(c) => {
                        let c = m(c);
                        self.work += self.instances.len();
                        let of_c = self.instances.iter().filter(|(_, v)| **v == c);
                        of_c.map(|(k, _)| k.clone()).collect()
                    }
                };
                roots.iter().for_each(|r| self.remove_subtree(r));
            }
            Define {
                name, value, under, ..
            } => {
                let dynamic = refs(value).next().is_some();
                let under = under.as_deref().map(m).unwrap_or_default();
                let value = m(value);
                let value = self.stand_in(value, under.clone()).unwrap_or_else(|| {
                    self.instances
                        .insert(format!("{under}/fake"), FAKE_COMPONENT.into());
                    "fake".into()
                });
                self.vars.insert(name.clone(), Var { value, dynamic });
            }
            _ => {}
        }
        if self.instances.len() > MAX_SIMULATED || self.work > MAX_WORK {
            self.capped = true;
            self.report(X_TOO_MANY_INSTANCES, l, "");
        }
    }

    /// A define's value as validation sees it (None for an existing-index query).
    fn stand_in(&mut self, v: String, under: String) -> Option<String> {
        if v.contains(EXISTING_INDEX_PREFIX) {
            return None;
        }
        let mut v = v.replace(NANO_TIME, "0").replace(MILLI_TIME, "0");
        v = v.replace(RANDOM_UUID, "00000000-0000-0000-0000-000000000000");
        if v.starts_with(FORMATTED_TIME_PREFIX) {
            v = "0".into();
        }
        if v.contains(SMART_INDEX) {
            let key = (v, under);
            let taken = |i: &usize| {
                let name = key.0.replace(SMART_INDEX, &i.to_string());
                self.instances.contains_key(&format!("{}/{name}", key.1))
            };
            let from = self.smart.get(&key).copied().unwrap_or(1);
            let free = (from..=from + self.instances.len()).find(|i| !taken(i));
            let free = free.unwrap_or(from);
            self.work += (free - from + 1) * (1 + key.0.len() / 64);
            v = key.0.replace(SMART_INDEX, &free.to_string());
            self.smart.insert(key, free);
        }
        Some(v)
    }

    /// The instance at `p` and its descendants.
    fn subtree<'s>(&'s self, p: &'s str) -> impl Iterator<Item = (&'s String, String)> + 's {
        let from = (Bound::Included(p), Bound::Unbounded);
        let after = self
            .instances
            .range::<str, _>(from)
            .take_while(move |(k, _)| k.starts_with(p));
        let within =
            after.filter(move |(k, _)| k.len() == p.len() || k[p.len()..].starts_with('/'));
        within.map(|(k, c)| (k, c.clone()))
    }

    fn remove_subtree(&mut self, p: &str) {
        self.smart.clear();
        let gone: Vec<String> = self.subtree(p).map(|(k, _)| k.clone()).collect();
        self.work += gone.len();
        for k in gone {
            self.instances.remove(&k);
        }
    }
}

fn check_name(n: &str, raw: &str, e: &mut Vec<Finding>) {
    if n.is_empty() {
        e.push((CMD_MISSING_INSTANCE_NAME, String::new()));
    } else if !is_flex_id(n) || n.len() > crate::limits::MAX_NAME_BYTES {
        // Too long a name is invalid too (`limits`): it could not name a folder.
        e.push((CMD_INVALID_INSTANCE_NAME, crate::limits::preview(raw)));
    }
}

/// Roboconf's flexible identifier: `[a-zA-Z_][\w\- .]*`.
pub fn is_flex_id(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || "_- .".contains(c))
}

/// Whether Java's `SimpleDateFormat` accepts the pattern.
fn valid_date_pattern(p: &str) -> bool {
    let mut quoted = false;
    for c in p.chars() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted && c.is_ascii_alphabetic() && !"GyYMLwWDdFEuaHkKhmsSzZX".contains(c) {
            return false;
        }
    }
    !quoted
}

/// Whether a value's last `$(EXISTING_INDEX ...)` reads `MIN|MAX [<|> N])`.
fn valid_index_query(v: &str) -> bool {
    let Some(i) = v.rfind(EXISTING_INDEX_PREFIX) else {
        return true;
    };
    let r = v[i + EXISTING_INDEX_PREFIX.len()..].trim_start();
    let Some(r) = r.strip_prefix("MAX").or_else(|| r.strip_prefix("MIN")) else {
        return false;
    };
    let r = match r.trim_start().strip_prefix(['<', '>']).map(str::trim_start) {
        Some(b) if b.starts_with(|c: char| c.is_ascii_digit()) => {
            b.trim_start_matches(|c: char| c.is_ascii_digit())
        }
        Some(_) => return false,
        None => r,
    };
    r.trim_start().starts_with(')')
}

fn parent_of(p: &str) -> &str {
    &p[..p.rfind('/').unwrap_or(0)]
}
