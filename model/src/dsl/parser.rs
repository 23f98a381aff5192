//! The line-based reader of `.graph` and `.instances` files. It follows Roboconf's own
//! parser line for line (one declaration per line, `{` on the header line, `}` at the
//! start of its own line, `#` comments anywhere), so that a file gets the same blocks and
//! the same P_ errors, at the same lines, as in Roboconf. Nesting depth and input size are
//! bounded, so hostile input gets an error instead of exhausting the stack or memory.

use super::text::{col_of, is_blank, is_jspace, is_strict_id, jtrim};
use super::{Block, FileDef, FileKind, Holder, HolderKind, Import, Property, Span};
use crate::diag::{Code, Diagnostic};
use std::path::{Path, PathBuf};

/// Bounds on what one file may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of `instance of` blocks.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 64,
        }
    }
}

/// Reads and parses a file. A file that cannot be read gives a P_IO_ERROR.
pub fn parse_file(path: &Path, limits: Limits) -> FileDef {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > limits.max_bytes as u64 => return too_large(path, limits),
        _ => {}
    }
    match std::fs::read(path) {
        Ok(bytes) => parse_str(path, &String::from_utf8_lossy(&bytes), limits),
        Err(e) => FileDef {
            path: path.to_path_buf(),
            kind: FileKind::Undetermined,
            blocks: Vec::new(),
            errors: vec![Diagnostic::new(
                Code::P_IO_ERROR,
                path,
                0,
                0,
                format!("cannot read the file: {e}"),
            )],
        },
    }
}

fn too_large(path: &Path, limits: Limits) -> FileDef {
    FileDef {
        path: path.to_path_buf(),
        kind: FileKind::Undetermined,
        blocks: Vec::new(),
        errors: vec![Diagnostic::new(
            Code::X_INPUT_TOO_LARGE,
            path,
            0,
            0,
            format!("the file is larger than {} bytes", limits.max_bytes),
        )],
    }
}

/// Parses text as the content of `path`.
pub fn parse_str(path: &Path, text: &str, limits: Limits) -> FileDef {
    if text.len() > limits.max_bytes {
        return too_large(path, limits);
    }
    let mut p = Parser {
        path: path.to_path_buf(),
        pieces: text.split('\n').collect(),
        line_no: 0,
        ended_with_break: false,
        blocks: Vec::new(),
        errors: Vec::new(),
        limits,
        depth: 0,
        indent: 1,
    };
    p.fill_in();
    let kind = p.file_kind();
    FileDef {
        path: p.path,
        kind,
        blocks: p.blocks,
        errors: p.errors,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Yes,
    No,
    Cancel,
}

struct Parser<'a> {
    path: PathBuf,
    pieces: Vec<&'a str>,
    /// Lines read so far: the number of the current line.
    line_no: usize,
    ended_with_break: bool,
    blocks: Vec<Block>,
    errors: Vec<Diagnostic>,
    limits: Limits,
    depth: usize,
    /// Column of the first non-blank character of the current line.
    indent: usize,
}

const KW_IMPORT: &str = "import";
const KW_FACET: &str = "facet";
const KW_INSTANCE_OF: &str = "instance of";

