//! An application project on disk, loaded and validated as a whole: the descriptor, the
//! graph from its entry point, the instances from theirs, the recipe folders under
//! `graph/` (scripts, target properties), the commands and autonomic rules, and the DSL
//! files that nothing reaches. Mirrors Roboconf's `RuntimeModelIo.loadApplication`, and
//! keeps the application to its folder: the paths it names are resolved inside it and
//! never through a symbolic link, and the links it holds are reported, since they are
//! not part of what other nodes receive.

use crate::commands::{self, Commands};
use crate::descriptor::Descriptor;
use crate::diag::{has_errors, Code, Diagnostic};
use crate::dsl::text::{is_blank, is_strict_id};
use crate::dsl::walk::{resolve_inside, walk, Expect, Refusal};
use crate::dsl::Limits;
use crate::graph::rules::{validate_graph, Scope};
use crate::graph::{build_graph, Graph};
use crate::instances::rules::validate_instances;
use crate::instances::{build_instances, InstanceSet};
use crate::recipes;
use crate::resolve::Resolved;
use crate::rules::{self as autonomic, Rule};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// A loaded application.
#[derive(Debug, Clone, Default)]
pub struct Application {
    pub dir: PathBuf,
    pub descriptor: Option<Descriptor>,
    /// The graph, when it could be built without error.
    pub graph: Option<Graph>,
    pub resolved: Resolved,
    pub instances: InstanceSet,
    pub commands: Vec<(String, Commands)>,
    pub rules: Vec<Rule>,
    /// The probes of components (`probes/<Component>.measures`), by component.
    pub probes: Vec<(String, Vec<crate::probes::Probe>)>,
    /// The target files of the `target` components (`crate::targets`).
    pub targets: Vec<crate::targets::TargetDef>,
    /// The DSL files read.
    pub files: Vec<PathBuf>,
}

impl Application {
    pub fn name(&self) -> &str {
        self.descriptor
            .as_ref()
            .and_then(|d| d.name.as_deref())
            .unwrap_or("")
    }
}

