//! Block-level rules of the DSL (Roboconf's PM_ codes): names of blocks and references,
//! property values, imports and exports syntax, instance names and counts, duplicate
//! properties and properties that do not belong in a block.

use super::exports::parse_exports;
use super::text::{is_blank, is_flex_id, is_strict_id, split_nicely};
use super::{Block, FileDef, Holder, HolderKind, Property, Span};
use crate::diag::{Code, Diagnostic};
use std::collections::HashSet;
use std::path::Path;

pub const CHILDREN: &str = "children";
pub const EXPORTS: &str = "exports";
pub const EXTENDS: &str = "extends";
pub const INSTALLER: &str = "installer";
pub const FACETS: &str = "facets";
pub const IMPORTS: &str = "imports";
pub const NAME: &str = "name";
pub const CHANNELS: &str = "channels";
pub const COUNT: &str = "count";
pub const DATA: &str = "instance-data";
pub const STATE: &str = "instance-state";
pub const OPTIONAL: &str = "(optional)";
pub const EXTERNAL: &str = "external";

const COMPONENT_PROPS: &[&str] = &[CHILDREN, EXPORTS, EXTENDS, INSTALLER, FACETS, IMPORTS];
const FACET_PROPS: &[&str] = &[CHILDREN, EXPORTS, EXTENDS];
const INSTANCE_PROPS: &[&str] = &[NAME, CHANNELS, COUNT, DATA, STATE];

/// The file's syntax errors followed by the block-level findings.
pub fn validate_file(def: &FileDef) -> Vec<Diagnostic> {
    let mut out = def.errors.clone();
    for b in &def.blocks {
        validate_block(&def.path, b, &mut out);
    }
    out
}

/// Block-level findings only (no syntax errors).
pub fn validate_blocks(def: &FileDef) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for b in &def.blocks {
        validate_block(&def.path, b, &mut out);
    }
    out
}

fn validate_block(file: &Path, block: &Block, out: &mut Vec<Diagnostic>) {
    match block {
        Block::Holder(h) => validate_holder(file, h, out),
        Block::Import(i) => {
            if is_blank(&i.uri) {
                out.push(Diagnostic::new(
                    Code::PM_EMPTY_IMPORT_LOCATION,
                    file,
                    i.span.line,
                    i.span.col,
                    "an import must name a file",
                ));
            }
        }
        Block::Property(p) => validate_property(file, p, out),
        Block::Comment(_) | Block::Blank(_) => {}
        Block::Unknown(_) => out.push(Diagnostic::new(
            Code::PM_INVALID_BLOCK_TYPE,
            file,
            0,
            0,
            "a declaration could not be read (see the syntax error above)",
        )),
    }
}

