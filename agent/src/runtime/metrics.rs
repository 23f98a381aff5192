//! The agent's Prometheus metrics at a scrape: what is read from the node's state (its
//! members, the instances it sees, its counters — the same numbers `roboconf stats`
//! shows — and the coordinator's), from the network's, the control socket's and the AMQP
//! bridge's counters, the loop's queues and `/proc/self`, handed to `crate::metrics`
//! as a `Snapshot` and encoded with the counters kept there (script runs, lag, repairs).

use super::Loop;
use crate::core::members::Liveness;
use crate::metrics::{Instances, Snapshot, Traffic};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

impl Loop {
    /// Every metric, in Prometheus' text exposition format (0.0.4).
    pub(super) fn metrics_text(&self) -> String {
        let mut snap = Snapshot {
            members: self.members_by_state(),
            instances: self.instances_by_state(),
            queues: self.queues.to_vec(),
            ..Snapshot::default()
        };
        let v = &mut snap.values;
        let members = self.node.engine().member_liveness().count();
        let (started, ended, timed_out) = self.node.sync_counts();
        v.extend([
            ("connections", self.node.connected().len() as u64),
            (
                "connections_target",
                self.node.config().peers.target(members) as u64,
            ),
            ("peer_writes_held", self.node.peer_writes_held() as u64),
            ("antientropy_rounds_started", started),
            ("antientropy_rounds_ended", ended),
            ("antientropy_rounds_timed_out", timed_out),
            ("tombstones_collected", self.node.engine().collected()),
            ("swim_datagrams_unreadable", self.node.swim_rejected()),
            ("swim_verdicts_withheld", self.node.swim_withheld()),
            ("control_connections", self.control.open.load(Relaxed)),
            ("control_refused_busy", self.control.busy.load(Relaxed)),
            ("control_evicted", self.control.evicted.load(Relaxed)),
        ]);
        for (key, n) in self
            .node
            .coord_counts()
            .into_iter()
            .chain(self.node.autonomic_counts())
        {
            let key = match key {
                "coordinator_commit" => "coordinator_commit_index",
                "machine_ops" => "machine_operations",
                other => other,
            };
            v.push((key, n));
        }
        if let Some(m) = &self.mesh {
            let (d, u) = (&m.net.dropped, &m.net.udp);
            v.extend([
                ("net_events_overflowed", m.net.overflow.load(Relaxed)),
                ("peers_refused", m.net.refused_count()),
                ("udp_datagrams_refused", u.refused.load(Relaxed)),
            ]);
            snap.dropped = vec![
                ("too_large", d.too_large.load(Relaxed)),
                ("malformed", d.malformed.load(Relaxed)),
                ("wrong_version", d.wrong_version.load(Relaxed)),
                ("wrong_mesh", d.wrong_mesh.load(Relaxed)),
            ];
            let traffic = m.net.traffic.all().into_iter().chain([
                (
                    "udp",
                    "in",
                    u.received.load(Relaxed),
                    u.received_bytes.load(Relaxed),
                ),
                (
                    "udp",
                    "out",
                    u.sent.load(Relaxed),
                    u.sent_bytes.load(Relaxed),
                ),
            ]);
            snap.traffic = traffic
                .map(|(kind, direction, messages, bytes)| Traffic {
                    kind,
                    direction,
                    messages,
                    bytes,
                })
                .collect();
        }
        if let Some(link) = &self.amqp {
            let s = link.status();
            v.extend([
                ("amqp_connected", u64::from(s.connected)),
                ("amqp_outbox_messages", s.outbox),
                ("amqp_published", s.published),
                ("amqp_confirmed", s.confirmed),
                ("amqp_failed", s.failed),
                ("amqp_overflowed", s.overflowed),
                ("amqp_commands_received", s.commands_received),
                ("amqp_commands_answered", s.commands_answered),
                ("amqp_commands_rejected", s.commands_rejected),
            ]);
        }
        v.extend(process());
        self.metrics.encode(&snap)
    }

    /// Members by liveness (a retired member — dead, its name carried by a live one —
    /// counts as dead).
    fn members_by_state(&self) -> Vec<(&'static str, u64)> {
        let mut by: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (_, l) in self.node.engine().member_liveness() {
            let state = match l {
                Liveness::Alive => "alive",
                Liveness::Suspect => "suspect",
                Liveness::Dead | Liveness::Retired => "dead",
                Liveness::Left => "left",
            };
            *by.entry(state).or_default() += 1;
        }
        by.into_iter().collect()
    }

    /// Instances by application, state and host, as `status` shows them.
    fn instances_by_state(&self) -> Vec<Instances> {
        let engine = self.node.engine();
        let me = &engine.config().node;
        let mut by: BTreeMap<(String, &'static str, &'static str), u64> = BTreeMap::new();
        for name in engine.app_names() {
            let Some(app) = engine.app(name) else {
                continue;
            };
            for view in engine.instance_views(app) {
                let hosted = match &view.node {
                    Some(n) if n == me => "here",
                    Some(_) => "elsewhere",
                    None => "nowhere",
                };
                *by.entry((name.to_string(), view.state.as_str(), hosted))
                    .or_default() += 1;
            }
        }
        by.into_iter()
            .map(|((app, state, hosted), count)| Instances {
                app,
                state,
                hosted,
                count,
            })
            .collect()
    }
}

/// The process's resident memory (`VmRSS`) and open descriptors, from `/proc/self`.
fn process() -> [(&'static str, u64); 2] {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    [
        ("process_resident_memory", rss_kib.saturating_mul(1024)),
        ("process_open_fds", fds),
    ]
}
