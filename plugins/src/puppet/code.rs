//! The Puppet code the plug-in applies for one action: Roboconf's
//! `class{'<class>': runningState => …, <exports>, <imports>[, importDiff => {…}]}`, in
//! the shapes Roboconf's manifests expect, but always valid Puppet 7 code.
//!
//! Where Roboconf's generated code breaks on Puppet 7, this one differs (DESIGN of the
//! plug-in in docs/ARCHITECTURE.md, "Puppet plug-in"):
//! - every value is single-quoted with `\` and `'` escaped (Roboconf does not escape);
//!   blank values are `undef`, as in Roboconf;
//! - a parameter name is Roboconf's (after the first `.`, lower-cased) with characters
//!   other than `[a-z0-9_]` turned into `_`; names that are still not identifiers, and
//!   Puppet's built-in and metaparameter names, are not passed (`roboconf_model::puppet`);
//!   a name given twice is passed once (the first by sorted full name), an import prefix
//!   winning over an export;
//! - hash keys (instance paths, imported variable names) are quoted strings, which is
//!   what Roboconf's bare words evaluate to when they are valid;
//! - `importDiff`'s `component` is a quoted string: Roboconf writes the name bare, which
//!   Puppet 7 reads as a type reference (`Tomcat`) or a syntax error for capitalized or
//!   dotted names. Puppet compares strings without regard to case, so manifests that test
//!   `$importDiff['component'] == 'tomcat'` keep working.
//! - entries come in a fixed order (sorted), not Java's hash order.

use crate::{Action, ChangedImport, ImportedInstance, Invocation};
use roboconf_model::puppet::param_name;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

/// `running`, `stopped` or `undef`, as Roboconf passes `runningState` for `action`.
pub fn running_state(action: Action) -> &'static str {
    match action {
        Action::Start => "running",
        Action::Deploy | Action::Stop => "stopped",
        Action::Initialize | Action::Update | Action::Undeploy => "undef",
    }
}

/// A value as Puppet code: `undef` when blank, else a single-quoted string.
pub fn value(v: &str) -> String {
    if v.trim().is_empty() {
        return "undef".to_string();
    }
    quoted(v)
}

/// `s` as a single-quoted Puppet string (`\` and `'` escaped; nothing else is special).
pub fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// A hash of variables: `{ 'port' => '3306', 'ip' => '…' }` (`{  }` when empty, as
/// Roboconf writes it). Keys are Roboconf's names (after the first `.`, lower-cased).
fn variables(vars: &BTreeMap<String, String>) -> String {
    let mut seen = BTreeSet::new();
    let entries: Vec<String> = vars
        .iter()
        .filter_map(|(k, v)| {
            let name = roboconf_model::puppet::roboconf_name(k);
            seen.insert(name.clone())
                .then(|| format!("{} => {}", quoted(&name), value(v)))
        })
        .collect();
    format!("{{ {} }}", entries.join(", "))
}

/// The exporters of one prefix: `{ '/vm/db' => { … }, '/vm2/db' => { … }}`.
fn exporters(list: &[ImportedInstance]) -> String {
    let mut sorted: Vec<&ImportedInstance> = list.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let entries: Vec<String> = sorted
        .iter()
        .map(|i| format!("{} => {}", quoted(&i.path), variables(&i.variables)))
        .collect();
    format!("{{ {}}}", entries.join(", "))
}

/// `importDiff => {added => {…}, removed => undef, component => 'Db'}` for the import
/// whose change triggers this update.
fn import_diff(changed: &ChangedImport) -> String {
    let one = format!(
        "{{{} => {}}}",
        quoted(&changed.import.path),
        variables(&changed.import.variables)
    );
    let component = if changed.import.component.is_empty() {
        "undef".to_string()
    } else {
        quoted(&changed.import.component)
    };
    if changed.status == "DEPLOYED_STARTED" {
        format!("{{added => {one}, removed => undef, component => {component}}}")
    } else {
        format!("{{removed => {one}, added => undef, component => {component}}}")
    }
}