impl Parser<'_> {
    fn next_line(&mut self) -> Option<String> {
        let i = self.line_no;
        self.line_no += 1;
        let piece = *self.pieces.get(i)?;
        let line: String = piece.chars().filter(|&c| c != '\r').collect();
        let last = i + 1 == self.pieces.len();
        if last && line.is_empty() {
            return None;
        }
        // Roboconf only notes this for non-empty lines, which makes a file of empty
        // lines print back shorter; noting it for every line keeps printing stable.
        self.ended_with_break = !last;
        let lead = line.len() - line.trim_start_matches(|c: char| c <= ' ').len();
        self.indent = col_of(&line, lead);
        Some(line)
    }

    fn error(&mut self, code: Code, message: impl Into<String>) {
        let (line, col) = (self.line_no, self.indent);
        self.errors
            .push(Diagnostic::new(code, &self.path, line, col, message));
    }

    fn fill_in(&mut self) {
        while let Some(line) = self.next_line() {
            if is_blank(&line) {
                self.blocks.push(Block::Blank(line));
                continue;
            }
            if is_comment(&line) {
                self.blocks.push(Block::Comment(line));
                continue;
            }
            if self.recognize_import(&line) == Found::Yes {
                continue;
            }
            match self.recognize_facet(&line) {
                Found::Cancel => return,
                Found::Yes => continue,
                Found::No => {}
            }
            match self.recognize_instance_of(&line, None) {
                Found::Cancel => return,
                Found::Yes => continue,
                Found::No => {}
            }
            let code = self.recognize_component(&line);
            if code != Found::Yes {
                self.blocks.push(Block::Unknown(line.clone()));
            }
            match code {
                Found::Cancel => return,
                Found::No => self.error(
                    Code::P_UNRECOGNIZED_BLOCK,
                    format!("unrecognized declaration `{}`: expected a comment, an import, a facet, a component or an instance", jtrim(&line)),
                ),
                Found::Yes => {}
            }
        }
        if self.ended_with_break {
            self.blocks.push(Block::Blank(String::new()));
        }
    }

    fn file_kind(&mut self) -> FileKind {
        let (mut facets, mut components, mut instances, mut imports, mut ignorable) =
            (false, false, false, false, 0);
        for b in &self.blocks {
            match b {
                Block::Holder(h) => match h.kind {
                    HolderKind::Component => components = true,
                    HolderKind::Facet => facets = true,
                    HolderKind::Instance => instances = true,
                },
                Block::Import(_) => imports = true,
                Block::Blank(_) | Block::Comment(_) => ignorable += 1,
                _ => {}
            }
        }
        if instances {
            if !facets && !components {
                return FileKind::Instances;
            }
            self.errors.push(Diagnostic::new(
                Code::P_INVALID_FILE_TYPE,
                &self.path,
                1,
                1,
                "a file cannot mix graph declarations (facets, components) and instances",
            ));
            FileKind::Undetermined
        } else if facets || components {
            FileKind::Graph
        } else if imports {
            FileKind::Aggregator
        } else if ignorable == self.blocks.len() {
            self.errors.push(Diagnostic::new(
                Code::P_EMPTY_FILE,
                &self.path,
                1,
                1,
                "the file declares nothing",
            ));
            FileKind::Empty
        } else {
            FileKind::Undetermined
        }
    }

    fn recognize_import(&mut self, line: &str) -> Found {
        let (before, comment) = split_inline_comment(line);
        let real = jtrim(before);
        let Some((kw_at, uri_start)) = find_import_keyword(real) else {
            return Found::No;
        };
        let rest_at = real[uri_start..]
            .find(';')
            .map_or(real.len(), |i| uri_start + i);
        let uri = jtrim(&real[uri_start..rest_at]).to_string();
        let lead = line.len() - line.trim_start_matches(|c: char| c <= ' ').len();
        let span = Span::new(self.line_no, col_of(line, lead + kw_at));
        self.blocks.push(Block::Import(Import {
            uri,
            span,
            inline_comment: comment,
        }));
        let rest = &real[rest_at..];
        if !rest.starts_with(';') {
            self.error(
                Code::P_IMPORT_ENDS_WITH_SEMI_COLON,
                "an import must end with `;`",
            );
        } else if rest.len() > 1 {
            self.error(
                Code::P_ONE_BLOCK_PER_LINE,
                "only one declaration is allowed per line (text follows the `;`)",
            );
        }
        Found::Yes
    }

    fn recognize_facet(&mut self, line: &str) -> Found {
        if !starts_with_keyword(line, KW_FACET) {
            return Found::No;
        }
        let at = strip_keyword(line, KW_FACET);
        self.recognize_holder(line, at, HolderKind::Facet).0
    }

    fn recognize_component(&mut self, line: &str) -> Found {
        let t = jtrim(line);
        if t.is_empty()
            || t.starts_with('#')
            || starts_with_keyword(t, KW_FACET)
            || starts_with_keyword(t, KW_INSTANCE_OF)
            || starts_with_keyword(t, KW_IMPORT)
        {
            return Found::No;
        }
        self.recognize_holder(line, 0, HolderKind::Component).0
    }

    fn recognize_instance_of(&mut self, line: &str, parent: Option<&mut Holder>) -> Found {
        if !starts_with_keyword(line, KW_INSTANCE_OF) {
            return Found::No;
        }
        let at = strip_keyword(line, KW_INSTANCE_OF);
        let (found, slot) = self.recognize_holder(line, at, HolderKind::Instance);
        if let (Found::Yes, Some(parent), Some(slot)) = (found, parent, slot) {
            let block = self.blocks.remove(slot);
            parent.blocks.push(block);
        }
        found
    }

    /// Reads a block header (from byte `at` of `line`) and its content. Returns whether a
    /// block was recognised, and where it was put among the top-level blocks.
    fn recognize_holder(
        &mut self,
        line: &str,
        at: usize,
        kind: HolderKind,
    ) -> (Found, Option<usize>) {
        let tail = &line[at..];
        let (before, comment) = split_inline_comment(tail);
        let real = jtrim(before);
        let (name_part, after) = match real.find('{') {
            Some(i) => (&real[..i], Some(&real[i + 1..])),
            None => (real, None),
        };
        let Some(after) = after else {
            if is_blank(name_part) || is_strict_id(name_part) {
                self.error(
                    Code::P_O_C_BRACKET_MISSING,
                    format!(
                        "expected `{{` after `{}` on the same line",
                        jtrim(name_part)
                    ),
                );
                return (Found::Cancel, None);
            }
            return (Found::No, None);
        };
        if after.chars().any(|c| c != '{') {
            self.error(
                Code::P_O_C_BRACKET_EXTRA_CHARACTERS,
                "nothing but a comment may follow `{` on a block's first line",
            );
            return (Found::Cancel, None);
        }
        if self.depth >= self.limits.max_depth {
            self.error(
                Code::X_NESTING_TOO_DEEP,
                format!(
                    "blocks are nested more than {} levels deep",
                    self.limits.max_depth
                ),
            );
            return (Found::Cancel, None);
        }
        let name = jtrim(name_part).to_string();
        let name_at = at + (tail.len() - tail.trim_start_matches(|c: char| c <= ' ').len());
        let mut holder = Holder {
            kind,
            name,
            span: Span::new(self.line_no, col_of(line, name_at)),
            inline_comment: comment,
            closing_inline_comment: String::new(),
            blocks: Vec::new(),
        };
        let slot = self.blocks.len();
        self.blocks.push(Block::Unknown(String::new()));
        self.depth += 1;
        let mut result = Found::Yes;
        let mut error_inside = false;
        let mut closing = None;
        while let Some(inner) = self.next_line() {
            if jtrim(&inner).starts_with('}') {
                closing = Some(inner);
                break;
            }
            if is_blank(&inner) {
                holder.blocks.push(Block::Blank(inner));
                continue;
            }
            if is_comment(&inner) {
                holder.blocks.push(Block::Comment(inner));
                continue;
            }
            let mut code = self.recognize_instance_of(&inner, Some(&mut holder));
            if code == Found::No {
                code = self.recognize_property(&inner, &mut holder);
            }
            if code == Found::Cancel {
                result = Found::Cancel;
            }
            if code != Found::Yes {
                error_inside = true;
                break;
            }
        }
        self.depth -= 1;
        if error_inside {
            if result == Found::Yes {
                if kind == HolderKind::Instance {
                    self.error(
                        Code::P_INVALID_PROPERTY_OR_INSTANCE,
                        "expected a property (`name: value;`) or a nested `instance of` block",
                    );
                } else {
                    self.error(
                        Code::P_INVALID_PROPERTY,
                        "expected a property (`name: value;`)",
                    );
                }
            }
            result = Found::Cancel;
        } else if let Some(closing) = closing {
            let after_brace = strip_closing_brace(&closing);
            let (before, comment) = split_inline_comment(after_brace);
            if !is_blank(before) {
                self.error(
                    Code::P_C_C_BRACKET_EXTRA_CHARACTERS,
                    "nothing but a comment may follow a closing `}`",
                );
                result = Found::Cancel;
            }
            holder.closing_inline_comment = comment;
        } else {
            self.indent = 1;
            self.error(
                Code::P_C_C_BRACKET_MISSING,
                format!("the block `{}` is never closed with `}}`", holder.name),
            );
        }
        self.blocks[slot] = Block::Holder(holder);
        (result, Some(slot))
    }

    fn recognize_property(&mut self, line: &str, holder: &mut Holder) -> Found {
        let (before, comment) = split_inline_comment(line);
        let real = jtrim(before);
        let Some((name_at, colon_at)) = find_property(real) else {
            return Found::No;
        };
        let name = real[name_at..colon_at]
            .trim_end_matches(is_jspace)
            .to_string();
        let after_colon = &real[colon_at + 1..];
        let raw_value = after_colon.trim_start_matches(is_jspace);
        let value_at = real.len() - raw_value.len();
        let lead = line.len() - line.trim_start_matches(|c: char| c <= ' ').len();
        let value = raw_value.strip_suffix(';').unwrap_or(raw_value).to_string();
        let ends_well = raw_value.ends_with(';');
        let one_block = {
            let escaped = if real.contains('"') {
                remove_quoted(&value)
            } else {
                value.clone()
            };
            !escaped.contains(';')
        };
        holder.blocks.push(Block::Property(Property {
            name,
            value,
            span: Span::new(self.line_no, col_of(line, lead + name_at)),
            value_col: col_of(line, lead + value_at),
            inline_comment: comment,
        }));
        if !ends_well {
            self.error(
                Code::P_PROPERTY_ENDS_WITH_SEMI_COLON,
                "a property must end with `;`",
            );
        }
        if !one_block {
            self.error(
                Code::P_ONE_BLOCK_PER_LINE,
                "only one declaration is allowed per line",
            );
        }
        Found::Yes
    }
}

