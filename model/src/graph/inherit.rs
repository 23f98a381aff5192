//! Inheritance questions on a graph, answered as Roboconf answers them: the chain of
//! extended components, all facets of a component, its possible parents and children
//! (through facets and extension), its installer, and the full set of variables it
//! exports (under its own name, its facets' names and its super-components' names) and
//! imports.

use super::{split_var, Graph, ImportDecl, TypeRef};
use std::collections::{BTreeMap, BTreeSet};

/// Exported variables: full name → default value.
pub type Exports = BTreeMap<String, Option<String>>;

impl Graph {
    /// The component, then what it extends, then what that extends... (stops on a cycle).
    pub fn extended_chain(&self, c: usize) -> Vec<usize> {
        let mut out = vec![c];
        let mut cur = self.components[c].extends;
        while let Some(e) = cur {
            if out.contains(&e) {
                break;
            }
            out.push(e);
            cur = self.components[e].extends;
        }
        out
    }

    /// Length of the extension chain of `c` (itself included), counting at most `cap`.
    pub fn extended_chain_len(&self, c: usize, cap: usize) -> usize {
        let mut n = 1;
        let mut cur = self.components[c].extends;
        while let Some(e) = cur {
            if e == c || n >= cap {
                break;
            }
            n += 1;
            cur = self.components[e].extends;
        }
        n
    }

    /// Every facet `f` extends, directly or not (contains `f` itself only on a cycle).
    pub fn all_extended_facets(&self, f: usize) -> BTreeSet<usize> {
        closure(&self.facets[f].extends, |x| &self.facets[x].extends)
    }

    pub fn all_extending_facets(&self, f: usize) -> BTreeSet<usize> {
        closure(self.extending_facets(f), |x| self.extending_facets(x))
    }

    /// Every component extending `c`, directly or not (never `c` itself).
    pub fn all_extending_components(&self, c: usize) -> BTreeSet<usize> {
        let mut out = closure(self.extending_components(c), |x| {
            self.extending_components(x)
        });
        out.remove(&c);
        out
    }

    /// All facets of a component: its own, those of the components it extends, and the
    /// facets those facets extend.
    pub fn all_facets(&self, c: usize) -> BTreeSet<usize> {
        let direct: Vec<usize> = self
            .extended_chain(c)
            .iter()
            .flat_map(|&x| self.components[x].facets.iter().copied())
            .collect();
        let mut out: BTreeSet<usize> = direct.iter().copied().collect();
        for f in direct {
            out.extend(self.all_extended_facets(f));
        }
        out
    }

    /// The components an instance of `c` may be placed under.
    pub fn all_ancestors(&self, c: usize) -> BTreeSet<usize> {
        self.ancestors_or_children(c, false)
    }

    /// The components whose instances may be placed under an instance of `c`.
    pub fn all_children(&self, c: usize) -> BTreeSet<usize> {
        self.ancestors_or_children(c, true)
    }

    /// A root component has no possible parent.
    pub fn is_root(&self, c: usize) -> bool {
        self.all_ancestors(c).is_empty()
    }

