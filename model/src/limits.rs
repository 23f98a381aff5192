//! Bounds on the names and paths an application or an operator may give: a name
//! (application, component, facet, instance, variable, node) is at most
//! [`MAX_NAME_BYTES`] bytes and an instance path at most [`MAX_PATH_BYTES`] bytes. Roboconf
//! sets no bound; these keep every name usable as a file name (255 bytes on common file
//! systems, once escaped), in environment variables and in the mesh's records. The model
//! checks them when it validates DSL files (`X_NAME_TOO_LONG`,
//! `X_INSTANCE_PATH_TOO_LONG`), and the agent calls [`check_name`] and
//! [`check_instance_path`] on what operators type. Only lengths are checked here; what a
//! name may contain is the DSL's rules (`dsl::checks`).

use crate::diag::{Code, Diagnostic};
use crate::dsl::checks::{split_import, CHANNELS, COUNT, DATA, EXPORTS, IMPORTS, NAME, STATE};
use crate::dsl::exports::parse_exports;
use crate::dsl::text::is_blank;
use crate::dsl::{FileDef, Holder, HolderKind};
use std::path::Path;

/// Longest name, in bytes (UTF-8), of an application, component, facet, instance,
/// variable or node.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest instance path (`/VM 1/Tomcat/App`), in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Characters of a name quoted in a message: enough to recognise it, not the whole of a
/// hostile one.
const PREVIEW_CHARS: usize = 32;

/// The start of `text` for a message: at most [`PREVIEW_CHARS`] characters, then `…`.
pub fn preview(text: &str) -> String {
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Checks that a name of this `kind` ("instance", "component", "node"...) is at most
/// [`MAX_NAME_BYTES`] bytes long.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.len() <= MAX_NAME_BYTES {
        return Ok(());
    }
    Err(format!(
        "the {kind} name `{}` is {} bytes long; names are at most {MAX_NAME_BYTES} bytes",
        preview(name),
        name.len()
    ))
}

/// Checks an instance path: at most [`MAX_PATH_BYTES`] bytes, and every instance name
/// in it at most [`MAX_NAME_BYTES`].
pub fn check_instance_path(path: &str) -> Result<(), String> {
    if path.len() > MAX_PATH_BYTES {
        return Err(format!(
            "the instance path `{}` is {} bytes long; instance paths are at most {MAX_PATH_BYTES} bytes",
            preview(path),
            path.len()
        ));
    }
    path.split('/')
        .try_for_each(|segment| check_name("instance", segment))
}

/// The length a child adds to its parent's path: `/` and its name (a blank name adds
/// only the `/`, as `InstanceSet::path` writes it).
pub fn path_segment_len(name: &str) -> usize {
    1 + if is_blank(name) { 0 } else { name.len() }
}

/// Names and instance paths of one DSL file that exceed the bounds, at the block or
/// property that declares them: component and facet names, the variables they export
/// and import, instance names, the variables instances set, and the paths of nested
/// `instance of` blocks (before `count:` adds its suffixes, which the instances builder
/// checks after expansion).
pub fn check_file_names(def: &FileDef) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let file = def.path.as_path();
    let mut todo: Vec<(&Holder, usize)> = def.holders().map(|h| (h, 0)).collect();
    while let Some((h, parent_len)) = todo.pop() {
        match h.kind {
            HolderKind::Component | HolderKind::Facet => {
                let kind = if h.kind == HolderKind::Component {
                    "component"
                } else {
                    "facet"
                };
                report(
                    &mut out,
                    file,
                    h.span.line,
                    h.span.col,
                    check_name(kind, &h.name),
                );
                check_variables(file, h, &mut out);
            }
            HolderKind::Instance => {
                let name = h.property(NAME).map_or("", |p| p.value.as_str());
                let len = parent_len + path_segment_len(name);
                let at = (h.span.line, h.span.col);
                let name_ok = check_name("instance", name);
                let too_long = name_ok.is_err();
                report(&mut out, file, at.0, at.1, name_ok);
                for p in h.properties() {
                    let own = [NAME, CHANNELS, COUNT, DATA, STATE].contains(&p.name.as_str());
                    if !own {
                        let r = check_name("variable", &p.name);
                        report(&mut out, file, p.span.line, p.span.col, r);
                    }
                }
                if too_long {
                    // Its path and those of its nested blocks are too long as well: the
                    // name is the finding.
                    continue;
                }
                if len > MAX_PATH_BYTES {
                    // Its nested blocks are longer still: one finding is enough.
                    out.push(path_too_long(file, at.0, at.1, len));
                    continue;
                }
                todo.extend(h.holders().map(|c| (c, len)));
            }
        }
    }
    out.sort_by_key(|d| (d.line, d.col));
    out
}

/// The finding for an instance whose path is `len` bytes long.
pub fn path_too_long(file: &Path, line: usize, col: usize, len: usize) -> Diagnostic {
    Diagnostic::new(
        Code::X_INSTANCE_PATH_TOO_LONG,
        file,
        line,
        col,
        format!(
            "the path of this instance is {len} bytes long; instance paths are at most {MAX_PATH_BYTES} bytes"
        ),
    )
}

fn check_variables(file: &Path, h: &Holder, out: &mut Vec<Diagnostic>) {
    for p in h.properties().filter(|p| p.name == EXPORTS) {
        let (decls, _) = parse_exports(&p.value, file, p.span.line, p.value_col);
        for d in decls {
            report(
                out,
                file,
                p.span.line,
                p.span.col,
                check_name("variable", &d.name),
            );
        }
    }
    for (item, p) in h.property_values(IMPORTS) {
        let (name, _, _) = split_import(&item);
        report(
            out,
            file,
            p.span.line,
            p.span.col,
            check_name("variable", &name),
        );
    }
}

fn report(out: &mut Vec<Diagnostic>, file: &Path, line: usize, col: usize, r: Result<(), String>) {
    if let Err(message) = r {
        out.push(Diagnostic::new(
            Code::X_NAME_TOO_LONG,
            file,
            line,
            col,
            message,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_at_the_bound_pass_and_longer_ones_do_not() {
        assert!(check_name("instance", &"a".repeat(MAX_NAME_BYTES)).is_ok());
        let long = "é".repeat(MAX_NAME_BYTES / 2 + 1);
        let e = check_name("instance", &long).unwrap_err();
        assert!(e.contains("130 bytes long"), "{e}");
        assert!(e.len() < 200, "the message quotes only the start: {e}");
    }

    #[test]
    fn instance_paths_are_bounded_as_a_whole_and_by_segment() {
        assert!(check_instance_path("/vm 1/tomcat/app").is_ok());
        let deep = format!("/{}", vec!["a".repeat(100); 11].join("/"));
        assert!(deep.len() > MAX_PATH_BYTES);
        assert!(check_instance_path(&deep)
            .unwrap_err()
            .contains("instance paths are at most 1024 bytes"));
        let wide = format!("/vm/{}", "x".repeat(MAX_NAME_BYTES + 1));
        assert!(check_instance_path(&wide)
            .unwrap_err()
            .contains("the instance name"));
    }
}