fn is_comment(line: &str) -> bool {
    jtrim(line).starts_with('#')
}

/// Splits a line at its first `#`: the text before (trimmed when a comment was found) and
/// the comment with the blanks that preceded it.
pub(crate) fn split_inline_comment(line: &str) -> (&str, String) {
    match line.find('#') {
        Some(i) => {
            let before = &line[..i];
            let kept = before.trim_end_matches(is_jspace);
            let comment = format!("{}{}", &before[kept.len()..], &line[i..]);
            (jtrim(before), comment)
        }
        None => (line, String::new()),
    }
}

/// `(?i)^keyword((\s.*)|$)` on the trimmed line.
fn starts_with_keyword(line: &str, kw: &str) -> bool {
    let t = jtrim(line);
    match t.get(..kw.len()) {
        Some(head) if head.eq_ignore_ascii_case(kw) => {
            t[kw.len()..].chars().next().is_none_or(is_jspace)
        }
        _ => false,
    }
}

/// Byte offset just past the first (case-insensitive) occurrence of the keyword.
fn strip_keyword(line: &str, kw: &str) -> usize {
    let lower = line.to_ascii_lowercase();
    lower.find(kw).map_or(0, |i| i + kw.len())
}

/// Removes the first `}` and the blanks before it.
fn strip_closing_brace(line: &str) -> &str {
    match line.find('}') {
        Some(i) => &line[i + 1..],
        None => line,
    }
}

