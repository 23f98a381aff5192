//! Resolution into the runtime model, as pure functions the agent uses: per component,
//! everything inheritance decides (all exports with default values, imports, possible
//! parents and children); per instance, its final exports (defaults, overrides, the
//! machine's IP, `$(ROBOCONF_...)` placeholders); and the matching of imports: given the
//! exporters that are up, which of them satisfy an instance's imports and whether all its
//! mandatory imports are met.

use crate::graph::{inherit::Exports, split_var, Graph, ImportDecl};
use crate::instances::InstanceSet;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What inheritance says about one component, computed once.
#[derive(Debug, Clone, Default)]
pub struct ComponentView {
    pub exports: Exports,
    /// Local variable name → the full names it may stand for.
    pub local_names: HashMap<String, BTreeSet<String>>,
    /// Full names of variables declared `random[port]`.
    pub random: BTreeSet<String>,
    pub imports: BTreeMap<String, ImportDecl>,
    pub ancestors: BTreeSet<usize>,
    pub children: BTreeSet<usize>,
    /// Prefixes (component or facet names) of the imports.
    pub import_prefixes: BTreeSet<String>,
    /// Prefixes with at least one mandatory import.
    pub mandatory_prefixes: BTreeSet<String>,
}

/// Views of every component of a graph.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub views: Vec<ComponentView>,
}

impl Resolved {
    pub fn new(g: &Graph) -> Resolved {
        let views = (0..g.components.len()).map(|c| view(g, c)).collect();
        Resolved { views }
    }
}

fn view(g: &Graph, c: usize) -> ComponentView {
    let exports = g.component_exports(c);
    let mut local_names: HashMap<String, BTreeSet<String>> = HashMap::new();
    for k in exports.keys() {
        local_names
            .entry(split_var(k).1.to_string())
            .or_default()
            .insert(k.clone());
    }
    let mut random_locals = BTreeSet::new();
    for x in g.extended_chain(c) {
        random_locals.extend(
            g.components[x]
                .exports
                .iter()
                .filter(|v| v.random.is_some())
                .map(|v| split_var(&v.name).1.to_string()),
        );
    }
    for f in g.all_facets(c) {
        random_locals.extend(
            g.facets[f]
                .exports
                .iter()
                .filter(|v| v.random.is_some())
                .map(|v| split_var(&v.name).1.to_string()),
        );
    }
    let random = exports
        .keys()
        .filter(|k| random_locals.contains(split_var(k).1))
        .cloned()
        .collect();
    let imports = g.all_imports(c);
    let import_prefixes = imports.values().map(|i| i.prefix().to_string()).collect();
    let mandatory_prefixes = imports
        .values()
        .filter(|i| !i.optional)
        .map(|i| i.prefix().to_string())
        .collect();
    ComponentView {
        exports,
        local_names,
        random,
        imports,
        ancestors: g.all_ancestors(c),
        children: g.all_children(c),
        import_prefixes,
        mandatory_prefixes,
    }
}