/// Loads and validates the project in `dir`. The application is usable when the
/// diagnostics hold no error.
///
/// Every path the application names (entry points, imports) is resolved inside its
/// folder (`graph/`, `instances/`) and never through a symbolic link
/// ([`resolve_inside`]); a file outside is never opened, so no finding can quote it.
/// Symbolic links anywhere in the folder are reported (`X_SYMLINK_IGNORED`): they are
/// not part of the application that other nodes receive.
pub fn load_application(dir: &Path, limits: Limits) -> (Application, Vec<Diagnostic>) {
    let mut app = Application {
        dir: dir.to_path_buf(),
        ..Application::default()
    };
    let mut diags = Vec::new();
    let desc_dir = dir.join("descriptor");
    let desc_file = desc_dir.join("application.properties");
    if !dir.is_dir() {
        diags.push(Diagnostic::new(
            Code::PROJ_NO_DESC_DIR,
            dir,
            0,
            0,
            "not an application folder",
        ));
        return (app, diags);
    }
    let tree = list_tree(dir);
    for link in &tree.links {
        diags.push(Diagnostic::new(
            Code::X_SYMLINK_IGNORED,
            link,
            0,
            0,
            "symbolic link left out of the application: links may point outside it and are not carried to other nodes (copy the file or folder instead)",
        ));
    }
    if let Some(d) = refused_link(dir, "descriptor/application.properties") {
        diags.push(d);
    } else if !desc_dir.is_dir() {
        diags.push(Diagnostic::new(
            Code::PROJ_NO_DESC_DIR,
            dir,
            0,
            0,
            "the application has no `descriptor/` folder",
        ));
    } else if !desc_file.is_file() {
        diags.push(Diagnostic::new(
            Code::PROJ_NO_DESC_FILE,
            &desc_dir,
            0,
            0,
            "missing `descriptor/application.properties`",
        ));
    } else {
        match read_text(&desc_file, limits) {
            Ok(text) => {
                let (d, ds) = Descriptor::parse(&desc_file, &text);
                diags.extend(ds);
                app.descriptor = Some(d);
            }
            Err(e) => diags.push(Diagnostic::new(
                Code::PROJ_READ_DESC_FILE,
                &desc_file,
                0,
                0,
                e,
            )),
        }
    }
    let graph_dir = dir.join("graph");
    let mut graph_loaded = false;
    if let Some(d) = refused_link(dir, "graph") {
        diags.push(d);
    } else if !graph_dir.is_dir() {
        diags.push(Diagnostic::new(
            Code::PROJ_NO_GRAPH_DIR,
            dir,
            0,
            0,
            "the application has no `graph/` folder",
        ));
    } else if let Some((desc, gep)) = app.descriptor.as_ref().and_then(|d| {
        let gep = d.graph_entry_point.as_deref().filter(|g| !is_blank(g))?;
        Some((d, gep.trim().to_string()))
    }) {
        let line = desc.line_of("graph-entry-point");
        match resolve_inside(&graph_dir, &gep) {
            Err(refusal) => diags.push(refusal.diagnostic(
                &format!("the graph entry point `{gep}`"),
                &graph_dir,
                &desc.file,
                line,
                1,
            )),
            Ok(entry) if !entry.is_file() => diags.push(Diagnostic::new(
                Code::PROJ_MISSING_GRAPH_EP,
                &desc.file,
                line,
                1,
                format!("the graph entry point `{}` does not exist", entry.display()),
            )),
            Ok(entry) => {
                let build = build_graph(&entry, &graph_dir, limits);
                app.files.extend(build.files.iter().cloned());
                let ok = build.complete && !has_errors(&build.diagnostics);
                diags.extend(build.diagnostics);
                if ok {
                    diags.extend(validate_graph(
                        &build.graph,
                        Scope {
                            whole_application: true,
                        },
                    ));
                    diags.extend(recipes::validate_recipes(&build.graph, dir));
                    let (targets, found) = crate::targets::load_targets(&build.graph, dir);
                    app.targets = targets;
                    diags.extend(found);
                    app.resolved = Resolved::new(&build.graph);
                    app.graph = Some(build.graph);
                }
                graph_loaded = true;
            }
        }
    }
    load_instances(&mut app, graph_loaded, limits, &mut diags);
    load_commands_and_rules(&mut app, limits, &mut diags);
    check_file_locations(&app, &tree.files, &mut diags);
    if !has_errors(&diags) {
        diags.extend(validate_external_exports(&app));
    }
    (app, diags)
}

/// The finding when the path `rel` of the application goes through a symbolic link.
fn refused_link(dir: &Path, rel: &str) -> Option<Diagnostic> {
    let Err(refusal) = resolve_inside(dir, rel) else {
        return None;
    };
    let Refusal::Link(link) = &refusal else {
        return None;
    };
    Some(refusal.diagnostic(&format!("`{rel}`"), dir, link, 0, 0))
}