/// Finds `import\s+` anywhere (case-insensitive): the keyword's offset and where the
/// imported location starts.
fn find_import_keyword(s: &str) -> Option<(usize, usize)> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while from + KW_IMPORT.len() < bytes.len() {
        let rest = &bytes[from..];
        let pos = rest
            .windows(KW_IMPORT.len())
            .position(|w| w.eq_ignore_ascii_case(KW_IMPORT.as_bytes()))?;
        let at = from + pos;
        let after = &s[at + KW_IMPORT.len()..];
        let spaces = after.len() - after.trim_start_matches(is_jspace).len();
        if spaces > 0 {
            return Some((at, at + KW_IMPORT.len() + spaces));
        }
        from = at + 1;
    }
    None
}

/// Finds `([^:\s]+)\s*:` anywhere: the name's start and the colon's offset.
fn find_property(s: &str) -> Option<(usize, usize)> {
    // Control characters never belong to a name (Roboconf would keep them; they could
    // not be printed back and read again).
    let is_name = |c: char| c != ':' && !is_jspace(c) && c > ' ';
    let mut start = 0;
    while start < s.len() {
        let rest = &s[start..];
        let run_start = rest.find(is_name).map(|i| start + i)?;
        // Every start inside a run ends at the same place, so one check per run suffices.
        let run_end = s[run_start..]
            .find(|c: char| !is_name(c))
            .map_or(s.len(), |i| run_start + i);
        let after = &s[run_end..];
        let ws = after.len() - after.trim_start_matches(is_jspace).len();
        if after[ws..].starts_with(':') {
            return Some((run_start, run_end + ws));
        }
        if ws == after.len() {
            return None;
        }
        start = run_end + ws;
    }
    None
}

/// Removes every `"..."` section (Roboconf's check that `;` only appears inside quotes).
fn remove_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('"') {
        match rest[open + 1..].find('"') {
            Some(close) => {
                out.push_str(&rest[..open]);
                rest = &rest[open + 1 + close + 1..];
            }
            None => break,
        }
    }
    out.push_str(rest);
    out
}
