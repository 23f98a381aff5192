//! The agent's Prometheus metrics: the metric families, their registry (every name
//! prefixed `roboconf_`, with HELP text and its unit in its name: `_seconds`, `_bytes`,
//! `_total`) and their encoding. Pure: nothing here reads a clock, a file or the node.
//! The runtime (`runtime::metrics`) counts events where they happen (script runs, the
//! propagation lag of remote exports, anti-entropy repairs) through the handles given
//! here, and at each scrape hands a `Snapshot` of what is read from the node's state
//! (members, instances, queues, the network's and the bridge's counters, the process).
//!
//! The text is Prometheus' exposition format 0.0.4 (`text/plain; version=0.0.4`), which
//! every Prometheus server and `promtool check metrics` read. `prometheus-client` writes
//! OpenMetrics, which names a counter's family without its `_total` suffix and adds
//! `# UNIT` and `# EOF` lines; `encode` rewrites those three things and nothing else.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

/// A metric's labels: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Upper bounds of the buckets of script durations, in seconds.
const RUN_BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];
/// Upper bounds of the buckets of the propagation lag, in seconds.
const LAG_BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How a value read at scrape time is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    /// Only goes up (the node's own counters, mirrored).
    Counter,
    Gauge,
}

/// The values read from the node's state at each scrape: (key, type, unit, help). The
/// key is the metric's name without the `roboconf_` prefix and without its unit and
/// `_total` suffixes, which the encoding adds.
#[rustfmt::skip]
const SCALARS: &[(&str, Type, Option<Unit>, &str)] = &[
    ("connections", Type::Gauge, None, "Peers this agent holds an admitted connection to"),
    ("connections_target", Type::Gauge, None, "Connections the peer policy aims for, given the members"),
    ("peer_writes_held", Type::Gauge, None, "Copies of peers' records received and not yet written to the store"),
    ("antientropy_rounds_started", Type::Counter, None, "Anti-entropy rounds this agent started"),
    ("antientropy_rounds_ended", Type::Counter, None, "Anti-entropy rounds that ended with the peer's delta"),
    ("antientropy_rounds_timed_out", Type::Counter, None, "Anti-entropy rounds given up without an answer"),
    ("tombstones_collected", Type::Counter, None, "Deletions collected once every live member held them"),
    ("net_events_overflowed", Type::Counter, None, "Network events dropped because the agent's queue was full (peers repair them)"),
    ("peers_refused", Type::Counter, None, "Peers refused at admission, and requests of peers not admitted"),
    ("udp_datagrams_refused", Type::Counter, None, "SWIM datagrams over UDP refused (badly signed, stale, of another mesh)"),
    ("swim_datagrams_unreadable", Type::Counter, None, "SWIM datagrams that SWIM could not read"),
    ("swim_verdicts_withheld", Type::Counter, None, "Down verdicts reached while hearing no one, kept out of the SWIM datagrams sent"),
    ("control_connections", Type::Gauge, None, "Control socket connections open"),
    ("control_refused_busy", Type::Counter, None, "Control socket connections refused because every slot waited for the agent"),
    ("control_evicted", Type::Counter, None, "Idle control socket connections closed to make room for a newcomer"),
    ("coordinator_term", Type::Gauge, None, "The coordinator's Raft term, as this agent knows it"),
    ("coordinator_commit_index", Type::Gauge, None, "The coordinator's Raft commit index on this agent"),
    ("coordinator_leader", Type::Gauge, None, "1 when this agent leads the coordinator"),
    ("coordinator_voter", Type::Gauge, None, "1 when this agent is one of the coordinator's voters"),
    ("coordinator_refused", Type::Counter, None, "Coordinator messages refused"),
    ("coordinator_dropped", Type::Counter, None, "Coordinator datagrams dropped (too big, of an unknown kind)"),
    ("coordinator_unreadable", Type::Gauge, None, "1 when this agent's coordinator state could not be read"),
    ("machine_operations", Type::Counter, None, "Machine operations (create, terminate) this agent's coordinator asked of its targets"),
    ("autonomic_rules_fired", Type::Counter, None, "Autonomic rules fired by this agent's coordinator"),
    ("autonomic_jobs_fired", Type::Counter, None, "Scheduled jobs fired by this agent's coordinator"),
    ("autonomic_executions_ended", Type::Counter, None, "Autonomic executions ended"),
    ("autonomic_queued", Type::Gauge, None, "Autonomic executions waiting in the coordinator's queue"),
    ("autonomic_refused", Type::Counter, None, "Autonomic executions refused"),
    ("amqp_connected", Type::Gauge, None, "1 while the AMQP bridge holds a connection to its broker"),
    ("amqp_outbox_messages", Type::Gauge, None, "Events waiting in the AMQP bridge's outbox (unconfirmed ones included)"),
    ("amqp_published", Type::Counter, None, "AMQP publishes sent (a re-publish counts again)"),
    ("amqp_confirmed", Type::Counter, None, "AMQP publishes the broker confirmed"),
    ("amqp_failed", Type::Counter, None, "AMQP publishes refused by the broker or lost with the connection (re-published)"),
    ("amqp_overflowed", Type::Counter, None, "Events dropped because the AMQP outbox was full"),
    ("amqp_commands_received", Type::Counter, None, "Commands received from the AMQP broker"),
    ("amqp_commands_answered", Type::Counter, None, "AMQP commands handed to the agent and answered"),
    ("amqp_commands_rejected", Type::Counter, None, "AMQP commands refused (dead-lettered)"),
    ("process_resident_memory", Type::Gauge, Some(Unit::Bytes), "Resident memory of the agent's process"),
    ("process_open_fds", Type::Gauge, None, "File descriptors the agent's process holds open"),
];