fn validate_holder(file: &Path, h: &Holder, out: &mut Vec<Diagnostic>) {
    let (line, col) = (h.span.line, h.span.col);
    let what = match h.kind {
        HolderKind::Component => "component",
        HolderKind::Facet => "facet",
        HolderKind::Instance => "component (after `instance of`)",
    };
    if is_blank(&h.name) {
        let code = if h.kind == HolderKind::Facet {
            Code::PM_EMPTY_FACET_NAME
        } else {
            Code::PM_EMPTY_COMPONENT_NAME
        };
        out.push(Diagnostic::new(
            code,
            file,
            line,
            col,
            format!("a {what} needs a name"),
        ));
    } else if !is_strict_id(&h.name) {
        out.push(Diagnostic::new(
            Code::PM_INVALID_NAME,
            file,
            line,
            col,
            format!("invalid {what} name `{}`: letters, digits, `_`, `-` and `.` only, not starting with a digit", h.name),
        ));
    } else if h.name.contains('.') {
        out.push(Diagnostic::new(
            Code::PM_DOT_IS_NOT_ALLOWED,
            file,
            line,
            col,
            format!("a {what} name cannot contain a dot: `{}`", h.name),
        ));
    }
    let (supported, strict) = match h.kind {
        HolderKind::Component => (COMPONENT_PROPS, true),
        HolderKind::Facet => (FACET_PROPS, true),
        HolderKind::Instance => (INSTANCE_PROPS, false),
    };
    let mut seen = HashSet::new();
    for b in &h.blocks {
        let Block::Property(p) = b else {
            validate_block(file, b, out);
            continue;
        };
        let repeatable =
            p.name.eq_ignore_ascii_case(IMPORTS) || p.name.eq_ignore_ascii_case(EXPORTS);
        if !repeatable && seen.contains(p.name.as_str()) {
            out.push(Diagnostic::new(
                Code::PM_DUPLICATE_PROPERTY,
                file,
                p.span.line,
                p.span.col,
                format!("the property `{}` is already set in this block", p.name),
            ));
        }
        seen.insert(p.name.as_str());
        if supported.contains(&p.name.as_str()) {
            validate_property(file, p, out);
        } else if strict {
            out.push(Diagnostic::new(
                Code::PM_PROPERTY_NOT_APPLIABLE,
                file,
                p.span.line,
                p.span.col,
                format!(
                    "`{}` is not a property of a {what} (expected one of: {})",
                    p.name,
                    supported.join(", ")
                ),
            ));
        }
    }
    if h.kind == HolderKind::Instance {
        match h.property(NAME) {
            None => out.push(Diagnostic::new(
                Code::PM_MISSING_INSTANCE_NAME,
                file,
                line,
                col,
                "an instance needs a `name:` property",
            )),
            Some(p) if !is_flex_id(&p.value) => out.push(Diagnostic::new(
                Code::PM_INVALID_INSTANCE_NAME,
                file,
                line,
                col,
                format!(
                    "invalid instance name `{}`: letters, digits, spaces, `_`, `-` and `.` only",
                    p.value
                ),
            )),
            Some(_) => {}
        }
        for b in &h.blocks {
            if let Block::Import(i) = b {
                out.push(Diagnostic::new(
                    Code::PM_INVALID_INSTANCE_ELEMENT,
                    file,
                    i.span.line,
                    i.span.col,
                    "an import cannot stand inside an instance",
                ));
            }
        }
    }
}

/// Checks one property's value, as Roboconf does for the properties it knows.
pub fn validate_property(file: &Path, p: &Property, out: &mut Vec<Diagnostic>) {
    let (line, col) = (p.span.line, p.value_col);
    let value = p.value.as_str();
    let mut push = |code: Code, msg: String| out.push(Diagnostic::new(code, file, line, col, msg));
    if is_blank(value) {
        push(
            Code::PM_EMPTY_PROPERTY_VALUE,
            format!("the property `{}` has no value", p.name),
        );
        return;
    }
    match p.name.as_str() {
        CHILDREN => {
            for s in split_nicely(value, ',') {
                if !is_strict_id(&s) {
                    push(
                        Code::PM_INVALID_CHILD_NAME,
                        format!("invalid child name `{s}` (names are separated by commas)"),
                    );
                }
            }
        }
        FACETS | EXTENDS => {
            for s in split_nicely(value, ',') {
                if is_blank(&s) {
                    push(
                        Code::PM_EMPTY_REFERENCED_NAME,
                        format!("empty name in `{}`", p.name),
                    );
                } else if !is_strict_id(&s) {
                    push(
                        Code::PM_INVALID_NAME,
                        format!("invalid name `{s}` in `{}`", p.name),
                    );
                }
            }
        }
        IMPORTS => {
            for s in split_nicely(value, ',') {
                let (name, _, _) = split_import(&s);
                if is_blank(&name) {
                    push(
                        Code::PM_EMPTY_VARIABLE_NAME,
                        "an imported variable has no name".to_string(),
                    );
                } else if !is_import_pattern(&name) {
                    push(
                        Code::PM_INVALID_IMPORTED_VAR_NAME,
                        format!("invalid imported variable `{name}`"),
                    );
                } else if !name.contains('.') || name.ends_with('.') {
                    push(
                        Code::PM_INCOMPLETE_IMPORTED_VAR_NAME,
                        format!("imported variable `{name}` must be `Component.variable` or `Component.*`"),
                    );
                }
            }
        }
        EXPORTS => {
            let (decls, errors) = parse_exports(value, file, line, col);
            out.extend(errors);
            for d in decls {
                if is_blank(&d.name) {
                    out.push(Diagnostic::new(
                        Code::PM_EMPTY_VARIABLE_NAME,
                        file,
                        line,
                        col,
                        "an exported variable has no name",
                    ));
                } else if !is_strict_id(&d.name) {
                    out.push(Diagnostic::new(
                        Code::PM_INVALID_EXPORTED_VAR_NAME,
                        file,
                        line,
                        col,
                        format!(
                            "invalid exported variable `{}` (missing comma between names?)",
                            d.name
                        ),
                    ));
                    if d.name.to_ascii_lowercase().starts_with("external ") {
                        out.push(Diagnostic::new(
                            Code::PM_EXTERNAL_IS_KEYWORD_FOR_IMPORTS,
                            file,
                            line,
                            col,
                            format!("`external` is only allowed in imports: `{}`", d.name),
                        ));
                    }
                }
            }
        }
        INSTALLER => {
            if !is_flex_id(value) {
                push(
                    Code::PM_INVALID_INSTALLER_NAME,
                    format!("invalid installer name `{value}`"),
                );
            }
        }
        NAME | CHANNELS | DATA | STATE => {}
        COUNT => match value.parse::<i32>() {
            Ok(1) => push(
                Code::PM_USELESS_INSTANCE_COUNT,
                "`count: 1` is the default and can be removed".to_string(),
            ),
            Ok(n) if n >= 1 => {}
            _ => push(
                Code::PM_INVALID_INSTANCE_COUNT,
                format!("`count` must be an integer of 1 or more, not `{value}`"),
            ),
        },
        other => push(
            Code::PM_UNKNOWN_PROPERTY_NAME,
            format!("unknown property `{other}`"),
        ),
    }
}