/// Reads the instances from their entry point when the graph was built. When it was
/// not, the files the entry point reaches are only listed (their findings would follow
/// from the missing graph), so that they are not called unreachable.
fn load_instances(
    app: &mut Application,
    graph_loaded: bool,
    limits: Limits,
    diags: &mut Vec<Diagnostic>,
) {
    let inst_dir = app.dir.join("instances");
    if let Some(d) = refused_link(&app.dir, "instances") {
        diags.push(d);
        return;
    }
    let Some(desc) = app.descriptor.as_ref().filter(|_| inst_dir.is_dir()) else {
        return;
    };
    if app.graph.is_none() && !graph_loaded {
        diags.push(Diagnostic::new(
            Code::CO_GRAPH_COULD_NOT_BE_BUILT,
            &inst_dir,
            0,
            0,
            "instances cannot be read without a graph",
        ));
    }
    let Some(iep) = desc
        .instance_entry_point
        .as_deref()
        .filter(|i| !is_blank(i))
    else {
        return;
    };
    let iep = iep.trim();
    let line = desc.line_of("instance-entry-point");
    let entry = match resolve_inside(&inst_dir, iep) {
        Ok(entry) => entry,
        Err(refusal) => {
            diags.push(refusal.diagnostic(
                &format!("the instances entry point `{iep}`"),
                &inst_dir,
                &desc.file,
                line,
                1,
            ));
            return;
        }
    };
    let load = &mut |p: &Path| p.is_file().then(|| crate::dsl::parse_file(p, limits));
    let Some(graph) = app.graph.as_ref() else {
        let (files, _) = walk(&entry, &inst_dir, Expect::Instances, load, &mut |_, _| {});
        app.files.extend(files);
        return;
    };
    if !entry.is_file() {
        diags.push(Diagnostic::new(
            Code::PROJ_MISSING_INSTANCE_EP,
            &desc.file,
            line,
            1,
            format!(
                "the instances entry point `{}` does not exist",
                entry.display()
            ),
        ));
        return;
    }
    let build = build_instances(graph, &entry, &inst_dir, limits);
    app.files.extend(build.files.iter().cloned());
    let ok = !has_errors(&build.diagnostics);
    diags.extend(build.diagnostics);
    if ok {
        diags.extend(validate_instances(graph, &app.resolved, &build.set));
        app.instances = build.set;
    }
}

fn read_text(path: &Path, limits: Limits) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read the file: {e}"))?;
    if meta.len() > limits.max_bytes as u64 {
        return Err(format!(
            "the file is larger than {} bytes",
            limits.max_bytes
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the file: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What a folder holds, recursively, sorted: its files and folders are followed, its
/// symbolic links are listed but never followed (a link may point outside the folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    pub files: Vec<PathBuf>,
    pub links: Vec<PathBuf>,
}

/// Lists `dir` (itself followed even when it is a link: it is what the caller named);
/// unreadable folders are skipped.
pub fn list_tree(dir: &Path) -> Tree {
    let mut tree = Tree::default();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            // The entry's own type: a link is not followed.
            match e.file_type() {
                Ok(t) if t.is_symlink() => tree.links.push(p),
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => tree.files.push(p),
                _ => {}
            }
        }
    }
    tree.files.sort();
    tree.links.sort();
    tree
}

/// Every regular file under `dir`, recursively, sorted; symbolic links below `dir` are
/// not followed (see [`list_tree`]).
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    list_tree(dir).files
}

/// True when `path` is a folder and not a symbolic link.
fn is_real_dir(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

struct AppContext<'a> {
    app: &'a Application,
}

impl commands::Context for AppContext<'_> {
    fn component_exists(&self, name: &str) -> bool {
        self.app
            .graph
            .as_ref()
            .is_some_and(|g| g.component(name).is_some())
    }

    fn instance_component(&self, path: &str) -> Option<String> {
        let g = self.app.graph.as_ref()?;
        let i = self.app.instances.find(path)?;
        self.app.instances.instances[i]
            .component
            .map(|c| g.components[c].name.clone())
    }

    fn can_be_child(&self, parent_component: Option<&str>, child_component: &str) -> bool {
        let Some(g) = self.app.graph.as_ref() else {
            return false;
        };
        let Some(c) = g.component(child_component) else {
            return false;
        };
        let view = &self.app.resolved.views[c];
        match parent_component.and_then(|p| g.component(p)) {
            None => parent_component.is_none() && view.ancestors.is_empty(),
            Some(p) => view.ancestors.contains(&p),
        }
    }

    fn is_root_component(&self, component: &str) -> bool {
        self.app
            .graph
            .as_ref()
            .and_then(|g| g.component(component))
            .is_some_and(|c| self.app.resolved.views[c].ancestors.is_empty())
    }

    fn instance_paths(&self) -> Vec<String> {
        (0..self.app.instances.instances.len())
            .map(|i| self.app.instances.path(i))
            .collect()
    }
}