/// Traffic of one kind of message in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// `gossip`, `request`, `response`, `datagram` (SWIM over a connection), `udp`.
    pub kind: &'static str,
    /// `in` or `out`.
    pub direction: &'static str,
    pub messages: u64,
    pub bytes: u64,
}

/// A queue's depth and capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Queue {
    pub name: &'static str,
    pub depth: u64,
    pub capacity: u64,
}

/// How many instances of an application are in a state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Instances {
    pub app: String,
    /// Roboconf's state name (`DEPLOYED_STARTED`...).
    pub state: &'static str,
    /// Who hosts them: this agent (`here`), another member (`elsewhere`), or no agent
    /// known (`nowhere`: a root not bound, or whose agent has not reported).
    pub hosted: &'static str,
    pub count: u64,
}

/// What is read from the node's state at a scrape.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Values of `SCALARS` by key; one not given reads 0.
    pub values: Vec<(&'static str, u64)>,
    /// Members by liveness (`alive`, `suspect`, `dead`, `left`).
    pub members: Vec<(&'static str, u64)>,
    pub instances: Vec<Instances>,
    pub traffic: Vec<Traffic>,
    pub queues: Vec<Queue>,
    /// Messages dropped by reason (`too_large`, `malformed`, `wrong_version`, `wrong_mesh`).
    pub dropped: Vec<(&'static str, u64)>,
}

/// The liveness states of `roboconf_members`, always all exposed.
pub const MEMBER_STATES: [&str; 4] = ["alive", "suspect", "dead", "left"];

enum Scalar {
    Counter(Counter),
    Gauge(Gauge),
}

/// What the script workers count: each run by action and result, its duration by
/// action, and the runs executing or waiting for a worker. Cloned into the workers
/// (the metrics are shared, not copied).
#[derive(Clone)]
pub struct Scripts {
    runs: Family<Labels, Counter>,
    durations: Family<Labels, Histogram, fn() -> Histogram>,
    pub running: Gauge,
    pub waiting: Gauge,
}

impl Scripts {
    /// A run of `action` ended after `seconds`.
    pub fn ended(&self, action: &str, ok: bool, seconds: f64) {
        let result = if ok { "ok" } else { "failed" };
        self.runs
            .get_or_create(&vec![
                ("action", action.to_string()),
                ("result", result.to_string()),
            ])
            .inc();
        self.durations
            .get_or_create(&vec![("action", action.to_string())])
            .observe(seconds.max(0.0));
    }
}

/// The registry and every metric in it.
pub struct Metrics {
    registry: Registry,
    scalars: BTreeMap<&'static str, Scalar>,
    members: Family<Labels, Gauge>,
    instances: Family<Labels, Gauge>,
    messages: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    queue_depth: Family<Labels, Gauge>,
    queue_capacity: Family<Labels, Gauge>,
    dropped: Family<Labels, Counter>,
    /// Script runs, counted by the workers.
    pub scripts: Scripts,
    lag: Histogram,
    delta_entries: Counter,
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS)
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric registered, at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("roboconf");
        let mut scalars = BTreeMap::new();
        for (key, ty, unit, help) in SCALARS {
            let metric = match ty {
                Type::Counter => Scalar::Counter(Counter::default()),
                Type::Gauge => Scalar::Gauge(Gauge::default()),
            };
            match (&metric, unit) {
                (Scalar::Counter(c), None) => registry.register(*key, *help, c.clone()),
                (Scalar::Counter(c), Some(u)) => {
                    registry.register_with_unit(*key, *help, u.clone(), c.clone())
                }
                (Scalar::Gauge(g), None) => registry.register(*key, *help, g.clone()),
                (Scalar::Gauge(g), Some(u)) => {
                    registry.register_with_unit(*key, *help, u.clone(), g.clone())
                }
            }
            scalars.insert(*key, metric);
        }
        let m = Metrics {
            registry,
            scalars,
            members: Family::default(),
            instances: Family::default(),
            messages: Family::default(),
            bytes: Family::default(),
            queue_depth: Family::default(),
            queue_capacity: Family::default(),
            dropped: Family::default(),
            scripts: Scripts {
                runs: Family::default(),
                durations: Family::new_with_constructor(run_histogram),
                running: Gauge::default(),
                waiting: Gauge::default(),
            },
            lag: Histogram::new(LAG_BUCKETS),
            delta_entries: Counter::default(),
        };
        m.register_families()
    }

    fn register_families(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "members",
            "Members of the mesh by liveness (state: alive, suspect, dead, left), as this agent sees them",
            self.members.clone(),
        );
        r.register(
            "instances",
            "Instances by application and state, as this agent sees them (hosted: here, elsewhere in the mesh, nowhere)",
            self.instances.clone(),
        );
        r.register(
            "net_messages",
            "Messages sent and received by kind (gossip, request, response, datagram, udp) and direction (in, out)",
            self.messages.clone(),
        );
        r.register_with_unit(
            "net",
            "Bytes of the messages sent and received, by kind and direction",
            Unit::Bytes,
            self.bytes.clone(),
        );
        r.register(
            "queue_depth",
            "Items waiting in the agent's queues (net_events, control_requests, script_results, mesh_reports)",
            self.queue_depth.clone(),
        );
        r.register(
            "queue_capacity",
            "Capacity of the agent's bounded queues",
            self.queue_capacity.clone(),
        );
        r.register(
            "messages_dropped",
            "Messages dropped because they failed the envelope checks, by reason",
            self.dropped.clone(),
        );
        r.register(
            "script_runs",
            "Plug-in runs ended, by action and result (ok, failed)",
            self.scripts.runs.clone(),
        );
        r.register_with_unit(
            "script_run_duration",
            "Duration of the plug-in runs, by action",
            Unit::Seconds,
            self.scripts.durations.clone(),
        );
        r.register(
            "scripts_running",
            "Plug-in runs executing now",
            self.scripts.running.clone(),
        );
        r.register(
            "scripts_waiting",
            "Plug-in runs waiting for a worker (max-parallel-scripts)",
            self.scripts.waiting.clone(),
        );
        r.register_with_unit(
            "remote_exports_lag",
            "Time from an origin's write of an instance's exports (its hybrid logical clock) to its arrival here",
            Unit::Seconds,
            self.lag.clone(),
        );
        r.register(
            "antientropy_delta_entries",
            "Records received in anti-entropy deltas (the repairs of what gossip missed)",
            self.delta_entries.clone(),
        );
        self
    }

    /// Remote exports written at `written_ms` (the origin's clock) arrived at `now_ms`.
    pub fn exports_arrived(&self, written_ms: u64, now_ms: u64) {
        self.lag
            .observe(now_ms.saturating_sub(written_ms) as f64 / 1000.0);
    }

    /// An anti-entropy delta of `n` records arrived.
    pub fn delta_received(&self, n: usize) {
        self.delta_entries.inc_by(n as u64);
    }

    /// Takes in a scrape's snapshot and writes every metric.
    pub fn encode(&self, snap: &Snapshot) -> String {
        self.apply(snap);
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            return String::new();
        }
        to_classic(&text)
    }

    fn apply(&self, snap: &Snapshot) {
        let given: BTreeMap<&str, u64> = snap.values.iter().copied().collect();
        for (key, metric) in &self.scalars {
            let v = given.get(key).copied().unwrap_or(0);
            match metric {
                Scalar::Counter(c) => c.inner().store(v, Relaxed),
                Scalar::Gauge(g) => {
                    g.set(i64::try_from(v).unwrap_or(i64::MAX));
                }
            }
        }
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.members.clear();
        for state in MEMBER_STATES {
            let n = snap
                .members
                .iter()
                .filter(|(s, _)| *s == state)
                .map(|(_, n)| n)
                .sum();
            self.members
                .get_or_create(&vec![("state", state.to_string())])
                .set(gauge(n));
        }
        self.instances.clear();
        for i in &snap.instances {
            let labels = vec![
                ("app", i.app.clone()),
                ("state", i.state.to_string()),
                ("hosted", i.hosted.to_string()),
            ];
            self.instances.get_or_create(&labels).inc_by(gauge(i.count));
        }
        for t in &snap.traffic {
            let labels = vec![
                ("kind", t.kind.to_string()),
                ("direction", t.direction.to_string()),
            ];
            self.messages
                .get_or_create(&labels)
                .inner()
                .store(t.messages, Relaxed);
            self.bytes
                .get_or_create(&labels)
                .inner()
                .store(t.bytes, Relaxed);
        }
        for q in &snap.queues {
            let labels = vec![("queue", q.name.to_string())];
            self.queue_depth.get_or_create(&labels).set(gauge(q.depth));
            self.queue_capacity
                .get_or_create(&labels)
                .set(gauge(q.capacity));
        }
        for (reason, n) in &snap.dropped {
            self.dropped
                .get_or_create(&vec![("reason", reason.to_string())])
                .inner()
                .store(*n, Relaxed);
        }
    }
}

