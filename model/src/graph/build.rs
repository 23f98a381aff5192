//! Builds a graph from an entry `.graph` file and the files it imports, as Roboconf's
//! graph converter does: every file is parsed and checked (P_ and PM_ codes), imports are
//! followed relative to the graph folder, then, if nothing so far is an error, names are
//! checked for collisions and duplicates, and references (extends, facets, children) are
//! resolved (CO_ codes). Every finding of a stage is reported; a stage with errors stops
//! the later ones, as in Roboconf, so one mistake does not cascade into many. A reference
//! that matches nothing is reported where it is written (Roboconf: at the block).

use super::{Component, Facet, Graph, ImportDecl, Loc, Places, TypeRef};
use crate::diag::{has_errors, Code, Diagnostic};
use crate::dsl::checks::{
    holder_items, split_import, CHILDREN, EXPORTS, EXTENDS, FACETS, IMPORTS, INSTALLER,
};
use crate::dsl::exports::{parse_exports, ExportDecl};
use crate::dsl::walk::{walk, Expect};
use crate::dsl::{FileDef, Holder, HolderKind, Limits, Span};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Most components and facets one application may declare.
pub const MAX_TYPES: usize = 10_000;
/// Longest chain of `extends` between components, and most facets one facet may extend
/// directly or not. Real graphs stay far below; hostile ones would cost quadratic time.
pub const MAX_INHERITANCE: usize = 64;

/// The result of building a graph.
#[derive(Debug, Clone, Default)]
pub struct GraphBuild {
    pub graph: Graph,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file read or looked for, entry first.
    pub files: Vec<PathBuf>,
    /// True when all references were resolved without error.
    pub complete: bool,
}

/// Builds the graph of `entry`, resolving imports against `root` (the `graph/` folder).
pub fn build_graph(entry: &Path, root: &Path, limits: Limits) -> GraphBuild {
    build_graph_from_defs(entry, root, &mut |p| {
        p.is_file().then(|| crate::dsl::parse_file(p, limits))
    })
}

/// Same as [`build_graph`], reading files through `load` (`None`: no such file).
pub fn build_graph_from_defs(
    entry: &Path,
    root: &Path,
    load: &mut dyn FnMut(&Path) -> Option<FileDef>,
) -> GraphBuild {
    let mut b = Builder::default();
    let (files, diags) = walk(entry, root, Expect::Graph, load, &mut |file, def| {
        for h in def.holders() {
            b.add(file, h, h.kind == HolderKind::Component);
        }
    });
    b.files = files;
    b.diags = diags;
    b.finish()
}

/// What is known of one name while files are read.
#[derive(Default)]
struct Pending {
    decls: Vec<Loc>,
    installer: Option<String>,
    exports: Vec<ExportDecl>,
    imports: Vec<ImportDecl>,
    extends: Vec<String>,
    facets: Vec<String>,
    children: Vec<String>,
    places: Places,
}

impl Pending {
    /// Where `item` of `property` is written, else where the block starts.
    fn item_loc(&self, property: &str, item: &str) -> &Loc {
        self.places
            .item(property, item)
            .or_else(|| self.places.property(property))
            .unwrap_or(&self.decls[0])
    }
}

#[derive(Default)]
struct Builder {
    files: Vec<PathBuf>,
    diags: Vec<Diagnostic>,
    components: Vec<(String, Pending)>,
    facets: Vec<(String, Pending)>,
    comp_idx: HashMap<String, usize>,
    facet_idx: HashMap<String, usize>,
}

