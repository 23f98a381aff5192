//! Reading a DSL file and every file it imports: each once, imports resolved against a
//! root folder (`graph/` or `instances/`), each file parsed and checked, files of the
//! wrong kind refused, missing files reported at the `import` that names them. The graph
//! and instances builders share it and only say what to do with each good file.

use super::{checks, FileDef, FileKind};
use crate::diag::{has_errors, Code, Diagnostic};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};

/// The file, line and column of an `import`.
type ImportedAt = (PathBuf, usize, usize);

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
                Some((f, line, col)) => Diagnostic::new(
                    Code::CO_UNREACHABLE_FILE,
                    &f,
                    line,
                    col,
                    format!("the imported file `{}` does not exist", file.display()),
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
            let target = root.join(super::text::jtrim(&i.uri));
            if seen.insert(target.clone()) {
                queue.push_back((target, Some((file.clone(), i.span.line, i.span.col))));
            }
        }
        visit(&file, &def);
    }
    (files, diags)
}
