//! Reading a DSL file and every file it imports: each once, imports resolved against a
//! root folder (`graph/` or `instances/`), each file parsed and checked, files of the
//! wrong kind refused, missing files reported at the `import` that names them. The graph
//! and instances builders share it and only say what to do with each good file. It also
//! owns the confinement of the paths an application names ([`resolve_inside`]): an
//! import that leaves its root folder or goes through a symbolic link is refused at the
//! `import` line, and the file it names is never opened.

use super::{checks, FileDef, FileKind};
use crate::diag::{has_errors, Code, Diagnostic};
use std::collections::{HashSet, VecDeque};
use std::path::{Component, Path, PathBuf};

/// The file, line and column of an `import`, and the path as written.
type ImportedAt = (PathBuf, usize, usize, String);

/// What kind of files a walk expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Graph,
    Instances,
}

/// Walks `entry` and its imports. `visit` gets every file that has no error; the result
/// is the files read or looked for (entry first) and the findings.
pub fn walk(
    entry: &Path,
    root: &Path,
    expect: Expect,
    load: &mut dyn FnMut(&Path) -> Option<FileDef>,
    visit: &mut dyn FnMut(&Path, &FileDef),
) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    let mut queue: VecDeque<(PathBuf, Option<ImportedAt>)> =
        VecDeque::from([(entry.to_path_buf(), None)]);
    let mut seen: HashSet<PathBuf> = HashSet::from([entry.to_path_buf()]);
    while let Some((file, imported_at)) = queue.pop_front() {
        files.push(file.clone());
        let Some(def) = load(&file) else {
            diags.push(match imported_at {
                Some((f, line, col, written)) => Diagnostic::new(
                    Code::CO_UNREACHABLE_FILE,
                    &f,
                    line,
                    col,
                    format!(
                        "the imported file `{}` does not exist{}",
                        file.display(),
                        if written.starts_with('/') {
                            " (an import is read relative to its folder, even with a leading `/`)"
                        } else {
                            ""
                        }
                    ),
                ),
                None => Diagnostic::new(
                    Code::CO_UNREACHABLE_FILE,
                    &file,
                    0,
                    0,
                    "the file does not exist",
                ),
            });
            continue;
        };
        let mut errs = checks::validate_file(&def);
        errs.extend(crate::limits::check_file_names(&def));
        let (ok_kind, code, what) = match expect {
            Expect::Graph => (
                def.kind == FileKind::Graph,
                Code::CO_NOT_A_GRAPH,
                "a graph file",
            ),
            Expect::Instances => (
                def.kind == FileKind::Instances,
                Code::CO_NOT_INSTANCES,
                "an instances file",
            ),
        };
        if !(ok_kind || matches!(def.kind, FileKind::Aggregator | FileKind::Empty)) {
            errs.push(Diagnostic::new(
                code,
                &file,
                0,
                0,
                format!(
                    "expected {what}, found a file of type `{}`",
                    def.kind.as_str()
                ),
            ));
        }
        let ok = !has_errors(&errs);
        diags.extend(errs);
        if !ok {
            continue;
        }
        for i in def.imports() {
            let written = super::text::jtrim(&i.uri);
            let target = match resolve_inside(root, written) {
                Ok(target) => target,
                Err(refusal) => {
                    let what = format!("the imported file `{written}`");
                    diags.push(refusal.diagnostic(&what, root, &file, i.span.line, i.span.col));
                    continue;
                }
            };
            if seen.insert(target.clone()) {
                let at = (file.clone(), i.span.line, i.span.col, written.to_string());
                queue.push_back((target, Some(at)));
            }
        }
        visit(&file, &def);
    }
    (files, diags)
}

/// Why a path named by an application is not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path climbs (`..`) out of its root folder.
    Outside,
    /// This part of the path, inside the root folder, is a symbolic link.
    Link(PathBuf),
}

impl Refusal {
    /// The finding for `what` (e.g. "the imported file `x`"), named at `file:line:col`.
    pub fn diagnostic(
        &self,
        what: &str,
        root: &Path,
        file: &Path,
        line: usize,
        col: usize,
    ) -> Diagnostic {
        let folder = root.file_name().map_or_else(
            || root.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        match self {
            Refusal::Outside => Diagnostic::new(
                Code::X_FILE_OUTSIDE_FOLDER,
                file,
                line,
                col,
                format!(
                    "{what} is outside the `{folder}/` folder: an application may only name files inside it"
                ),
            ),
            Refusal::Link(link) => Diagnostic::new(
                Code::X_SYMLINK_REFUSED,
                file,
                line,
                col,
                format!(
                    "{what} goes through the symbolic link `{}`, which is not followed: links may point outside the application and are not carried to other nodes (copy the file instead)",
                    link.display()
                ),
            ),
        }
    }
}

/// Resolves `named` (a path as an application writes it) inside `root`, as Roboconf does
/// (`new File(root, named)`: a leading `/` is read relative to `root` too). `.` and `..`
/// are resolved by name; a path that climbs out of `root` is refused, and so is one
/// that goes through a symbolic link below `root` (whatever the link points to). Only
/// the parts of the path below `root` are looked at (without following them), so
/// nothing outside `root` is ever touched. The path returned is the one to open; it
/// need not exist.
pub fn resolve_inside(root: &Path, named: &str) -> Result<PathBuf, Refusal> {
    // The last names of `root`, which a path may climb above and come back through
    // (`../instances/x` from `instances/`).
    let root_names: Vec<&std::ffi::OsStr> = root
        .components()
        .rev()
        .map_while(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut above = 0;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(named.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) if above > 0 => {
                if root_names.get(above - 1) != Some(&p) {
                    return Err(Refusal::Outside);
                }
                above -= 1;
            }
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    above += 1;
                    if above > root_names.len() {
                        return Err(Refusal::Outside);
                    }
                }
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    if above > 0 {
        return Err(Refusal::Outside);
    }
    let mut path = root.to_path_buf();
    let mut exists = true;
    for p in parts {
        path.push(p);
        if exists {
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return Err(Refusal::Link(path)),
                Ok(_) => {}
                // Nothing below a missing part can be a link.
                Err(_) => exists = false,
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_resolved_by_name_inside_the_root() {
        let root = Path::new("/nonexistent-root/graph");
        assert_eq!(
            resolve_inside(root, "a/./b/../c.graph"),
            Ok(root.join("a/c.graph"))
        );
        assert_eq!(
            resolve_inside(root, "/etc/hostname"),
            Ok(root.join("etc/hostname"))
        );
        assert_eq!(resolve_inside(root, "../x.graph"), Err(Refusal::Outside));
        assert_eq!(resolve_inside(root, ".."), Err(Refusal::Outside));
        assert_eq!(
            resolve_inside(root, "../graph/x.graph"),
            Ok(root.join("x.graph"))
        );
        assert_eq!(
            resolve_inside(root, "../../nonexistent-root/graph/a/x.graph"),
            Ok(root.join("a/x.graph"))
        );
        assert_eq!(
            resolve_inside(root, "../../other/graph/x.graph"),
            Err(Refusal::Outside)
        );
        assert_eq!(
            resolve_inside(Path::new("graph"), "../../graph/x.graph"),
            Err(Refusal::Outside)
        );
        assert_eq!(
            resolve_inside(root, "a/../../../../etc/passwd"),
            Err(Refusal::Outside)
        );
    }
}