fn dedup_push(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

impl Builder {
    fn add(&mut self, file: &Path, h: &Holder, component: bool) {
        let loc = Loc {
            file: file.to_path_buf(),
            line: h.span.line,
            col: h.span.col,
        };
        let (list, idx) = if component {
            (&mut self.components, &mut self.comp_idx)
        } else {
            (&mut self.facets, &mut self.facet_idx)
        };
        if let Some(&i) = idx.get(&h.name) {
            // Only the first declaration counts; the others are reported as duplicates.
            list[i].1.decls.push(loc);
            return;
        }
        let mut p = Pending {
            decls: vec![loc.clone()],
            ..Pending::default()
        };
        for prop in h.properties() {
            p.places.add_property(
                &prop.name,
                loc.at(Span::new(prop.span.line, prop.value_col)),
            );
        }
        for prop in h.properties().filter(|p| p.name == EXPORTS) {
            let (decls, _) = parse_exports(&prop.value, file, prop.span.line, prop.value_col);
            for d in decls {
                match p.exports.iter_mut().find(|e| e.name == d.name) {
                    Some(e) => *e = d,
                    None => p.exports.push(d),
                }
            }
        }
        let add_items = |p: &mut Pending, property: &str| {
            for (item, span) in holder_items(h, property) {
                p.places.add_item(property, &item, loc.at(span));
                let names = match property {
                    CHILDREN => &mut p.children,
                    FACETS => &mut p.facets,
                    _ => &mut p.extends,
                };
                dedup_push(names, item);
            }
        };
        add_items(&mut p, CHILDREN);
        if component {
            p.installer = h.property(INSTALLER).map(|p| p.value.clone());
            for (item, span) in holder_items(h, IMPORTS) {
                let (name, optional, external) = split_import(&item);
                p.imports.retain(|i| i.name != name);
                p.imports.push(ImportDecl {
                    name,
                    optional,
                    external,
                    loc: loc.at(span),
                });
            }
            // A component extends one component: the first `extends:` value, whole.
            if let Some(prop) = h.property(EXTENDS) {
                let at = loc.at(Span::new(prop.span.line, prop.value_col));
                p.places.add_item(EXTENDS, &prop.value, at);
                p.extends.push(prop.value.clone());
            }
            add_items(&mut p, FACETS);
        } else {
            add_items(&mut p, EXTENDS);
        }
        idx.insert(h.name.clone(), list.len());
        list.push((h.name.clone(), p));
    }

    fn report_all(&mut self, decls: &[Loc], code: Code, message: &str) {
        for d in decls {
            self.diags
                .push(Diagnostic::new(code, &d.file, d.line, d.col, message));
        }
    }

    fn finish(mut self) -> GraphBuild {
        let types = self.components.len() + self.facets.len();
        if types > MAX_TYPES && !has_errors(&self.diags) {
            let at = self
                .components
                .first()
                .or(self.facets.first())
                .map(|(_, p)| p.decls[0].clone())
                .unwrap_or_default();
            self.diags.push(Diagnostic::new(
                Code::X_INPUT_TOO_LARGE,
                &at.file,
                at.line,
                at.col,
                format!("the graph declares {types} components and facets; at most {MAX_TYPES} are supported"),
            ));
        }
        let mut stage_ok = !has_errors(&self.diags);
        if stage_ok {
            for (name, p) in &self.components {
                if let Some(&f) = self.facet_idx.get(name) {
                    let msg = format!("`{name}` is the name of both a component and a facet");
                    let mut all = p.decls.clone();
                    all.extend(self.facets[f].1.decls.iter().cloned());
                    for d in all {
                        self.diags.push(Diagnostic::new(
                            Code::CO_CONFLICTING_NAME,
                            &d.file,
                            d.line,
                            d.col,
                            msg.clone(),
                        ));
                    }
                }
            }
            stage_ok = !has_errors(&self.diags);
        }
        if stage_ok {
            let dup_comps: Vec<_> = self
                .components
                .iter()
                .filter(|(_, p)| p.decls.len() > 1)
                .map(|(n, p)| (n.clone(), p.decls.clone()))
                .collect();
            for (name, decls) in dup_comps {
                self.report_all(
                    &decls,
                    Code::CO_ALREADY_DEFINED_COMPONENT,
                    &format!("the component `{name}` is defined more than once"),
                );
            }
            let dup_facets: Vec<_> = self
                .facets
                .iter()
                .filter(|(_, p)| p.decls.len() > 1)
                .map(|(n, p)| (n.clone(), p.decls.clone()))
                .collect();
            for (name, decls) in dup_facets {
                self.report_all(
                    &decls,
                    Code::CO_ALREADY_DEFINED_FACET,
                    &format!("the facet `{name}` is defined more than once"),
                );
            }
            stage_ok = !has_errors(&self.diags);
        }
        let mut components: Vec<Component> = self
            .components
            .iter()
            .map(|(name, p)| Component {
                name: name.clone(),
                loc: p.decls[0].clone(),
                installer: p.installer.clone(),
                exports: p.exports.clone(),
                imports: p.imports.clone(),
                extends: None,
                facets: Vec::new(),
                children: Vec::new(),
                places: p.places.clone(),
            })
            .collect();
        let mut facets: Vec<Facet> = self
            .facets
            .iter()
            .map(|(name, p)| Facet {
                name: name.clone(),
                loc: p.decls[0].clone(),
                exports: p.exports.clone(),
                extends: Vec::new(),
                children: Vec::new(),
                places: p.places.clone(),
            })
            .collect();
        if stage_ok {
            let mut found = Vec::new();
            for (i, (_, p)) in self.components.iter().enumerate() {
                if let Some(e) = p.extends.first().filter(|e| !crate::dsl::text::is_blank(e)) {
                    match self.comp_idx.get(e) {
                        Some(&j) => components[i].extends = Some(j),
                        None => found.push((
                            p.item_loc(EXTENDS, e),
                            Code::CO_INEXISTING_COMPONENT,
                            format!("the extended component `{e}` does not exist"),
                        )),
                    }
                }
                for f in &p.facets {
                    match self.facet_idx.get(f) {
                        Some(&j) => components[i].facets.push(j),
                        None => found.push((
                            p.item_loc(FACETS, f),
                            Code::CO_INEXISTING_FACET,
                            format!("the facet `{f}` does not exist"),
                        )),
                    }
                }
                match self.resolve_children(&p.children) {
                    Ok(ch) => components[i].children = ch,
                    Err(missing) => found.extend(missing.into_iter().map(|n| {
                        (
                            p.item_loc(CHILDREN, &n),
                            Code::CO_INEXISTING_CHILD,
                            missing_child(&n),
                        )
                    })),
                }
            }
            stage_ok = found.is_empty();
            let mut diags: Vec<Diagnostic> = found
                .into_iter()
                .map(|(at, code, m)| Diagnostic::new(code, &at.file, at.line, at.col, m))
                .collect();
            if stage_ok {
                for (i, (_, p)) in self.facets.iter().enumerate() {
                    for f in &p.extends {
                        match self.facet_idx.get(f) {
                            Some(&j) => facets[i].extends.push(j),
                            None => {
                                let at = p.item_loc(EXTENDS, f);
                                diags.push(Diagnostic::new(
                                    Code::CO_INEXISTING_FACET,
                                    &at.file,
                                    at.line,
                                    at.col,
                                    format!("the extended facet `{f}` does not exist"),
                                ))
                            }
                        }
                    }
                    match self.resolve_children(&p.children) {
                        Ok(ch) => facets[i].children = ch,
                        Err(missing) => diags.extend(missing.into_iter().map(|n| {
                            let at = p.item_loc(CHILDREN, &n);
                            Diagnostic::new(
                                Code::CO_INEXISTING_CHILD,
                                &at.file,
                                at.line,
                                at.col,
                                missing_child(&n),
                            )
                        })),
                    }
                }
                stage_ok = diags.is_empty();
            }
            self.diags.extend(diags);
        }
        let graph = Graph::new(components, facets);
        if stage_ok {
            stage_ok = check_depth(&graph, &mut self.diags);
        }
        GraphBuild {
            graph,
            diagnostics: self.diags,
            files: self.files,
            complete: stage_ok,
        }
    }

    /// Children names to types; the names that match nothing on error.
    fn resolve_children(&self, names: &[String]) -> Result<Vec<TypeRef>, Vec<String>> {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for n in names {
            if let Some(&c) = self.comp_idx.get(n) {
                out.push(TypeRef::Component(c));
            } else if let Some(&f) = self.facet_idx.get(n) {
                out.push(TypeRef::Facet(f));
            } else {
                missing.push(n.clone());
            }
        }
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }
}

fn missing_child(name: &str) -> String {
    format!("the child `{name}` is neither a component nor a facet")
}

/// Reports (once) an inheritance deeper than [`MAX_INHERITANCE`].
fn check_depth(g: &Graph, diags: &mut Vec<Diagnostic>) -> bool {
    let too_deep = |what: &str, name: &str, at: &Loc| {
        Diagnostic::new(
            Code::X_NESTING_TOO_DEEP,
            &at.file,
            at.line,
            at.col,
            format!("the {what} `{name}` inherits from more than {MAX_INHERITANCE} others"),
        )
    };
    for (i, c) in g.components.iter().enumerate() {
        if g.extended_chain_len(i, MAX_INHERITANCE + 1) > MAX_INHERITANCE {
            diags.push(too_deep("component", &c.name, &c.loc));
            return false;
        }
    }
    for (i, f) in g.facets.iter().enumerate() {
        if g.all_extended_facets(i).len() > MAX_INHERITANCE {
            diags.push(too_deep("facet", &f.name, &f.loc));
            return false;
        }
    }
    true
}
