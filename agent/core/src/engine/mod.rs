//! The agent core: the protocol and life-cycle logic as a sans-IO state machine (DESIGN
//! §2). It is driven only by inputs — operator commands, plug-in results — and answers
//! with outputs: records to persist, plug-in runs to start, replies and events. It never
//! reads a clock, a file, a socket or a random source: the runtime around it does, and
//! `sim/` drives the same code on a virtual clock. Outputs of one step come persist-first:
//! the runtime makes the writes durable before it acts on anything after them.

mod app;
mod autonomic;
pub mod collect;
mod coordination;
mod describe;
mod external;
pub mod folders;
mod io;
mod lifecycle;
pub mod members;
pub mod mesh;
mod names;
mod ops;
pub mod records;
mod spread;
mod tokens;
mod views;

pub use app::{parent_path, AppState, LoadedApp};
pub use autonomic::AppModel;
pub use coordination::{Coordination, Launchable, COORDINATOR_KEY};
pub use io::{Command, Event, Input, Output, PluginRun, RunResult};
pub use records::{AppRecord, InstanceRecord, Retry, RunRecord, Write};

use crate::api::Response;
use roboconf_plugins::Action;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// How the core is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's name, shown as the host of what it runs.
    pub node: String,
    /// The address published as every `ip` variable of what this node hosts.
    pub ip: String,
    /// Where instances' working directories live (`<data-dir>/instances`).
    pub work_dir: PathBuf,
    /// Root instances this node hosts: (application, root path).
    pub hosts: Vec<(String, String)>,
    /// Script runs kept per instance for `logs`.
    pub runs_kept: u64,
    /// Random ports are taken from this range, skipping `forbidden_ports`.
    pub port_range: (u16, u16),
    pub forbidden_ports: BTreeSet<u16>,
    /// This node in the mesh (its peer id), and the generation of its store.
    pub node_id: crate::mesh::NodeId,
    pub generation: u64,
    pub timing: Timing,
}

/// The engine's times and sizes (a node's `Config` holds them with the rest).
#[derive(Debug, Clone)]
pub struct Timing {
    /// How long a suspect member whose connection closed has to come back.
    pub dead_after_ms: u64,
    /// How long a member that is merely unreachable (no connection of ours — connections
    /// are bounded — and no word from SWIM yet) waits before it is dead: SWIM's time to
    /// find it (its membership spreads in a few probe periods) or to declare it down.
    pub unreached_dead_after_ms: u64,
    /// From half-way through that grace, how often SWIM announces itself to such a member.
    pub announce_every_ms: u64,
    /// First wait before an action whose environment failed is tried again; it doubles
    /// with each failure up to `retry_max_ms`.
    pub retry_first_ms: u64,
    pub retry_max_ms: u64,
    /// Most records in one anti-entropy answer (the rest comes with the next round).
    pub sync_max_entries: usize,
    /// How often tombstones are acknowledged and collected (`collect`; 0: never).
    pub collect_every_ms: u64,
    /// The rounds are at least this much apart per member of the mesh: each round may
    /// rewrite every member's acknowledgement, which reaches every member, so a round
    /// every `members × collect_per_member_ms` keeps what each node receives for it
    /// the same at any size (10 a second), where a fixed period would grow it with the
    /// mesh (1,000 members: 100 s; 10,000: 17 min).
    pub collect_per_member_ms: u64,
    /// How long a deletion stands before it is acknowledged for collection (one written
    /// over soon — exports withdrawn during a restart — is never collected at all).
    pub collect_after_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            dead_after_ms: 1_500,
            unreached_dead_after_ms: 10_000,
            announce_every_ms: 1_000,
            retry_first_ms: 1_000,
            retry_max_ms: 5 * 60 * 1_000,
            sync_max_entries: 5_000,
            collect_every_ms: 30_000,
            collect_per_member_ms: 100,
            collect_after_ms: 60_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node: "local".into(),
            ip: "127.0.0.1".into(),
            work_dir: PathBuf::from("instances"),
            hosts: Vec::new(),
            runs_kept: 20,
            port_range: (10_000, 65_500),
            forbidden_ports: BTreeSet::new(),
            node_id: crate::mesh::NodeId::new("local"),
            generation: 1,
            timing: Timing::default(),
        }
    }
}

