//! How Roboconf's names become Puppet's: the one place where the Puppet plug-in (which
//! builds `class{…}` code) and `roboconf validate` (which warns about names Puppet would
//! refuse) agree on what a variable or an import prefix is called on the Puppet side, and
//! which `roboconf_*` folder is the recipe's module.
//!
//! Roboconf passes an exported variable `Tomcat.portAJP` as `portajp` (the text after the
//! first `.`, trimmed and lower-cased) and an import prefix `MySQL` as `mysql`. Puppet 7
//! accepts a class parameter only when its name is `[a-z][a-z0-9_]*`, and some names are
//! metaparameters or built in (`name`, `stage`, `require`…): passing them breaks the
//! catalog or changes its meaning. Here characters other than letters, digits and `_`
//! become `_` (the script plug-in does the same for environment variables); a name that
//! still does not start with a letter, or is reserved, is not passed at all.

/// Names a class cannot take as parameters: built in (`name`, `title`) or metaparameters
/// (they would order, tag or schedule the class instead of configuring it).
pub const RESERVED: &[&str] = &[
    "alias",
    "audit",
    "before",
    "loglevel",
    "name",
    "noop",
    "notify",
    "require",
    "schedule",
    "stage",
    "subscribe",
    "tag",
    "title",
];

/// The parameters the plug-in always passes.
pub const RUNNING_STATE: &str = "runningState";
pub const IMPORT_DIFF: &str = "importDiff";

/// Roboconf's name of a variable on the Puppet side, before any repair: the part after
/// the first `.`, trimmed and lower-cased (`Tomcat.portAJP` → `portajp`).
pub fn roboconf_name(variable: &str) -> String {
    let simple = match variable.find('.') {
        Some(i) => &variable[i + 1..],
        None => variable,
    };
    simple.trim().to_lowercase()
}

/// Why a Roboconf name cannot be passed as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameIssue {
    /// Passed under another name (`port-ajp` → `port_ajp`).
    Renamed(String),
    /// Not passed: no letter to start with, or empty.
    NotAnIdentifier,
    /// Not passed: a metaparameter or built-in name.
    Reserved,
}

/// The class parameter a variable (or an import prefix) is passed as, `None` when it is
/// not passed; and what was done to it, if anything.
pub fn param_name(variable: &str) -> (Option<String>, Option<NameIssue>) {
    let lower = roboconf_name(variable);
    let repaired: String = lower
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !repaired.starts_with(|c: char| c.is_ascii_lowercase()) {
        return (None, Some(NameIssue::NotAnIdentifier));
    }
    if RESERVED.contains(&repaired.as_str()) {
        return (None, Some(NameIssue::Reserved));
    }
    if repaired != lower {
        return (Some(repaired.clone()), Some(NameIssue::Renamed(repaired)));
    }
    (Some(repaired), None)
}

