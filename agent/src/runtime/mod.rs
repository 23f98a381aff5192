//! The runtime around the core: it owns the data directory (locked against a second
//! agent), the store, the control socket and the script workers, and runs one event loop
//! that turns requests and plug-in results into core inputs, then carries out the core's
//! outputs in order — writes made durable first, then scripts started and replies sent.
//! It owns the agent's metrics (`crate::metrics`, filled in `metrics`) and logs through
//! `tracing`; its announcements (the addresses listened on, ready, stopped, a fatal
//! error) have the target `ANNOUNCE`, which the subscriber always shows.

use crate::api::Response;
use crate::config::Config;
use crate::control;
use crate::core::{self, LoadedApp, RunResult};
use crate::meshio::Report;
use crate::store::{Sled, Store};
use roboconf_core::node::{Input, Node, Restored};
use roboconf_model::diag::has_errors;
use roboconf_model::dsl::Limits;
use roboconf_plugins::{logger::Logger, script::Script};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, oneshot, Semaphore};

mod apps;
mod autonomic;
mod bridge;
mod effects;
mod layout;
mod mesh;
mod metrics;
mod requests;

pub use apps::copy_dir;

/// An application a worker read and bundled for `app add` (or why not), whether to
/// start it, and whom to answer.
type Prepared = (
    Result<apps::Added, Response>,
    bool,
    oneshot::Sender<Response>,
);

/// Why the agent could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error("data dir {path}: {message}")]
    DataDir { path: String, message: String },
    #[error("another agent is already running on the data dir {path}{pid}")]
    Locked { path: String, pid: String },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("network: {0}")]
    Network(String),
    #[error("http: {0}")]
    Http(String),
    #[error("worker: {0}")]
    Worker(String),
    #[error("control socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

