//! The `exports:` value: `ip, port = 8080, random[port] http, msg = "a; b"`. Parsed the way
//! Roboconf does: names end at `,` or `=`, values at `,`, quoted values keep `,` and `;`,
//! and an empty quoted value is the only way to write the empty string. Each variable keeps
//! where it was written, so that findings about it point at it.

use super::text::{is_blank, jtrim};
use super::Span;
use crate::diag::{Code, Diagnostic};
use std::path::Path;

/// One exported variable as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportDecl {
    /// The name, without any `random[...]` marker.
    pub name: String,
    /// The default value; `None` when none is given.
    pub value: Option<String>,
    /// `Some(kind)` for `random[kind] name`.
    pub random: Option<String>,
    /// Where the declaration starts (its name, or `random[`). For a name declared twice,
    /// the declaration whose value is kept (the last).
    pub span: Span,
}

/// Parses an `exports:` value that starts at `line`:`col`. Returns the declarations (a
/// repeated name keeps its first place in the list and its last value) and the PM_ errors
/// found (reported at the value's start).
pub fn parse_exports(
    value: &str,
    file: &Path,
    line: usize,
    col: usize,
) -> (Vec<ExportDecl>, Vec<Diagnostic>) {
    // (name, value, column where the declaration starts)
    let mut raw: Vec<(String, Option<String>, usize)> = Vec::new();
    let mut errors = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut cursor = 0;
    let put = |raw: &mut Vec<(String, Option<String>, usize)>,
               name: String,
               v: Option<String>,
               at: usize| {
        if let Some(slot) = raw.iter_mut().find(|(n, _, _)| *n == name) {
            slot.1 = v;
            slot.2 = at;
        } else {
            raw.push((name, v, at));
        }
    };
    while cursor < chars.len() {
        let c = chars[cursor];
        if c.is_whitespace() || c == ',' {
            cursor += 1;
        }
        // One variable: name, then an optional value.
        let mut name = String::new();
        let name_start = cursor;
        let mut stop = None;
        while let Some(&c) = chars.get(cursor) {
            if c == ',' || c == '=' {
                stop = Some(c);
                break;
            }
            name.push(c);
            cursor += 1;
        }
        let at = col + name_start + name.chars().take_while(|&c| c <= ' ').count();
        let name = jtrim(&name).to_string();
        if stop != Some('=') {
            if is_blank(&name) {
                errors.push(Diagnostic::new(
                    Code::PM_EMPTY_VARIABLE_NAME,
                    file,
                    line,
                    col,
                    "an exported variable has no name",
                ));
            } else {
                put(&mut raw, name, None, at);
            }
            continue;
        }
        cursor += 1; // past '='
        let mut plain = String::new();
        let mut stop = None;
        while let Some(&c) = chars.get(cursor) {
            if c == ',' || c == '"' {
                stop = Some(c);
                break;
            }
            plain.push(c);
            cursor += 1;
        }
        if stop != Some('"') {
            let v = jtrim(&plain);
            put(&mut raw, name, (!v.is_empty()).then(|| v.to_string()), at);
            continue;
        }
        let bad = |name: &str| {
            Diagnostic::new(
                Code::PM_INVALID_EXPORT_COMPLEX_VALUE,
                file,
                line,
                col,
                format!("badly quoted value for the exported variable `{name}`"),
            )
        };
        if !is_blank(&plain) {
            errors.push(bad(&name));
            cursor += 1;
            continue;
        }
        cursor += 1; // past the opening quote
        let mut quoted = String::new();
        let mut closed = false;
        while let Some(&c) = chars.get(cursor) {
            if c == '"' {
                closed = true;
                break;
            }
            quoted.push(c);
            cursor += 1;
        }
        if !closed {
            errors.push(bad(&name));
            continue;
        }
        cursor += 1; // past the closing quote
        let mut trailing_garbage = false;
        while let Some(&c) = chars.get(cursor) {
            if c == ',' {
                break;
            }
            if c.is_whitespace() {
                cursor += 1;
            } else {
                trailing_garbage = true;
                break;
            }
        }
        if trailing_garbage {
            errors.push(bad(&name));
            continue;
        }
        put(&mut raw, name, Some(quoted), at);
        cursor += 1;
    }
    let decls = raw
        .into_iter()
        .map(|(name, value, at)| {
            let span = Span::new(line, at);
            match split_random(&name) {
                Some((kind, bare)) => ExportDecl {
                    name: bare,
                    value,
                    random: Some(kind),
                    span,
                },
                None => ExportDecl {
                    name,
                    value,
                    random: None,
                    span,
                },
            }
        })
        .collect();
    (decls, errors)
}

