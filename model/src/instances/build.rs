//! Reads `.instances` files against a graph, as Roboconf's instances converter does:
//! files and their imports (relative to the `instances/` folder) are parsed and checked,
//! every `instance of` block becomes an instance under its enclosing one, paths must be
//! unique, and `count: N` turns a block into N instances named with a zero-padded suffix
//! (`vm-1` ... `vm-N`). The total number of instances is bounded, and so are names and
//! paths once `count:` has added its suffixes (`crate::limits`).

use super::{Instance, InstanceSet};
use crate::diag::{has_errors, Code, Diagnostic};
use crate::dsl::checks::{CHANNELS, COUNT, DATA, NAME, STATE};
use crate::dsl::text::jtrim;
use crate::dsl::walk::{walk, Expect};
use crate::dsl::{Block, FileDef, Holder, Limits};
use crate::graph::{Graph, Loc};
use crate::limits;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// Most instances one application may declare, after `count:` expansion.
pub const MAX_INSTANCES: usize = 1_000_000;

/// The result of reading instances.
#[derive(Debug, Clone, Default)]
pub struct InstancesBuild {
    pub set: InstanceSet,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read or looked for, entry first.
    pub files: Vec<PathBuf>,
}

/// Reads the instances of `entry`, resolving imports against `root` (`instances/`).
pub fn build_instances(graph: &Graph, entry: &Path, root: &Path, limits: Limits) -> InstancesBuild {
    build_instances_from_defs(graph, entry, root, &mut |p| {
        p.is_file().then(|| crate::dsl::parse_file(p, limits))
    })
}

/// Same as [`build_instances`], reading files through `load` (`None`: no such file).
pub fn build_instances_from_defs(
    graph: &Graph,
    entry: &Path,
    root: &Path,
    load: &mut dyn FnMut(&Path) -> Option<FileDef>,
) -> InstancesBuild {
    let mut out = InstancesBuild::default();
    let mut counts: HashMap<usize, i32> = HashMap::new();
    let (files, diags) = walk(entry, root, Expect::Instances, load, &mut |file, def| {
        for h in def.holders() {
            add_tree(
                graph,
                file,
                h,
                &mut out.set,
                &mut counts,
                &mut out.diagnostics,
            );
        }
    });
    out.files = files;
    out.diagnostics.splice(0..0, diags);
    if !has_errors(&out.diagnostics) {
        check_unique_paths(&out.set, &mut out.diagnostics);
    }
    if !has_errors(&out.diagnostics) {
        expand_counts(&mut out.set, &counts, &mut out.diagnostics);
    }
    if !has_errors(&out.diagnostics) {
        check_lengths(&out.set, &mut out.diagnostics);
    }
    out
}

/// Names and paths longer than `crate::limits` allows, once `count:` has added its
/// suffixes: one finding per declaring block (its copies share it), and none for the
/// instances under one whose path is already too long.
fn check_lengths(set: &InstanceSet, diags: &mut Vec<Diagnostic>) {
    let mut path_len = vec![0usize; set.instances.len()];
    let mut reported: HashSet<(&Loc, Code)> = HashSet::new();
    for i in set.hierarchical() {
        let inst = &set.instances[i];
        let parent_len = inst.parent.map_or(0, |p| path_len[p]);
        if parent_len > limits::MAX_PATH_BYTES {
            path_len[i] = parent_len;
            continue;
        }
        path_len[i] = parent_len + limits::path_segment_len(&inst.name);
        let at = &inst.loc;
        if let Err(message) = limits::check_name("instance", &inst.name) {
            if reported.insert((at, Code::X_NAME_TOO_LONG)) {
                diags.push(Diagnostic::new(
                    Code::X_NAME_TOO_LONG,
                    &at.file,
                    at.line,
                    at.col,
                    message,
                ));
            }
            // Its path and those under it are too long as well: the name is the finding.
            path_len[i] = path_len[i].max(limits::MAX_PATH_BYTES + 1);
            continue;
        }
        if path_len[i] > limits::MAX_PATH_BYTES
            && reported.insert((at, Code::X_INSTANCE_PATH_TOO_LONG))
        {
            diags.push(limits::path_too_long(
                &at.file,
                at.line,
                at.col,
                path_len[i],
            ));
        }
    }
}