/// The target of the agent's announcements: shown whatever the log filter, as
/// `roboconf agent: <message>` lines in the human format (tools read the address an agent
/// listens on from them) and as ordinary events in the JSON format.
pub const ANNOUNCE: &str = "roboconf::announce";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates the data directory (owner-only) and takes its lock. The lock lasts as long as
/// the returned file is open.
pub fn lock_data_dir(dir: &Path) -> Result<File, Error> {
    let shown = dir.display().to_string();
    let fail = |message: String| Error::DataDir {
        path: shown.clone(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it: {e}")))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| fail(format!("cannot set its permissions: {e}")))?;
    let lock_path = dir.join("agent.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| fail(format!("not writable: {e}")))?;
    if file.try_lock().is_err() {
        let pid = std::fs::read_to_string(&lock_path)
            .ok()
            .map(|p| format!(" (pid {})", p.trim()))
            .unwrap_or_default();
        return Err(Error::Locked { path: shown, pid });
    }
    file.set_len(0)
        .map_err(|e| fail(format!("not writable: {e}")))?;
    let _ = write!(file, "{}", std::process::id());
    Ok(file)
}

/// Bound of the control socket's (and the HTTP API's) requests queue.
const REQUESTS: usize = 64;
/// Bound of the plug-in results queue.
const RESULTS: usize = 1024;

/// A queue's depth for the metrics (`None`: a queue this agent does not have).
fn queue<T>(
    name: &'static str,
    rx: Option<&mpsc::Receiver<T>>,
    capacity: usize,
) -> crate::metrics::Queue {
    crate::metrics::Queue {
        name,
        depth: rx.map_or(0, |r| r.len() as u64),
        capacity: capacity as u64,
    }
}

/// What `mesh init` asked of the coordinator: its voters, and its machine limits (in
/// the mesh, per application).
type Founding = (Option<u32>, Option<(u32, u32)>);

/// The event loop's state: the node, and what the runtime keeps beside it to finish
/// its answers.
struct Loop {
    cfg: Config,
    node: Node,
    store: Arc<dyn Store>,
    replies: HashMap<u64, oneshot::Sender<Response>>,
    /// Applications being removed: their name and bundle folder, deleted once removed.
    removals: HashMap<u64, (String, Option<std::path::PathBuf>)>,
    next_id: u64,
    done_tx: mpsc::Sender<(u64, RunResult)>,
    workers: Arc<Semaphore>,
    plugins: Arc<apps::Plugins>,
    mesh: Option<crate::meshio::MeshIo>,
    /// Set once the node has left the mesh.
    stop: bool,
    /// The requests carrying the node's last words (when leaving), to wait for.
    last_words: Vec<tokio::task::JoinHandle<()>>,
    /// Applications read and bundled by a worker, to register (`app add`).
    prepared_tx: mpsc::Sender<Prepared>,
    /// Warnings to add to a command's answer (`app add`: links left out...).
    notes: HashMap<u64, Vec<String>>,
    /// Tokens being recorded, to print once stored (by command id).
    tokens: HashMap<u64, (String, u64)>,
    /// Join requests being ruled on: command id → the network's request id and the peer.
    joins: HashMap<u64, (u64, libp2p::PeerId)>,
    /// The addresses published (what the network listens on).
    listening: Vec<String>,
    /// When the node wants `tick` (wall ms).
    wake_at: u64,
    /// The voters and machine limits `mesh init` asked for.
    init_voters: Option<Founding>,
    /// The coordinator's machines (targets), and their results.
    machines: crate::targets::Machines,
    /// Probe rounds, and the reports of the autonomic tasks.
    probing: autonomic::Probing,
    /// The AMQP bridge, when configured.
    amqp: Option<bridge::Link>,
    /// Why the configured bridge could not start (its settings), for `amqp status`.
    amqp_down: Option<String>,
    /// Live events for the HTTP API's streams.
    live: crate::live::Hub,
    /// The agent's metrics.
    metrics: crate::metrics::Metrics,
    /// What the control socket counts.
    control: Arc<control::Counters>,
    /// The depths of the loop's queues, as of the current turn.
    queues: [crate::metrics::Queue; 4],
    /// The coordinator's term as this node last saw it, and its span.
    term: mesh::Term,
}

/// One thing the event loop received: the `select!` only builds it; `handle` acts.
enum Branch {
    Control(control::Pending),
    Done(u64, RunResult),
    Prepared(Prepared),
    Net(crate::net::Event),
    Report(Report),
    Machine(crate::targets::Done),
    Autonomic(autonomic::Report),
    Amqp(crate::amqp::Command, oneshot::Sender<crate::amqp::Answer>),
    InterApp(crate::amqp::interapp::InterApp),
    Wake,
    Stop,
}

/// Reads the applications the store names (a bundle that cannot be read leaves its
/// instances alone, with a word on stderr).
fn load_apps(store: &dyn Store) -> Result<Vec<LoadedApp>, Error> {
    let mut apps = Vec::new();
    for rec in store.apps()? {
        let (model, diags) = roboconf_model::app::load_application(&rec.bundle, Limits::default());
        if has_errors(&diags) {
            tracing::error!(
                app = rec.name.as_str(),
                bundle = %rec.bundle.display(),
                "the application's bundle cannot be read; its instances are left alone"
            );
            continue;
        }
        apps.push(LoadedApp {
            name: rec.name,
            version: rec.version,
            bundle: rec.bundle,
            hash: rec.hash,
            model,
        });
    }
    Ok(apps)
}

/// The store's generation: set when the store is made, a new one with a lost store.
fn generation(store: &dyn Store) -> Result<u64, Error> {
    Ok(match store.meta("generation")? {
        Some(b) => String::from_utf8_lossy(&b).parse().unwrap_or(1),
        None => {
            let g = now_ms();
            store.set_meta("generation", g.to_string().as_bytes())?;
            g
        }
    })
}

/// Runs the agent until SIGINT or SIGTERM, or until it left its mesh.
pub async fn run(cfg: Config) -> Result<(), Error> {
    let mut cfg = cfg;
    // Scripts run in other folders: a relative data dir would name nothing there.
    cfg.data_dir = std::path::absolute(&cfg.data_dir).map_err(|e| Error::DataDir {
        path: cfg.data_dir.display().to_string(),
        message: format!("cannot make it absolute: {e}"),
    })?;
    cfg.validate()?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let had_store = cfg.data_dir.join("store").exists();
    let sled = Sled::open(&cfg.data_dir.join("store"))?;
    let outbox = match cfg.amqp {
        Some(_) => Some(sled.open_tree(crate::amqp::outbox::TREE)?),
        None => None,
    };
    let store: Arc<dyn Store> = Arc::new(sled);
    let fresh = !had_store || store.meta("generation")?.is_none();
    layout::check_fresh_store(&cfg.data_dir, fresh, cfg.reset_store)?;
    let instances = store.instances()?;
    layout::migrate_work_dirs(&cfg.data_dir, &instances)?;
    let leftovers = cfg.data_dir.clone();
    tokio::task::spawn_blocking(move || layout::clean_leftovers(&leftovers));
    let apps = load_apps(store.as_ref())?;
    let generation = generation(store.as_ref())?;
    let networked = !cfg.listen.is_empty() || !cfg.peer.is_empty();
    let node_defaults = roboconf_core::node::Config::default();
    let (reports_tx, mut reports_rx) = mpsc::channel::<Report>(crate::meshio::REPORTS);
    let data_error = |message: String| Error::DataDir {
        path: cfg.data_dir.display().to_string(),
        message,
    };
    let (mesh, mut net_rx) = if networked {
        let key = crate::meshio::identity(&cfg.data_dir)
            .map_err(|e| data_error(format!("identity: {e}")))?;
        let creds = crate::admission::Credentials::load(&cfg.data_dir)
            .map_err(|e| data_error(e.to_string()))?;
        let settings = crate::meshio::Settings {
            key,
            data_dir: &cfg.data_dir,
            creds,
            listen: &cfg.listen,
            peers: &cfg.peer,
            mdns: cfg.mdns,
            gossip: &node_defaults.gossip,
            store: store.clone(),
        };
        let (m, events) = crate::meshio::MeshIo::start(settings, reports_tx)
            .map_err(|e| Error::Network(e.to_string()))?;
        (Some(m), Some(events))
    } else {
        drop(reports_tx);
        (None, None)
    };
    if cfg.node.is_empty() {
        let id = mesh.as_ref().map(|m| m.node_id().to_string());
        cfg.node = crate::config::default_node_name(id.as_deref());
    }
    let node_id = mesh
        .as_ref()
        .map(|m| m.node_id())
        .unwrap_or_else(|| crate::mesh::NodeId::new(cfg.node.clone()));
    let node_name = node_id.to_string();
    let node_cfg = roboconf_core::node::Config {
        engine: core::Config {
            node_id,
            generation,
            node: cfg.node.clone(),
            ip: cfg.ip.clone(),
            work_dir: cfg.data_dir.join("instances"),
            hosts: cfg.hosts()?,
            runs_kept: cfg.runs_kept,
            forbidden_ports: cfg.forbidden_ports.iter().copied().collect(),
            port_range: (cfg.random_ports[0], cfg.random_ports[1]),
            timing: core::Timing {
                collect_every_ms: cfg.collect_every_secs.saturating_mul(1000),
                collect_after_ms: cfg.collect_after_secs.saturating_mul(1000),
                ..core::Timing::default()
            },
        },
        networked,
        ..node_defaults
    };
    let restored = Restored {
        apps,
        instances,
        replica: store.replica()?,
        raft: store.raft()?,
        lost: fresh,
    };
    let member = mesh.as_ref().is_some_and(|m| m.is_member());
    // Each start is a new life for SWIM (see `Swim::seeded`).
    let seed = u64::from_le_bytes(crate::admission::random_bytes::<8>());
    let node = Node::new(node_cfg, restored, member, now_ms(), seed);
    let socket = cfg.socket_path();
    let listener = control::bind(&socket).map_err(|source| Error::Socket {
        path: socket.display().to_string(),
        source,
    })?;
    let (requests_tx, mut requests_rx) = mpsc::channel::<control::Pending>(REQUESTS);
    let (done_tx, mut done_rx) = mpsc::channel::<(u64, RunResult)>(RESULTS);
    // As many as the control socket's clients.
    let (prepared_tx, mut prepared_rx) = mpsc::channel::<Prepared>(control::MAX_CLIENTS);
    let live = crate::live::Hub::new();
    if let Some(h) = &cfg.http {
        crate::http::start(h, &cfg.data_dir, requests_tx.clone(), live.clone())
            .await
            .map_err(Error::Http)?;
    }
    let control_counters = Arc::new(control::Counters::default());
    tokio::spawn(control::serve(
        listener,
        requests_tx,
        control_counters.clone(),
    ));
    let (machine_tx, mut machine_rx) = mpsc::channel::<crate::targets::Done>(64);
    let (auto_tx, mut auto_rx) = mpsc::channel::<autonomic::Report>(256);
    let lp_data_dir = cfg.data_dir.clone();
    let (amqp_tx, mut amqp_rx) = mpsc::channel(bridge::COMMANDS);
    let (interapp_tx, mut interapp_rx) = mpsc::channel(bridge::COMMANDS);
    // A bridge that cannot start (bad settings) leaves the agent serving the mesh.
    let mut amqp_down = None;
    let amqp = match (&cfg.amqp, outbox) {
        (Some(a), Some(tree)) => {
            match bridge::Link::start(a, tree, &node_name, amqp_tx, interapp_tx) {
                Ok(link) => Some(link),
                Err(e) => {
                    tracing::error!(error = %e, "the amqp bridge is down");
                    amqp_down = Some(e.to_string());
                    None
                }
            }
        }
        _ => None,
    };
    let mut lp = Loop {
        workers: Arc::new(Semaphore::new(cfg.max_parallel_scripts)),
        plugins: Arc::new(apps::Plugins {
            script: Script {
                timeout: Duration::from_secs(cfg.script_timeout_secs),
                capture_limit: cfg.script_output_limit,
            },
            puppet: cfg.puppet.plugin(
                Duration::from_secs(cfg.script_timeout_secs),
                cfg.script_output_limit,
            ),
            logger: Logger::new(1000),
        }),
        cfg,
        node,
        store,
        replies: HashMap::new(),
        removals: HashMap::new(),
        next_id: 1,
        done_tx,
        mesh,
        stop: false,
        last_words: Vec::new(),
        tokens: HashMap::new(),
        notes: HashMap::new(),
        prepared_tx,
        joins: HashMap::new(),
        listening: Vec::new(),
        wake_at: 0,
        init_voters: None,
        machines: crate::targets::Machines::new(machine_tx, &lp_data_dir),
        probing: autonomic::Probing {
            next_ms: 0,
            busy: Default::default(),
            report_tx: auto_tx,
        },
        amqp,
        amqp_down,
        live,
        metrics: crate::metrics::Metrics::new(),
        control: control_counters,
        queues: Default::default(),
        term: mesh::Term::default(),
    };
    if member {
        if let Some(m) = &lp.mesh {
            m.dial_bootstrap();
        }
    }
    lp.node.tick(now_ms());
    lp.flush().await?;
    // A launched machine's agent joins with its user data's token, asking each member
    // it names in turn until one admits it.
    let (join_tx, mut join_rx) = mpsc::channel::<usize>(1);
    if lp.cfg.join.is_some() && !member {
        let _ = join_tx.try_send(0);
    }
    tracing::info!(target: ANNOUNCE, socket = %socket.display(), "ready, control socket {}", socket.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| Error::Socket {
            path: "SIGTERM".into(),
            source,
        })?;
    loop {
        let wake = lp.wake_at.min(lp.probing.next_ms.max(1));
        let wait = Duration::from_millis(wake.saturating_sub(now_ms()));
        let net_event = async {
            match net_rx.as_mut() {
                Some(events) => events.recv().await,
                None => std::future::pending().await,
            }
        };
        let branch = tokio::select! {
            Some(p) = requests_rx.recv() => Branch::Control(p),
            Some((run, result)) = done_rx.recv() => Branch::Done(run, result),
            Some(p) = prepared_rx.recv() => Branch::Prepared(p),
            Some(ev) = net_event => Branch::Net(ev),
            Some(r) = reports_rx.recv() => Branch::Report(r),
            Some(d) = machine_rx.recv() => Branch::Machine(d),
            Some(r) = auto_rx.recv() => Branch::Autonomic(r),
            Some((c, a)) = amqp_rx.recv() => Branch::Amqp(c, a),
            Some(m) = interapp_rx.recv() => Branch::InterApp(m),
            Some(k) = join_rx.recv() => {
                lp.join_with_user_data(k, &join_tx);
                continue;
            }
            _ = tokio::time::sleep(wait) => Branch::Wake,
            _ = tokio::signal::ctrl_c() => Branch::Stop,
            _ = term.recv() => Branch::Stop,
        };
        lp.queues = [
            queue("net_events", net_rx.as_ref(), crate::net::QUEUE),
            queue("control_requests", Some(&requests_rx), REQUESTS),
            queue("script_results", Some(&done_rx), RESULTS),
            queue("mesh_reports", Some(&reports_rx), crate::meshio::REPORTS),
        ];
        if !lp.handle(branch) {
            break;
        }
        // Group what is already waiting into the same durable batch.
        for _ in 0..256 {
            let more = if let Ok((run, result)) = done_rx.try_recv() {
                Branch::Done(run, result)
            } else if let Some(ev) = net_rx.as_mut().and_then(|r| r.try_recv().ok()) {
                Branch::Net(ev)
            } else if let Ok(r) = reports_rx.try_recv() {
                Branch::Report(r)
            } else if let Ok(p) = requests_rx.try_recv() {
                Branch::Control(p)
            } else {
                break;
            };
            lp.handle(more);
        }
        lp.probe_round();
        lp.amqp_mesh();
        lp.flush().await?;
        lp.watch_term();
        if lp.stop {
            break;
        }
    }
    if lp.stop {
        // Leaving: make sure the peers heard it before going.
        let words = futures::future::join_all(std::mem::take(&mut lp.last_words));
        let _ = tokio::time::timeout(lp.node.config().peers.last_words_for, words).await;
    }
    let held = lp.node.take_peer_writes();
    if !held.is_empty() {
        lp.store.apply(&held)?;
    }
    let _ = std::fs::remove_file(&socket);
    tracing::info!(target: ANNOUNCE, "stopped");
    Ok(())
}

impl Loop {
    /// Acts on what the loop received; false to stop.
    fn handle(&mut self, branch: Branch) -> bool {
        match branch {
            Branch::Control((req, reply)) => self.request(req, reply),
            Branch::Done(run, result) => {
                self.node.step(now_ms(), Input::PluginDone { run, result })
            }
            Branch::Prepared(p) => self.prepared(p),
            Branch::Net(ev) => self.net_event(ev),
            Branch::Report(r) => self.report(r),
            Branch::Machine((key, result)) => {
                self.node.step(now_ms(), Input::MachineDone { key, result })
            }
            Branch::Autonomic(r) => self.autonomic_report(r),
            Branch::Amqp(c, a) => self.amqp_command(c, a),
            Branch::InterApp(m) => self.amqp_interapp(m),
            Branch::Wake => self.node.tick(now_ms()),
            Branch::Stop => return false,
        }
        true
    }
}