/// A memory account: what dropping each piece of a node gave back to the allocator,
/// read through `live` (the bytes the caller's allocator holds; the core reads none).
pub struct Account<'a> {
    live: &'a dyn Fn() -> usize,
    pub parts: Vec<(&'static str, usize)>,
}

impl<'a> Account<'a> {
    pub fn new(live: &'a dyn Fn() -> usize) -> Account<'a> {
        Account {
            live,
            parts: Vec::new(),
        }
    }

    /// Drops `piece`, noting under `name` the bytes it gave back.
    pub fn drop<T>(&mut self, name: &'static str, piece: T) {
        let before = (self.live)();
        drop(piece);
        self.parts
            .push((name, before.saturating_sub((self.live)())));
    }
}

/// The core.
#[derive(Debug)]
pub struct Core {
    cfg: Config,
    apps: BTreeMap<String, AppState>,
    ports_used: BTreeSet<u16>,
    /// Run id → (application, instance path, action, what the run started with).
    runs: BTreeMap<u64, PendingRun>,
    next_run: u64,
    dirty: BTreeSet<(String, String)>,
    writes: Vec<Write>,
    out: Vec<Output>,
    replica: crate::mesh::replica::Replica,
    broadcast: Vec<crate::mesh::replica::Entry>,
    now_ms: u64,
    connected: BTreeSet<crate::mesh::NodeId>,
    suspects: BTreeMap<crate::mesh::NodeId, u64>,
    /// Unreached suspects SWIM was asked to announce itself to, and when last.
    announced: BTreeMap<crate::mesh::NodeId, u64>,
    /// Members SWIM declared down (whatever their connections say).
    swim_down: std::collections::BTreeSet<crate::mesh::NodeId>,
    /// Members SWIM found alive (it probes every member, connected or not).
    swim_alive: std::collections::BTreeSet<crate::mesh::NodeId>,
    /// Whether every member is to be looked at for unreachable ones (at the start), and
    /// the members whose record or reachability changed since the last look (only they
    /// can have become unreachable: a scan of every member at each change is O(N²)
    /// while a large mesh boots); whether application records changed since the last
    /// look for bundles to fetch.
    scan_members: bool,
    members_touched: BTreeSet<crate::mesh::NodeId>,
    scan_apps: bool,
    dead: BTreeSet<crate::mesh::NodeId>,
    /// Set by `leave` (with the id to answer): everything hosted here stops, then the
    /// member record says so.
    leaving: Option<u64>,
    addresses: Vec<String>,
    /// The binary this node runs, once hashed (published in its member record).
    binary: Option<crate::api::BinaryView>,
    /// Applications whose bundle is being fetched.
    fetching: BTreeSet<String>,
    /// Actions to try again (their environment failed): when, application, path.
    retries: BTreeSet<(u64, String, String)>,
    /// Each member's name (hashed) and whether it left, from its record.
    member_info: BTreeMap<crate::mesh::NodeId, names::MemberInfo>,
    /// How many members have a name of each hash (names are shared only by rebuilt
    /// machines, or by mistake).
    name_counts: BTreeMap<u64, u32>,
    collector: collect::Collector,
    /// Autonomic records touched since the coordinator's leader last looked, and whether
    /// too many were to keep.
    autonomic_touched: BTreeSet<(crate::mesh::replica::Kind, String)>,
    autonomic_overflow: bool,
}

#[derive(Debug, Clone)]
struct PendingRun {
    app: String,
    path: String,
    action: Action,
    /// For a start: the imports the instance is configured with if it succeeds. For an
    /// update: the exporter that changed and its new variables (`None`: it left).
    imports: BTreeMap<String, records::Vars>,
    changed: Option<(String, Option<records::Vars>)>,
}

impl Core {
    /// Takes the core apart (see `Node::dismantle`).
    pub fn dismantle(self, account: &mut Account<'_>) {
        let Core {
            replica,
            member_info,
            name_counts,
            swim_alive,
            swim_down,
            dead,
            connected,
            suspects,
            announced,
            collector,
            ..
        } = self;
        account.drop("engine: replica", replica);
        account.drop("engine: member info, names", (member_info, name_counts));
        account.drop(
            "engine: liveness sets",
            (swim_alive, swim_down, dead, connected, suspects, announced),
        );
        account.drop("engine: tombstone collector", collector);
    }