fn load_commands_and_rules(app: &mut Application, limits: Limits, diags: &mut Vec<Diagnostic>) {
    if app.graph.is_none() {
        return;
    }
    let cmd_dir = app.dir.join("commands");
    let mut names = BTreeSet::new();
    let mut loaded = Vec::new();
    // A linked folder is not read (and is reported with the other links).
    let cmd_files = if is_real_dir(&cmd_dir) {
        list_files(&cmd_dir)
    } else {
        Vec::new()
    };
    for f in cmd_files {
        let Some(name) = f
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".commands"))
        else {
            diags.push(Diagnostic::new(
                Code::PROJ_INVALID_COMMAND_EXT,
                &f,
                0,
                0,
                "files under `commands/` must end with `.commands`",
            ));
            continue;
        };
        names.insert(name.to_string());
        match read_text(&f, limits) {
            Ok(text) => {
                let (cmds, ds) = commands::parse(&text, &f, &AppContext { app });
                diags.extend(ds);
                loaded.push((f.clone(), cmds));
            }
            Err(e) => diags.push(Diagnostic::new(Code::P_IO_ERROR, &f, 0, 0, e)),
        }
    }
    diags.extend(commands::check_executions(
        loaded.iter().map(|(p, c)| (p.as_path(), c)),
    ));
    app.commands = loaded
        .into_iter()
        .map(|(_, c)| (c.name.clone(), c))
        .collect();
    let rules_dir = app.dir.join("rules.autonomic");
    let rule_files = if is_real_dir(&rules_dir) {
        list_files(&rules_dir)
    } else {
        Vec::new()
    };
    for f in rule_files {
        if f.extension().and_then(|e| e.to_str()) != Some("drl") {
            diags.push(Diagnostic::new(
                Code::PROJ_INVALID_RULE_EXT,
                &f,
                0,
                0,
                "files under `rules.autonomic/` must end with `.drl`",
            ));
            continue;
        }
        match read_text(&f, limits) {
            Ok(text) => {
                let (rule, ds) = autonomic::parse(&text, &f);
                diags.extend(ds);
                if let Some(rule) = rule {
                    for c in rule.commands.iter().filter(|c| !names.contains(c.as_str())) {
                        diags.push(Diagnostic::new(
                            Code::RULE_UNKNOWN_COMMAND,
                            &f,
                            rule.line,
                            1,
                            format!(
                                "the rule invokes `{c}`, but no `commands/{c}.commands` exists"
                            ),
                        ));
                    }
                    app.rules.push(rule);
                }
            }
            Err(e) => diags.push(Diagnostic::new(Code::RULE_IO_ERROR, &f, 0, 0, e)),
        }
    }
    load_probes(app, limits, diags);
}

