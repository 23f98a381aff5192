//! Resolving a commands file (`commands/<name>.commands`) against the live model into a
//! [`Plan`]: concrete, idempotent steps, computed before anything is changed. The leader
//! resolves, commits the plan to the Raft log, then carries it out — so a new leader
//! carries out the same plan, never a second resolution that would pick another
//! `$(SMART_INDEX)`. Every instruction is checked while resolving (on a simulation of
//! the model that earlier instructions changed): a file that cannot run whole fails
//! whole, with the file and line of the first problem, and nothing is applied.
//!
//! Roboconf's semantics: `define` evaluates its generators (`$(MILLI_TIME)`,
//! `$(NANO_TIME)`, `$(UUID)`, `$(FORMATTED_TIME pattern)`, `$(SMART_INDEX)`,
//! `$(EXISTING_INDEX MIN|MAX [< N | > N])`); a query that finds nothing disables its
//! variable, and every later instruction that uses it (even through another variable) is
//! skipped — the execution ends "ok with skipped". `execute` runs another file with its
//! own variables, at most `MAX_DEPTH` deep.

use crate::api::Desired;
use crate::coord::autonomic::{Plan, Step};
use roboconf_model::commands::{BulkAction, BulkTarget, Commands, Instruction, TargetStatus};
use std::collections::{BTreeMap, HashMap};

/// How deep `execute` may nest.
pub const MAX_DEPTH: usize = 8;
/// The most steps a plan may hold.
pub const MAX_STEPS: usize = 500;

/// What the planner reads of an application.
pub trait Model {
    /// Every instance: path → (component, what the operator wants of it).
    fn instances(&self) -> BTreeMap<String, (String, Desired)>;
    fn component_exists(&self, component: &str) -> bool;
    /// Whether an instance of `child` may be created under one of `parent` (`None`: as
    /// a root).
    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool;
    /// Whether instances of the component are machines the coordinator launches.
    fn is_machine(&self, component: &str) -> bool;
    /// Whether the root's component has a target file of this id.
    fn has_target(&self, component: &str, target: &str) -> bool;
    /// The target file chosen for a root, if any.
    fn machine_target(&self, root: &str) -> Option<String>;
}

/// What resolution needs beside the model.
pub struct Context<'a> {
    pub model: &'a dyn Model,
    /// The application's commands files.
    pub commands: &'a [(String, Commands)],
    /// The leader's wall clock.
    pub now_ms: u64,
    /// Randomness for `$(UUID)`.
    pub random: &'a mut dyn FnMut() -> u128,
    /// Machines that count against the limits now, and the limit (mesh or application,
    /// whichever is nearer).
    pub machines: usize,
    pub max_machines: usize,
}

/// Resolves the commands file `name`.
pub fn plan(ctx: &mut Context<'_>, name: &str) -> Result<Plan, String> {
    let mut world = World {
        insts: ctx.model.instances(),
        targets: BTreeMap::new(),
        new_machines: 0,
        nano: 0,
    };
    let mut plan = Plan::default();
    run(ctx, &mut world, name, 0, &mut plan)?;
    if plan.steps.len() > MAX_STEPS {
        return Err(format!(
            "`{name}` resolves to {} steps, more than {MAX_STEPS}: split it",
            plan.steps.len()
        ));
    }
    Ok(plan)
}

/// The simulated model.
struct World {
    insts: BTreeMap<String, (String, Desired)>,
    /// Targets chosen in this plan, by root.
    targets: BTreeMap<String, String>,
    new_machines: usize,
    nano: u64,
}

impl World {
    fn subtree(&self, path: &str) -> Vec<String> {
        let prefix = format!("{path}/");
        self.insts
            .keys()
            .filter(|p| *p == path || p.starts_with(&prefix))
            .cloned()
            .collect()
    }