/// `random[kind] name` (case-insensitive keyword) → `(kind, name)`.
fn split_random(name: &str) -> Option<(String, String)> {
    let head = name.get(..7)?;
    if !head.eq_ignore_ascii_case("random[") {
        return None;
    }
    let rest = &name[7..];
    let close = rest.find(']')?;
    Some((
        rest[..close].to_string(),
        jtrim(&rest[close + 1..]).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> (Vec<ExportDecl>, Vec<Code>) {
        let (d, e) = parse_exports(v, Path::new("t.graph"), 1, 1);
        (d, e.into_iter().map(|e| e.code).collect())
    }

    #[test]
    fn plain_and_default_values() {
        let (d, e) = parse("ip, port = 8080 ,Tomcat.x=y");
        assert!(e.is_empty());
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0],
            ExportDecl {
                name: "ip".into(),
                value: None,
                random: None,
                span: Span::new(1, 1),
            }
        );
        assert_eq!(d[1].value.as_deref(), Some("8080"));
        assert_eq!(d[2].name, "Tomcat.x");
    }

    #[test]
    fn quoted_values_keep_separators() {
        let (d, e) = parse(r#"msg = "a; b, c", empty = "", x"#);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(d[0].value.as_deref(), Some("a; b, c"));
        assert_eq!(d[1].value.as_deref(), Some(""));
        assert_eq!(d[2].name, "x");
    }

    #[test]
    fn random_ports() {
        let (d, _) = parse("random[port] http, RANDOM[PORT] ajp, random[string] s = 3");
        assert_eq!(d[0].random.as_deref(), Some("port"));
        assert_eq!(d[0].name, "http");
        assert_eq!(d[1].random.as_deref(), Some("PORT"));
        assert_eq!(d[2].random.as_deref(), Some("string"));
        assert_eq!(d[2].value.as_deref(), Some("3"));
    }

    #[test]
    fn each_variable_keeps_where_it_starts() {
        // The value starts at column 11 of line 4: `\texports: ip, random[port] http ,  x = "a, b", ip = 2;`
        let value = r#"ip, random[port] http ,  x = "a, b", ip = 2"#;
        let (d, e) = parse_exports(value, Path::new("t.graph"), 4, 11);
        assert!(e.is_empty(), "{e:?}");
        let at: Vec<(&str, Span)> = d.iter().map(|x| (x.name.as_str(), x.span)).collect();
        let col = |needle: &str| 11 + value.rfind(needle).expect("needle");
        assert_eq!(
            at,
            vec![
                ("ip", Span::new(4, col("ip"))),
                ("http", Span::new(4, col("random"))),
                ("x", Span::new(4, col("x"))),
            ],
            "a name declared twice keeps its first place and the last declaration's position"
        );
    }

    #[test]
    fn bad_quotes() {
        assert_eq!(
            parse(r#"a = x"y""#).1,
            vec![Code::PM_INVALID_EXPORT_COMPLEX_VALUE]
        );
        assert_eq!(
            parse(r#"a = "open"#).1,
            vec![Code::PM_INVALID_EXPORT_COMPLEX_VALUE]
        );
        assert_eq!(
            parse(r#"a = "x" y"#).1,
            vec![Code::PM_INVALID_EXPORT_COMPLEX_VALUE]
        );
        assert_eq!(parse("a, ").1, vec![Code::PM_EMPTY_VARIABLE_NAME]);
    }
}