/// `probes/<Component>.measures`, with `<Component>.measures.properties` if present (a
/// regular file: links are not followed). Probes of a component the graph does not have,
/// and other files (subfolders too), are warnings.
fn load_probes(app: &mut Application, limits: Limits, diags: &mut Vec<Diagnostic>) {
    let dir = app.dir.join("probes");
    let files = if is_real_dir(&dir) {
        list_files(&dir)
    } else {
        Vec::new()
    };
    let warn = |f: &Path, why: String| Diagnostic::new(Code::PROBE_UNKNOWN_COMPONENT, f, 0, 0, why);
    // Sorted (`list_files`): looked up by binary search.
    let has = |p: &PathBuf| files.binary_search(p).is_ok();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let top = f.parent() == Some(dir.as_path());
        let stem = name.strip_suffix(".measures.properties");
        if stem.is_some_and(|c| top && has(&dir.join(format!("{c}.measures")))) {
            continue;
        }
        let component = name.strip_suffix(".measures").filter(|_| top);
        let Some(component) = component else {
            let why = match stem {
                Some(c) => format!("no `probes/{c}.measures` goes with this file: ignored"),
                None => "not a probe file: `probes/` holds `<Component>.measures` and `<Component>.measures.properties` files, ignored".into(),
            };
            diags.push(warn(f, why));
            continue;
        };
        let known = app
            .graph
            .as_ref()
            .is_some_and(|g| g.component(component).is_some());
        if !known {
            diags.push(warn(
                f,
                format!("no component `{component}` in the graph: these probes never run"),
            ));
        }
        let props_file = dir.join(format!("{name}.properties"));
        let props = match has(&props_file).then(|| read_text(&props_file, limits)) {
            Some(Err(e)) => {
                diags.push(Diagnostic::new(Code::P_IO_ERROR, &props_file, 0, 0, e));
                continue;
            }
            Some(Ok(text)) => Some(text),
            None => None,
        };
        let text = match read_text(f, limits) {
            Ok(text) => text,
            Err(e) => {
                diags.push(Diagnostic::new(Code::P_IO_ERROR, f, 0, 0, e));
                continue;
            }
        };
        let (probes, found) = crate::probes::parse(&text, props.as_deref(), f);
        diags.extend(found);
        if known && !probes.is_empty() {
            app.probes.push((component.to_string(), probes));
        }
    }
}

/// DSL files (among `all`, the application's files) outside their folder, or that no
/// entry point reaches.
fn check_file_locations(app: &Application, all: &[PathBuf], diags: &mut Vec<Diagnostic>) {
    let read: BTreeSet<&PathBuf> = app.files.iter().collect();
    for (ext, folder) in [("graph", "graph"), ("instances", "instances")] {
        let home = app.dir.join(folder);
        for f in all {
            if f.extension().and_then(|e| e.to_str()) != Some(ext) {
                continue;
            }
            if !f.starts_with(&home) {
                diags.push(Diagnostic::new(
                    Code::PROJ_INVALID_FILE_LOCATION,
                    f,
                    1,
                    1,
                    format!("`.{ext}` files belong under `{folder}/`"),
                ));
            } else if !read.contains(f) {
                diags.push(Diagnostic::new(
                    Code::PROJ_UNREACHABLE_FILE,
                    f,
                    1,
                    1,
                    "no entry point imports this file, so it is ignored",
                ));
            }
        }
    }
}

fn validate_external_exports(app: &Application) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let (Some(d), Some(g)) = (&app.descriptor, &app.graph) else {
        return out;
    };
    if d.external_exports.is_empty() {
        return out;
    }
    let at = |key: &str| (d.file.clone(), d.line_of(key));
    if let Some(prefix) = d.exports_prefix.as_deref().filter(|p| !is_blank(p)) {
        if !is_strict_id(prefix) {
            let (f, l) = at("exports-prefix");
            out.push(Diagnostic::new(
                Code::RM_INVALID_APPLICATION_EXPORT_PREFIX,
                &f,
                l,
                1,
                format!("invalid export prefix `{prefix}`"),
            ));
        }
    }
    let all: BTreeSet<String> = (0..g.components.len())
        .flat_map(|c| app.resolved.views[c].exports.keys().cloned())
        .collect();
    let mut aliases = BTreeSet::new();
    let (f, l) = at("exports");
    for (var, alias) in &d.external_exports {
        if !all.contains(var) {
            out.push(Diagnostic::new(
                Code::RM_INVALID_EXTERNAL_EXPORT,
                &f,
                l,
                1,
                format!("`{var}` is exported to other applications, but no component exports it"),
            ));
        }
        if !aliases.insert(alias) {
            out.push(Diagnostic::new(
                Code::RM_ALREADY_DEFINED_EXTERNAL_EXPORT,
                &f,
                l,
                1,
                format!("the alias `{alias}` is used twice"),
            ));
        }
    }
    out
}
