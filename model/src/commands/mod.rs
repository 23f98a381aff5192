//! The commands language (`commands/*.commands`): [`parse`] turns one file into
//! [`Instruction`]s and validates each line against the application (through [`Context`])
//! as Roboconf does, simulating what earlier lines did (instances created, replicated,
//! renamed or deleted, variables defined) for the later ones; [`check_executions`] checks
//! the `execute` links between the files of a project. The crate stays pure: values that
//! need a clock, randomness or the live model (`$(MILLI_TIME)`, `$(NANO_TIME)`, `$(UUID)`,
//! `$(FORMATTED_TIME ...)`, `$(SMART_INDEX)`, `$(EXISTING_INDEX ...)`, `%TMP%`) are kept
//! unevaluated in the instructions for the caller, and validation uses stand-ins for them.
//!
//! This file owns the public API (the constants, the [`Context`] trait, the instruction
//! types, [`parse`]) and the parser's state with its per-line loop and diagnostic messages;
//! `read` reads lines and instructions, `check` checks each instruction and simulates its
//! effect, `executions` checks the `execute` links between files, `tests` tests them all.

mod check;
mod executions;
mod read;
#[cfg(test)]
mod tests;

pub use check::is_flex_id;
pub use executions::check_executions;
pub(crate) use read::{find_word, starts_ci};

use crate::diag::Code::{self, *};
use crate::diag::Diagnostic;
use read::{is_special, logical_lines, refs};
use std::collections::{BTreeMap, HashMap};
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
/// Caps on the simulated instances and simulation steps, past which the later lines are
/// not checked (replications and renames of big trees could take long).
const MAX_SIMULATED: usize = 100_000;
const MAX_WORK: usize = 2_000_000;

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
        let d = Diagnostic::new(CMD_NO_INSTRUCTION, file, 1, 1, "no instruction");
        p.diags.push(d);
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
    /// Simulation steps so far, and whether a cap stopped the checks.
    work: usize,
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
            work: 0,
            capped: false,
        }
    }

    fn handle(&mut self, l: &Logical) -> Option<Instruction> {
        let text = self.substitute(&l.text, false);
        let define = starts_ci(&text, "define");
        let known = |n: &&str| self.vars.contains_key(*n) || (define && is_special(n));
        let mut unresolved: Vec<Finding> = Vec::new();
        for n in refs(&text).filter(|n| !known(n)).map(|n| format!("$({n})")) {
            if unresolved.len() == 10 {
                break; // enough for one line
            } else if !unresolved.iter().any(|u| u.1 == n) {
                unresolved.push((CMD_UNRESOLVED_VARIABLE, n));
            }
        }
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
}

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
        X_TOO_MANY_INSTANCES => {
            format!("over {MAX_SIMULATED} instances or {MAX_WORK} steps to simulate: the next lines are not checked")
        }
        _ => t,
    }
}