/// Adds the instance of `h` and its nested instances.
fn add_tree(
    graph: &Graph,
    file: &Path,
    h: &Holder,
    set: &mut InstanceSet,
    counts: &mut HashMap<usize, i32>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut todo: VecDeque<(&Holder, Option<usize>)> = VecDeque::from([(h, None)]);
    while let Some((block, parent)) = todo.pop_front() {
        let loc = Loc {
            file: file.to_path_buf(),
            line: block.span.line,
            col: block.span.col,
        };
        let component = graph.component(&block.name);
        let mut inst = Instance {
            name: block
                .property(NAME)
                .map(|p| p.value.clone())
                .unwrap_or_default(),
            component,
            parent,
            children: Vec::new(),
            overrides: Vec::new(),
            data: BTreeMap::new(),
            channels: block
                .property_values(CHANNELS)
                .into_iter()
                .map(|(s, _)| s)
                .collect(),
            state: block.property(STATE).map(|p| p.value.clone()),
            loc: loc.clone(),
            inferred: false,
        };
        let id = set.instances.len();
        if let Some(p) = parent {
            set.instances[p].children.push(id);
        } else {
            set.roots.push(id);
        }
        if component.is_none() {
            diags.push(Diagnostic::new(
                Code::CO_INEXISTING_COMPONENT,
                &loc.file,
                loc.line,
                loc.col,
                format!("no component is named `{}`", block.name),
            ));
            set.instances.push(inst);
            continue;
        }
        for (item, _) in block.property_values(DATA) {
            let (k, v) = match item.find('=') {
                Some(i) if i > 0 => (
                    jtrim(&item[..i]).to_string(),
                    jtrim(&item[i + 1..]).to_string(),
                ),
                _ => (item.clone(), String::new()),
            };
            inst.data.insert(k, v);
        }
        if let Some(c) = block
            .property(COUNT)
            .and_then(|p| p.value.parse::<i32>().ok())
        {
            counts.insert(id, c);
        }
        for b in &block.blocks {
            match b {
                Block::Property(p) => {
                    if [NAME, CHANNELS, DATA, STATE, COUNT].contains(&p.name.as_str()) {
                        continue;
                    }
                    if p.name.to_ascii_lowercase().starts_with("data.") {
                        inst.data.insert(p.name[5..].to_string(), p.value.clone());
                        continue;
                    }
                    let t = jtrim(&p.value);
                    let value = if t.len() >= 2 && t.starts_with('"') && t.ends_with('"') {
                        t[1..t.len() - 1].to_string()
                    } else {
                        p.value.clone()
                    };
                    match inst.overrides.iter_mut().find(|(k, _)| *k == p.name) {
                        Some(slot) => slot.1 = value,
                        None => inst.overrides.push((p.name.clone(), value)),
                    }
                }
                Block::Holder(child) => todo.push_back((child, Some(id))),
                _ => {}
            }
        }
        set.instances.push(inst);
    }
}

fn check_unique_paths(set: &InstanceSet, diags: &mut Vec<Diagnostic>) {
    let mut by_path: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for i in 0..set.instances.len() {
        by_path.entry(set.path(i)).or_default().push(i);
    }
    for (path, list) in by_path {
        if list.len() < 2 {
            continue;
        }
        for i in list {
            let at = &set.instances[i].loc;
            diags.push(Diagnostic::new(
                Code::CO_ALREADY_DEFINED_INSTANCE,
                &at.file,
                at.line,
                at.col,
                format!("the instance `{path}` is defined more than once"),
            ));
        }
    }
}

fn subtree_size(set: &InstanceSet, i: usize) -> usize {
    1 + set.instances[i]
        .children
        .iter()
        .map(|&c| subtree_size(set, c))
        .sum::<usize>()
}

/// Deep-copies the subtree of `i` under `parent`; returns the copy's id.
fn copy_subtree(set: &mut InstanceSet, i: usize, parent: Option<usize>) -> usize {
    let mut copy = set.instances[i].clone();
    copy.parent = parent;
    copy.children = Vec::new();
    copy.inferred = true;
    copy.data = BTreeMap::new();
    let id = set.instances.len();
    set.instances.push(copy);
    let children = set.instances[i].children.clone();
    for c in children {
        let cc = copy_subtree(set, c, Some(id));
        set.instances[id].children.push(cc);
    }
    id
}

fn expand_counts(set: &mut InstanceSet, counts: &HashMap<usize, i32>, diags: &mut Vec<Diagnostic>) {
    let mut order = set.hierarchical();
    order.reverse();
    let mut expanded: Vec<usize> = Vec::new();
    for i in order {
        let Some(&count) = counts.get(&i) else {
            continue;
        };
        if count <= 1 {
            continue;
        }
        let count = count as usize;
        let needed = subtree_size(set, i).saturating_mul(count - 1);
        if set.instances.len().saturating_add(needed) > MAX_INSTANCES {
            let at = set.instances[i].loc.clone();
            diags.push(Diagnostic::new(
                Code::X_TOO_MANY_INSTANCES,
                &at.file,
                at.line,
                at.col,
                format!("`count: {count}` would make more than {MAX_INSTANCES} instances"),
            ));
            return;
        }
        let width = count.to_string().len();
        let parent = set.instances[i].parent;
        let base = set.instances[i].name.clone();
        for n in 2..=count {
            let id = copy_subtree(set, i, parent);
            set.instances[id].name = format!("{base}{n:0width$}");
            match parent {
                Some(p) => set.instances[p].children.push(id),
                None => set.roots.push(id),
            }
        }
        set.instances[i].name = format!("{base}{:0width$}", 1);
        set.instances[i].inferred = true;
        expanded.push(i);
    }
    if expanded.is_empty() {
        return;
    }
    // Names made by `count:` may clash with names written explicitly.
    let mut levels: Vec<Vec<usize>> = vec![set.roots.clone()];
    levels.extend(set.instances.iter().map(|x| x.children.clone()));
    for level in levels {
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for &x in &level {
            by_name
                .entry(set.instances[x].name.as_str())
                .or_default()
                .push(x);
        }
        for (_, list) in by_name {
            if list.len() < 2 || !list.iter().any(|&x| set.instances[x].inferred) {
                continue;
            }
            let inferred = list
                .iter()
                .copied()
                .find(|&x| set.instances[x].inferred)
                .unwrap_or(list[0]);
            let other = list
                .iter()
                .copied()
                .find(|&x| x != inferred)
                .unwrap_or(list[0]);
            let at = &set.instances[inferred].loc;
            diags.push(Diagnostic::new(
                Code::CO_CONFLICTING_INFERRED_INSTANCE,
                &at.file,
                at.line,
                at.col,
                format!(
                    "`count:` makes an instance `{}` that is also declared at line {}",
                    set.path(inferred),
                    set.instances[other].loc.line
                ),
            ));
        }
    }
}
