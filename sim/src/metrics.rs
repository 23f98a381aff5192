//! What a run measures, from the nodes' own outputs: export propagation (an exporter
//! reaches DEPLOYED_STARTED → every node that could hear it holds its exports), dead-node
//! detection (a crash → each survivor withdrew the dead node's exports), suspicions (false
//! ones: of a node that was up and reachable), traffic per node, and the operator
//! commands acknowledged. `Report` is the summary printed as a table or JSON.

use crate::net::Micros;
use roboconf_core::api::State;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// A change being followed until every awaited node saw it.
struct Pending {
    path: String,
    since: Micros,
    awaiting: BTreeSet<usize>,
}

#[derive(Default)]
pub struct Metrics {
    bytes: Vec<u64>,
    msgs: Vec<u64>,
    /// Bytes sent by kind of message (`cluster::Msg::kind`), all nodes together.
    by_kind: BTreeMap<&'static str, u64>,
    propagating: Vec<Pending>,
    detecting: Vec<Pending>,
    /// Exporting paths now, and their host.
    exporting: BTreeMap<String, usize>,
    pub propagation_us: Vec<Micros>,
    pub detection_us: Vec<Micros>,
    pub false_suspicions: u64,
    pub suspicions: u64,
    /// A node declared dead a member that was up and reachable from it.
    pub false_deaths: u64,
    /// Crashes some survivors had not detected when the node came back.
    pub missed_detections: u64,
    /// Acknowledged commands: id → when.
    pub acked: BTreeMap<u64, Micros>,
    pub convergence_after_heal_us: Vec<Micros>,
}

impl Metrics {
    pub fn new(nodes: usize) -> Metrics {
        Metrics {
            bytes: vec![0; nodes],
            msgs: vec![0; nodes],
            ..Default::default()
        }
    }

    pub fn sent(&mut self, node: usize, kind: &'static str, bytes: usize) {
        self.bytes[node] += bytes as u64;
        self.msgs[node] += 1;
        *self.by_kind.entry(kind).or_insert(0) += bytes as u64;
    }

    /// Forgets what the warm-up measured: traffic, and changes followed so far.
    pub fn start_measuring(&mut self) {
        self.propagating.clear();
        self.propagation_us.clear();
        self.detecting.clear();
        self.detection_us.clear();
        self.suspicions = 0;
        self.false_suspicions = 0;
        self.false_deaths = 0;
        self.missed_detections = 0;
        self.reset_traffic();
    }

    /// Forgets traffic so far.
    pub fn reset_traffic(&mut self) {
        self.bytes.iter_mut().for_each(|b| *b = 0);
        self.msgs.iter_mut().for_each(|m| *m = 0);
        self.by_kind.clear();
    }

    pub fn suspected(&mut self, real: bool) {
        self.suspicions += 1;
        if !real {
            self.false_suspicions += 1;
        }
    }

    /// A node's verdict on a member; `real`: the member is down or cut off from it.
    pub fn liveness(&mut self, dead: bool, real: bool) {
        if dead && !real {
            self.false_deaths += 1;
        }
    }

    /// Node `node`, hosting `paths`, came back: survivors that had not detected its
    /// crash yet never will; that is a miss, not a sample.
    pub fn restarted(&mut self, paths: &[String]) {
        for p in self.detecting.iter().filter(|p| paths.contains(&p.path)) {
            self.missed_detections += p.awaiting.len() as u64;
        }
        self.detecting.retain(|p| !paths.contains(&p.path));
    }

    pub fn replied(&mut self, id: u64, ok: bool, now: Micros) {
        if ok {
            self.acked.insert(id, now);
        }
    }

    /// An instance on `node` changed state; `awaited`: the nodes that should learn of
    /// its exports (up and reachable), when it starts exporting.
    pub fn state_changed(
        &mut self,
        node: usize,
        path: &str,
        state: State,
        now: Micros,
        awaited: Vec<usize>,
    ) {
        if !path.ends_with("/src") {
            return;
        }
        if state == State::DeployedStarted {
            self.exporting.insert(path.to_string(), node);
            self.propagating.retain(|p| p.path != path);
            if !awaited.is_empty() {
                self.propagating.push(Pending {
                    path: path.to_string(),
                    since: now,
                    awaiting: awaited.into_iter().collect(),
                });
            }
        } else {
            self.exporting.remove(path);
            self.propagating.retain(|p| p.path != path);
        }
    }