/// Whether Puppet 7 loads a module from a folder of this name (others are ignored on
/// the module path).
pub fn is_module_folder_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The `roboconf_*` folders of a recipe folder (names lower-cased start with
/// `roboconf_`, as Roboconf looks for them), sorted by name.
pub fn module_folders(recipe_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir(recipe_dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_type().is_ok_and(|t| t.is_dir())
                        && e.file_name()
                            .to_string_lossy()
                            .to_ascii_lowercase()
                            .starts_with("roboconf_")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A module named in `modules.properties` or a `metadata.json` (`thias-sysctl`,
/// `thias/sysctl`): its folder name once installed (`sysctl`); `None` when it is not a
/// name the Forge can have (an author of letters and digits, a module folder name).
pub fn forge_module_folder(full_name: &str) -> Option<&str> {
    let i = full_name.find(['-', '/'])?;
    let (author, short) = (&full_name[..i], &full_name[i + 1..]);
    (!author.is_empty()
        && author.chars().all(|c| c.is_ascii_alphanumeric())
        && is_module_folder_name(short))
    .then_some(short)
}

/// A class definition of a manifest (`class NAME (…) {…}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassDef {
    /// As written (`roboconf_tomcat_module::update`).
    pub name: String,
    /// Where its `class` keyword is (1-based, columns in characters).
    pub line: usize,
    pub col: usize,
    /// Its parameters' names without `$`, in order; `None` when it has no parameter list
    /// (or the list is never closed).
    pub params: Option<Vec<String>>,
}

/// The class definitions of a manifest, in order, read with a small lexer (not Puppet's
/// parser, and no Puppet is run): comments, strings (with `${…}` interpolations),
/// heredocs and regular expressions are skipped; `class NAME (` opens a parameter list
/// whose parameters are the first `$variable` of each comma-separated part at its own
/// level, so types (`Optional[String] $x`) and defaults (`$h = {'a' => f(1, 2)}`) are
/// read as Puppet reads them. `class { 'x': }` (a declaration) is not a definition.
/// Linear in time; the tokens are kept, so memory grows with the text (callers bound it).
pub fn class_definitions(text: &str) -> Vec<ClassDef> {
    let toks = lex(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_class = matches!(&toks[i].kind, Tok::Word(w) if w == "class");
        let name = match toks.get(i + 1).map(|t| &t.kind) {
            Some(Tok::Word(n)) if is_class => n.clone(),
            _ => {
                i += 1;
                continue;
            }
        };
        let (line, col) = (toks[i].line, toks[i].col);
        let mut params = None;
        i += 2;
        if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct('('))) {
            let mut depth = 0usize;
            let mut names = Vec::new();
            let mut seen_var = false;
            let mut closed = false;
            while i < toks.len() {
                match &toks[i].kind {
                    Tok::Punct('(' | '[' | '{') => depth += 1,
                    Tok::Punct(')' | ']' | '}') => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            closed = true;
                            i += 1;
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => seen_var = false,
                    Tok::Var(v) if depth == 1 && !seen_var => {
                        seen_var = true;
                        names.push(v.clone());
                    }
                    _ => {}
                }
                i += 1;
            }
            if closed {
                params = Some(names);
            }
        }
        out.push(ClassDef {
            name,
            line,
            col,
            params,
        });
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A name, keyword or number (`class`, `roboconf_x::update`, `Optional`, `42`).
    Word(String),
    /// `$name`, without the `$`.
    Var(String),
    /// A string, heredoc or regular expression (content skipped).
    Literal,
    Punct(char),
}

#[derive(Debug)]
struct Token {
    kind: Tok,
    line: usize,
    col: usize,
}

/// The longest heredoc specification read (`@("END":json/tn)`).
const MAX_HEREDOC_SPEC: usize = 256;

/// Keywords after which `/` starts a regular expression (as after an operator).
const REGEX_AFTER: &[&str] = &[
    "and", "case", "default", "else", "elsif", "if", "in", "node", "or", "unless", "undef",
];

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    col: usize,
    /// Heredoc end tags whose text starts on the next line.
    heredocs: Vec<String>,
    /// Before this position, no `/` ends a regular expression on its line (a cache
    /// that keeps the lexer linear on lines of many `/`).
    no_regex_before: usize,
    /// The first `)` or newline at or after some earlier position (see `heredoc_tag`).
    stop: usize,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.pos + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn is_name_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || c == '_' || c == ':'
    }

    /// Skips a quoted string whose opening quote was read, with the strings nested in
    /// its `${…}` interpolations (an explicit stack: no recursion on hostile input).
    fn string(&mut self, quote: char) {
        enum Ctx {
            Str(char),
            Interp(usize),
        }
        let mut stack = vec![Ctx::Str(quote)];
        while let Some(top) = stack.last_mut() {
            let Some(c) = self.bump() else {
                return;
            };
            match top {
                Ctx::Str(_) if c == '\\' => {
                    self.bump();
                }
                Ctx::Str('"') if c == '$' && self.peek(0) == Some('{') => {
                    self.bump();
                    stack.push(Ctx::Interp(1));
                }
                Ctx::Str(q) if c == *q => {
                    stack.pop();
                }
                Ctx::Str(_) => {}
                Ctx::Interp(depth) => match c {
                    '{' => *depth += 1,
                    '}' => {
                        *depth -= 1;
                        if *depth == 0 {
                            stack.pop();
                        }
                    }
                    '"' | '\'' => stack.push(Ctx::Str(c)),
                    _ => {}
                },
            }
        }
    }

    /// After `@(`: reads the heredoc tag up to `)` on this line. False when it is none.
    fn heredoc_tag(&mut self) -> bool {
        // The first `)` or end of line from here: cached, so the lexer stays linear on
        // lines of many `@(`.
        if self.stop < self.pos {
            self.stop = self.chars[self.pos..]
                .iter()
                .position(|&c| c == '\n' || c == ')')
                .map_or(self.chars.len(), |i| self.pos + i);
        }
        if self.chars.get(self.stop) != Some(&')') || self.stop - self.pos > MAX_HEREDOC_SPEC {
            return false;
        }
        let spec: String = self.chars[self.pos..self.stop].iter().collect();
        let tag = spec.split([':', '/']).next().unwrap_or("").trim();
        let tag = tag.trim_matches('"').trim().to_string();
        if tag.is_empty() {
            return false;
        }
        while self.pos <= self.stop {
            self.bump();
        }
        self.heredocs.push(tag);
        true
    }

    /// At a line's start with heredocs pending: skips their texts.
    fn heredoc_bodies(&mut self) {
        for tag in std::mem::take(&mut self.heredocs) {
            while self.peek(0).is_some() {
                let line: String = self.chars[self.pos..]
                    .iter()
                    .take_while(|&&c| c != '\n')
                    .collect();
                let end = line.trim_start().trim_start_matches('|').trim_start();
                let end = end.trim_start_matches('-').trim();
                for _ in 0..line.chars().count() {
                    self.bump();
                }
                self.bump();
                if end == tag {
                    break;
                }
            }
        }
    }

    /// Whether a `/` here starts a regular expression (Puppet's rule: not after a value)
    /// that ends on this line.
    fn regex_here(&mut self, prev: Option<&Tok>) -> bool {
        let after_value = match prev {
            Some(Tok::Word(w)) => !REGEX_AFTER.contains(&w.as_str()),
            Some(Tok::Var(_) | Tok::Literal | Tok::Punct(')' | ']')) => true,
            _ => false,
        };
        if after_value || self.pos < self.no_regex_before {
            return false;
        }
        let mut escaped = false;
        for (i, &c) in self.chars[self.pos + 1..].iter().enumerate() {
            match c {
                '\n' => {
                    self.no_regex_before = self.pos + 1 + i;
                    return false;
                }
                '/' if !escaped => return true,
                _ => escaped = c == '\\' && !escaped,
            }
        }
        self.no_regex_before = self.chars.len();
        false
    }
}

