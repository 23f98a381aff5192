//! One application inside the core: its graph (resolved once), its instances keyed by
//! path (parents sort before their children), the index of exporters that are up by
//! variable prefix, and who imports which prefix. Everything here is derived from the
//! model and the records; nothing does I/O.

use super::records::{InstanceRecord, Vars};
use crate::api::Desired;
use roboconf_model::app::Application;
use roboconf_model::graph::{split_var, Graph};
use roboconf_model::resolve::{exports_of, Resolved};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// An application handed to the core (read from disk by the runtime).
#[derive(Debug, Clone)]
pub struct LoadedApp {
    pub name: String,
    pub version: String,
    /// Where the project's copy lives (recipes are copied from `bundle/graph/<Comp>`).
    pub bundle: PathBuf,
    /// The content hash of the project's bundle (empty when unknown).
    pub hash: String,
    pub model: Application,
}

/// An instance and the indices the core keeps for it.
#[derive(Debug, Clone)]
pub struct Inst {
    pub rec: InstanceRecord,
    /// Index of its component in the graph.
    pub comp: usize,
    pub parent: Option<String>,
    pub children: BTreeSet<String>,
    /// The run in progress, if any.
    pub running: Option<u64>,
}

/// An application's live state.
#[derive(Debug)]
pub struct AppState {
    pub name: String,
    pub version: String,
    pub bundle: PathBuf,
    pub hash: String,
    pub graph: Graph,
    pub resolved: Resolved,
    pub insts: BTreeMap<String, Inst>,
    /// Started instances' exports: prefix → exporter path → variables of that prefix.
    pub exporters: BTreeMap<String, BTreeMap<String, Vars>>,
    /// Prefix → instances whose component imports it.
    pub importers: BTreeMap<String, BTreeSet<String>>,
    /// The target files of its `target` components (the coordinator launches with them).
    pub targets: Vec<roboconf_model::targets::TargetDef>,
    /// The commands files, by name, and the autonomic rules.
    pub commands: Vec<(String, roboconf_model::commands::Commands)>,
    pub rules: crate::autonomic::Rules,
    /// The probes of each component (`probes/<Component>.measures`).
    pub probes: BTreeMap<String, Vec<roboconf_model::probes::Probe>>,
    /// Roboconf's external exports: the descriptor's `exports-prefix` and its
    /// `exports` (`Comp.var` → alias), seen by other applications as `<prefix>.<alias>`.
    pub exports_prefix: Option<String>,
    pub external_exports: BTreeMap<String, String>,
}

/// The root (machine) instance of a path: `/vm/app/web` → `/vm`.
pub fn root_path(path: &str) -> String {
    path.split('/')
        .nth(1)
        .map(|r| format!("/{r}"))
        .unwrap_or_default()
}

/// The parent path of `/a/b` is `/a`; a root has none.
pub fn parent_path(path: &str) -> Option<String> {
    let i = path.rfind('/')?;
    (i > 0).then(|| path[..i].to_string())
}

impl AppState {
    pub fn new(loaded: LoadedApp) -> AppState {
        let graph = loaded.model.graph.clone().unwrap_or_default();
        let resolved = if loaded.model.graph.is_some() {
            loaded.model.resolved.clone()
        } else {
            Resolved::new(&graph)
        };
        AppState {
            name: loaded.name,
            version: loaded.version,
            bundle: loaded.bundle,
            hash: loaded.hash,
            graph,
            resolved,
            insts: BTreeMap::new(),
            exporters: BTreeMap::new(),
            importers: BTreeMap::new(),
            targets: loaded.model.targets.clone(),
            commands: loaded.model.commands.clone(),
            rules: crate::autonomic::Rules::new(loaded.model.rules.clone()),
            probes: loaded.model.probes.iter().cloned().collect(),
            exports_prefix: loaded
                .model
                .descriptor
                .as_ref()
                .and_then(|d| d.exports_prefix.clone())
                .filter(|p| !p.trim().is_empty()),
            external_exports: loaded
                .model
                .descriptor
                .as_ref()
                .map(|d| d.external_exports.clone())
                .unwrap_or_default(),
        }
    }

    /// Fresh records for the instances declared by the project's instances files.
    pub fn declared_instances(&self, model: &Application) -> Vec<InstanceRecord> {
        let set = &model.instances;
        set.hierarchical()
            .into_iter()
            .filter_map(|i| {
                let inst = &set.instances[i];
                let c = inst.component?;
                Some(InstanceRecord {
                    overrides: inst.overrides.clone(),
                    ..InstanceRecord::new(
                        &self.name,
                        &set.path(i),
                        &inst.name,
                        &self.graph.components[c].name,
                        Desired::NotDeployed,
                    )
                })
            })
            .collect()
    }