/// Splits one item of `imports:` into (name, optional, external), as Roboconf reads it.
pub fn split_import(item: &str) -> (String, bool, bool) {
    let mut s = item.to_string();
    let optional = s.to_ascii_lowercase().ends_with(OPTIONAL);
    if optional {
        s.truncate(s.len() - OPTIONAL.len());
    }
    let external = s.to_ascii_lowercase().starts_with(EXTERNAL);
    if external {
        s = s[EXTERNAL.len()..].to_string();
    }
    (super::text::jtrim(&s).to_string(), optional, external)
}

/// The items of a list property (`children: A, B;`), as [`Holder::property_values`] splits
/// them, each with where it starts: its first non-blank character (for a blank item,
/// where the item begins). A property stands on one line, so only the column varies.
pub fn property_items(p: &Property) -> Vec<(String, Span)> {
    let items = split_nicely(&p.value, ',');
    let mut out = Vec::with_capacity(items.len());
    let mut offset = 0; // in characters from the value's start
    for (item, raw) in items.into_iter().zip(p.value.split(',')) {
        let lead = raw.chars().take_while(|&c| c <= ' ').count();
        let lead = if lead == raw.chars().count() { 0 } else { lead };
        out.push((item, Span::new(p.span.line, p.value_col + offset + lead)));
        offset += raw.chars().count() + 1;
    }
    out
}

/// The items of every property `name` of a block, in order, with where each starts.
pub fn holder_items(h: &Holder, name: &str) -> Vec<(String, Span)> {
    h.properties()
        .filter(|p| p.name == name)
        .flat_map(property_items)
        .collect()
}

/// `strict-id(\.\*)?`.
pub fn is_import_pattern(name: &str) -> bool {
    is_strict_id(name.strip_suffix(".*").unwrap_or(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_keep_their_columns() {
        let def = crate::dsl::parse_str(
            Path::new("t.graph"),
            "A {\n\tchildren: B,  C ,D,, E,;\n\timports: x.y (optional), external z.w;\n}\n",
            crate::dsl::Limits::default(),
        );
        let h = def.holders().next().expect("A");
        let children = holder_items(h, CHILDREN);
        let names: Vec<&str> = children.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["B", "C", "D", "", "E"],
            "as split_nicely splits"
        );
        let cols: Vec<usize> = children.iter().map(|(_, s)| s.col).collect();
        // `\tchildren: B,  C ,D,, E,;`: B at 12, C at 16, D at 19, the empty item at 21.
        assert_eq!(cols, vec![12, 16, 19, 21, 23]);
        assert!(children.iter().all(|(_, s)| s.line == 2));
        let imports = holder_items(h, IMPORTS);
        assert_eq!(
            imports,
            vec![
                ("x.y (optional)".to_string(), Span::new(3, 11)),
                ("external z.w".to_string(), Span::new(3, 27)),
            ]
        );
    }
}
