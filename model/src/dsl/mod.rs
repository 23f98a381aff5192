//! The Roboconf DSL as written: the block structure of one `.graph` or `.instances`
//! file (imports, facets, components, `instance of` blocks, properties, comments and
//! blank lines), each with its line and column. `parser` reads it exactly as Roboconf's
//! line-based parser does, `checks` applies Roboconf's block-level rules (the PM_ codes),
//! and `writer` prints it back as canonical text.

pub mod checks;
pub mod exports;
pub mod parser;
pub mod text;
pub mod walk;
pub mod writer;

pub use parser::{parse_file, parse_str, Limits};

use crate::diag::Diagnostic;
use std::path::PathBuf;

/// What a file holds, as decided after parsing (Roboconf's file types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Facets and/or components (imports allowed).
    Graph,
    /// `instance of` blocks (imports allowed).
    Instances,
    /// Only imports.
    Aggregator,
    /// Only comments and blank lines.
    Empty,
    /// A syntax error left something unrecognised, or graph and instances were mixed.
    Undetermined,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Graph => "graph",
            FileKind::Instances => "instances",
            FileKind::Aggregator => "aggregator",
            FileKind::Empty => "empty",
            FileKind::Undetermined => "undetermined",
        }
    }
}

/// Where something is in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    pub line: usize,
    pub col: usize,
}

impl Span {
    pub fn new(line: usize, col: usize) -> Self {
        Span { line, col }
    }
}

/// The kind of a `{ ... }` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderKind {
    Component,
    Facet,
    Instance,
}

/// One parsed file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileDef {
    pub path: PathBuf,
    pub kind: FileKind,
    pub blocks: Vec<Block>,
    /// Syntax errors (P_ codes) found while reading.
    pub errors: Vec<Diagnostic>,
}

/// A region of a file.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A blank line, kept as written (only whitespace).
    Blank(String),
    /// A comment line, kept as written (including its indentation).
    Comment(String),
    Import(Import),
    Holder(Holder),
    Property(Property),
    /// What a syntax error left behind. Roboconf reports it at line 0.
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    pub uri: String,
    pub span: Span,
    pub inline_comment: String,
}

/// A facet, a component or an `instance of` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub kind: HolderKind,
    /// For an instance block, the component's name (`instance of Tomcat`).
    pub name: String,
    pub span: Span,
    pub inline_comment: String,
    pub closing_inline_comment: String,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    pub name: String,
    /// The value without its final `;`, as written (not trimmed at the end).
    pub value: String,
    pub span: Span,
    /// Column of the value's first character.
    pub value_col: usize,
    pub inline_comment: String,
}

impl Holder {
    /// The properties of this block, in order.
    pub fn properties(&self) -> impl Iterator<Item = &Property> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Property(p) => Some(p),
            _ => None,
        })
    }

    /// The first property with this name.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties().find(|p| p.name == name)
    }

    /// All values of the properties with this name, split on commas and trimmed
    /// (Roboconf's "split nicely": trailing empty items are dropped).
    pub fn property_values(&self, name: &str) -> Vec<(String, &Property)> {
        let mut out = Vec::new();
        for p in self.properties().filter(|p| p.name == name) {
            for item in text::split_nicely(&p.value, ',') {
                out.push((item, p));
            }
        }
        out
    }

    /// Nested `instance of` blocks.
    pub fn holders(&self) -> impl Iterator<Item = &Holder> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Holder(h) => Some(h),
            _ => None,
        })
    }
}

impl FileDef {
    /// Top-level holders of the file.
    pub fn holders(&self) -> impl Iterator<Item = &Holder> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Holder(h) => Some(h),
            _ => None,
        })
    }

    pub fn imports(&self) -> impl Iterator<Item = &Import> {
        self.blocks.iter().filter_map(|b| match b {
            Block::Import(i) => Some(i),
            _ => None,
        })
    }
}
