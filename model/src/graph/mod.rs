//! The graph: components and facets resolved from `.graph` files, with their installers,
//! exported and imported variables, children, facets and extension links, each keeping
//! where it was declared. `build` turns files into a graph (Roboconf's CO_ checks),
//! `inherit` answers the questions of inheritance (all exports of a component, its
//! possible parents and children...), and `rules` validates the result (RM_ checks).
//! Besides its block, every component and facet keeps where each of its properties and
//! of their items was written ([`Places`], the `span` of exports, the `loc` of imports),
//! so that a finding about one of them points at it.

pub mod build;
pub mod inherit;
pub mod rules;

pub use build::{build_graph, build_graph_from_defs, GraphBuild};

use crate::dsl::exports::ExportDecl;
use crate::dsl::Span;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Where a model object was declared.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    /// Another place in the same file.
    pub fn at(&self, span: Span) -> Loc {
        Loc {
            file: self.file.clone(),
            line: span.line,
            col: span.col,
        }
    }
}

/// Where the properties of a component or facet, and the items of their lists
/// (`children`, `facets`, `extends`), were written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Places {
    /// Property name → its first declaration's value.
    properties: BTreeMap<String, Loc>,
    /// (property, item) → the item's first occurrence.
    items: BTreeMap<(String, String), Loc>,
}

impl Places {
    /// Where the value of the property `name` starts (its first declaration).
    pub fn property(&self, name: &str) -> Option<&Loc> {
        self.properties.get(name)
    }

    /// Where `item` is written in the property `property` (its first occurrence).
    pub fn item(&self, property: &str, item: &str) -> Option<&Loc> {
        self.items.get(&(property.to_string(), item.to_string()))
    }

    /// Records a property's value position, unless that property was seen already.
    pub fn add_property(&mut self, name: &str, at: Loc) {
        self.properties.entry(name.to_string()).or_insert(at);
    }

    /// Records an item's position, unless that item was seen already in that property.
    pub fn add_item(&mut self, property: &str, item: &str, at: Loc) {
        self.items
            .entry((property.to_string(), item.to_string()))
            .or_insert(at);
    }
}

/// A component or a facet, by index in its graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TypeRef {
    Component(usize),
    Facet(usize),
}

/// An imported variable: `Comp.var`, `Comp.*`, with its modifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportDecl {
    pub name: String,
    pub optional: bool,
    pub external: bool,
    /// Where the item is written (in the component that declares it).
    pub loc: Loc,
}

impl ImportDecl {
    /// The component or facet prefix (`Comp` in `Comp.var`).
    pub fn prefix(&self) -> &str {
        split_var(&self.name).0
    }

    pub fn is_wildcard(&self) -> bool {
        self.name.ends_with(".*")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub name: String,
    pub loc: Loc,
    pub installer: Option<String>,
    /// Own exports as declared (bare or prefixed names).
    pub exports: Vec<ExportDecl>,
    /// Own imports, in declaration order, unique by name.
    pub imports: Vec<ImportDecl>,
    pub extends: Option<usize>,
    pub facets: Vec<usize>,
    pub children: Vec<TypeRef>,
    /// Where its properties and their items are written.
    pub places: Places,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Facet {
    pub name: String,
    pub loc: Loc,
    pub exports: Vec<ExportDecl>,
    pub extends: Vec<usize>,
    pub children: Vec<TypeRef>,
    /// Where its properties and their items are written.
    pub places: Places,
}

/// All components and facets of an application, with the reverse links precomputed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Graph {
    pub components: Vec<Component>,
    pub facets: Vec<Facet>,
    component_by_name: HashMap<String, usize>,
    facet_by_name: HashMap<String, usize>,
    /// For each type, the types that list it as a child.
    comp_parents: Vec<Vec<TypeRef>>,
    facet_parents: Vec<Vec<TypeRef>>,
    /// For each facet, the components that list it in `facets:`.
    facet_components: Vec<Vec<usize>>,
    /// Reverse of `extends`.
    comp_extending: Vec<Vec<usize>>,
    facet_extending: Vec<Vec<usize>>,
}

impl Graph {
    /// Assembles a graph and computes the reverse links.
    pub fn new(components: Vec<Component>, facets: Vec<Facet>) -> Graph {
        let mut g = Graph {
            component_by_name: components
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect(),
            facet_by_name: facets
                .iter()
                .enumerate()
                .map(|(i, f)| (f.name.clone(), i))
                .collect(),
            comp_parents: vec![Vec::new(); components.len()],
            facet_parents: vec![Vec::new(); facets.len()],
            facet_components: vec![Vec::new(); facets.len()],
            comp_extending: vec![Vec::new(); components.len()],
            facet_extending: vec![Vec::new(); facets.len()],
            components,
            facets,
        };
        let mut edges = Vec::new();
        for (i, c) in g.components.iter().enumerate() {
            edges.extend(c.children.iter().map(|&ch| (TypeRef::Component(i), ch)));
        }
        for (i, f) in g.facets.iter().enumerate() {
            edges.extend(f.children.iter().map(|&ch| (TypeRef::Facet(i), ch)));
        }
        for (parent, child) in edges {
            let list = match child {
                TypeRef::Component(c) => &mut g.comp_parents[c],
                TypeRef::Facet(f) => &mut g.facet_parents[f],
            };
            if !list.contains(&parent) {
                list.push(parent);
            }
        }
        for (i, c) in g.components.iter().enumerate() {
            for &f in &c.facets {
                g.facet_components[f].push(i);
            }
            if let Some(e) = c.extends {
                g.comp_extending[e].push(i);
            }
        }
        for (i, f) in g.facets.iter().enumerate() {
            for &e in &f.extends {
                g.facet_extending[e].push(i);
            }
        }
        g
    }

    pub fn component(&self, name: &str) -> Option<usize> {
        self.component_by_name.get(name).copied()
    }

    pub fn facet(&self, name: &str) -> Option<usize> {
        self.facet_by_name.get(name).copied()
    }

    pub fn type_name(&self, t: TypeRef) -> &str {
        match t {
            TypeRef::Component(i) => &self.components[i].name,
            TypeRef::Facet(i) => &self.facets[i].name,
        }
    }

    /// Direct parents (types listing it in `children:`).
    pub fn parents_of(&self, t: TypeRef) -> &[TypeRef] {
        match t {
            TypeRef::Component(i) => &self.comp_parents[i],
            TypeRef::Facet(i) => &self.facet_parents[i],
        }
    }

    /// Components listing this facet directly.
    pub fn facet_components(&self, f: usize) -> &[usize] {
        &self.facet_components[f]
    }

    pub fn extending_components(&self, c: usize) -> &[usize] {
        &self.comp_extending[c]
    }

    pub fn extending_facets(&self, f: usize) -> &[usize] {
        &self.facet_extending[f]
    }
}

/// Splits `Prefix.name` at the first dot (both parts trimmed); no dot gives an empty prefix.
pub fn split_var(name: &str) -> (&str, &str) {
    match name.find('.') {
        Some(i) => (name[..i].trim(), name[i + 1..].trim()),
        None => ("", name),
    }
}
