//! Roboconf's external exports, between applications of different meshes (or of one
//! mesh and a Roboconf installation): what this node's applications import with
//! `imports: external <Prefix>.<var>`, and the exports of applications elsewhere that a
//! bridge hands in. They join an application's exporters under the exporting instance's
//! name (`<application>:<path>`, never a path of this application), so importers see
//! them as any other exporter: start when they appear, `update` when they change, stop
//! when a mandatory one goes. They are not replicated: each node's bridge hands them in
//! (a bridge asks the exporters again when it connects).

use super::records::Vars;
use super::Core;
use std::collections::{BTreeMap, BTreeSet};

impl Core {
    /// An external exporter's variables (or their withdrawal) for every application
    /// importing that prefix.
    pub(super) fn external_exports(&mut self, source: &str, prefix: &str, vars: Option<Vars>) {
        // Only the variables of that prefix: an exporter cannot speak for another.
        let vars = vars.map(|v| {
            v.into_iter()
                .filter(|(k, _)| k.split_once('.').is_some_and(|(p, _)| p == prefix))
                .collect::<Vars>()
        });
        let names: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, a)| a.importers.contains_key(prefix))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let Some(a) = self.apps.get_mut(&name) else {
                continue;
            };
            let mut changed = BTreeSet::new();
            if let Some(m) = a.exporters.get_mut(prefix) {
                if m.remove(source).is_some() {
                    changed.insert(prefix.to_string());
                }
            }
            if let Some(v) = vars.as_ref().filter(|v| !v.is_empty()) {
                a.exporters
                    .entry(prefix.to_string())
                    .or_default()
                    .insert(source.to_string(), v.clone());
                changed.insert(prefix.to_string());
            }
            self.mark_importers(&name, changed);
        }
    }

    /// The prefixes this node's applications import as `external`.
    pub fn external_import_prefixes(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for a in self.apps.values() {
            for view in &a.resolved.views {
                out.extend(
                    view.imports
                        .values()
                        .filter(|i| i.external)
                        .map(|i| i.prefix().to_string()),
                );
            }
        }
        out
    }

    /// An instance's external exports, when its application has some and it exports
    /// them now: (prefix, alias → value).
    pub fn external_exports_of(
        &self,
        app: &str,
        path: &str,
        ip: &str,
    ) -> Option<(String, BTreeMap<String, String>)> {
        let a = self.apps.get(app)?;
        let prefix = a.exports_prefix.clone()?;
        let exports = a.exports(path, ip);
        let vars: BTreeMap<String, String> = a
            .external_exports
            .iter()
            .filter_map(|(var, alias)| Some((alias.clone(), exports.get(var)?.clone())))
            .collect();
        (!vars.is_empty()).then_some((prefix, vars))
    }
}