/// OpenMetrics text as Prometheus' text format 0.0.4: a counter family's `# HELP` and
/// `# TYPE` lines take the `_total` name its samples have; `# UNIT` and `# EOF` go.
fn to_classic(open: &str) -> String {
    let counters: HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 16 * counters.len());
    for line in open.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((p, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(p);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                if !tail.is_empty() {
                    out.push(' ');
                    out.push_str(tail);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check of the text format: every sample belongs to the family the `# TYPE` line
    /// before it names (its own name, or with a histogram's suffixes), every family has
    /// HELP text, counters end in `_total`, names are prefixed, values are numbers.
    fn check_format(text: &str) -> Result<usize, String> {
        let mut family: Option<(String, String)> = None;
        let mut helped: HashSet<String> = HashSet::new();
        let mut samples = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').ok_or(format!("no help: {line}"))?;
                if help.trim().is_empty() || help.ends_with("..") {
                    return Err(format!("bad help: {line}"));
                }
                helped.insert(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').ok_or(format!("bad TYPE: {line}"))?;
                if !helped.contains(name) {
                    return Err(format!("no HELP before {line}"));
                }
                if !name.starts_with("roboconf_") {
                    return Err(format!("not prefixed: {name}"));
                }
                if ty == "counter" && !name.ends_with("_total") {
                    return Err(format!("counter without _total: {name}"));
                }
                family = Some((name.to_string(), ty.to_string()));
            } else if line.starts_with('#') {
                return Err(format!("unexpected comment: {line}"));
            } else {
                let (name, value) = line.rsplit_once(' ').ok_or(format!("bad: {line}"))?;
                let name = name.split('{').next().unwrap_or_default();
                let (fam, ty) = family.as_ref().ok_or(format!("no TYPE for {line}"))?;
                let ok = match ty.as_str() {
                    "histogram" => ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{fam}{s}")),
                    _ => name == fam,
                };
                if !ok {
                    return Err(format!("{name} is not of the family {fam}"));
                }
                value
                    .parse::<f64>()
                    .map_err(|_| format!("not a number: {line}"))?;
                samples += 1;
            }
        }
        Ok(samples)
    }

    #[test]
    fn a_fresh_registry_encodes_in_the_text_format() {
        let text = Metrics::new().encode(&Snapshot::default());
        let samples = check_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(samples >= SCALARS.len(), "{text}");
        assert!(text.contains("# TYPE roboconf_antientropy_rounds_started_total counter"));
        assert!(text.contains("# TYPE roboconf_process_resident_memory_bytes gauge"));
        assert!(text.contains("# TYPE roboconf_remote_exports_lag_seconds histogram"));
        assert!(
            text.contains("roboconf_members{state=\"suspect\"} 0"),
            "{text}"
        );
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
    }

    #[test]
    fn a_snapshot_and_counted_events_show() {
        let m = Metrics::new();
        m.scripts.ended("deploy", true, 0.2);
        m.scripts.ended("deploy", false, 3.0);
        m.exports_arrived(1_000, 1_120);
        m.delta_received(7);
        let snap = Snapshot {
            values: vec![("connections", 2), ("antientropy_rounds_started", 5)],
            members: vec![("alive", 3), ("dead", 1)],
            instances: vec![Instances {
                app: "shop".into(),
                state: "DEPLOYED_STARTED",
                hosted: "here",
                count: 2,
            }],
            traffic: vec![Traffic {
                kind: "gossip",
                direction: "in",
                messages: 4,
                bytes: 400,
            }],
            queues: vec![Queue {
                name: "net_events",
                depth: 1,
                capacity: 1024,
            }],
            dropped: vec![("malformed", 2)],
        };
        let text = m.encode(&snap);
        check_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        for want in [
            "roboconf_connections 2",
            "roboconf_antientropy_rounds_started_total 5",
            "roboconf_members{state=\"alive\"} 3",
            "roboconf_instances{app=\"shop\",state=\"DEPLOYED_STARTED\",hosted=\"here\"} 2",
            "roboconf_net_messages_total{kind=\"gossip\",direction=\"in\"} 4",
            "roboconf_net_bytes_total{kind=\"gossip\",direction=\"in\"} 400",
            "roboconf_queue_depth{queue=\"net_events\"} 1",
            "roboconf_messages_dropped_total{reason=\"malformed\"} 2",
            "roboconf_script_runs_total{action=\"deploy\",result=\"failed\"} 1",
            "roboconf_script_run_duration_seconds_count{action=\"deploy\"} 2",
            "roboconf_remote_exports_lag_seconds_count 1",
            "roboconf_antientropy_delta_entries_total 7",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
        // An application gone is gone from the next scrape.
        let text = m.encode(&Snapshot::default());
        assert!(!text.contains("app=\"shop\""), "{text}");
    }
}
