//! The `exports:` value: `ip, port = 8080, random[port] http, msg = "a; b"`. Parsed the way
//! Roboconf does: names end at `,` or `=`, values at `,`, quoted values keep `,` and `;`,
//! and an empty quoted value is the only way to write the empty string.

use super::text::{is_blank, jtrim};
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
}

/// Parses an `exports:` value. Returns the declarations (a repeated name keeps its first
/// position and its last value) and the PM_ errors found.
pub fn parse_exports(
    value: &str,
    file: &Path,
    line: usize,
    col: usize,
) -> (Vec<ExportDecl>, Vec<Diagnostic>) {
    let mut raw: Vec<(String, Option<String>)> = Vec::new();
    let mut errors = Vec::new();
    let chars: Vec<char> = value.chars().collect();
    let mut cursor = 0;
    let put = |raw: &mut Vec<(String, Option<String>)>, name: String, v: Option<String>| {
        if let Some(slot) = raw.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = v;
        } else {
            raw.push((name, v));
        }
    };
    while cursor < chars.len() {
        let c = chars[cursor];
        if c.is_whitespace() || c == ',' {
            cursor += 1;
        }
        // One variable: name, then an optional value.
        let mut name = String::new();
        let mut stop = None;
        while let Some(&c) = chars.get(cursor) {
            if c == ',' || c == '=' {
                stop = Some(c);
                break;
            }
            name.push(c);
            cursor += 1;
        }
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
                put(&mut raw, name, None);
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
            put(&mut raw, name, (!v.is_empty()).then(|| v.to_string()));
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
        put(&mut raw, name, Some(quoted));
        cursor += 1;
    }
    let decls = raw
        .into_iter()
        .map(|(name, value)| match split_random(&name) {
            Some((kind, bare)) => ExportDecl {
                name: bare,
                value,
                random: Some(kind),
            },
            None => ExportDecl {
                name,
                value,
                random: None,
            },
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
                random: None
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