/// `/vm 1/app` → `vm_1_app`: the path without its leading `/`, every non-word character
/// replaced by `_`.
pub fn clean_path(path: &str) -> String {
    path.strip_prefix('/')
        .unwrap_or(path)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `/vm 1/app` → `app_vm_1`: segments reversed, then cleaned.
pub fn clean_reversed_path(path: &str) -> String {
    let segs: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let reversed: Vec<&str> = segs.into_iter().rev().collect();
    clean_path(&reversed.join("/"))
}

/// The final exports of instance `i`: the component's (with defaults), then the
/// instance's overrides (a bare name overrides every inherited variable of that local
/// name), then `ip` set from `ip` when given, then `$(ROBOCONF_...)` placeholders.
pub fn instance_exports(
    g: &Graph,
    r: &Resolved,
    set: &InstanceSet,
    i: usize,
    ip: Option<&str>,
) -> BTreeMap<String, Option<String>> {
    let inst = &set.instances[i];
    let Some(c) = inst.component else {
        return BTreeMap::new();
    };
    exports_of(g, r, c, &inst.name, &set.path(i), &inst.overrides, ip)
}

/// The same for an instance given by its parts (component, name, path, overrides).
pub fn exports_of(
    g: &Graph,
    r: &Resolved,
    c: usize,
    name: &str,
    path: &str,
    overrides: &[(String, String)],
    ip: Option<&str>,
) -> BTreeMap<String, Option<String>> {
    let view = &r.views[c];
    let mut result = view.exports.clone();
    for (k, v) in overrides {
        match view.local_names.get(k) {
            None => {
                result.insert(k.clone(), Some(v.clone()));
            }
            Some(full) if full.len() == 1 => {
                if let Some(f) = full.iter().next() {
                    result.insert(f.clone(), Some(v.clone()));
                }
            }
            Some(full) => {
                result.insert(k.clone(), Some(v.clone()));
                for f in full {
                    result.insert(f.clone(), Some(v.clone()));
                }
            }
        }
    }
    if let Some(ip) = ip {
        for (k, v) in result.iter_mut() {
            if split_var(k).1.eq_ignore_ascii_case("ip") {
                *v = Some(ip.to_string());
            }
        }
    }
    let refs = [
        ("ROBOCONF_INSTANCE_NAME", name.to_string()),
        ("ROBOCONF_INSTANCE_PATH", path.to_string()),
        ("ROBOCONF_COMPONENT_NAME", g.components[c].name.clone()),
        ("ROBOCONF_CLEAN_INSTANCE_PATH", clean_path(path)),
        (
            "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH",
            clean_reversed_path(path),
        ),
    ];
    for v in result.values_mut().flatten() {
        if v.contains("$(") {
            for (k, val) in &refs {
                *v = v.replace(&format!("$({k})"), val);
            }
        }
    }
    result
}

/// An instance that is up and exports variables (full names → values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exporter {
    pub path: String,
    pub component: String,
    pub exports: BTreeMap<String, String>,
}

/// One exporter as seen by one importer: only the variables it imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub path: String,
    pub component: String,
    pub variables: BTreeMap<String, String>,
}

/// What an importer gets from the exporters that are up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imports {
    /// Per imported prefix (component or facet name), the matching exporters.
    pub by_prefix: BTreeMap<String, Vec<Import>>,
    /// Mandatory prefixes no exporter satisfies.
    pub missing: Vec<String>,
}

impl Imports {
    /// True when every mandatory import has at least one exporter.
    pub fn satisfied(&self) -> bool {
        self.missing.is_empty()
    }
}

/// Matches an importer's imports against the exporters that are up. An instance never
/// imports from itself. An exporter satisfies a prefix when it exports at least one of
/// the variables imported under that prefix (any variable of it for a wildcard).
pub fn match_imports(view: &ComponentView, importer_path: &str, exporters: &[Exporter]) -> Imports {
    let mut out = Imports::default();
    for prefix in &view.import_prefixes {
        let wanted: Vec<&ImportDecl> = view
            .imports
            .values()
            .filter(|i| i.prefix() == prefix)
            .collect();
        let mut matches = Vec::new();
        for e in exporters.iter().filter(|e| e.path != importer_path) {
            let mut vars = BTreeMap::new();
            for w in &wanted {
                if w.is_wildcard() {
                    for (k, v) in &e.exports {
                        if split_var(k).0 == prefix {
                            vars.insert(k.clone(), v.clone());
                        }
                    }
                } else if let Some(v) = e.exports.get(&w.name) {
                    vars.insert(w.name.clone(), v.clone());
                }
            }
            if !vars.is_empty() {
                matches.push(Import {
                    path: e.path.clone(),
                    component: e.component.clone(),
                    variables: vars,
                });
            }
        }
        if matches.is_empty() {
            if view.mandatory_prefixes.contains(prefix) {
                out.missing.push(prefix.clone());
            }
        } else {
            out.by_prefix.insert(prefix.clone(), matches);
        }
    }
    out
}