    fn component(&self, path: &str) -> Option<&str> {
        self.insts.get(path).map(|(c, _)| c.as_str())
    }
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

fn run(
    ctx: &mut Context<'_>,
    world: &mut World,
    name: &str,
    depth: usize,
    plan: &mut Plan,
) -> Result<(), String> {
    let Some((_, file)) = ctx.commands.iter().find(|(n, _)| n == name) else {
        return Err(format!("no commands file `{name}`"));
    };
    // `None`: disabled (its query found nothing).
    let mut vars: HashMap<String, Option<String>> = HashMap::new();
    for ins in &file.instructions {
        let at = |e: String| format!("commands/{name}.commands:{}: {e}", ins.line());
        let mut ins = ins.clone();
        match substitute_all(&mut ins, &vars) {
            Subst::Disabled => {
                if let Instruction::Define { name, .. } = &ins {
                    vars.insert(name.clone(), None);
                }
                plan.skipped = true;
                continue;
            }
            Subst::Unknown(v) => return Err(at(format!("variable `$({v})` is never defined"))),
            Subst::Done => {}
        }
        if let Instruction::Execute { command, .. } = &ins {
            if depth + 1 > MAX_DEPTH {
                return Err(at(format!(
                    "`execute {command}` nests deeper than {MAX_DEPTH} files"
                )));
            }
            plan.nested.push(command.clone());
            run(ctx, world, command, depth + 1, plan).map_err(at)?;
            continue;
        }
        if let Instruction::Define {
            name: var,
            value,
            under,
            ..
        } = &ins
        {
            let v = define(ctx, world, value, under.as_deref()).map_err(at)?;
            if v.is_none() {
                plan.skipped = true;
            }
            vars.insert(var.clone(), v);
            continue;
        }
        step(ctx, world, &ins, plan).map_err(at)?;
        if plan.steps.len() > MAX_STEPS {
            return Err(at(format!("more than {MAX_STEPS} steps: split the file")));
        }
    }
    Ok(())
}

enum Subst {
    Done,
    Disabled,
    Unknown(String),
}

/// Replaces the `$(name)` references of every text of an instruction.
fn substitute_all(ins: &mut Instruction, vars: &HashMap<String, Option<String>>) -> Subst {
    use Instruction::*;
    let mut texts: Vec<&mut String> = match ins {
        Replicate { path, new_name, .. } | Rename { path, new_name, .. } => vec![path, new_name],
        Create {
            component,
            name,
            parent,
            ..
        } => {
            let mut v = vec![component, name];
            v.extend(parent.as_mut());
            v
        }
        ChangeStatus { path, .. } => vec![path],
        Bulk { target, .. } => match target {
            BulkTarget::Instance(p) | BulkTarget::Component(p) => vec![p],
        },
        Associate {
            path, target_id, ..
        } => vec![path, target_id],
        Email { to, message, .. } => {
            let mut v: Vec<&mut String> = to.iter_mut().collect();
            v.push(message);
            v
        }
        Define { value, under, .. } => {
            let mut v = vec![value];
            v.extend(under.as_mut());
            v
        }
        Write { content, file, .. } | Append { content, file, .. } => vec![content, file],
        Execute { command, .. } => vec![command],
    };
    for t in texts.iter_mut() {
        let mut out = String::with_capacity(t.len());
        let mut rest = t.as_str();
        while let Some(i) = rest.find("$(") {
            out.push_str(&rest[..i]);
            let Some(j) = rest[i..].find(')').map(|j| i + j) else {
                break;
            };
            let name = &rest[i + 2..j];
            match vars.get(name) {
                Some(Some(v)) => out.push_str(v),
                Some(None) => return Subst::Disabled,
                // Generators are evaluated by `define` itself.
                None if is_generator(name) => out.push_str(&rest[i..=j]),
                None => return Subst::Unknown(name.to_string()),
            }
            rest = &rest[j + 1..];
        }
        out.push_str(rest);
        **t = out;
    }
    Subst::Done
}

fn is_generator(name: &str) -> bool {
    matches!(name, "MILLI_TIME" | "NANO_TIME" | "UUID" | "SMART_INDEX")
        || name.starts_with("FORMATTED_TIME ")
        || name.starts_with("EXISTING_INDEX ")
}

/// A `define`'s value; `None` when its query found nothing.
fn define(
    ctx: &mut Context<'_>,
    world: &mut World,
    value: &str,
    under: Option<&str>,
) -> Result<Option<String>, String> {
    if let Some(under) = under {
        if !world.insts.contains_key(under) {
            return Err(format!("no instance `{under}`"));
        }
    }
    let v = value.trim();
    if let Some(pattern) = v
        .strip_prefix("$(FORMATTED_TIME ")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Ok(Some(super::format_time(pattern.trim(), ctx.now_ms)));
    }
    let mut v = v.replace("$(MILLI_TIME)", &ctx.now_ms.to_string());
    while v.contains("$(NANO_TIME)") {
        world.nano += 1;
        let nanos = ctx.now_ms.saturating_mul(1_000_000) + world.nano;
        v = v.replacen("$(NANO_TIME)", &nanos.to_string(), 1);
    }
    while v.contains("$(UUID)") {
        let u = uuid((ctx.random)());
        v = v.replacen("$(UUID)", &u, 1);
    }
    let level = |world: &World| -> Vec<String> {
        world
            .insts
            .keys()
            .filter(|p| parent_of(p) == under)
            .filter_map(|p| p.rsplit('/').next().map(String::from))
            .collect()
    };
    if v.contains("$(SMART_INDEX)") {
        let taken = level(world);
        let n = (1u64..)
            .find(|n| !taken.contains(&v.replace("$(SMART_INDEX)", &n.to_string())))
            .unwrap_or(1);
        v = v.replace("$(SMART_INDEX)", &n.to_string());
    }
    if let Some(i) = v.find("$(EXISTING_INDEX") {
        let Some(j) = v[i..].find(')').map(|j| i + j) else {
            return Err(format!("invalid existing index query in `{v}`"));
        };
        let query = v[i + "$(EXISTING_INDEX".len()..j].trim();
        let (max, bound) = match query.get(..3) {
            Some(q) if q.eq_ignore_ascii_case("max") => (true, query[3..].trim()),
            Some(q) if q.eq_ignore_ascii_case("min") => (false, query[3..].trim()),
            _ => return Err(format!("invalid existing index query `{query}`")),
        };
        let bound: Option<(char, u64)> = match bound.chars().next() {
            None => None,
            Some(op @ ('<' | '>')) => match bound[1..].trim().parse() {
                Ok(n) => Some((op, n)),
                Err(_) => return Err(format!("invalid bound in `{query}`")),
            },
            Some(_) => return Err(format!("invalid existing index query `{query}`")),
        };
        let (prefix, suffix) = (&v[..i], &v[j + 1..]);
        let names = level(world);
        let found = names
            .iter()
            .filter_map(|n| {
                n.strip_prefix(prefix)?
                    .strip_suffix(suffix)
                    .map(String::from)
            })
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|d| d.parse::<u64>().ok())
            .filter(|n| match bound {
                Some(('<', b)) => *n < b,
                Some((_, b)) => *n > b,
                None => true,
            });
        let pick = if max { found.max() } else { found.min() };
        let Some(n) = pick else {
            return Ok(None);
        };
        v = format!("{prefix}{n}{suffix}");
    }
    Ok(Some(v))
}

