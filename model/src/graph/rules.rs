//! Validation of a built graph (Roboconf's RM_ codes for components and facets): names,
//! installers (a root component must use `target`), exported variables and random ports,
//! imports of one's own exports, cycles in extension and containment, imports that no
//! component exports (case-sensitive, wildcards included), and orphan facets. A finding
//! about one property or item (an import, an exported variable, the installer, `extends`)
//! is reported where that is written; a finding about the whole type, at its block.

use super::{split_var, Graph, Loc};
use crate::diag::{Code, Diagnostic};
use crate::dsl::checks::{is_import_pattern, EXTENDS, INSTALLER};
use crate::dsl::text::{is_blank, is_flex_id, is_strict_id};
use std::collections::{BTreeMap, BTreeSet};

/// What the validation may assume.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    /// True for a whole application: then the graph must have a root component.
    pub whole_application: bool,
}

fn diag(code: Code, at: &Loc, msg: String) -> Diagnostic {
    Diagnostic::new(code, &at.file, at.line, at.col, msg)
}

/// Validates the whole graph.
pub fn validate_graph(g: &Graph, scope: Scope) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let roots: Vec<usize> = (0..g.components.len()).filter(|&c| g.is_root(c)).collect();
    if roots.is_empty() && scope.whole_application {
        let at = g
            .components
            .first()
            .map(|c| c.loc.clone())
            .or_else(|| g.facets.first().map(|f| f.loc.clone()))
            .unwrap_or_default();
        out.push(diag(
            Code::RM_NO_ROOT_COMPONENT,
            &at,
            "the graph has no root component (one that nothing lists as a child)".into(),
        ));
    }
    let on_cycle = containment_cycles(g);
    // Imported variable -> the importers, with where each import is written.
    let mut imported: BTreeMap<String, Vec<(usize, Loc)>> = BTreeMap::new();
    let mut exported: BTreeSet<String> = BTreeSet::new();
    for c in 0..g.components.len() {
        validate_component(g, c, roots.contains(&c), on_cycle.get(&c), &mut out);
        for f in g.all_facets(c) {
            validate_facet(g, f, &mut out);
        }
        for (name, imp) in g.all_imports(c) {
            if imp.external {
                continue;
            }
            imported.entry(name).or_default().push((c, imp.loc));
        }
        for name in g.component_exports(c).into_keys() {
            let prefix = split_var(&name).0.to_string();
            exported.insert(name);
            exported.insert(format!("{prefix}.*"));
        }
    }
    let mut facet_vars = BTreeSet::new();
    for (i, f) in g.facets.iter().enumerate() {
        facet_vars.extend(g.facet_exports(i).into_keys());
        facet_vars.insert(format!("{}.*", f.name));
    }
    for (name, importers) in &imported {
        if exported.contains(name) {
            continue;
        }
        let code = if facet_vars.contains(name) {
            Code::RM_UNRESOLVABLE_FACET_VARIABLE
        } else {
            Code::RM_UNRESOLVABLE_VARIABLE
        };
        for (c, at) in importers {
            let comp = &g.components[*c];
            let msg = if code == Code::RM_UNRESOLVABLE_FACET_VARIABLE {
                format!(
                    "`{}` imports `{name}`, but no component has the facet that exports it",
                    comp.name
                )
            } else {
                format!("`{}` imports `{name}`, which no component or facet exports (names are case-sensitive)", comp.name)
            };
            out.push(diag(code, at, msg));
        }
    }
    for (i, f) in g.facets.iter().enumerate() {
        if !g.facet_components(i).is_empty() {
            continue;
        }
        if f.children.is_empty() {
            out.push(diag(
                Code::RM_ORPHAN_FACET,
                &f.loc,
                format!("the facet `{}` is used by no component", f.name),
            ));
        } else {
            out.push(diag(
                Code::RM_ORPHAN_FACET_WITH_CHILDREN,
                &f.loc,
                format!(
                    "the facet `{}` has children but is used by no component",
                    f.name
                ),
            ));
        }
        for t in &f.children {
            if let super::TypeRef::Component(cc) = t {
                let comp = &g.components[*cc];
                out.push(diag(
                    Code::RM_UNREACHABLE_COMPONENT,
                    &comp.loc,
                    format!("`{}` can never be instantiated: its parent is the facet `{}`, which no component uses", comp.name, f.name),
                ));
            }
        }
    }
    out
}