    /// Adds an instance (its parent must be there already). Returns false when its
    /// component is unknown.
    pub fn insert(&mut self, rec: InstanceRecord) -> bool {
        let Some(comp) = self.graph.component(&rec.component) else {
            return false;
        };
        let parent = parent_path(&rec.path);
        if let Some(p) = parent.as_ref().and_then(|p| self.insts.get_mut(p)) {
            p.children.insert(rec.path.clone());
        }
        for prefix in &self.resolved.views[comp].import_prefixes {
            self.importers
                .entry(prefix.clone())
                .or_default()
                .insert(rec.path.clone());
        }
        let path = rec.path.clone();
        self.insts.insert(
            path,
            Inst {
                rec,
                comp,
                parent,
                children: BTreeSet::new(),
                running: None,
            },
        );
        true
    }

    /// Removes an instance (and forgets its exports).
    pub fn remove(&mut self, path: &str) -> Option<Inst> {
        let inst = self.insts.remove(path)?;
        if let Some(p) = inst.parent.as_ref().and_then(|p| self.insts.get_mut(p)) {
            p.children.remove(path);
        }
        for set in self.importers.values_mut() {
            set.remove(path);
        }
        self.withdraw(path);
        Some(inst)
    }

    /// The random variables of the component, by local name.
    pub fn random_vars(&self, comp: usize) -> BTreeSet<String> {
        self.resolved.views[comp]
            .random
            .iter()
            .map(|k| split_var(k).1.to_string())
            .collect()
    }

    /// The instance's exports with their final values (`ip` from the agent, random ports).
    pub fn exports(&self, path: &str, ip: &str) -> Vars {
        let Some(inst) = self.insts.get(path) else {
            return Vars::new();
        };
        let mut overrides = inst.rec.overrides.clone();
        for (var, port) in &inst.rec.ports {
            if !overrides.iter().any(|(k, _)| k == var) {
                overrides.push((var.clone(), port.to_string()));
            }
        }
        let raw = exports_of(
            &self.graph,
            &self.resolved,
            inst.comp,
            &inst.rec.name,
            path,
            &overrides,
            Some(ip),
        );
        raw.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    }

    /// Publishes the exports of a started instance. Returns the prefixes that changed.
    pub fn publish(&mut self, path: &str, ip: &str) -> BTreeSet<String> {
        let exports = self.exports(path, ip);
        self.publish_vars(path, exports)
    }

    /// Publishes given variables for `path` (an instance run here or elsewhere).
    pub fn publish_vars(&mut self, path: &str, exports: Vars) -> BTreeSet<String> {
        let mut by_prefix: BTreeMap<String, Vars> = BTreeMap::new();
        for (k, v) in exports {
            by_prefix
                .entry(split_var(&k).0.to_string())
                .or_default()
                .insert(k, v);
        }
        let mut changed = BTreeSet::new();
        for (prefix, vars) in by_prefix {
            let slot = self.exporters.entry(prefix.clone()).or_default();
            if slot.get(path) != Some(&vars) {
                slot.insert(path.to_string(), vars);
                changed.insert(prefix);
            }
        }
        changed
    }

    /// Withdraws an instance's exports. Returns the prefixes that changed.
    pub fn withdraw(&mut self, path: &str) -> BTreeSet<String> {
        let mut changed = BTreeSet::new();
        for (prefix, m) in self.exporters.iter_mut() {
            if m.remove(path).is_some() {
                changed.insert(prefix.clone());
            }
        }
        changed
    }

    /// What `path` imports now from the exporters that are up: exporter path → the
    /// variables it imports from it, and the mandatory prefixes nobody satisfies.
    pub fn current_imports(&self, path: &str) -> (BTreeMap<String, (String, Vars)>, Vec<String>) {
        let Some(inst) = self.insts.get(path) else {
            return (BTreeMap::new(), Vec::new());
        };
        let view = &self.resolved.views[inst.comp];
        let mut out: BTreeMap<String, (String, Vars)> = BTreeMap::new();
        let mut missing = Vec::new();
        for prefix in &view.import_prefixes {
            let wanted: Vec<_> = view
                .imports
                .values()
                .filter(|i| i.prefix() == prefix)
                .collect();
            let mut found = false;
            if let Some(exps) = self.exporters.get(prefix) {
                for (exporter, vars) in exps.iter().filter(|(p, _)| p.as_str() != path) {
                    let mut got = Vars::new();
                    for w in &wanted {
                        if w.is_wildcard() {
                            got.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
                        } else if let Some(v) = vars.get(&w.name) {
                            got.insert(w.name.clone(), v.clone());
                        }
                    }
                    if !got.is_empty() {
                        found = true;
                        let comp = self
                            .insts
                            .get(exporter)
                            .map(|e| self.graph.components[e.comp].name.clone())
                            .unwrap_or_default();
                        let slot = out
                            .entry(exporter.clone())
                            .or_insert_with(|| (comp, Vars::new()));
                        slot.1.extend(got);
                    }
                }
            }
            if !found && view.mandatory_prefixes.contains(prefix) {
                missing.push(prefix.clone());
            }
        }
        (out, missing)
    }
}