/// The code applied for `action` with `class` (`roboconf_db_module` or
/// `roboconf_db_module::start`).
pub fn class_code(class: &str, action: Action, inv: &Invocation) -> String {
    let mut code = String::with_capacity(256);
    let _ = write!(
        code,
        "class{{{}: runningState => {}",
        quoted(class),
        running_state(action)
    );
    // Import prefixes first: they win a name shared with an export.
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let mut imports: Vec<(String, String)> = Vec::new();
    let mut prefixes: Vec<&String> = inv.import_prefixes.iter().collect();
    prefixes.extend(inv.imports.keys());
    prefixes.sort();
    prefixes.dedup();
    for prefix in prefixes {
        let (Some(name), _) = param_name(prefix) else {
            continue;
        };
        if !taken.insert(name.clone()) {
            continue;
        }
        let v = match inv.imports.get(prefix) {
            Some(list) if !list.is_empty() => exporters(list),
            _ => "undef".to_string(),
        };
        imports.push((name, v));
    }
    for (full, v) in &inv.exports {
        let (Some(name), _) = param_name(full) else {
            continue;
        };
        if taken.insert(name.clone()) {
            let _ = write!(code, ", {name} => {}", value(v));
        }
    }
    for (name, v) in imports {
        let _ = write!(code, ", {name} => {v}");
    }
    if action == Action::Update {
        if let Some(changed) = &inv.changed {
            let _ = write!(code, ", importDiff => {}", import_diff(changed));
        }
    }
    code.push('}');
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        assert_eq!(value("3306"), "'3306'");
        assert_eq!(value("  "), "undef");
        assert_eq!(value(""), "undef");
        assert_eq!(value(r"it's C:\dir\"), r"'it\'s C:\\dir\\'");
    }

    #[test]
    fn the_code_of_each_action() {
        let mut inv = Invocation {
            exports: vars(&[("MySQL.port", "3306"), ("MySQL.ip", "")]),
            import_prefixes: vec!["Db".into(), "Cache".into()],
            ..Invocation::default()
        };
        inv.imports.insert(
            "Db".into(),
            vec![
                ImportedInstance {
                    path: "/vm2/db".into(),
                    component: "Db".into(),
                    variables: vars(&[("Db.port", "5432")]),
                },
                ImportedInstance {
                    path: "/vm1/db".into(),
                    component: "Db".into(),
                    variables: vars(&[("Db.port", "5433"), ("Db.ip", "10.0.0.1")]),
                },
            ],
        );
        assert_eq!(
            class_code("roboconf_x", Action::Deploy, &inv),
            "class{'roboconf_x': runningState => stopped, ip => undef, port => '3306', \
             cache => undef, db => { '/vm1/db' => { 'ip' => '10.0.0.1', 'port' => '5433' }, \
             '/vm2/db' => { 'port' => '5432' }}}"
        );
        inv.changed = Some(ChangedImport {
            status: "DEPLOYED_STOPPED".into(),
            import: ImportedInstance {
                path: "/vm3/db".into(),
                component: "Db".into(),
                variables: vars(&[("Db.port", "1")]),
            },
        });
        let update = class_code("roboconf_x::update", Action::Update, &inv);
        assert!(
            update.starts_with("class{'roboconf_x::update': runningState => undef, "),
            "{update}"
        );
        assert!(
            update.ends_with(
                ", importDiff => {removed => {'/vm3/db' => { 'port' => '1' }}, \
                 added => undef, component => 'Db'}}"
            ),
            "{update}"
        );
        // Only `update` gets importDiff.
        assert!(!class_code("roboconf_x", Action::Start, &inv).contains("importDiff"));
    }

    #[test]
    fn names_puppet_refuses_are_repaired_or_left_out() {
        let inv = Invocation {
            exports: vars(&[
                ("App.port-ajp", "8009"),
                ("App.name", "shop"),
                ("App.9lives", "x"),
                ("App.db", "shadowed"),
                ("Web.PORT-AJP", "8010"),
            ]),
            import_prefixes: vec!["DB".into()],
            ..Invocation::default()
        };
        assert_eq!(
            class_code("roboconf_app", Action::Start, &inv),
            "class{'roboconf_app': runningState => running, port_ajp => '8009', db => undef}"
        );
    }
}
