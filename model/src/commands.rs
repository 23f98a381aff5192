//! The commands language (`commands/*.commands`): [`parse`] turns one file into
//! [`Instruction`]s and validates each line against the application (through [`Context`])
//! as Roboconf does, simulating what earlier lines did (instances created, replicated,
//! renamed or deleted, variables defined) for the later ones; [`check_executions`] checks
//! the `execute` links between the files of a project. The crate stays pure: values that
//! need a clock, randomness or the live model (`$(MILLI_TIME)`, `$(NANO_TIME)`, `$(UUID)`,
//! `$(FORMATTED_TIME ...)`, `$(SMART_INDEX)`, `$(EXISTING_INDEX ...)`, `%TMP%`) are kept
//! unevaluated in the instructions for the caller, and validation uses stand-ins for them.

use crate::diag::Code::{self, *};
use crate::diag::Diagnostic;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::path::Path;

pub const MILLI_TIME: &str = "$(MILLI_TIME)";
pub const NANO_TIME: &str = "$(NANO_TIME)";
pub const RANDOM_UUID: &str = "$(UUID)";
pub const SMART_INDEX: &str = "$(SMART_INDEX)";
pub const FORMATTED_TIME_PREFIX: &str = "$(FORMATTED_TIME ";
pub const EXISTING_INDEX_PREFIX: &str = "$(EXISTING_INDEX ";
/// Stands for the temporary directory in `write` and `append` target files.
pub const TMP_DIR: &str = "%TMP%";
/// The component of the stand-in instance for an `$(EXISTING_INDEX ...)` query (as Roboconf
/// does when a query finds nothing: validation cannot know what it will find).
const FAKE_COMPONENT: &str = "@fake-component@";
/// Cap on the simulated instances (replications multiply them).
const MAX_SIMULATED: usize = 100_000;

/// What the parser needs to know about the application.
pub trait Context {
    fn component_exists(&self, name: &str) -> bool;
    /// The component of the instance at `path` (e.g. `/vm/server`), if it exists.
    fn instance_component(&self, path: &str) -> Option<String>;
    /// Whether `child_component` may be created under an instance of `parent_component`
    /// (`None`: as a root instance).
    fn can_be_child(&self, parent_component: Option<&str>, child_component: &str) -> bool;
    /// Whether the component is a root one; its instances are the root (scoped) ones.
    fn is_root_component(&self, component: &str) -> bool;
    /// The paths of all the application's instances (the simulation starts from them).
    fn instance_paths(&self) -> Vec<String>;
}

/// The stable states `change status of` can request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetStatus {
    NotDeployed,
    DeployedStopped,
    DeployedStarted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BulkAction {
    DeployAndStartAll,
    StopAll,
    UndeployAll,
    Delete,
}

/// An instance and its children, or every instance of a component (`instances of C`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkTarget {
    Instance(String),
    Component(String),
}

/// One instruction, with the (first) line it is on. Static variables are substituted;
/// a variable whose value is computed at execution time stays as `$(name)`: the caller
/// evaluates each `Define` in order and substitutes it in the later instructions.
#[rustfmt::skip]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Replicate { line: usize, path: String, new_name: String },
    Rename { line: usize, path: String, new_name: String },
    /// `parent: None` creates a root instance.
    Create { line: usize, component: String, name: String, parent: Option<String> },
    ChangeStatus { line: usize, path: String, status: TargetStatus },
    Bulk { line: usize, action: BulkAction, target: BulkTarget },
    Associate { line: usize, path: String, target_id: String },
    Email { line: usize, to: Vec<String>, message: String },
    /// `value` may hold the special `$(...)` values; `under` is where `$(SMART_INDEX)` and
    /// `$(EXISTING_INDEX ...)` look. When a query finds nothing, Roboconf skips the later
    /// instructions that use the variable.
    Define { line: usize, name: String, value: String, under: Option<String> },
    Write { line: usize, content: String, file: String },
    Append { line: usize, content: String, file: String },
    /// Runs another commands file (named without `.commands`).
    Execute { line: usize, command: String },
}

impl Instruction {
    pub fn line(&self) -> usize {
        use Instruction::*;
        match self {
            Replicate { line, .. } | Rename { line, .. } | Create { line, .. } => *line,
            ChangeStatus { line, .. } | Bulk { line, .. } | Associate { line, .. } => *line,
            Email { line, .. } | Define { line, .. } | Write { line, .. } => *line,
            Append { line, .. } | Execute { line, .. } => *line,
        }
    }
}