/// A version-4 UUID from 128 random bits.
fn uuid(r: u128) -> String {
    let r = (r & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{r:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.contains('/') || !roboconf_model::commands::is_flex_id(name) {
        return Err(format!("invalid instance name `{name}`"));
    }
    Ok(())
}

fn count_machine(ctx: &Context<'_>, world: &mut World, component: &str) -> Result<(), String> {
    if !ctx.model.is_machine(component) {
        return Ok(());
    }
    if ctx.machines + world.new_machines >= ctx.max_machines {
        return Err(format!(
            "the machine limit ({}) is reached: no new {component} is created",
            ctx.max_machines
        ));
    }
    world.new_machines += 1;
    Ok(())
}

/// Resolves one instruction (not `define` or `execute`) into steps.
fn step(
    ctx: &mut Context<'_>,
    world: &mut World,
    ins: &Instruction,
    plan: &mut Plan,
) -> Result<(), String> {
    use Instruction::*;
    let exists = |w: &World, p: &str| -> Result<(), String> {
        match w.insts.contains_key(p) {
            true => Ok(()),
            false => Err(format!("no instance `{p}`")),
        }
    };
    match ins {
        Create {
            component,
            name,
            parent,
            ..
        } => {
            let (component, name) = (component.trim(), name.trim());
            check_name(name)?;
            if !ctx.model.component_exists(component) {
                return Err(format!("no component `{component}`"));
            }
            let parent = parent.as_deref().map(str::trim);
            let parent_comp = match parent {
                Some(p) => {
                    exists(world, p)?;
                    world.component(p).map(String::from)
                }
                None => None,
            };
            if !ctx.model.can_be_child(parent_comp.as_deref(), component) {
                return Err(match parent {
                    Some(p) => format!("a {component} cannot be created under `{p}`"),
                    None => format!("a {component} cannot be a root instance"),
                });
            }
            let path = format!("{}/{name}", parent.unwrap_or(""));
            if world.insts.contains_key(&path) {
                return Err(format!("instance `{path}` already exists"));
            }
            if parent.is_none() {
                count_machine(ctx, world, component)?;
            }
            world
                .insts
                .insert(path.clone(), (component.to_string(), Desired::NotDeployed));
            plan.steps.push(Step::Create {
                path,
                component: component.to_string(),
            });
        }
        Replicate { path, new_name, .. } | Rename { path, new_name, .. } => {
            let rename = matches!(ins, Rename { .. });
            let (path, new_name) = (path.trim(), new_name.trim());
            exists(world, path)?;
            check_name(new_name)?;
            let parent = parent_of(path);
            if !rename && parent.is_some() {
                return Err(format!("`{path}` is not a root instance"));
            }
            let to = format!("{}/{new_name}", parent.unwrap_or(""));
            if world.insts.contains_key(&to) {
                return Err(format!("instance `{to}` already exists"));
            }
            let subtree = world.subtree(path);
            if rename {
                if let Some(d) = subtree.iter().find(|p| {
                    world
                        .insts
                        .get(*p)
                        .is_some_and(|(_, d)| *d != Desired::NotDeployed)
                }) {
                    return Err(format!("`{d}` must be undeployed before it is renamed"));
                }
            }
            if parent.is_none() {
                let comp = world.component(path).unwrap_or_default().to_string();
                count_machine(ctx, world, &comp)?;
            }
            for p in &subtree {
                let comp = world.component(p).unwrap_or_default().to_string();
                let np = format!("{to}{}", &p[path.len()..]);
                world
                    .insts
                    .insert(np.clone(), (comp.clone(), Desired::NotDeployed));
                plan.steps.push(Step::Create {
                    path: np,
                    component: comp,
                });
            }
            let target = world
                .targets
                .get(path)
                .cloned()
                .or_else(|| ctx.model.machine_target(path));
            if let (None, Some(target)) = (parent, target) {
                world.targets.insert(to.clone(), target.clone());
                plan.steps.push(Step::Target { root: to, target });
            }
            if rename {
                for p in &subtree {
                    world.insts.remove(p);
                }
                plan.steps.push(Step::Delete {
                    path: path.to_string(),
                });
            }
        }
        Associate {
            path, target_id, ..
        } => {
            let (path, target) = (path.trim(), target_id.trim());
            exists(world, path)?;
            if parent_of(path).is_some() {
                return Err(format!("`{path}` is not a root (scoped) instance"));
            }
            let comp = world.component(path).unwrap_or_default().to_string();
            if !ctx.model.has_target(&comp, target) {
                return Err(format!("{comp} has no target file `{target}`"));
            }
            world.targets.insert(path.to_string(), target.to_string());
            plan.steps.push(Step::Target {
                root: path.to_string(),
                target: target.to_string(),
            });
        }
        ChangeStatus { path, status, .. } => {
            let path = path.trim();
            exists(world, path)?;
            let target = match status {
                TargetStatus::NotDeployed => Desired::NotDeployed,
                TargetStatus::DeployedStopped => Desired::Deployed,
                TargetStatus::DeployedStarted => Desired::Started,
            };
            set(world, plan, path, target);
        }
        Bulk { action, target, .. } => {
            let roots: Vec<String> = match target {
                BulkTarget::Instance(p) => {
                    let p = p.trim();
                    exists(world, p)?;
                    vec![p.to_string()]
                }
                BulkTarget::Component(c) => {
                    let c = c.trim();
                    if !ctx.model.component_exists(c) {
                        return Err(format!("no component `{c}`"));
                    }
                    let all: Vec<String> = world
                        .insts
                        .iter()
                        .filter(|(_, (comp, _))| comp == c)
                        .map(|(p, _)| p.clone())
                        .collect();
                    // An instance under another of the list is part of its subtree.
                    all.iter()
                        .filter(|p| !all.iter().any(|q| p.starts_with(&format!("{q}/"))))
                        .cloned()
                        .collect()
                }
            };
            for root in roots {
                let subtree = world.subtree(&root);
                match action {
                    BulkAction::DeployAndStartAll => {
                        for p in &subtree {
                            set(world, plan, p, Desired::Started);
                        }
                    }
                    BulkAction::StopAll => {
                        for p in subtree.iter().rev() {
                            if world
                                .insts
                                .get(p)
                                .is_some_and(|(_, d)| *d == Desired::Started)
                            {
                                set(world, plan, p, Desired::Deployed);
                            }
                        }
                    }
                    BulkAction::UndeployAll => {
                        for p in subtree.iter().rev() {
                            set(world, plan, p, Desired::NotDeployed);
                        }
                    }
                    BulkAction::Delete => {
                        for p in &subtree {
                            world.insts.remove(p);
                        }
                        plan.steps.push(Step::Delete { path: root });
                    }
                }
            }
        }
        Email { to, message, .. } => {
            let (subject, body) = match message.split_once('\n') {
                Some((first, rest)) if first.trim_start().starts_with("Subject:") => (
                    first.trim_start()["Subject:".len()..].trim().to_string(),
                    rest.to_string(),
                ),
                None if message.trim_start().starts_with("Subject:") => (
                    message.trim_start()["Subject:".len()..].trim().to_string(),
                    String::new(),
                ),
                _ => ("Roboconf event".to_string(), message.clone()),
            };
            plan.steps.push(Step::Email {
                to: to.clone(),
                subject,
                body,
            });
        }
        Write { content, file, .. } | Append { content, file, .. } => {
            plan.steps.push(Step::Write {
                file: file.trim().to_string(),
                content: content.trim().to_string(),
                append: matches!(ins, Append { .. }),
            });
        }
        Define { .. } | Execute { .. } => {}
    }
    Ok(())
}

fn set(world: &mut World, plan: &mut Plan, path: &str, target: Desired) {
    if let Some((_, d)) = world.insts.get_mut(path) {
        *d = target;
    }
    plan.steps.push(Step::Set {
        path: path.to_string(),
        target,
    });
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
