//! The application descriptor, `descriptor/application.properties`: name, version,
//! description, DSL id, graph and instances entry points, the prefix and list of
//! variables exported to other applications (`exports: Comp.var as alias, ...`) and
//! tags. Legacy keys with an `application-` prefix are accepted, as in Roboconf.

use crate::diag::{Code, Diagnostic};
use crate::dsl::text::{is_app_name, is_blank, is_strict_id, split_nicely};
use crate::props;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A parsed descriptor; every field keeps the line it was read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Descriptor {
    pub file: PathBuf,
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub dsl_id: Option<String>,
    pub graph_entry_point: Option<String>,
    pub instance_entry_point: Option<String>,
    pub exports_prefix: Option<String>,
    /// Exported variable → public alias.
    pub external_exports: BTreeMap<String, String>,
    pub tags: Vec<String>,
    lines: BTreeMap<&'static str, usize>,
}

const KEYS: &[&str] = &[
    "name",
    "version",
    "description",
    "dsl-id",
    "graph-entry-point",
    "instance-entry-point",
    "exports-prefix",
    "exports",
    "tags",
];

impl Descriptor {
    /// Parses descriptor text; returns the descriptor and the findings about it.
    pub fn parse(file: &Path, text: &str) -> (Descriptor, Vec<Diagnostic>) {
        let (d, invalid_exports) = Self::read(file, text);
        let diags = d.check(&invalid_exports);
        (d, diags)
    }

    /// Reads descriptor text without judging it; also returns the `exports` items that
    /// are not of the form `Comp.var as alias`.
    pub fn read(file: &Path, text: &str) -> (Descriptor, Vec<String>) {
        let entries = props::parse(text);
        let mut d = Descriptor {
            file: file.to_path_buf(),
            ..Descriptor::default()
        };
        let mut invalid_exports = Vec::new();
        for &key in KEYS {
            let e = props::get(&entries, key)
                .or_else(|| props::get(&entries, &format!("application-{key}")));
            let Some(e) = e else { continue };
            d.lines.insert(key, e.line);
            let v = Some(e.value.clone());
            match key {
                "name" => d.name = v,
                "version" => d.version = v,
                "description" => d.description = v,
                "dsl-id" => d.dsl_id = v,
                "graph-entry-point" => d.graph_entry_point = v,
                "instance-entry-point" => d.instance_entry_point = v,
                "exports-prefix" => d.exports_prefix = v,
                "tags" => d.tags = split_nicely(&e.value, ','),
                _ => {
                    for item in split_nicely(&e.value, ',') {
                        let parts: Vec<&str> = item.split_whitespace().collect();
                        match parts.as_slice() {
                            [var, kw, alias]
                                if kw.eq_ignore_ascii_case("as")
                                    && !var.contains('=')
                                    && !alias.contains('=') =>
                            {
                                d.external_exports
                                    .insert(var.to_string(), alias.to_string());
                            }
                            _ => invalid_exports.push(item),
                        }
                    }
                }
            }
        }
        (d, invalid_exports)
    }

    /// The line a key was read from (1 when absent).
    pub fn line_of(&self, key: &str) -> usize {
        self.lines.get(key).copied().unwrap_or(1)
    }

    fn check(&self, invalid_exports: &[String]) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        let mut push = |code: Code, key: &str, msg: String| {
            out.push(Diagnostic::new(code, &self.file, self.line_of(key), 1, msg))
        };
        match self.name.as_deref() {
            None => push(
                Code::RM_MISSING_APPLICATION_NAME,
                "name",
                "the descriptor has no `application-name`".into(),
            ),
            Some(n) if is_blank(n) => push(
                Code::RM_MISSING_APPLICATION_NAME,
                "name",
                "the application name is empty".into(),
            ),
            Some(n) => {
                if let Err(message) = crate::limits::check_name("application", n.trim()) {
                    push(Code::X_NAME_TOO_LONG, "name", message);
                } else if !is_app_name(n.trim()) {
                    push(
                        Code::RM_INVALID_APPLICATION_NAME,
                        "name",
                        format!("invalid application name `{n}`"),
                    );
                }
            }
        }
        match self.version.as_deref() {
            None => push(Code::RM_MISSING_APPLICATION_VERSION, "version", "the descriptor has no `application-version`".into()),
            Some(v) if is_blank(v) => push(Code::RM_MISSING_APPLICATION_VERSION, "version", "the application version is empty".into()),
            Some(v) if !is_version(v) => push(
                Code::RM_INVALID_APPLICATION_VERSION,
                "version",
                format!("invalid version `{v}`: expected major.minor[.patch] with an optional `-qualifier`"),
            ),
            Some(_) => {}
        }
        if self.dsl_id.as_deref().is_none_or(is_blank) {
            push(
                Code::RM_MISSING_APPLICATION_DSL_ID,
                "dsl-id",
                "no `application-dsl-id`: `roboconf-1.0` is assumed".into(),
            );
        }
        if self.graph_entry_point.as_deref().is_none_or(is_blank) {
            push(
                Code::RM_MISSING_APPLICATION_GEP,
                "graph-entry-point",
                "the descriptor has no `graph-entry-point`".into(),
            );
        }
        if !invalid_exports.is_empty() {
            push(
                Code::PROJ_INVALID_EXTERNAL_EXPORTS,
                "exports",
                format!(
                    "invalid external exports (expected `Comp.var as alias`): {}",
                    invalid_exports.join(", ")
                ),
            );
        }
        for (k, v) in &self.external_exports {
            if !is_strict_id(k) {
                push(
                    Code::RM_INVALID_VARIABLE_NAME,
                    "exports",
                    format!("invalid exported variable `{k}`"),
                );
            }
            if !is_strict_id(v) {
                push(
                    Code::RM_INVALID_VARIABLE_NAME,
                    "exports",
                    format!("invalid alias `{v}`"),
                );
            }
        }
        if (!self.external_exports.is_empty() || !invalid_exports.is_empty())
            && self.exports_prefix.as_deref().is_none_or(is_blank)
        {
            push(
                Code::RM_MISSING_APPLICATION_EXPORT_PREFIX,
                "exports-prefix",
                "external exports need an `exports-prefix`".into(),
            );
        }
        out
    }
}

/// Roboconf's version rule, `^\d+\.\d+(\.\d+)?([.-].+)?$`, which amounts to
/// `major.minor` followed by nothing or by `.`/`-` and at least one character.
pub fn is_version(v: &str) -> bool {
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let major = digits_end(v);
    if major == 0 || !v[major..].starts_with('.') {
        return false;
    }
    let rest = &v[major + 1..];
    let minor = digits_end(rest);
    if minor == 0 {
        return false;
    }
    let tail = &rest[minor..];
    tail.is_empty() || ((tail.starts_with('.') || tail.starts_with('-')) && tail.len() > 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in [
            "1.0",
            "1.0.0",
            "1.0.1-SNAPSHOT",
            "1.0.simple",
            "2.3.4.beta",
            "1.0-rc1",
        ] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in ["1", "a.b", "${project.version}", "1.", "1.0-", ""] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn legacy_and_new_keys() {
        let (d, diags) = Descriptor::parse(
            Path::new("app.properties"),
            "name = Legacy LAMP\nversion = 1.0.1-SNAPSHOT\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = lamp.graph\nexports-prefix = DEP\nexports = VM.config as c, App.ip as ip\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(d.name.as_deref(), Some("Legacy LAMP"));
        assert_eq!(
            d.external_exports.get("App.ip").map(String::as_str),
            Some("ip")
        );
        assert_eq!(d.line_of("graph-entry-point"), 4);
    }
}