/// A commands file: its name (the file name without `.commands`) and the instructions that
/// parsed and validated (a line with an error gives diagnostics instead).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commands {
    pub name: String,
    pub instructions: Vec<Instruction>,
}

/// Parses and validates a commands file.
pub fn parse(text: &str, file: &Path, ctx: &dyn Context) -> (Commands, Vec<Diagnostic>) {
    let stem = file.file_stem().unwrap_or_default();
    let mut p = Parser::new(ctx, file, stem.to_string_lossy().into_owned());
    for path in ctx.instance_paths() {
        if let Some(c) = ctx.instance_component(&path) {
            p.instances.insert(path, c);
        }
    }
    let lines = logical_lines(text);
    if lines.is_empty() {
        p.diags.push(Diagnostic::new(
            CMD_NO_INSTRUCTION,
            file,
            1,
            1,
            "no instruction",
        ));
    }
    // Past the cap on simulated instances, the later lines are not checked.
    let mut instructions = Vec::new();
    for l in &lines {
        if p.capped {
            break;
        }
        instructions.extend(p.handle(l));
    }
    (
        Commands {
            name: p.name,
            instructions,
        },
        p.diags,
    )
}

/// Checks the `execute` instructions of a project's commands files: CMD_INEXISTING_COMMAND
/// for an unknown file, CMD_NASTY_LOOPING_COMMAND when running the other file never ends
/// (it leads into a loop). A file executing itself is CMD_LOOPING_COMMAND, from [`parse`].
pub fn check_executions<'a, I>(all: I) -> Vec<Diagnostic>
where
    I: IntoIterator<Item = (&'a Path, &'a Commands)>,
{
    let all: Vec<(&Path, &Commands)> = all.into_iter().collect();
    let named = all
        .iter()
        .enumerate()
        .map(|(i, (_, c))| (c.name.as_str(), i));
    let index: HashMap<&str, usize> = named.collect();
    let execs = |c: &'a Commands| {
        c.instructions.iter().filter_map(|ins| match ins {
            Instruction::Execute { line, command } => Some((*line, command.as_str())),
            _ => None,
        })
    };
    // A file ends when all the files it runs end: peel those off, the rest loops.
    let mut pending = vec![0usize; all.len()];
    let mut callers = vec![Vec::new(); all.len()];
    for (i, (_, c)) in all.iter().enumerate() {
        for j in execs(c).filter_map(|(_, target)| index.get(target)) {
            pending[i] += 1;
            callers[*j].push(i);
        }
    }
    let mut queue: VecDeque<usize> = (0..all.len()).filter(|&i| pending[i] == 0).collect();
    while let Some(j) = queue.pop_front() {
        for &i in &callers[j] {
            pending[i] -= 1;
            if pending[i] == 0 {
                queue.push_back(i);
            }
        }
    }
    let mut diags = Vec::new();
    for (i, (file, c)) in all.iter().enumerate() {
        for (line, target) in execs(c) {
            let code = match index.get(target) {
                None => CMD_INEXISTING_COMMAND,
                Some(&j) if j != i && pending[j] > 0 => CMD_NASTY_LOOPING_COMMAND,
                Some(_) => continue,
            };
            diags.push(Diagnostic::new(code, file, line, 1, message(code, target)));
        }
    }
    diags
}

struct Var {
    /// The value, or its stand-in when it is computed at execution time.
    value: String,
    dynamic: bool,
}

struct Parser<'a> {
    ctx: &'a dyn Context,
    file: &'a Path,
    name: String,
    /// The simulated instances: path to component.
    instances: BTreeMap<String, String>,
    vars: HashMap<String, Var>,
    /// For a `$(SMART_INDEX)` value (and where it looks): the indexes below are taken.
    /// Creations keep this true; removals clear it.
    smart: HashMap<(String, String), usize>,
    capped: bool,
    diags: Vec<Diagnostic>,
}

/// A logical line: continuations joined, comment removed, trimmed.
struct Logical<'t> {
    line: usize,
    col: usize,
    first: &'t str,
    text: String,
}

enum Read {
    Unknown,
    Invalid,
    Fail(Code, String),
    Ok(Instruction),
}

/// A finding: its code and the offending text.
type Finding = (Code, String);

