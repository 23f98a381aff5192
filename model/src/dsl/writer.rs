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
    out.push_str(" {");
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
