//! An application project on disk, loaded and validated as a whole: the descriptor, the
//! graph from its entry point, the instances from theirs, the recipe folders under
//! `graph/` (scripts, target properties), the commands and autonomic rules, and the DSL
//! files that nothing reaches. Mirrors Roboconf's `RuntimeModelIo.loadApplication`.

use crate::commands::{self, Commands};
use crate::descriptor::Descriptor;
use crate::diag::{has_errors, Code, Diagnostic};
use crate::dsl::text::{is_blank, is_strict_id};
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
    if !desc_dir.is_dir() {
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
    if !graph_dir.is_dir() {
        diags.push(Diagnostic::new(
            Code::PROJ_NO_GRAPH_DIR,
            dir,
            0,
            0,
            "the application has no `graph/` folder",
        ));
    } else if let Some(gep) = app
        .descriptor
        .as_ref()
        .and_then(|d| d.graph_entry_point.clone())
        .filter(|g| !is_blank(g))
    {
        let entry = graph_dir.join(gep.trim());
        if !entry.is_file() {
            let d = app
                .descriptor
                .as_ref()
                .map(|d| (d.file.clone(), d.line_of("graph-entry-point")))
                .unwrap_or_default();
            diags.push(Diagnostic::new(
                Code::PROJ_MISSING_GRAPH_EP,
                &d.0,
                d.1,
                1,
                format!("the graph entry point `{}` does not exist", entry.display()),
            ));
        } else {
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
                app.resolved = Resolved::new(&build.graph);
                app.graph = Some(build.graph);
            }
            graph_loaded = true;
        }
    }
    let inst_dir = dir.join("instances");
    if let (Some(desc), true) = (app.descriptor.as_ref(), inst_dir.is_dir()) {
        let iep = desc.instance_entry_point.clone().filter(|i| !is_blank(i));
        match (&app.graph, iep) {
            (None, _) if !graph_loaded => diags.push(Diagnostic::new(
                Code::CO_GRAPH_COULD_NOT_BE_BUILT,
                &inst_dir,
                0,
                0,
                "instances cannot be read without a graph",
            )),
            (None, _) | (_, None) => {}
            (Some(graph), Some(iep)) => {
                let entry = inst_dir.join(iep.trim());
                if !entry.is_file() {
                    diags.push(Diagnostic::new(
                        Code::PROJ_MISSING_INSTANCE_EP,
                        &desc.file,
                        desc.line_of("instance-entry-point"),
                        1,
                        format!(
                            "the instances entry point `{}` does not exist",
                            entry.display()
                        ),
                    ));
                } else {
                    let build = build_instances(graph, &entry, &inst_dir, limits);
                    app.files.extend(build.files.iter().cloned());
                    let ok = !has_errors(&build.diagnostics);
                    diags.extend(build.diagnostics);
                    if ok {
                        diags.extend(validate_instances(graph, &app.resolved, &build.set));
                        app.instances = build.set;
                    }
                }
            }
        }
    }
    load_commands_and_rules(&mut app, limits, &mut diags);
    check_file_locations(&app, &mut diags);
    if !has_errors(&diags) {
        diags.extend(validate_external_exports(&app));
    }
    (app, diags)
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

/// Every file under `dir`, recursively, sorted (unreadable folders are skipped).
pub fn list_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
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
    for f in list_files(&cmd_dir) {
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
    for f in list_files(&rules_dir) {
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
}

/// DSL files outside their folder, or that no entry point reaches.
fn check_file_locations(app: &Application, diags: &mut Vec<Diagnostic>) {
    let read: BTreeSet<&PathBuf> = app.files.iter().collect();
    for (ext, folder) in [("graph", "graph"), ("instances", "instances")] {
        let home = app.dir.join(folder);
        for f in list_files(&app.dir) {
            if f.extension().and_then(|e| e.to_str()) != Some(ext) {
                continue;
            }
            if !f.starts_with(&home) {
                diags.push(Diagnostic::new(
                    Code::PROJ_INVALID_FILE_LOCATION,
                    &f,
                    1,
                    1,
                    format!("`.{ext}` files belong under `{folder}/`"),
                ));
            } else if !read.contains(&f) {
                diags.push(Diagnostic::new(
                    Code::PROJ_UNREACHABLE_FILE,
                    &f,
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