impl<'a> Parser<'a> {
    fn new(ctx: &'a dyn Context, file: &'a Path, name: String) -> Self {
        let (instances, vars, smart, diags) = Default::default();
        Parser {
            ctx,
            file,
            name,
            instances,
            vars,
            smart,
            diags,
            capped: false,
        }
    }

    fn handle(&mut self, l: &Logical) -> Option<Instruction> {
        let text = self.substitute(&l.text, false);
        let define = starts_ci(&text, "define");
        let known = |n: &&str| self.vars.contains_key(*n) || (define && is_special(n));
        let unresolved = refs(&text).filter(|n| !known(n));
        let unresolved: Vec<Finding> = unresolved
            .map(|n| (CMD_UNRESOLVED_VARIABLE, format!("$({n})")))
            .collect();
        let mut result = None;
        let found = match self.read(&text, l.line) {
            Read::Unknown => vec![(CMD_UNRECOGNIZED_INSTRUCTION, text)],
            Read::Invalid => [(CMD_INVALID_SYNTAX, text)]
                .into_iter()
                .chain(unresolved)
                .collect(),
            _ if !unresolved.is_empty() => unresolved,
            Read::Fail(code, tok) => vec![(code, tok)],
            Read::Ok(ins) => {
                let found = self.check(&ins);
                if found.is_empty() {
                    self.apply(&ins, l);
                    result = Some(ins);
                }
                found
            }
        };
        for (code, tok) in found {
            self.report(code, l, &tok);
        }
        result
    }

    fn report(&mut self, code: Code, l: &Logical, tok: &str) {
        let at = l.first.find(tok).filter(|_| !tok.is_empty());
        let col = at.map_or(l.col, |i| l.first[..i].chars().count() + 1);
        let d = Diagnostic::new(code, self.file, l.line, col, message(code, tok));
        self.diags.push(d);
    }

