//! `roboconf validate` as a function: given an application folder, a `.graph` file or an
//! `.instances` file, run every check that this input allows and report the findings,
//! errors first. A file alone is parsed and checked with the files it imports (missing
//! ones are `CO_UNREACHABLE_FILE`, as in Roboconf); a graph file alone gets its
//! references checked when it imports no other file; cross-file checks and instances
//! against their graph need the folder.

use crate::app::load_application;
use crate::diag::{has_errors, sort_for_display, Diagnostic};
use crate::dsl::walk::{walk, Expect};
use crate::dsl::{self, Limits};
use crate::graph::{build_graph, rules::validate_graph, rules::Scope};
use serde::Serialize;
use std::path::Path;

/// What was validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Application,
    Graph,
    Instances,
}

/// Counts of what the input declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub name: Option<String>,
    pub components: usize,
    pub facets: usize,
    pub instances: usize,
    pub commands: usize,
    pub rules: usize,
}

/// The outcome of a validation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: Target,
    pub valid: bool,
    pub errors: usize,
    pub warnings: usize,
    pub summary: Summary,
    /// Set when some checks could not run on this input alone.
    pub note: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Why a path cannot be validated at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{0}: no such file or folder")]
    Missing(String),
    #[error("{0}: expected an application folder, a `.graph` file or an `.instances` file")]
    Unsupported(String),
}

/// Validates `path`.
pub fn validate_path(path: &Path, limits: Limits) -> Result<Report, InputError> {
    let shown = path.display().to_string();
    if !path.exists() {
        return Err(InputError::Missing(shown));
    }
    let mut summary = Summary::default();
    let mut note = None;
    let (target, diags) = if path.is_dir() {
        let (app, diags) = load_application(path, limits);
        summary.name = app.descriptor.as_ref().and_then(|d| d.name.clone());
        if let Some(g) = &app.graph {
            summary.components = g.components.len();
            summary.facets = g.facets.len();
        }
        summary.instances = app.instances.instances.len();
        summary.commands = app.commands.len();
        summary.rules = app.rules.len();
        (Target::Application, diags)
    } else {
        match path.extension().and_then(|e| e.to_str()) {
            Some("graph") => {
                let def = dsl::parse_file(path, limits);
                let root = path.parent().unwrap_or(Path::new("."));
                if def.imports().next().is_some() {
                    // What the file itself defines; its imports are parsed and checked,
                    // and missing ones reported, but references are left to the folder.
                    summary.components = count_holders(&def, dsl::HolderKind::Component);
                    summary.facets = count_holders(&def, dsl::HolderKind::Facet);
                    note = Some("this file imports other files: references across files are checked when the application folder is validated".to_string());
                    (
                        Target::Graph,
                        walk_alone(path, def, root, Expect::Graph, limits),
                    )
                } else {
                    let build = build_graph(path, root, limits);
                    let mut diags = build.diagnostics;
                    summary.components = build.graph.components.len();
                    summary.facets = build.graph.facets.len();
                    if build.complete && !has_errors(&diags) {
                        diags.extend(validate_graph(
                            &build.graph,
                            Scope {
                                whole_application: false,
                            },
                        ));
                    }
                    note = Some("a graph file alone: whether the application has a root component is checked on the application folder".to_string());
                    (Target::Graph, diags)
                }
            }
            Some("instances") => {
                let def = dsl::parse_file(path, limits);
                summary.instances = count_instances(&def.blocks);
                note = Some("an instances file alone is only parsed (with the files it imports): validate the application folder to check it against the graph".to_string());
                let root = path.parent().unwrap_or(Path::new("."));
                (
                    Target::Instances,
                    walk_alone(path, def, root, Expect::Instances, limits),
                )
            }
            _ => return Err(InputError::Unsupported(shown)),
        }
    };
    let mut diagnostics = diags;
    sort_for_display(&mut diagnostics);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    Ok(Report {
        target,
        valid: errors == 0,
        errors,
        warnings: diagnostics.len() - errors,
        summary,
        note,
        diagnostics,
    })
}

/// Parses and checks `path` (already parsed as `def`) and the files it imports, as
/// Roboconf reads them from `root`: syntax, block checks, files of the wrong kind, and
/// imports that are missing (`CO_UNREACHABLE_FILE`) or leave `root`.
fn walk_alone(
    path: &Path,
    def: dsl::FileDef,
    root: &Path,
    expect: Expect,
    limits: Limits,
) -> Vec<Diagnostic> {
    let mut first = Some(def);
    let mut load = |p: &Path| match first.take() {
        Some(def) if p == path => Some(def),
        _ => p.is_file().then(|| dsl::parse_file(p, limits)),
    };
    walk(path, root, expect, &mut load, &mut |_, _| {}).1
}

fn count_holders(def: &dsl::FileDef, kind: dsl::HolderKind) -> usize {
    def.holders().filter(|h| h.kind == kind).count()
}

fn count_instances(blocks: &[dsl::Block]) -> usize {
    blocks
        .iter()
        .map(|b| match b {
            dsl::Block::Holder(h) if h.kind == dsl::HolderKind::Instance => {
                1 + count_instances(&h.blocks)
            }
            _ => 0,
        })
        .sum()
}