/// The name of a component or facet (`kind`): not blank, a flexible id, no dot.
/// `codes` are the empty-name and invalid-name codes of that kind.
fn check_type_name(
    kind: &str,
    name: &str,
    at: &Loc,
    [empty, invalid]: [Code; 2],
    out: &mut Vec<Diagnostic>,
) {
    if is_blank(name) {
        out.push(diag(empty, at, format!("a {kind} has an empty name")));
    } else if !is_flex_id(name) {
        out.push(diag(invalid, at, format!("invalid {kind} name `{name}`")));
    } else if name.contains('.') {
        out.push(diag(
            Code::RM_DOT_IS_NOT_ALLOWED,
            at,
            format!("a {kind} name cannot contain a dot: `{name}`"),
        ));
    }
}

/// The name of a variable that `owner` exports: not blank, a strict id.
fn check_export_name(owner: &str, var: &str, at: &Loc, out: &mut Vec<Diagnostic>) {
    if is_blank(var) {
        out.push(diag(
            Code::RM_EMPTY_VARIABLE_NAME,
            at,
            format!("`{owner}` exports a variable with no name"),
        ));
    } else if !is_strict_id(var) {
        out.push(diag(
            Code::RM_INVALID_VARIABLE_NAME,
            at,
            format!("`{owner}` exports an invalid variable name `{var}`"),
        ));
    }
}

fn validate_component(
    g: &Graph,
    c: usize,
    root: bool,
    cycle: Option<&String>,
    out: &mut Vec<Diagnostic>,
) {
    let comp = &g.components[c];
    let at = &comp.loc;
    let name = &comp.name;
    // The installer's own declaration; an inherited one is reported at the block.
    let installer_at = comp
        .installer
        .as_ref()
        .and(comp.places.property(INSTALLER))
        .unwrap_or(at);
    check_type_name(
        "component",
        name,
        at,
        [
            Code::RM_EMPTY_COMPONENT_NAME,
            Code::RM_INVALID_COMPONENT_NAME,
        ],
        out,
    );
    match g.installer(c) {
        None => out.push(diag(Code::RM_EMPTY_COMPONENT_INSTALLER, at, format!("the component `{name}` has no installer, neither its own nor inherited"))),
        Some(i) if is_blank(i) => out.push(diag(Code::RM_EMPTY_COMPONENT_INSTALLER, installer_at, format!("the component `{name}` has an empty installer"))),
        Some(i) if !is_flex_id(i) => out.push(diag(Code::RM_INVALID_COMPONENT_INSTALLER, installer_at, format!("invalid installer `{i}` for `{name}`"))),
        Some(i) if root && i != "target" => out.push(diag(
            Code::RM_ROOT_INSTALLER_MUST_BE_TARGET,
            at,
            format!("`{name}` is a root component (a machine), so its installer must be `target`, not `{i}`"),
        )),
        Some(_) => {}
    }
    for v in &comp.exports {
        let var_at = &at.at(v.span);
        check_export_name(name, &v.name, var_at, out);
        if let Some(kind) = &v.random {
            if !kind.eq_ignore_ascii_case("port") {
                out.push(diag(
                    Code::RM_INVALID_RANDOM_KIND,
                    var_at,
                    format!(
                        "unsupported random kind `{kind}` for `{}` (only `random[port]` exists)",
                        v.name
                    ),
                ));
            }
            if v.value.is_some() {
                out.push(diag(
                    Code::RM_NO_VALUE_FOR_RANDOM,
                    var_at,
                    format!("the random variable `{}` cannot also have a value", v.name),
                ));
            }
        }
    }
    let mut all_exported: BTreeSet<String> = g.component_exports(c).into_keys().collect();
    for s in g.extended_chain(c) {
        all_exported.insert(format!("{}.*", g.components[s].name));
    }
    for f in g.all_facets(c) {
        all_exported.insert(format!("{}.*", g.facets[f].name));
    }
    for (vname, imp) in g.all_imports(c) {
        if is_blank(&vname) {
            out.push(diag(
                Code::RM_EMPTY_VARIABLE_NAME,
                &imp.loc,
                format!("`{name}` imports a variable with no name"),
            ));
        } else if !is_import_pattern(&vname) {
            out.push(diag(
                Code::RM_INVALID_VARIABLE_NAME,
                &imp.loc,
                format!("`{name}` imports an invalid variable name `{vname}`"),
            ));
        }
        if !imp.optional && all_exported.contains(&vname) {
            out.push(diag(
                Code::RM_COMPONENT_IMPORTS_EXPORTS,
                &imp.loc,
                format!("`{name}` imports `{vname}`, which it exports itself: mark the import `(optional)`"),
            ));
        }
    }
    let mut cur = comp.extends;
    let mut steps = 0;
    while let Some(e) = cur {
        if e == c {
            out.push(diag(
                Code::RM_CYCLE_IN_COMPONENTS_INHERITANCE,
                comp.places.property(EXTENDS).unwrap_or(at),
                format!("`{name}` extends itself: {name} -> ... -> {name}"),
            ));
            break;
        }
        steps += 1;
        if steps > g.components.len() {
            break;
        }
        cur = g.components[e].extends;
    }
    if let Some(path) = cycle {
        out.push(diag(
            Code::RM_CYCLE_IN_COMPONENTS,
            at,
            format!("containment cycle: {path}"),
        ));
    }
}

