//! Prints a parsed file back as canonical DSL text: one declaration per line, properties
//! as `name: value;` indented with tabs, comments and blank lines kept as written. A file
//! already in canonical form is printed back byte for byte, and printing then parsing
//! gives the same blocks.

use super::{Block, FileDef, Holder, HolderKind};

/// The canonical text of a file.
pub fn write_file(def: &FileDef) -> String {
    let mut out = String::new();
    write_blocks(&def.blocks, &mut out);
    out
}

/// The canonical text of a list of top-level blocks.
pub fn write_blocks(blocks: &[Block], out: &mut String) {
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        write_block(b, 0, out);
    }
}

fn write_block(b: &Block, level: usize, out: &mut String) {
    match b {
        Block::Blank(s) | Block::Comment(s) | Block::Unknown(s) => out.push_str(s),
        Block::Import(i) => {
            out.push_str("import ");
            out.push_str(&i.uri);
            out.push(';');
            out.push_str(&i.inline_comment);
        }
        Block::Property(p) => {
            indent(level, out);
            out.push_str(&p.name);
            out.push_str(": ");
            out.push_str(&p.value);
            out.push(';');
            out.push_str(&p.inline_comment);
        }
        Block::Holder(h) => write_holder(h, level, out),
    }
}

fn write_holder(h: &Holder, level: usize, out: &mut String) {
    indent(level, out);
    match h.kind {
        HolderKind::Component => {}
        HolderKind::Facet => out.push_str("facet "),
        HolderKind::Instance => out.push_str("instance of "),
    }
    out.push_str(&h.name);
    // `Name {` is the canonical header, but a name ending in `import` would make the
    // line read as an import, and a component named `facet` as a facet: those are
    // written `Name{`, which reads back the same.
    let lower = h.name.to_ascii_lowercase();
    let tight = lower.ends_with("import") || (h.kind == HolderKind::Component && lower == "facet");
    out.push_str(if tight { "{" } else { " {" });
    out.push_str(&h.inline_comment);
    for b in &h.blocks {
        out.push('\n');
        match b {
            Block::Property(_) | Block::Holder(_) => write_block(b, level + 1, out),
            _ => write_block(b, level, out),
        }
    }
    out.push('\n');
    indent(level, out);
    out.push('}');
    out.push_str(&h.closing_inline_comment);
}

fn indent(level: usize, out: &mut String) {
    for _ in 0..level {
        out.push('\t');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::{parse_str, Limits};
    use std::path::Path;

    #[test]
    fn names_that_look_like_keywords_read_back() {
        for text in [
            "facet{\n}\n",
            "myimport{\n}\n",
            "facet import{\n}\n",
            "Facet{\n}\n",
        ] {
            let def = parse_str(Path::new("k.graph"), text, Limits::default());
            assert!(def.errors.is_empty(), "{text}: {:?}", def.errors);
            let printed = write_file(&def);
            let again = parse_str(Path::new("k.graph"), &printed, Limits::default());
            assert_eq!(write_file(&again), printed);
            assert_eq!(
                again
                    .holders()
                    .map(|h| (h.kind, h.name.clone()))
                    .collect::<Vec<_>>(),
                def.holders()
                    .map(|h| (h.kind, h.name.clone()))
                    .collect::<Vec<_>>()
            );
        }
    }
}
