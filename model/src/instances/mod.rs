//! Instances: what runs where. `build` reads `.instances` files against a graph (with
//! imports, nested blocks and `count:` expansion) and `rules` validates each instance
//! against the graph (parents, overridden exports, missing values). Instances live in an
//! arena; an instance's path is its names from the root, e.g. `/VM 1/Tomcat/App`.

pub mod build;
pub mod rules;

pub use build::{build_instances, build_instances_from_defs, InstancesBuild};

use crate::graph::Loc;
use std::collections::BTreeMap;

/// One instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The name exactly as written (Roboconf does not trim instance values).
    pub name: String,
    /// Index of its component in the graph; `None` when the component does not exist.
    pub component: Option<usize>,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Overridden exports (`port: 9090;`, `Tomcat.port: 9090;`), in order, unique by name.
    pub overrides: Vec<(String, String)>,
    /// `data.x: y;` and `instance-data: x = y` entries.
    pub data: BTreeMap<String, String>,
    pub channels: Vec<String>,
    /// `instance-state:` as written, if any.
    pub state: Option<String>,
    /// Where the block that declared it starts.
    pub loc: Loc,
    /// True for instances made by `count:`.
    pub inferred: bool,
}

impl Instance {
    pub fn override_value(&self, name: &str) -> Option<&str> {
        self.overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// All instances of an application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceSet {
    pub instances: Vec<Instance>,
    pub roots: Vec<usize>,
}

impl InstanceSet {
    /// The instance's path, e.g. `/VM 1/Tomcat`.
    pub fn path(&self, i: usize) -> String {
        let mut names = Vec::new();
        let mut cur = Some(i);
        while let Some(x) = cur {
            names.push(self.instances[x].name.as_str());
            cur = self.instances[x].parent;
        }
        let mut out = String::new();
        for n in names.iter().rev() {
            out.push('/');
            if !crate::dsl::text::is_blank(n) {
                out.push_str(n);
            }
        }
        out
    }

    /// The root (scoped) instance above `i` (or `i` itself).
    pub fn root_of(&self, i: usize) -> usize {
        let mut cur = i;
        while let Some(p) = self.instances[cur].parent {
            cur = p;
        }
        cur
    }

    /// Every instance, parents before children (breadth first from each root).
    pub fn hierarchical(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.roots.clone();
        let mut at = 0;
        while at < out.len() {
            let x = out[at];
            out.extend(self.instances[x].children.iter().copied());
            at += 1;
        }
        out
    }

    /// Finds an instance by path.
    pub fn find(&self, path: &str) -> Option<usize> {
        let mut level: &[usize] = &self.roots;
        let mut found = None;
        for seg in path.strip_prefix('/')?.split('/') {
            let x = *level.iter().find(|&&x| self.instances[x].name == seg)?;
            found = Some(x);
            level = &self.instances[x].children;
        }
        found
    }
}