    pub fn remote_exports(&mut self, node: usize, path: &str, present: bool, now: Micros) {
        let (list, out) = if present {
            (&mut self.propagating, &mut self.propagation_us)
        } else {
            (&mut self.detecting, &mut self.detection_us)
        };
        for p in list.iter_mut().filter(|p| p.path == path) {
            // Detection: one sample per survivor; propagation: one when the last has it.
            if p.awaiting.remove(&node) && (!present || p.awaiting.is_empty()) {
                out.push(now - p.since);
            }
        }
        list.retain(|p| !p.awaiting.is_empty());
    }

    /// Node `node` crashed; `survivors` should each withdraw its exports.
    pub fn crashed(&mut self, node: usize, now: Micros, survivors: Vec<usize>) {
        for p in &mut self.propagating {
            p.awaiting.remove(&node);
        }
        self.propagating.retain(|p| !p.awaiting.is_empty());
        for p in &mut self.detecting {
            p.awaiting.remove(&node);
        }
        let paths: Vec<String> = self
            .exporting
            .iter()
            .filter(|(_, h)| **h == node)
            .map(|(p, _)| p.clone())
            .collect();
        for path in paths {
            self.exporting.remove(&path);
            self.propagating.retain(|p| p.path != path);
            self.detecting.retain(|p| p.path != path);
            self.detecting.push(Pending {
                path,
                since: now,
                awaiting: survivors.iter().copied().collect(),
            });
        }
    }

    /// Changes still followed (a partition or a crash left them unfinished).
    pub fn unfinished(&self) -> usize {
        self.propagating.len() + self.detecting.len()
    }

    pub fn report(&self, nodes: usize, seconds: f64, violations: Vec<String>) -> Report {
        let per_node =
            |v: &[u64]| v.iter().sum::<u64>() as f64 / nodes.max(1) as f64 / seconds.max(1e-9);
        Report {
            nodes,
            propagation_ms: Percentiles::of(&self.propagation_us),
            detection_ms: Percentiles::of(&self.detection_us),
            false_suspicions: self.false_suspicions,
            suspicions: self.suspicions,
            false_deaths: self.false_deaths,
            missed_detections: self.missed_detections,
            unfinished: self.unfinished(),
            bytes_per_node_per_s: per_node(&self.bytes).round(),
            msgs_per_node_per_s: (per_node(&self.msgs) * 10.0).round() / 10.0,
            bytes_by_kind: self
                .by_kind
                .iter()
                .map(|(k, b)| {
                    (
                        k.to_string(),
                        (*b as f64 / nodes.max(1) as f64 / seconds.max(1e-9)).round(),
                    )
                })
                .collect(),
            convergence_after_heal_ms: Percentiles::of(&self.convergence_after_heal_us),
            invariant_violations: violations,
            connections_max: 0,
            connections_p99: 0,
            connections_bound: 0,
            collected: 0,
        }
    }
}

/// p50, p99 and max in milliseconds, and how many samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub samples: usize,
}

impl Percentiles {
    pub fn of(us: &[Micros]) -> Percentiles {
        let mut v = us.to_vec();
        v.sort_unstable();
        let at = |p: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() - 1) as f64 * p).round() as usize;
            (v[i] as f64 / 100.0).round() / 10.0
        };
        Percentiles {
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
            samples: v.len(),
        }
    }
}

/// A run's summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub nodes: usize,
    pub propagation_ms: Percentiles,
    pub detection_ms: Percentiles,
    pub false_suspicions: u64,
    pub suspicions: u64,
    /// Members declared dead (their records withdrawn) while up and reachable.
    pub false_deaths: u64,
    /// Survivors that had not detected a crash when the node came back.
    pub missed_detections: u64,
    /// Changes still followed at the end (propagations and detections not finished).
    pub unfinished: usize,
    pub bytes_per_node_per_s: f64,
    pub msgs_per_node_per_s: f64,
    /// Bytes per node per second by kind of message (SWIM, gossip, anti-entropy's
    /// digests and deltas, connections).
    pub bytes_by_kind: BTreeMap<String, f64>,
    pub convergence_after_heal_ms: Percentiles,
    pub invariant_violations: Vec<String>,
    /// Connections per node that is up, at the end: max and p99, and the policy's bound
    /// (its target plus the slack kept for connections others opened).
    pub connections_max: usize,
    pub connections_p99: usize,
    pub connections_bound: usize,
    /// Tombstones collected (and records dropped behind a floor), summed over the nodes
    /// up at the end.
    pub collected: u64,
}