fn lex(text: &str) -> Vec<Token> {
    let mut lx = Lexer {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        col: 1,
        heredocs: Vec::new(),
        no_regex_before: 0,
        stop: 0,
    };
    let mut toks: Vec<Token> = Vec::new();
    while let Some(c) = lx.peek(0) {
        let (line, col) = (lx.line, lx.col);
        let push = |toks: &mut Vec<Token>, kind: Tok| toks.push(Token { kind, line, col });
        match c {
            '\n' => {
                lx.bump();
                if !lx.heredocs.is_empty() {
                    lx.heredoc_bodies();
                }
            }
            c if c.is_whitespace() => {
                lx.bump();
            }
            '#' => {
                while lx.peek(0).is_some_and(|c| c != '\n') {
                    lx.bump();
                }
            }
            '/' if lx.peek(1) == Some('*') => {
                lx.bump();
                lx.bump();
                while lx.peek(0).is_some() && !(lx.peek(0) == Some('*') && lx.peek(1) == Some('/'))
                {
                    lx.bump();
                }
                lx.bump();
                lx.bump();
            }
            '/' if lx.regex_here(toks.last().map(|t| &t.kind)) => {
                lx.bump();
                let mut escaped = false;
                while let Some(c) = lx.bump() {
                    if c == '/' && !escaped {
                        break;
                    }
                    escaped = c == '\\' && !escaped;
                }
                push(&mut toks, Tok::Literal);
            }
            '"' | '\'' => {
                lx.bump();
                lx.string(c);
                push(&mut toks, Tok::Literal);
            }
            '@' if lx.peek(1) == Some('(') => {
                lx.bump();
                lx.bump();
                if lx.heredoc_tag() {
                    push(&mut toks, Tok::Literal);
                } else {
                    push(&mut toks, Tok::Punct('('));
                }
            }
            '$' if lx.peek(1).is_some_and(Lexer::is_name_char) => {
                lx.bump();
                let mut name = String::new();
                while let Some(c) = lx.peek(0).filter(|&c| Lexer::is_name_char(c)) {
                    name.push(c);
                    lx.bump();
                }
                push(&mut toks, Tok::Var(name));
            }
            c if Lexer::is_name_char(c) => {
                let mut name = String::new();
                while let Some(c) = lx.peek(0).filter(|&c| Lexer::is_name_char(c)) {
                    name.push(c);
                    lx.bump();
                }
                push(&mut toks, Tok::Word(name));
            }
            _ => {
                lx.bump();
                push(&mut toks, Tok::Punct(c));
            }
        }
    }
    toks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_roboconf_then_repaired() {
        assert_eq!(roboconf_name("Tomcat.portAJP"), "portajp");
        assert_eq!(roboconf_name("a.b.c"), "b.c");
        assert_eq!(param_name("Tomcat.portAJP"), (Some("portajp".into()), None));
        assert_eq!(
            param_name("Db.port-ajp"),
            (
                Some("port_ajp".into()),
                Some(NameIssue::Renamed("port_ajp".into()))
            )
        );
        assert_eq!(
            param_name("Db.9x"),
            (None, Some(NameIssue::NotAnIdentifier))
        );
        assert_eq!(
            param_name("Db._x"),
            (None, Some(NameIssue::NotAnIdentifier))
        );
        assert_eq!(param_name("Db.Name"), (None, Some(NameIssue::Reserved)));
        assert_eq!(param_name("MySQL"), (Some("mysql".into()), None));
    }

    #[test]
    fn module_names() {
        assert!(is_module_folder_name("roboconf_tomcat_module"));
        assert!(!is_module_folder_name("roboconf_Tomcat"));
        assert!(!is_module_folder_name("roboconf-tomcat"));
        assert_eq!(forge_module_folder("thias-sysctl"), Some("sysctl"));
        assert_eq!(forge_module_folder("puppetlabs/stdlib"), Some("stdlib"));
        assert_eq!(forge_module_folder("stdlib"), None);
        assert_eq!(forge_module_folder("thi as-sysctl"), None);
        assert_eq!(forge_module_folder("thias-Sysctl"), None);
    }

    fn params_of(text: &str) -> Vec<(String, Option<Vec<String>>)> {
        class_definitions(text)
            .into_iter()
            .map(|c| (c.name, c.params))
            .collect()
    }

    fn names(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn class_parameters_roboconf_style() {
        let text = "# class fake(\n\nclass roboconf_x_module($runningState = undef, $importDiff = undef, $tomcat = undef) {\n  file{'/tmp/x': content => template('a/b.erb') }\n}\n";
        let defs = class_definitions(text);
        assert_eq!(defs.len(), 1);
        assert_eq!((defs[0].line, defs[0].col), (3, 1));
        assert_eq!(defs[0].name, "roboconf_x_module");
        assert_eq!(
            defs[0].params,
            names(&["runningState", "importDiff", "tomcat"])
        );
    }

    #[test]
    fn class_parameters_puppet4_types_and_defaults() {
        let text = r#"
/* class commented($a) { } */
class roboconf_m::update (
  Optional[String] $runningState = undef,
  Hash[String, Variant[Integer, String]] $importDiff = { 'a' => f(1, 2), "b${x}" => [3, 4] },
  Enum['a', 'b,c'] $mode = "x)${y ? { 'z' => ')' }}",   # a comment, with ) and $fake
  String $msg = @("END"/L),
    text with $notaparam, ) and (
    | END
  Pattern[/^[a-z,]+$/] $re = 'x',
  $last,
) inherits roboconf_m {
  if $x =~ /#$/ { }
}
"#;
        assert_eq!(
            params_of(text),
            vec![(
                "roboconf_m::update".to_string(),
                names(&["runningState", "importDiff", "mode", "msg", "re", "last"])
            )]
        );
    }

    #[test]
    fn class_definitions_and_declarations() {
        let text = "define setup($ip, $port) { }\nclass roboconf_h($runningState) {\n  class { 'haproxy': opts => ['a'] }\n  $class = 1\n  Class['x'] -> Class['y']\n}\nclass other::params {\n}\nclass unclosed($a, $b\n";
        assert_eq!(
            params_of(text),
            vec![
                ("roboconf_h".to_string(), names(&["runningState"])),
                ("other::params".to_string(), None),
                ("unclosed".to_string(), None),
            ]
        );
        assert_eq!(
            params_of("class a() {}\nclass b ( ) inherits a {}"),
            vec![("a".to_string(), names(&[])), ("b".to_string(), names(&[]))]
        );
        // Division is not a regular expression; a string with a quote is skipped.
        assert_eq!(
            params_of("$x = $a / 2\nclass c($p = 'it\\'s', $q = \"\\\"\") {}\n$y = 4 / $b\n"),
            vec![("c".to_string(), names(&["p", "q"]))]
        );
    }

    #[test]
    fn class_parameters_hostile_input() {
        assert_eq!(
            params_of("class d($p='a',$q=\"b${c}\",$r) {}"),
            vec![("d".to_string(), names(&["p", "q", "r"]))]
        );
        // Deep interpolations do not recurse; lines of `/` or `@(` stay linear.
        let deep = format!("class e($a = \"{}\") {{}}", "${\"".repeat(200_000));
        assert_eq!(params_of(&deep), vec![("e".to_string(), None)]);
        let slashes = format!("class f($a = ({}), $b) {{}}", ",\\/".repeat(200_000));
        assert_eq!(
            params_of(&slashes),
            vec![("f".to_string(), names(&["a", "b"]))]
        );
        let heredocs = format!("class g($a = [{}], $b) {{}}", "@(".repeat(200_000));
        assert_eq!(params_of(&heredocs), vec![("g".to_string(), None)]);
    }
}