    /// Replaces `$(name)` by known variables: static ones only, or all with stand-ins.
    fn substitute(&self, s: &str, stand_ins: bool) -> String {
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

    fn read(&self, l: &str, line: usize) -> Read {
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

    /// Validates an instruction against the simulated application.
    fn check(&self, ins: &Instruction) -> Vec<Finding> {
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
    fn apply(&mut self, ins: &Instruction, l: &Logical) {
        use Instruction::*;
        let m = |s: &str| self.substitute(s, true);
        match ins {
            Replicate { path, new_name, .. } | Rename { path, new_name, .. } => {
                let (p, n) = (m(path), m(new_name));
                let rename = matches!(ins, Rename { .. });
                if !rename && self.instances.len() + self.subtree(&p).count() > MAX_SIMULATED {
                    self.capped = true;
                    return self.report(X_TOO_MANY_INSTANCES, l, &MAX_SIMULATED.to_string());
                }
                let to = format!("{}/{n}", parent_of(&p));
                let moved = self
                    .subtree(&p)
                    .map(|(k, c)| (format!("{to}{}", &k[p.len()..]), c));
                let moved: Vec<(String, String)> = moved.collect();
                if rename {
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
        for k in gone {
            self.instances.remove(&k);
        }
    }
}

const KEYWORDS: &str = "associate change email define create replicate rename write append execute";

fn message(code: Code, t: &str) -> String {
    let t = match t.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_string(),
    };
    match code {
        CMD_UNRECOGNIZED_INSTRUCTION => format!("unrecognized instruction `{t}`"),
        CMD_INVALID_SYNTAX => format!("invalid instruction syntax `{t}`"),
        CMD_UNRESOLVED_VARIABLE => format!("unresolved variable `{t}`"),
        CMD_NO_MATCHING_INSTANCE => format!("no instance `{t}`"),
        CMD_NOT_A_ROOT_INSTANCE => format!("`{t}` is not a root instance"),
        CMD_NOT_A_SCOPED_INSTANCE => format!("`{t}` is not a scoped (root) instance"),
        CMD_CONFLICTING_INSTANCE_NAME => format!("instance `{t}` already exists"),
        CMD_MISSING_INSTANCE_NAME => "missing instance name".into(),
        CMD_INVALID_INSTANCE_NAME => format!("invalid instance name `{t}`"),
        CMD_MISSING_COMPONENT_NAME => "missing component name".into(),
        CMD_INEXISTING_COMPONENT => format!("no component `{t}`"),
        CMD_MISSING_PARENT_INSTANCE => format!("component `{t}` needs a parent: `under /path`"),
        CMD_NOT_AN_ACCEPTABLE_PARENT => format!("`{t}` cannot be the parent of such instances"),
        CMD_CANNOT_HAVE_ANY_PARENT => format!("a root instance cannot have a parent (`{t}`)"),
        CMD_INVALID_INSTANCE_STATUS => format!("invalid instance status `{t}`"),
        CMD_INSTABLE_INSTANCE_STATUS => format!("`{t}` is not a stable status"),
        CMD_INVALID_TARGET_ID => "missing target id after `with`".into(),
        CMD_EMAIL_NO_MESSAGE => "missing e-mail message after `with`".into(),
        CMD_EMPTY_VARIABLE_NAME => "missing variable name".into(),
        CMD_NO_MIX_FOR_PATTERNS => format!("a formatted time must be the whole value: `{t}`"),
        CMD_INVALID_DATE_PATTERN => format!("invalid date pattern `{t}`"),
        CMD_INVALID_INDEX_PATTERN => format!("invalid existing index query in `{t}`"),
        CMD_MISSING_TARGET_FILE => "missing target file after `into`".into(),
        CMD_MISSING_COMMAND_NAME => "missing commands file name".into(),
        CMD_LOOPING_COMMAND => format!("`{t}` executes itself"),
        CMD_INEXISTING_COMMAND => format!("no commands file `{t}`"),
        CMD_NASTY_LOOPING_COMMAND => format!("executing `{t}` never ends: it leads into a loop"),
        X_TOO_MANY_INSTANCES => format!("more than {t} instances: the next lines are not checked"),
        _ => t,
    }
}

fn logical_lines(text: &str) -> Vec<Logical<'_>> {
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

fn check_name(n: &str, raw: &str, e: &mut Vec<Finding>) {
    if n.is_empty() {
        e.push((CMD_MISSING_INSTANCE_NAME, String::new()));
    } else if !is_flex_id(n) {
        e.push((CMD_INVALID_INSTANCE_NAME, raw.into()));
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

fn is_special(name: &str) -> bool {
    matches!(name, "MILLI_TIME" | "NANO_TIME" | "UUID" | "SMART_INDEX")
        || name.starts_with("FORMATTED_TIME ")
        || name.starts_with("EXISTING_INDEX ")
}

/// The names of the `$(name)` references in `s`.
fn refs(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let i = rest.find("$(")?;
        let j = i + rest[i..].find(')')?;
        let name = &rest[i + 2..j];
        rest = &rest[j + 1..];
        Some(name)
    })
}

fn parent_of(p: &str) -> &str {
    &p[..p.rfind('/').unwrap_or(0)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// vm (root) > tomcat > war, vm > mysql.
    struct App;
    const COMPONENTS: [(&str, &str); 4] = [
        ("vm", ""),
        ("tomcat", "vm"),
        ("war", "tomcat"),
        ("mysql", "vm"),
    ];
    const INSTANCES: [(&str, &str); 6] = [
        ("/tomcat-vm", "vm"),
        ("/tomcat-vm/tomcat-server", "tomcat"),
        ("/tomcat-vm/tomcat-server/hello-world", "war"),
        ("/mysql-vm", "vm"),
        ("/mysql-vm/mysql-server", "mysql"),
        ("/MySQL VM", "vm"),
    ];

    impl Context for App {
        fn component_exists(&self, name: &str) -> bool {
            COMPONENTS.iter().any(|c| c.0 == name)
        }
        fn instance_component(&self, path: &str) -> Option<String> {
            INSTANCES
                .iter()
                .find(|i| i.0 == path)
                .map(|i| i.1.to_string())
        }
        fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
            COMPONENTS.contains(&(child, parent.unwrap_or_default()))
        }
        fn is_root_component(&self, component: &str) -> bool {
            self.can_be_child(None, component)
        }
        fn instance_paths(&self) -> Vec<String> {
            INSTANCES.iter().map(|i| i.0.to_string()).collect()
        }
    }

    fn run(text: &str) -> (Commands, Vec<(Code, usize)>) {
        let (c, d) = parse(text, Path::new("commands/self.commands"), &App);
        (c, d.iter().map(|d| (d.code, d.line)).collect())
    }

    #[test]
    fn every_instruction_kind() {
        let text = r"# every kind of instruction
define VAR = vm
define cpt = $(SMART_INDEX)
Create vm as $(VAR) $(cpt)
deploy and start all /$(VAR) $(cpt)
STOP ALL /tomcat-vm
undeploy all instances of tomcat
replicate /tomcat-vm as copy
rename /copy as copy 2
create war as app under /copy 2/tomcat-server
change status of /copy 2/tomcat-server/app to deployed and started
associate /copy 2 with 42
write some text into %TMP%/out.txt   # a comment
append more into /tmp/out.txt
execute other.commands
email a@b.c, d@e.f with Subject: alert\
	\n\
	Body.
delete /copy 2
delete all instances of vm
create vm as $(VAR) $(cpt)
";
        let expected = [
            r#"Define { line: 2, name: "VAR", value: "vm", under: None }"#,
            r#"Define { line: 3, name: "cpt", value: "$(SMART_INDEX)", under: None }"#,
            r#"Create { line: 4, component: "vm", name: "vm $(cpt)", parent: None }"#,
            r#"Bulk { line: 5, action: DeployAndStartAll, target: Instance("/vm $(cpt)") }"#,
            r#"Bulk { line: 6, action: StopAll, target: Instance("/tomcat-vm") }"#,
            r#"Bulk { line: 7, action: UndeployAll, target: Component("tomcat") }"#,
            r#"Replicate { line: 8, path: "/tomcat-vm", new_name: "copy" }"#,
            r#"Rename { line: 9, path: "/copy", new_name: "copy 2" }"#,
            r#"Create { line: 10, component: "war", name: "app", parent: Some("/copy 2/tomcat-server") }"#,
            r#"ChangeStatus { line: 11, path: "/copy 2/tomcat-server/app", status: DeployedStarted }"#,
            r#"Associate { line: 12, path: "/copy 2", target_id: "42" }"#,
            r#"Write { line: 13, content: "some text", file: "%TMP%/out.txt" }"#,
            r#"Append { line: 14, content: "more", file: "/tmp/out.txt" }"#,
            r#"Execute { line: 15, command: "other" }"#,
            r#"Email { line: 16, to: ["a@b.c", "d@e.f"], message: "Subject: alert\nBody." }"#,
            r#"Bulk { line: 19, action: Delete, target: Instance("/copy 2") }"#,
            r#"Bulk { line: 20, action: Delete, target: Component("vm") }"#,
            r#"Create { line: 21, component: "vm", name: "vm $(cpt)", parent: None }"#,
        ];
        let (c, diags) = run(text);
        assert_eq!(diags, []);
        assert_eq!(c.name, "self");
        let got: Vec<String> = c.instructions.iter().map(|i| format!("{i:?}")).collect();
        assert_eq!(got, expected);
        assert_eq!(c.instructions.last().map(Instruction::line), Some(21));
    }

    /// Each line: the expected `CODE@line`s, `|`, the file (`\n` for a line break).
    const ERROR_CASES: &str = r"
CMD_NO_INSTRUCTION@1 |
CMD_NO_INSTRUCTION@1 | # only a comment\n\n
CMD_UNRECOGNIZED_INSTRUCTION@2 | \ndefin VAR = vm
CMD_UNRECOGNIZED_INSTRUCTION@1 | stop all
CMD_INVALID_SYNTAX@1 | replicate /tomcat-vm
CMD_INVALID_SYNTAX@1 | createvm as x
CMD_INVALID_SYNTAX@1 | change status of /tomcat-vm\\n  DEPLOYED
CMD_UNRESOLVED_VARIABLE@1 | create vm \\n as $(x)
CMD_UNRESOLVED_VARIABLE@1 CMD_UNRESOLVED_VARIABLE@2 | define a = $(b)\nstop all /$(a)
CMD_UNRESOLVED_VARIABLE@1 | create vm as $(UUID)
CMD_NO_MATCHING_INSTANCE@3 | create vm \\n as a\nstop all /b
CMD_NO_MATCHING_INSTANCE@2 | rename /tomcat-vm as t2\nundeploy all /tomcat-vm
CMD_NO_MATCHING_INSTANCE@2 | delete /tomcat-vm\nstop all /tomcat-vm/tomcat-server
CMD_NO_MATCHING_INSTANCE@2 | delete instances of vm\nrename /mysql-vm as m
CMD_NO_MATCHING_INSTANCE@1 | change status of /nope to NOT_DEPLOYED
CMD_NO_MATCHING_INSTANCE@1 | create tomcat as t under /nope
CMD_NO_MATCHING_INSTANCE@1 | define i = x under /nope
CMD_NOT_A_ROOT_INSTANCE@1 | replicate /tomcat-vm/tomcat-server as t
CMD_NOT_A_SCOPED_INSTANCE@1 | associate /tomcat-vm/tomcat-server with 1
CMD_INVALID_TARGET_ID@1 | associate /tomcat-vm with
CMD_CONFLICTING_INSTANCE_NAME@1 | rename /tomcat-vm as mysql-vm
CMD_CONFLICTING_INSTANCE_NAME@1 | replicate /tomcat-vm as mysql-vm
CMD_CONFLICTING_INSTANCE_NAME@2 | create vm as v\ncreate vm as v
CMD_MISSING_INSTANCE_NAME@1 | replicate /tomcat-vm as
CMD_INVALID_INSTANCE_NAME@1 | create vm as 1vm
CMD_INVALID_INSTANCE_NAME@1 | rename /tomcat-vm as a/b
CMD_MISSING_COMPONENT_NAME@1 | create as x
CMD_MISSING_COMPONENT_NAME@1 | stop all instances of
CMD_INEXISTING_COMPONENT@1 | create oops as x
CMD_INEXISTING_COMPONENT@1 | stop all instances of oops
CMD_MISSING_PARENT_INSTANCE@1 | create tomcat as t
CMD_NOT_AN_ACCEPTABLE_PARENT@1 | create war as w under /tomcat-vm
CMD_CANNOT_HAVE_ANY_PARENT@1 | create vm as v under /tomcat-vm
CMD_INVALID_INSTANCE_STATUS@1 | change status of /tomcat-vm to started
CMD_INVALID_INSTANCE_STATUS@1 | change status of /tomcat-vm to
CMD_INSTABLE_INSTANCE_STATUS@1 | change status of /tomcat-vm to DEPLOYING
CMD_EMAIL_NO_MESSAGE@1 | email a@b.c with
CMD_EMPTY_VARIABLE_NAME@1 | define = 1
CMD_NO_MIX_FOR_PATTERNS@1 | define t = at $(FORMATTED_TIME HH:mm )
CMD_NO_MIX_FOR_PATTERNS@1 | define t = $(FORMATTED_TIME HH ) $(UUID)
CMD_INVALID_DATE_PATTERN@1 | define t = $(FORMATTED_TIME invalid pattern )
CMD_INVALID_DATE_PATTERN@1 | define t = $(FORMATTED_TIME 'open )
CMD_INVALID_INDEX_PATTERN@1 | define i = $(EXISTING_INDEX MAXIMUM)
CMD_INVALID_INDEX_PATTERN@1 | define i = $(EXISTING_INDEX MIN <)
CMD_MISSING_TARGET_FILE@1 | write x into
CMD_MISSING_COMMAND_NAME@1 | execute
CMD_LOOPING_COMMAND@3 | \n\nexecute self.commands
";

    #[test]
    fn every_error_code_with_its_line() {
        for case in ERROR_CASES.lines().skip(1) {
            let (expected, text) = case.split_once(" |").unwrap_or_default();
            let text = text
                .trim_start()
                .replace("\\\\n", "\\\n")
                .replace("\\n", "\n");
            let parse_one = |e: &str| {
                let (code, line) = e.split_once('@').unwrap_or_default();
                (Code::from_name(code), line.parse().ok())
            };
            let expected: Vec<_> = expected.split(' ').map(parse_one).collect();
            let got: Vec<_> = run(&text)
                .1
                .into_iter()
                .map(|(c, l)| (Some(c), Some(l)))
                .collect();
            assert_eq!(got, expected, "{case}");
        }
    }

    #[test]
    fn columns_and_messages() {
        let (_, d) = parse("  stop all /nope", Path::new("a.commands"), &App);
        assert_eq!(
            (d[0].line, d[0].col, d[0].message.as_str()),
            (1, 12, "no instance `/nope`")
        );
        let (_, d) = parse("\tfoo bar", Path::new("a.commands"), &App);
        assert_eq!(
            (d[0].col, d[0].message.as_str()),
            (2, "unrecognized instruction `foo bar`")
        );
        assert_eq!(d[0].severity, crate::diag::Severity::Error);
        let (_, d) = parse("\n", Path::new("a.commands"), &App);
        assert_eq!(d[0].severity, crate::diag::Severity::Warning);
    }

    #[test]
    fn computed_values_are_kept_for_the_caller() {
        let text = "define VAR = vm $(SMART_INDEX)\nreplicate /tomcat-vm as $(VAR)
define VAR = vm $(SMART_INDEX)\nreplicate /tomcat-vm as $(VAR)
create tomcat as t under /vm 2\ncreate vm as vm 3
define LAST = vm $(EXISTING_INDEX MAX)\ndeploy and start all /$(LAST)
define OLD = vm $(EXISTING_INDEX MIN > 50 ) under /tomcat-vm\ndelete /tomcat-vm/$(OLD)
define t = $(FORMATTED_TIME yyyy-MM-dd 'at' HH:mm )\ndefine id = $(t)-$(NANO_TIME)-$(MILLI_TIME)
write $(id) $(UUID) into /tmp/$(VAR)\nappend x into $(id)";
        let (c, diags) = run(text);
        assert_eq!(diags, [(Code::CMD_UNRESOLVED_VARIABLE, 13)]); // $(UUID) outside a define
        let lines: Vec<usize> = c.instructions.iter().map(Instruction::line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]);
        let last = &c.instructions[12];
        assert_eq!(
            format!("{last:?}"),
            r#"Append { line: 14, content: "x", file: "$(id)" }"#
        );
        let old = &c.instructions[8];
        assert!(matches!(old, Instruction::Define { under: Some(u), .. } if u == "/tomcat-vm"));
    }

    #[test]
    fn static_variables_are_substituted() {
        let (c, d) = run("define n = web\ncreate vm as $(n)\nDefine p = /$(n)\nstop all $(p)");
        assert_eq!(d, []);
        let got = format!("{:?}", c.instructions[3]);
        assert_eq!(
            got,
            r#"Bulk { line: 4, action: StopAll, target: Instance("/web") }"#
        );
    }

    #[test]
    fn too_many_simulated_instances() {
        let text: String = (0..34_000)
            .map(|i| format!("replicate /tomcat-vm as c{i}\n"))
            .collect();
        let (_, d) = run(&text);
        // 6 instances, 3 more per replication: line 33 332 would pass 100 000.
        assert_eq!(d.len(), 1);
        assert_eq!(d[0], (Code::X_TOO_MANY_INSTANCES, 33_332));
    }

    #[test]
    fn executions_across_files() {
        let file = |name: &str, targets: &[&str]| {
            let exec = |(i, t): (usize, &&str)| Instruction::Execute {
                line: i + 1,
                command: t.to_string(),
            };
            let instructions = targets.iter().enumerate().map(exec).collect();
            (
                PathBuf::from(format!("{name}.commands")),
                Commands {
                    name: name.into(),
                    instructions,
                },
            )
        };
        let all = [
            file("a", &["b", "d"]),
            file("b", &["c"]),
            file("c", &["b"]),
            file("d", &["zz"]),
            file("e", &["d"]),
        ];
        let d = check_executions(all.iter().map(|(p, c)| (p.as_path(), c)));
        let got: Vec<(String, Code, usize)> = d
            .iter()
            .map(|d| (d.file.display().to_string(), d.code, d.line))
            .collect();
        let nasty = Code::CMD_NASTY_LOOPING_COMMAND;
        let expected = [
            ("a.commands".to_string(), nasty, 1),
            ("b.commands".to_string(), nasty, 1),
            ("c.commands".to_string(), nasty, 1),
            ("d.commands".to_string(), Code::CMD_INEXISTING_COMMAND, 1),
        ];
        assert_eq!(got, expected);
    }

    #[test]
    fn corpus_lamp_scale() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/roboconf-corpus");
        let path = Path::new(dir).join("applications/lamp/commands/scale.commands");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return println!("skipped: {} is absent", path.display());
        };
        let (c, d) = parse(&text, &path, &App);
        assert_eq!(d, []);
        assert_eq!(c.name, "scale");
        assert_eq!(c.instructions.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in r"(?s)([a-zA-Z/ =#\\\n.$()é]|create|as|under|define|all|with|\$\(SMART_INDEX\)|instances of|into|\$\(EXISTING_INDEX MIN ?[<>]? ?[0-9]*\))*") {
            let _ = parse(&s, Path::new("fuzz.commands"), &App);
        }
    }
}
