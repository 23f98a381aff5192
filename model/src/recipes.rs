//! Recipe folders under `graph/`: one per component, named like it (an extending
//! component may use the one of what it extends). A missing folder is a warning (the component then does nothing on this agent); a `target` component's
//! `*.target.properties` must have an id, a handler and (preferably) a name, with ids
//! unique; a `script` component with files must have a `scripts/` folder; Puppet
//! recipes need exactly one `roboconf_*` module and dislike wildcard imports.

use crate::diag::{Code, Diagnostic};
use crate::dsl::text::is_blank;
use crate::graph::Graph;
use crate::props;
use std::collections::BTreeSet;
use std::path::Path;

/// The recipe folder of component `c`: its own, else the first one along `extends`.
pub fn recipe_dir(g: &Graph, c: usize, dir: &Path) -> Option<std::path::PathBuf> {
    g.extended_chain(c)
        .into_iter()
        .map(|x| dir.join("graph").join(&g.components[x].name))
        // A link is never followed: it could lead out of the application.
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
}

/// Checks the recipe folder of every component of `g` in the project `dir`.
pub fn validate_recipes(g: &Graph, dir: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (c, comp) in g.components.iter().enumerate() {
        // An extending component may use the recipe of what it extends (as in Roboconf).
        let rdir = recipe_dir(g, c, dir);
        let at = &comp.loc;
        let Some(rdir) = rdir else {
            out.push(Diagnostic::new(
                Code::PROJ_NO_RESOURCE_DIRECTORY,
                &at.file,
                at.line,
                at.col,
                format!(
                    "the component `{}` has no recipe folder `graph/{}/`",
                    comp.name, comp.name
                ),
            ));
            continue;
        };
        let installer = comp.installer.as_deref().unwrap_or("");
        if installer.eq_ignore_ascii_case("target") {
            check_targets(&rdir, &mut out);
        } else if installer.eq_ignore_ascii_case("script") {
            if !crate::app::list_files(&rdir).is_empty()
                && !std::fs::symlink_metadata(rdir.join("scripts")).is_ok_and(|m| m.is_dir())
            {
                out.push(Diagnostic::new(
                    Code::REC_SCRIPT_NO_SCRIPTS_DIR,
                    &at.file,
                    at.line,
                    at.col,
                    format!(
                        "the recipe of `{}` has files but no `scripts/` folder",
                        comp.name
                    ),
                ));
            }
        } else if installer.eq_ignore_ascii_case("puppet") {
            {
                if g.all_imports(c).values().any(|i| i.is_wildcard()) {
                    out.push(Diagnostic::new(
                        Code::REC_PUPPET_DISLIKES_WILDCARD_IMPORTS,
                        &at.file,
                        at.line,
                        at.col,
                        format!(
                            "Puppet recipes cannot use wildcard imports (`{}`)",
                            comp.name
                        ),
                    ));
                }
            }
            let modules = std::fs::read_dir(&rdir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| {
                            e.file_type().is_ok_and(|t| t.is_dir())
                                && e.file_name()
                                    .to_string_lossy()
                                    .to_ascii_lowercase()
                                    .starts_with("roboconf_")
                        })
                        .count()
                })
                .unwrap_or(0);
            if modules == 0 {
                out.push(Diagnostic::new(
                    Code::REC_PUPPET_HAS_NO_RBCF_MODULE,
                    &at.file,
                    at.line,
                    at.col,
                    format!(
                        "the Puppet recipe of `{}` has no `roboconf_*` module",
                        comp.name
                    ),
                ));
            } else if modules > 1 {
                out.push(Diagnostic::new(
                    Code::REC_PUPPET_HAS_TOO_MANY_RBCF_MODULES,
                    &at.file,
                    at.line,
                    at.col,
                    format!(
                        "the Puppet recipe of `{}` has several `roboconf_*` modules",
                        comp.name
                    ),
                ));
            }
        }
    }
    out
}

/// The `*.properties` files of a recipe folder (a target component's target files),
/// sorted.
pub(crate) fn properties_files(rdir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(rdir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "properties"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn check_targets(rdir: &Path, out: &mut Vec<Diagnostic>) {
    let files = properties_files(rdir);
    if files.is_empty() {
        return;
    }
    let mut ids = BTreeSet::new();
    for f in files {
        let text = match std::fs::read(&f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                out.push(Diagnostic::new(
                    Code::REC_TARGET_INVALID_FILE_OR_CONTENT,
                    &f,
                    0,
                    0,
                    format!("cannot read the target file: {e}"),
                ));
                continue;
            }
        };
        let entries = props::parse(&text);
        let value = |k: &str| {
            props::get(&entries, k)
                .map(|e| e.value.clone())
                .filter(|v| !is_blank(v))
        };
        let id = value("id");
        if id.is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_ID,
                &f,
                1,
                1,
                "the target has no `id`",
            ));
        }
        if value("handler").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_HANDLER,
                &f,
                1,
                1,
                "the target has no `handler`",
            ));
        }
        if value("name").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_NAME,
                &f,
                1,
                1,
                "the target has no `name`",
            ));
        }
        if !ids.insert(id.clone().unwrap_or_default()) {
            out.push(Diagnostic::new(
                Code::REC_TARGET_CONFLICTING_ID,
                &f,
                1,
                1,
                format!("the target id `{}` is used twice", id.unwrap_or_default()),
            ));
        }
    }
}
