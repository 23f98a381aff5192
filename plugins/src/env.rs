//! The Roboconf script environment (DESIGN §6): the variables a life-cycle script gets,
//! built from an `Invocation`. Names keep only letters, digits and `_` (anything else
//! becomes `_`); indices of imported instances start at 0; the `ROBOCONF_IMPORT_CHANGED_*`
//! and `ROBOCONF_UPDATE_STATUS` variables exist for `update` only.

use crate::{Action, Invocation};
use roboconf_model::graph::split_var;
use roboconf_model::resolve::{clean_path, clean_reversed_path};
use std::collections::BTreeMap;

/// Replaces every character other than an ASCII letter, digit or `_` by `_`.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Full names to bare names; when two full names share a local name, the one under the
/// component's own prefix wins, else the first in name order.
fn bare(exports: &BTreeMap<String, String>, own_prefix: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (full, value) in exports {
        let (prefix, local) = split_var(full);
        let key = clean_name(local);
        if prefix == own_prefix || !out.contains_key(&key) {
            out.insert(key, value.clone());
        }
    }
    out
}

/// The environment variables for running `action` (added to the agent's own).
pub fn script_environment(action: Action, inv: &Invocation) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.extend(bare(&inv.exports, &inv.component));
    for a in &inv.ancestors {
        for (local, value) in bare(&a.exports, &a.component) {
            env.insert(
                format!("ANCESTOR_{}_{}", clean_name(&a.component), local),
                value,
            );
        }
    }
    for (prefix, list) in &inv.imports {
        let p = clean_name(prefix);
        env.insert(format!("{p}_size"), list.len().to_string());
        for (i, imp) in list.iter().enumerate() {
            env.insert(format!("{p}_{i}_name"), imp.path.clone());
            for (local, value) in bare(&imp.variables, prefix) {
                env.insert(format!("{p}_{i}_{local}"), value);
            }
        }
    }
    env.insert("ROBOCONF_INSTANCE_NAME".into(), inv.instance_name.clone());
    env.insert("ROBOCONF_INSTANCE_PATH".into(), inv.instance_path.clone());
    env.insert("ROBOCONF_COMPONENT_NAME".into(), inv.component.clone());
    env.insert(
        "ROBOCONF_CLEAN_INSTANCE_PATH".into(),
        clean_path(&inv.instance_path),
    );
    env.insert(
        "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH".into(),
        clean_reversed_path(&inv.instance_path),
    );
    env.insert(
        "ROBOCONF_FILES_DIR".into(),
        inv.recipe_dir.join("files").display().to_string(),
    );
    if action == Action::Update {
        if let Some(changed) = &inv.changed {
            env.insert("ROBOCONF_UPDATE_STATUS".into(), changed.status.clone());
            env.insert(
                "ROBOCONF_IMPORT_CHANGED_COMPONENT".into(),
                changed.import.component.clone(),
            );
            env.insert(
                "ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH".into(),
                changed.import.path.clone(),
            );
            for (local, value) in bare(&changed.import.variables, &changed.import.component) {
                env.insert(format!("ROBOCONF_IMPORT_CHANGED_{local}"), value);
            }
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ancestor, ChangedImport, ImportedInstance};
    use std::path::PathBuf;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn webapp() -> Invocation {
        let db = |path: &str, port: &str| ImportedInstance {
            path: path.into(),
            component: "MySQL".into(),
            variables: map(&[("MySQL.ip", "10.0.0.5"), ("MySQL.port", port)]),
        };
        Invocation {
            application: "lamp".into(),
            instance_name: "web app".into(),
            instance_path: "/vm 1/tomcat/web app".into(),
            component: "Webapp".into(),
            recipe_dir: PathBuf::from("/data/apps/lamp/Webapp"),
            exports: map(&[
                ("Webapp.context-root", "/shop"),
                ("deployable.team", "web"),
                ("Webapp.team", "ops"),
            ]),
            ancestors: vec![
                Ancestor {
                    component: "Tomcat".into(),
                    exports: map(&[("Tomcat.portAJP", "8009")]),
                },
                Ancestor {
                    component: "VM".into(),
                    exports: map(&[("VM.ip", "10.0.0.2")]),
                },
            ],
            imports: BTreeMap::from([(
                "MySQL".to_string(),
                vec![db("/vm 2/mysql", "3306"), db("/vm 3/mysql", "3307")],
            )]),
            changed: Some(ChangedImport {
                status: "DEPLOYED_STARTED".into(),
                import: db("/vm 3/mysql", "3307"),
            }),
            ..Invocation::default()
        }
    }

    #[test]
    fn follows_the_roboconf_contract() {
        let env = script_environment(Action::Update, &webapp());
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("ROBOCONF_INSTANCE_NAME"), Some("web app"));
        assert_eq!(get("ROBOCONF_INSTANCE_PATH"), Some("/vm 1/tomcat/web app"));
        assert_eq!(get("ROBOCONF_COMPONENT_NAME"), Some("Webapp"));
        assert_eq!(
            get("ROBOCONF_CLEAN_INSTANCE_PATH"),
            Some("vm_1_tomcat_web_app")
        );
        assert_eq!(
            get("ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH"),
            Some("web_app_tomcat_vm_1")
        );
        assert_eq!(
            get("ROBOCONF_FILES_DIR"),
            Some("/data/apps/lamp/Webapp/files")
        );
        assert_eq!(
            get("context_root"),
            Some("/shop"),
            "own export by cleaned bare name"
        );
        assert_eq!(get("team"), Some("ops"), "the component's own prefix wins");
        assert_eq!(get("ANCESTOR_Tomcat_portAJP"), Some("8009"));
        assert_eq!(get("ANCESTOR_VM_ip"), Some("10.0.0.2"));
        assert_eq!(get("MySQL_size"), Some("2"));
        assert_eq!(get("MySQL_0_name"), Some("/vm 2/mysql"));
        assert_eq!(get("MySQL_1_port"), Some("3307"));
        assert_eq!(get("MySQL_0_ip"), Some("10.0.0.5"));
        assert_eq!(get("ROBOCONF_UPDATE_STATUS"), Some("DEPLOYED_STARTED"));
        assert_eq!(get("ROBOCONF_IMPORT_CHANGED_COMPONENT"), Some("MySQL"));
        assert_eq!(
            get("ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH"),
            Some("/vm 3/mysql")
        );
        assert_eq!(get("ROBOCONF_IMPORT_CHANGED_port"), Some("3307"));
    }

    #[test]
    fn update_variables_only_for_update() {
        let env = script_environment(Action::Start, &webapp());
        assert!(env
            .keys()
            .all(|k| !k.starts_with("ROBOCONF_IMPORT_CHANGED") && k != "ROBOCONF_UPDATE_STATUS"));
        assert!(env
            .keys()
            .all(|k| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')));
    }
}
