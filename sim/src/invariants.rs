//! The invariants a run is held to (DESIGN §12): watched every simulated second (an
//! importer stays started only while it can reach a started exporter), and checked once
//! faults stopped — what every live node wrote reaches every live node (§12.1), a
//! deleted record never comes back (§3), every acknowledged command's intent is what
//! every live node holds (§12.4).

use crate::cluster::Cluster;
use crate::net::Micros;
use crate::scenario::{APP, CONVERGE_WITHIN_MS};
use roboconf_core::api::{Desired, State};
use roboconf_core::mesh::replica::Origin;
use std::collections::BTreeMap;

/// How long an importer may stay started without a started exporter it can reach: the
/// slowest detection (a member never reached here: 10 s) and its stop.
const DETECTION_BOUND_US: Micros = 15_000_000;

/// The invariants watched during the run, after every simulated second.
#[derive(Default)]
pub struct Watch {
    /// Importers started without a reachable started exporter: since when.
    orphaned: BTreeMap<(usize, String), Micros>,
}

impl Watch {
    /// §12.2: no instance stays DEPLOYED_STARTED while its mandatory import has no
    /// started exporter it can reach, beyond the detection bound.
    pub fn step(&mut self, c: &Cluster) -> Vec<String> {
        let now = c.queue.now;
        // Any exporter instance (those scaled out too) on a machine the node hosts.
        let started = |j: usize| {
            c.nodes[j].up
                && c.nodes[j].node.engine().app(APP).is_some_and(|a| {
                    a.insts.iter().any(|(path, i)| {
                        i.rec.component == "Src"
                            && i.rec.state == State::DeployedStarted
                            && c.nodes[j]
                                .hosts
                                .iter()
                                .any(|(_, root)| path.starts_with(&format!("{root}/")))
                    })
                })
        };
        let exporters: Vec<usize> = (0..c.nodes.len()).filter(|&j| started(j)).collect();
        let mut now_orphaned = Vec::new();
        for (k, n) in c.nodes.iter().enumerate().filter(|(_, n)| n.up) {
            let Some(a) = n.node.engine().app(APP) else {
                continue;
            };
            for (root_app, root) in &n.hosts {
                if root_app != APP {
                    continue;
                }
                let path = format!("{root}/web");
                let running = a
                    .insts
                    .get(&path)
                    .is_some_and(|i| i.rec.state == State::DeployedStarted);
                let fed = exporters.iter().any(|&j| c.parts.connected(k, j));
                if running && !fed {
                    now_orphaned.push((k, path));
                }
            }
        }
        self.orphaned.retain(|key, _| now_orphaned.contains(key));
        let mut v = Vec::new();
        for key in now_orphaned {
            let since = *self.orphaned.entry(key.clone()).or_insert(now);
            if now - since > DETECTION_BOUND_US {
                v.push(format!(
                    "{} on n{} is started with no started exporter it can reach for {} s",
                    key.1,
                    key.0,
                    (now - since) / 1_000_000
                ));
            }
        }
        v
    }
}

/// Whether every live node holds, of each origin in `written` (node, origin, watermark
/// at the end), at least what it had written.
pub(crate) fn delivered(c: &Cluster, written: &[(usize, Origin, u64)]) -> bool {
    written.iter().all(|(k, origin, seq)| {
        !c.nodes[*k].up
            || c.nodes
                .iter()
                .filter(|n| n.up)
                .all(|n| n.node.engine().replica().watermark(origin) >= *seq)
    })
}

/// The invariants at the end of a run (faults stopped, mesh settled): `written` is each
/// live node's own watermark at the end (see `delivered`).
pub fn check(c: &Cluster, written: &[(usize, Origin, u64)]) -> Vec<String> {
    let mut v = Vec::new();
    if !delivered(c, written) {
        c.tell_divergence();
        v.push(format!(
            "convergence: what live nodes wrote by the end had not reached every live node {} s later",
            CONVERGE_WITHIN_MS / 1000
        ));
    }
    v.extend(no_resurrection(c));
    // The last acknowledged intent per instance is what every live node holds.
    let mut last: BTreeMap<String, (u64, Desired)> = BTreeMap::new();
    for (id, (path, target)) in &c.intents {
        if let Some(at) = c.metrics.acked.get(id) {
            if last.get(path).is_none_or(|(t, _)| at >= t) {
                last.insert(path.clone(), (*at, *target));
            }
        }
    }
    for (path, (_, target)) in &last {
        for n in c.nodes.iter().filter(|n| n.up) {
            let held = n
                .node
                .engine()
                .app(APP)
                .and_then(|a| a.insts.get(path))
                .map(|i| i.rec.desired);
            if held != Some(*target) {
                v.push(format!(
                    "acknowledged intent lost: {path} should be {target:?} on {}, is {held:?}",
                    n.name
                ));
                break;
            }
        }
    }
    v
}

/// §3: a deleted record never comes back. Once settled, every live node holds of each
/// live member's own records (exports, observed states) exactly what that member holds:
/// not a withdrawn export it held before a collection, not one the owner no longer has.
/// (Digests alone would not show it: a resurrected record moves no watermark.)
pub fn no_resurrection(c: &Cluster) -> Vec<String> {
    use roboconf_core::mesh::replica::Kind as Rk;
    let up: Vec<&crate::node::SimNode> = c.nodes.iter().filter(|n| n.up).collect();
    let mut v = Vec::new();
    for owner in &up {
        let id = owner.node.id().clone();
        for kind in [Rk::Exports, Rk::Observed] {
            let values = |n: &crate::node::SimNode| -> Vec<(String, Option<Vec<u8>>)> {
                n.node
                    .engine()
                    .replica()
                    .owned_by(kind, &id)
                    .into_iter()
                    .map(|(k, e)| (k.to_string(), e.value.as_deref().map(<[u8]>::to_vec)))
                    .collect()
            };
            let truth = values(owner);
            if let Some(n) = up.iter().find(|n| values(n) != truth) {
                v.push(format!(
                    "resurrection: {} holds {kind:?} records of {} that {} does not hold as such",
                    n.name, owner.name, owner.name
                ));
                return v;
            }
        }
    }
    v
}
