//! What an application offers an operator beyond its instances' states: which
//! components may be created where, its commands files, and, per instance, whether
//! each of its imports is satisfied (Roboconf's `diagnose-application`). Read-only
//! views of the core's state, answered the same on every node.

use super::Core;
use crate::api::{ComponentView, Dependency, Diagnosis};

impl Core {
    /// The components of an application with the components their instances may hold
    /// (`None`: no such application). Roots come first, under the name `""`.
    pub fn component_views(&self, app: &str) -> Option<Vec<ComponentView>> {
        let a = self.apps.get(app)?;
        let graph = &a.graph;
        let names = |set: &mut dyn Iterator<Item = usize>| -> Vec<String> {
            let mut v: Vec<String> = set.map(|c| graph.components[c].name.clone()).collect();
            v.sort();
            v
        };
        let roots = names(
            &mut (0..graph.components.len()).filter(|c| a.resolved.views[*c].ancestors.is_empty()),
        );
        let mut out = vec![ComponentView {
            name: String::new(),
            installer: None,
            children: roots,
        }];
        for (c, comp) in graph.components.iter().enumerate() {
            out.push(ComponentView {
                name: comp.name.clone(),
                installer: comp.installer.clone(),
                children: names(&mut a.resolved.views[c].children.iter().copied()),
            });
        }
        Some(out)
    }

    /// The names of an application's commands files.
    pub fn command_names(&self, app: &str) -> Option<Vec<String>> {
        let a = self.apps.get(app)?;
        Some(a.commands.iter().map(|(n, _)| n.clone()).collect())
    }

    /// Each instance's imports, by prefix: optional or not, and whether an exporter
    /// that is up satisfies it now.
    pub fn diagnose(&self, app: &str) -> Option<Vec<Diagnosis>> {
        let a = self.apps.get(app)?;
        let states: std::collections::BTreeMap<String, crate::api::State> = self
            .instance_views(a)
            .into_iter()
            .map(|v| (v.path, v.state))
            .collect();
        Some(
            a.insts
                .iter()
                .map(|(path, inst)| {
                    let view = &a.resolved.views[inst.comp];
                    let dependencies = view
                        .import_prefixes
                        .iter()
                        .map(|prefix| Dependency {
                            prefix: prefix.clone(),
                            optional: !view.mandatory_prefixes.contains(prefix),
                            resolved: a
                                .exporters
                                .get(prefix)
                                .is_some_and(|e| e.keys().any(|p| p != path)),
                        })
                        .collect();
                    Diagnosis {
                        path: path.clone(),
                        component: inst.rec.component.clone(),
                        state: states
                            .get(path)
                            .copied()
                            .unwrap_or(crate::api::State::NotDeployed),
                        dependencies,
                    }
                })
                .collect(),
        )
    }
}