    fn ancestors_or_children(&self, c: usize, children: bool) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        for x in self.extended_chain(c) {
            let mut list: Vec<TypeRef> = Vec::new();
            let own = TypeRef::Component(x);
            if children {
                list.extend(&self.components[x].children);
            } else {
                list.extend(self.parents_of(own));
            }
            for f in self.all_facets(x) {
                if children {
                    list.extend(&self.facets[f].children);
                } else {
                    list.extend(self.parents_of(TypeRef::Facet(f)));
                }
            }
            for t in list {
                match t {
                    TypeRef::Component(cc) => {
                        out.insert(cc);
                        out.extend(self.all_extending_components(cc));
                    }
                    TypeRef::Facet(ff) => {
                        let mut fs = self.all_extending_facets(ff);
                        fs.insert(ff);
                        for g in fs {
                            for &cc in self.facet_components(g) {
                                out.insert(cc);
                                out.extend(self.all_extending_components(cc));
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The installer: the component's own, else the nearest inherited one.
    pub fn installer(&self, c: usize) -> Option<&str> {
        self.extended_chain(c)
            .into_iter()
            .find_map(|x| self.components[x].installer.as_deref())
    }

    /// All imports, inherited ones first overridden by own ones, by name.
    pub fn all_imports(&self, c: usize) -> BTreeMap<String, ImportDecl> {
        let mut out = BTreeMap::new();
        for x in self.extended_chain(c).into_iter().rev() {
            for i in &self.components[x].imports {
                out.insert(i.name.clone(), i.clone());
            }
        }
        out
    }

    /// All variables a facet exports, under the names of the facets that declare them.
    pub fn facet_exports(&self, f: usize) -> Exports {
        let mut memo: BTreeMap<usize, Exports> = BTreeMap::new();
        self.facet_exports_memo(f, &mut memo, &mut Vec::new())
    }

    fn facet_exports_memo(
        &self,
        f: usize,
        memo: &mut BTreeMap<usize, Exports>,
        stack: &mut Vec<usize>,
    ) -> Exports {
        if let Some(e) = memo.get(&f) {
            return e.clone();
        }
        if stack.contains(&f) || self.all_extended_facets(f).contains(&f) {
            return Exports::new();
        }
        stack.push(f);
        let mut local = Exports::new();
        for &e in &self.facets[f].extends {
            local.extend(self.facet_exports_memo(e, memo, stack));
        }
        stack.pop();
        let facet = &self.facets[f];
        for v in &facet.exports {
            if local.contains_key(&v.name) {
                local.insert(v.name.clone(), v.value.clone());
            } else {
                local.insert(prefixed(&facet.name, &v.name), v.value.clone());
            }
        }
        memo.insert(f, local.clone());
        local
    }

    /// All variables a component exports: its own and inherited ones, each under every
    /// name it can be imported by (`Facet.x`, `Super.x`, `Comp.x`). Computed from the
    /// farthest super-component down, each level adding its facets, its own variables
    /// and its own name (what Roboconf computes, without its repeated recursion).
    pub fn component_exports(&self, c: usize) -> Exports {
        let mut inherited = Exports::new();
        for x in self.extended_chain(c).into_iter().rev() {
            inherited = self.component_level(x, inherited);
        }
        inherited
    }

    fn component_level(&self, c: usize, inherited: Exports) -> Exports {
        let comp = &self.components[c];
        let mut result = Exports::new();
        for &f in &comp.facets {
            result.extend(self.facet_exports(f));
        }
        result.extend(inherited);
        let mut fresh = Exports::new();
        for v in &comp.exports {
            if result.contains_key(&v.name) {
                fresh.insert(v.name.clone(), v.value.clone());
            } else {
                fresh.insert(prefixed(&comp.name, &v.name), v.value.clone());
            }
            for inherited in result.keys() {
                if split_var(inherited).1 == v.name {
                    fresh.insert(inherited.clone(), v.value.clone());
                }
            }
        }
        result.extend(fresh);
        let mut renamed = Exports::new();
        for (k, v) in &result {
            let (prefix, local) = split_var(k);
            let new_key = format!("{}.{}", comp.name, local);
            if prefix != comp.name && !result.contains_key(&new_key) {
                renamed.insert(new_key, v.clone());
            }
        }
        result.extend(renamed);
        result
    }
}

/// `Type.name` unless the name already starts with `Type.`.
pub fn prefixed(type_name: &str, var: &str) -> String {
    if var.starts_with(type_name) && var[type_name.len()..].starts_with('.') {
        var.to_string()
    } else {
        format!("{type_name}.{var}")
    }
}

fn closure<'a>(start: &'a [usize], next: impl Fn(usize) -> &'a [usize]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    let mut todo: Vec<usize> = start.to_vec();
    while let Some(x) = todo.pop() {
        if out.insert(x) {
            todo.extend(next(x));
        }
    }
    out
}
