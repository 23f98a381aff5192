//! Autonomic management in the simulation: probes' events published by live nodes, the
//! rules the coordinator's leader fires, jobs, operators' `exec`, and the executions'
//! steps outside the mesh (answered by the simulated driver after a random delay). The
//! invariants, checked on the history the leaders published and on the simulated
//! target: each event occurrence fires each rule at most once; a rule never fires inside
//! its sleep period; each job instant fires at most once; the machine limit is never
//! exceeded — across leader crashes and partitions.

use super::{Cluster, Ev};
use roboconf_core::autonomic::records::EventRecord;
use roboconf_core::coord::autonomic::HistoryItem;
use roboconf_core::node::{External, Input};
use std::collections::{BTreeMap, BTreeSet};

/// The rules of the simulated application: (name, event, sleep period in s).
pub const RULES: [(&str, &str, u64); 2] = [("grow", "load-high", 4), ("shrink", "load-low", 4)];

impl Cluster {
    /// Node `k` publishes an occurrence of `event` (as a probe hit would).
    pub fn probe_event(&mut self, k: usize, event: &str) {
        if !self.nodes[k].up {
            return;
        }
        let now = self.wall_ms(k);
        let rec = EventRecord {
            app: crate::scenario::APP.into(),
            instance: "/vm0/src".into(),
            event: event.into(),
            details: None,
            at_ms: now,
        };
        self.nodes[k].node.step(now, Input::Probe(rec));
        self.effects(k);
        self.coord.events += 1;
    }

    /// The leader `k` asks its driver for a step outside the mesh.
    pub(super) fn external(&mut self, k: usize, x: External) {
        self.coord.externals += 1;
        let delay = 10_000 + self.rng.below(190_000) as u64;
        let life = self.nodes[k].life;
        self.queue.after(delay, Ev::External { node: k, life, x });
    }

    pub(super) fn external_done(&mut self, k: usize, life: u32, x: External) {
        if !self.live(k, life) {
            return;
        }
        let now = self.wall_ms(k);
        self.nodes[k].node.step(
            now,
            Input::ExternalDone {
                execution: x.execution,
                index: x.index,
                error: None,
            },
        );
        self.effects(k);
    }

    /// Every execution any node knows of: the published history (of every live node)
    /// and what the voters hold unpublished.
    pub fn executions(&self) -> Vec<HistoryItem> {
        let mut all: BTreeMap<u64, HistoryItem> = BTreeMap::new();
        for n in self.nodes.iter().filter(|n| n.up) {
            for h in n.node.engine().history(None) {
                all.insert(h.id, h);
            }
            if let Some(g) = n.node.group() {
                for h in &g.machine().autonomic.recent {
                    all.insert(h.id, h.clone());
                }
            }
        }
        all.into_values().collect()
    }

    /// The autonomic invariants on what ran.
    pub fn check_autonomic(&self) -> Vec<String> {
        let mut out = Vec::new();
        let items = self.executions();
        let mut seen = BTreeSet::new();
        let mut fired: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for h in items.iter().filter(|h| h.origin != "command") {
            if !seen.insert((
                h.origin.clone(),
                h.details.clone(),
                h.occurrence.clone(),
                h.command.clone(),
            )) {
                out.push(format!(
                    "{} `{}` ran `{}` twice for {}",
                    h.origin, h.details, h.command, h.occurrence
                ));
            }
            if h.origin == "rule" {
                fired.entry(&h.details).or_default().push(h.start_ms);
            }
        }
        for (rule, mut at) in fired {
            let sleep_ms = RULES
                .iter()
                .find(|(r, _, _)| *r == rule)
                .map_or(0, |(_, _, s)| s * 1000);
            at.sort_unstable();
            for w in at.windows(2) {
                if w[1] < w[0] + sleep_ms {
                    out.push(format!(
                        "rule {rule} fired at {} and {} ms, inside its sleep period of {sleep_ms} ms",
                        w[0], w[1]
                    ));
                }
            }
        }
        out.extend(self.coord.limit_violations.iter().cloned());
        out
    }
}