fn validate_facet(g: &Graph, f: usize, out: &mut Vec<Diagnostic>) {
    let facet = &g.facets[f];
    let at = &facet.loc;
    let name = &facet.name;
    check_type_name(
        "facet",
        name,
        at,
        [Code::RM_EMPTY_FACET_NAME, Code::RM_INVALID_FACET_NAME],
        out,
    );
    for v in &facet.exports {
        check_export_name(name, &v.name, &at.at(v.span), out);
    }
    if g.all_extended_facets(f).contains(&f) {
        // Reported at the first extended facet that leads back to this one.
        let back = facet
            .extends
            .iter()
            .find(|&&e| e == f || g.all_extended_facets(e).contains(&f));
        let cycle_at = back
            .and_then(|&e| facet.places.item(EXTENDS, &g.facets[e].name))
            .unwrap_or(at);
        out.push(diag(
            Code::RM_CYCLE_IN_FACETS_INHERITANCE,
            cycle_at,
            format!("the facet `{name}` extends itself: {name} -> ... -> {name}"),
        ));
    }
}

/// For each component that lies on a containment cycle, the cycle as text
/// (`A -> B -> A`). Uses the possible-children relation (facets and extension included).
fn containment_cycles(g: &Graph) -> BTreeMap<usize, String> {
    let n = g.components.len();
    let children: Vec<Vec<usize>> = (0..n)
        .map(|c| g.all_children(c).into_iter().collect())
        .collect();
    let mut out = BTreeMap::new();
    for start in 0..n {
        // Breadth-first search for a path back to `start`.
        let mut prev: Vec<Option<usize>> = vec![None; n];
        let mut seen = vec![false; n];
        let mut queue = std::collections::VecDeque::new();
        for &ch in &children[start] {
            if !seen[ch] {
                seen[ch] = true;
                prev[ch] = Some(start);
                queue.push_back(ch);
            }
        }
        while let Some(x) = queue.pop_front() {
            if x == start {
                let mut path = vec![start];
                let mut cur = prev[start];
                while let Some(p) = cur {
                    path.push(p);
                    if p == start {
                        break;
                    }
                    cur = prev[p];
                }
                path.reverse();
                let text: Vec<&str> = path
                    .iter()
                    .map(|&i| g.components[i].name.as_str())
                    .collect();
                out.insert(start, text.join(" -> "));
                break;
            }
            for &ch in &children[x] {
                if !seen[ch] {
                    seen[ch] = true;
                    prev[ch] = Some(x);
                    queue.push_back(ch);
                }
            }
        }
    }
    out
}