    /// A core with nothing registered.
    pub fn new(cfg: Config) -> Core {
        Core {
            replica: crate::mesh::replica::Replica::new(cfg.node_id.clone(), cfg.generation),
            broadcast: Vec::new(),
            now_ms: 0,
            connected: BTreeSet::new(),
            suspects: BTreeMap::new(),
            announced: BTreeMap::new(),
            swim_down: Default::default(),
            swim_alive: Default::default(),
            scan_members: true,
            members_touched: BTreeSet::new(),
            scan_apps: true,
            dead: BTreeSet::new(),
            leaving: None,
            addresses: Vec::new(),
            binary: None,
            fetching: BTreeSet::new(),
            retries: BTreeSet::new(),
            member_info: BTreeMap::new(),
            name_counts: BTreeMap::new(),
            collector: Default::default(),
            autonomic_touched: BTreeSet::new(),
            autonomic_overflow: false,
            cfg,
            apps: BTreeMap::new(),
            ports_used: BTreeSet::new(),
            runs: BTreeMap::new(),
            next_run: 1,
            dirty: BTreeSet::new(),
            writes: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Restores what the store holds. A script that was running when the agent stopped
    /// (its instance is in a transient state) runs again.
    pub fn restore(cfg: Config, apps: Vec<LoadedApp>, instances: Vec<InstanceRecord>) -> Core {
        Core::restore_with(cfg, apps, instances, Vec::new())
    }

    /// The same, with the replicated entries the store held.
    pub fn restore_with(
        cfg: Config,
        apps: Vec<LoadedApp>,
        instances: Vec<InstanceRecord>,
        replica: Vec<crate::mesh::replica::Entry>,
    ) -> Core {
        let mut core = Core::new(cfg);
        core.replica = crate::mesh::replica::Replica::restore(
            core.cfg.node_id.clone(),
            core.cfg.generation,
            replica,
        );
        core.note_all_members();
        let acks: Vec<String> = core
            .replica
            .all(crate::mesh::replica::Kind::Ack)
            .into_keys()
            .map(str::to_string)
            .collect();
        for key in acks {
            core.took_ack(&key);
        }
        for app in apps {
            let name = app.name.clone();
            core.apps.insert(name, AppState::new(app));
        }
        let mut instances = instances;
        instances.sort_by(|a, b| (&a.app, &a.path).cmp(&(&b.app, &b.path)));
        for mut rec in instances {
            rec.state = lifecycle::stable_before(rec.state);
            // A restart is a new chance for what failed for the agent's own reasons.
            if let Some(r) = rec.retry.as_mut() {
                r.at_ms = 0;
            }
            core.ports_used.extend(rec.ports.values().copied());
            let key = (rec.app.clone(), rec.path.clone());
            if let Some(app) = core.apps.get_mut(&rec.app) {
                if app.insert(rec) {
                    core.dirty.insert(key);
                }
            }
        }
        for app in core.apps.values_mut() {
            let started: Vec<String> = app
                .insts
                .iter()
                .filter(|(_, i)| i.rec.state == crate::api::State::DeployedStarted)
                .map(|(p, _)| p.clone())
                .collect();
            for p in started {
                app.publish(&p, &core.cfg.ip);
            }
        }
        let names: Vec<String> = core.apps.keys().cloned().collect();
        for name in names {
            core.adopt_remote(&name);
            core.claim_hosts(&name);
        }
        core.reconcile();
        core
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Applies one input; the outputs are collected by [`Core::take_outputs`].
    pub fn step(&mut self, input: Input) {
        match input {
            Input::Command {
                id,
                command: Command::Leave,
            } => {
                self.leaving = Some(id);
                let roots: Vec<(String, String)> = self.cfg.hosts.clone();
                for (app, root) in roots {
                    let below: Vec<String> = self
                        .apps
                        .get(&app)
                        .map(|a| {
                            a.insts
                                .keys()
                                .filter(|p| p.starts_with(&format!("{root}/")))
                                .cloned()
                                .collect()
                        })
                        .unwrap_or_default();
                    for p in below {
                        self.mark(&app, &p);
                    }
                }
                self.reconcile();
                self.check_left();
            }
            Input::Command { id, command } => {
                let response = self.command(command);
                self.reconcile();
                self.out.push(Output::Reply { id, response });
            }
            Input::PluginDone { run, result } => {
                self.now_ms = self.now_ms.max(result.at_ms);
                self.plugin_done(run, result);
                self.reconcile();
                self.check_left();
            }
            Input::Remote { entries, at_ms } => {
                self.now_ms = self.now_ms.max(at_ms);
                self.remote_entries(entries);
                self.reconcile();
            }
            Input::RemoteDelta { delta, at_ms } => {
                self.now_ms = self.now_ms.max(at_ms);
                self.remote_delta(delta);
                self.reconcile();
            }
            Input::Digest { id, mask, digest } => self.answer_digest(id, mask, digest),
            Input::DigestHash { id, hash } => {
                if self.replica.digest_hash() == hash {
                    self.out.push(Output::Delta {
                        id,
                        delta: Default::default(),
                    });
                } else {
                    self.out.push(Output::Differs { id });
                }
            }
            Input::Now(ms) => {
                self.now_ms = self.now_ms.max(ms);
                self.retries_due();
                self.expire_suspects();
                self.collect_due();
                self.fetch_missing();
                self.reconcile();
                self.check_left();
            }
            Input::PeerUp(n) => {
                self.peer_up(n);
                self.reconcile();
            }
            Input::PeerDown(n) => self.peer_down(n),
            Input::PeerClosed(n) => {
                self.connected.remove(&n);
                self.members_touched.insert(n);
            }
            Input::SwimDown(n) => self.swim_verdict(n, false),
            Input::SwimUp(n) => self.swim_verdict(n, true),
            Input::Fetched { name, app } => {
                self.fetching.remove(&name);
                // A failed fetch is tried again on the next tick.
                self.scan_apps |= app.is_none();
                if let Some(app) = app {
                    let _ = self.app_add(*app, false, true);
                    self.reconcile();
                }
            }
            Input::Coordination(c) => {
                self.coordination(c);
                self.reconcile();
            }
            Input::Autonomic(rec) => self.autonomic_event(rec),
            Input::External {
                source,
                prefix,
                vars,
            } => {
                self.external_exports(&source, &prefix, vars);
                self.reconcile();
            }
            Input::Addresses(a) => {
                self.addresses = a;
                let addrs = self.addresses.clone();
                self.publish_member(addrs, false);
            }
            Input::Binary(b) => {
                self.binary = Some(b);
                let addrs = self.addresses.clone();
                self.publish_member(addrs, self.has_left(self.node_id().as_str()));
            }
        }
    }

    /// The outputs of the steps so far, persist-first.
    pub fn take_outputs(&mut self) -> Vec<Output> {
        let mut out = Vec::with_capacity(self.out.len() + 1);
        if !self.writes.is_empty() {
            out.push(Output::Persist(std::mem::take(&mut self.writes)));
        }
        if !self.broadcast.is_empty() {
            out.push(Output::Broadcast(std::mem::take(&mut self.broadcast)));
        }
        out.append(&mut self.out);
        out
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        self.runs.len()
    }

    /// An application, for read-only views.
    pub fn app(&self, name: &str) -> Option<&AppState> {
        self.apps.get(name)
    }

    /// The names of the applications registered.
    pub fn app_names(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// Once leaving and nothing hosted here runs any more: announce, answer, stop.
    fn check_left(&mut self) {
        let Some(id) = self.leaving else { return };
        let busy = self.apps.values().any(|a| {
            a.insts.values().any(|i| {
                let root = app::root_path(&i.rec.path);
                i.parent.is_some()
                    && self.is_hosted(&a.name, &root)
                    && (i.running.is_some() || i.rec.state == crate::api::State::DeployedStarted)
            })
        });
        if busy {
            return;
        }
        let addrs = self.addresses.clone();
        self.publish_member(addrs, true);
        self.leaving = None;
        self.out.push(Output::Reply {
            id,
            response: Response::ok("left the mesh: what this node hosted is stopped"),
        });
        self.out.push(Output::Left);
    }

    /// Whether this node hosts the root instance `root`: its binding says so, or, with no
    /// binding yet, the node's `--host` list does.
    pub(super) fn is_hosted(&self, app: &str, root: &str) -> bool {
        match self.host_of(app, root) {
            Some(node) => node == self.replica.origin().node,
            None => self.cfg.hosts.iter().any(|(a, r)| a == app && r == root),
        }
    }
}
