//! The runtime around the core: it owns the data directory (locked against a second
//! agent), the store, the control socket and the script workers, and runs one event loop
//! that turns requests and plug-in results into core inputs, then carries out the core's
//! outputs in order — writes made durable first, then scripts started and replies sent.

use crate::api::{Request, Response};
use crate::config::Config;
use crate::control;
use crate::core::records::Write;
use crate::core::{self, Command, Core, Input, LoadedApp, Output, RunResult};
use crate::store::{Sled, Store};
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
mod layout;
mod mesh;

pub use apps::copy_dir;
use apps::execute;
use mesh::SWIM_SUSPECT_FOR;

/// An application a worker read and bundled for `app add` (or why not), whether to
/// start it, and whom to answer.
type Prepared = (
    Result<apps::Added, Response>,
    bool,
    oneshot::Sender<Response>,
);

/// Most copies of peers' records held back from the store at once.
const PEER_WRITES_MAX: usize = 1024;

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
    #[error("control socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
}

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

struct Loop {
    cfg: Config,
    core: Core,
    store: Arc<dyn Store>,
    replies: HashMap<u64, oneshot::Sender<Response>>,
    /// Applications being removed: their name and bundle folder, deleted once removed.
    removals: HashMap<u64, (String, Option<std::path::PathBuf>)>,
    next_id: u64,
    done_tx: mpsc::Sender<(u64, RunResult)>,
    workers: Arc<Semaphore>,
    script: Arc<Script>,
    logger: Arc<Logger>,
    mesh: Option<crate::meshio::MeshIo>,
    /// Set once the node has left the mesh.
    stop: bool,
    /// The last records spread (when leaving: the departure itself).
    last_words: Vec<crate::mesh::replica::Entry>,
    /// Copies of peers' records not yet handed to the store: they are written with the
    /// next batch of this node's own, on the next tick, or when this many wait.
    peer_writes: Vec<Write>,
    /// Applications read and bundled by a worker, to register (`app add`).
    prepared_tx: mpsc::Sender<Prepared>,
    /// Warnings to add to a command's answer (`app add`: links left out...).
    notes: HashMap<u64, Vec<String>>,
    /// Tokens being recorded, to print once stored (by command id).
    tokens: HashMap<u64, (String, u64)>,
    /// Join requests being ruled on: command id → the network's request id and the peer.
    joins: HashMap<u64, (u64, libp2p::PeerId)>,
    swim: Option<crate::swim::Swim>,
    swim_timer_tx: mpsc::Sender<foca::Timer<crate::swim::SwimId>>,
}

impl Loop {
    async fn request(&mut self, req: Request, reply: oneshot::Sender<Response>) {
        if let Err(e) = req.check_bounds() {
            let _ = reply.send(Response::error(e));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.core.step(Input::Now(now_ms()));
        let no_network = || {
            Response::error(
                "this agent has no network: start it with --listen (e.g. /ip4/0.0.0.0/tcp/7400)",
            )
        };
        let command = match req {
            Request::MeshInit => {
                let r = match self.mesh.as_mut() {
                    Some(m) => m.init().await,
                    None => no_network(),
                };
                let _ = reply.send(r);
                return;
            }
            Request::Join { addr, token } => {
                match &self.mesh {
                    Some(m) => m.join(&addr, token, reply),
                    None => {
                        let _ = reply.send(no_network());
                    }
                }
                return;
            }
            Request::MeshToken { ttl_ms } => {
                if let Err(e) = crate::admission::check_token_ttl(ttl_ms) {
                    let _ = reply.send(Response::error(e));
                    return;
                }
                let token = match self.mesh.as_ref().map(|m| m.new_token()) {
                    Some(Ok(t)) => t,
                    Some(Err(r)) => {
                        let _ = reply.send(r);
                        return;
                    }
                    None => {
                        let _ = reply.send(no_network());
                        return;
                    }
                };
                self.tokens.insert(id, (token.reveal(), ttl_ms));
                Command::TokenIssue {
                    id: token.id.clone(),
                    hash: token.hash(),
                    expires_ms: now_ms().saturating_add(ttl_ms),
                }
            }
            Request::Logs { app, path } => {
                self.logs(app, path, reply);
                return;
            }
            Request::AppAdd { path, name, start } => {
                // Reading, copying and packing an application is disk work: it runs on a
                // worker, and its result comes back as `Prepared`.
                let registered: std::collections::BTreeMap<String, String> = self
                    .core
                    .app_names()
                    .filter_map(|n| self.core.app(n).map(|a| (n.to_string(), a.hash.clone())))
                    .collect();
                let (data_dir, prepared_tx) = (self.cfg.data_dir.clone(), self.prepared_tx.clone());
                tokio::spawn(async move {
                    let result = tokio::task::spawn_blocking(move || {
                        apps::prepare_bundle(&data_dir, &path, name, &registered)
                    })
                    .await
                    .unwrap_or_else(|e| Err(Response::error(format!("worker failed: {e}"))));
                    let _ = prepared_tx.send((result, start, reply)).await;
                });
                return;
            }
            Request::AppList => Command::AppList,
            Request::Members => Command::Members,
            Request::InstanceBind { app, root, node } => Command::Bind { app, root, node },
            Request::Leave => Command::Leave,
            Request::AppRemove { name } => {
                let bundle = self.core.app(&name).map(|a| a.bundle.clone());
                self.removals.insert(id, (name.clone(), bundle));
                Command::AppRemove { name }
            }
            Request::AppSet { name, target } => Command::AppSet { name, target },
            Request::InstanceCreate {
                app,
                path,
                component,
            } => Command::InstanceCreate {
                app,
                path,
                component,
            },
            Request::InstanceDelete { app, path } => Command::InstanceDelete { app, path },
            Request::InstanceSet { app, path, target } => {
                Command::InstanceSet { app, path, target }
            }
            Request::Status { app } => Command::Status { app },
        };
        self.replies.insert(id, reply);
        self.core.step(Input::Command { id, command });
    }

    /// An application prepared by a worker: registered, unless its name was taken
    /// meanwhile (then its bundle goes).
    fn prepared(&mut self, prepared: Prepared) {
        let (result, start, reply) = prepared;
        let id = self.next_id;
        self.next_id += 1;
        let command = match result {
            Err(r) => {
                let _ = reply.send(r);
                return;
            }
            // Registered already with this content: `--start` still starts it all.
            Ok(apps::Added::Same(name)) => {
                if !start {
                    let _ = reply.send(Response::ok(format!(
                        "application `{name}` is already registered with this content"
                    )));
                    return;
                }
                Command::AppSet {
                    name,
                    target: crate::api::Desired::Started,
                }
            }
            Ok(apps::Added::New(app, _)) if self.core.app(&app.name).is_some() => {
                // Registered meanwhile (fetched from a peer, or another `app add`).
                if self.core.app(&app.name).is_some_and(|a| a.hash == app.hash) {
                    if start {
                        Command::AppSet {
                            name: app.name,
                            target: crate::api::Desired::Started,
                        }
                    } else {
                        let _ = reply.send(Response::ok(format!(
                            "application `{}` is already registered with this content",
                            app.name
                        )));
                        return;
                    }
                } else {
                    let _ = std::fs::remove_dir_all(&app.bundle);
                    let _ = reply.send(apps::already(&app.name));
                    return;
                }
            }
            Ok(apps::Added::New(app, warnings)) => {
                if !warnings.is_empty() {
                    self.notes.insert(id, warnings);
                }
                Command::AppAdd { app, start }
            }
        };
        self.replies.insert(id, reply);
        self.core.step(Input::Now(now_ms()));
        self.core.step(Input::Command { id, command });
    }

    /// Writes a batch. Copies of peers' records alone wait for the next write or tick:
    /// they were never promised durable (sled flushes them within 500 ms anyway, and
    /// anti-entropy brings back whatever a crash loses), and one store transaction per
    /// tick costs far less than one per gossip message.
    fn persist(&mut self, writes: Vec<Write>) -> Result<(), Error> {
        let peers_only = writes.iter().all(|w| matches!(w, Write::Peer { .. }));
        if peers_only && self.peer_writes.len() + writes.len() <= PEER_WRITES_MAX {
            self.peer_writes.extend(writes);
            return Ok(());
        }
        let mut all = std::mem::take(&mut self.peer_writes);
        all.extend(writes);
        Ok(self.store.apply(&all)?)
    }

    /// Hands the waiting copies of peers' records to the store.
    fn persist_peer_writes(&mut self) -> Result<(), Error> {
        if self.peer_writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.peer_writes);
        Ok(self.store.apply(&writes)?)
    }

    /// Carries out the core's outputs: durable writes first.
    fn flush(&mut self) -> Result<(), Error> {
        // Gossip goes out last, once this batch's events are logged: a peer never logs a
        // record before its origin logged the change that made it.
        let mut gossip = Vec::new();
        for out in self.core.take_outputs() {
            match out {
                Output::Persist(writes) => self.persist(writes)?,
                Output::Run(run) => {
                    let (workers, done_tx, script, logger) = (
                        self.workers.clone(),
                        self.done_tx.clone(),
                        self.script.clone(),
                        self.logger.clone(),
                    );
                    tokio::spawn(async move {
                        let Ok(_permit) = workers.acquire_owned().await else {
                            return;
                        };
                        let id = run.run;
                        let result =
                            tokio::task::spawn_blocking(move || execute(&run, &script, &logger))
                                .await
                                .unwrap_or_else(|e| RunResult {
                                    ok: false,
                                    code: None,
                                    error: Some(format!("worker failed: {e}")),
                                    output: String::new(),
                                    at_ms: now_ms(),
                                    retry: true,
                                });
                        let _ = done_tx.send((id, result)).await;
                    });
                }
                Output::Reply { id, response } if self.joins.contains_key(&id) => {
                    let (net_id, peer) = self
                        .joins
                        .remove(&id)
                        .unwrap_or((0, libp2p::PeerId::random()));
                    if let Some(m) = &self.mesh {
                        let verdict = match response {
                            Response::Ok { .. } => Ok(()),
                            Response::Error { message, .. } => Err(message),
                            _ => Err("unexpected answer".into()),
                        };
                        m.answer_join(net_id, peer, verdict);
                    }
                }
                Output::Reply { id, mut response } => {
                    if let (Some((token, ttl_ms)), Response::Ok { .. }) =
                        (self.tokens.remove(&id), &response)
                    {
                        response = Response::ok(format!(
                            "join token (single use, valid {} s): {token}",
                            ttl_ms / 1000
                        ));
                    }
                    if let (Some(notes), Response::Ok { message }) =
                        (self.notes.remove(&id), &mut response)
                    {
                        for n in notes {
                            message.push('\n');
                            message.push_str(&n);
                        }
                    }
                    if let (Some((name, bundle)), Response::Ok { .. }) =
                        (self.removals.remove(&id), &response)
                    {
                        apps::remove_app_files(&self.cfg.data_dir, &name, bundle.as_deref());
                    }
                    if let Some(tx) = self.replies.remove(&id) {
                        let _ = tx.send(response);
                    }
                }
                Output::Left => self.stop = true,
                Output::Announce(node) => {
                    if let Some(s) = self.swim.as_mut() {
                        s.announce(node.as_str());
                    }
                    self.swim_out();
                }
                Output::SendDigest { id } => {
                    if let Some(m) = &self.mesh {
                        m.ask_digest(id);
                    }
                }
                Output::Fetch { name, hash, from } => {
                    if let Some(m) = &self.mesh {
                        m.fetch(name, hash, &from);
                    }
                }
                Output::Broadcast(entries) => gossip.push(entries),
                Output::Delta { id, delta } => {
                    if let Some(m) = &self.mesh {
                        m.respond(id, delta);
                    }
                }
                Output::Event(core::Event::RemoteExports { app, path, present }) => {
                    eprintln!(
                        "{} {app} {path} exports-{}",
                        now_ms(),
                        if present { "in" } else { "out" }
                    );
                }
                Output::Event(core::Event::StateChanged { app, path, state }) => {
                    eprintln!("{} {app} {path} {}", now_ms(), state.as_str());
                }
                Output::Event(core::Event::Liveness { node, dead }) => {
                    eprintln!(
                        "{} member {node} {}",
                        now_ms(),
                        if dead { "dead" } else { "alive" }
                    );
                }
            }
        }
        if let Some(m) = &self.mesh {
            for entries in gossip {
                self.last_words = entries.clone();
                m.broadcast(entries);
            }
        }
        Ok(())
    }
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(cfg: Config) -> Result<(), Error> {
    cfg.validate()?;
    let _lock = lock_data_dir(&cfg.data_dir)?;
    let had_store = cfg.data_dir.join("store").exists();
    let store: Arc<dyn Store> = Arc::new(Sled::open(&cfg.data_dir.join("store"))?);
    let fresh = !had_store || store.meta("generation")?.is_none();
    layout::check_fresh_store(&cfg.data_dir, fresh, cfg.reset_store)?;
    let instances = store.instances()?;
    layout::migrate_work_dirs(&cfg.data_dir, &instances)?;
    let leftovers = cfg.data_dir.clone();
    tokio::task::spawn_blocking(move || layout::clean_leftovers(&leftovers));
    let mut apps = Vec::new();
    for rec in store.apps()? {
        let (model, diags) = roboconf_model::app::load_application(&rec.bundle, Limits::default());
        if has_errors(&diags) {
            eprintln!("roboconf agent: the bundle of `{}` in {} cannot be read; its instances are left alone", rec.name, rec.bundle.display());
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
    let generation = match store.meta("generation")? {
        Some(b) => String::from_utf8_lossy(&b).parse().unwrap_or(1),
        None => {
            let g = now_ms();
            store.set_meta("generation", g.to_string().as_bytes())?;
            g
        }
    };
    // Each start is a new life for SWIM (see `Swim::seeded`).
    let life = now_ms();
    let networked = !cfg.listen.is_empty() || !cfg.peer.is_empty();
    let mesh = if networked {
        let key = crate::meshio::identity(&cfg.data_dir).map_err(|e| Error::DataDir {
            path: cfg.data_dir.display().to_string(),
            message: format!("identity: {e}"),
        })?;
        let creds =
            crate::admission::Credentials::load(&cfg.data_dir).map_err(|e| Error::DataDir {
                path: cfg.data_dir.display().to_string(),
                message: e.to_string(),
            })?;
        let m = crate::meshio::MeshIo::start(
            key,
            &cfg.data_dir,
            creds,
            &cfg.listen,
            &cfg.peer,
            cfg.mdns,
        )
        .map_err(|e| Error::Socket {
            path: "network".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        m.dial_bootstrap().await;
        let mut m = m;
        m.store = Some(store.clone());
        Some(m)
    } else {
        None
    };
    let mut cfg = cfg;
    if cfg.node.is_empty() {
        let id = mesh.as_ref().map(|m| m.node_id().to_string());
        cfg.node = crate::config::default_node_name(id.as_deref());
    }
    let node_id = mesh
        .as_ref()
        .map(|m| m.node_id())
        .unwrap_or_else(|| crate::mesh::NodeId::new(cfg.node.clone()));
    let core_cfg = core::Config {
        node_id,
        generation,
        node: cfg.node.clone(),
        ip: cfg.ip.clone(),
        work_dir: cfg.data_dir.join("instances"),
        hosts: cfg.hosts()?,
        runs_kept: cfg.runs_kept,
        forbidden_ports: cfg.forbidden_ports.iter().copied().collect(),
        ..core::Config::default()
    };
    let core = Core::restore_with(core_cfg, apps, instances, store.replica()?);
    let socket = cfg.socket_path();
    let listener = control::bind(&socket).map_err(|source| Error::Socket {
        path: socket.display().to_string(),
        source,
    })?;
    let (requests_tx, mut requests_rx) = mpsc::channel::<control::Pending>(64);
    let (swim_timer_tx, mut swim_timer_rx) = mpsc::channel(1024);
    let swim = mesh.as_ref().map(|m| {
        crate::swim::Swim::seeded(
            m.node_id().as_str(),
            life,
            crate::swim::config(SWIM_SUSPECT_FOR),
            u64::from_le_bytes(crate::admission::random_bytes::<8>()),
        )
    });
    let (done_tx, mut done_rx) = mpsc::channel::<(u64, RunResult)>(1024);
    // As many as the control socket's clients.
    let (prepared_tx, mut prepared_rx) = mpsc::channel::<Prepared>(control::MAX_CLIENTS);
    tokio::spawn(control::serve(listener, requests_tx));
    let mut lp = Loop {
        workers: Arc::new(Semaphore::new(cfg.max_parallel_scripts)),
        script: Arc::new(Script {
            timeout: Duration::from_secs(cfg.script_timeout_secs),
            capture_limit: cfg.script_output_limit,
        }),
        logger: Arc::new(Logger::new(1000)),
        cfg,
        core,
        store,
        replies: HashMap::new(),
        removals: HashMap::new(),
        next_id: 1,
        done_tx,
        mesh,
        stop: false,
        last_words: Vec::new(),
        peer_writes: Vec::new(),
        tokens: HashMap::new(),
        notes: HashMap::new(),
        prepared_tx,
        joins: HashMap::new(),
        swim,
        swim_timer_tx,
    };
    lp.flush()?;
    eprintln!("roboconf agent: ready, control socket {}", socket.display());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|source| Error::Socket {
            path: "SIGTERM".into(),
            source,
        })?;
    // A quarter-second clock: suspects expire on it; anti-entropy runs every fourth tick.
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    let mut tick: u64 = 0;
    loop {
        let mut net_events = lp.mesh.as_mut().map(|m| &mut m.events);
        let net_event = async {
            match net_events.as_mut() {
                Some(events) => events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            Some((req, reply)) = requests_rx.recv() => lp.request(req, reply).await,
            Some((run, result)) = done_rx.recv() => lp.core.step(Input::PluginDone { run, result }),
            Some(p) = prepared_rx.recv() => lp.prepared(p),
            Some(t) = swim_timer_rx.recv() => {
                if let Some(s) = lp.swim.as_mut() {
                    s.timer(t);
                }
                lp.swim_out();
            }
            Some(ev) = net_event => {
                if lp.own_event(&ev) {
                    lp.flush()?;
                    continue;
                }
                let (input, ae_peer) = match lp.mesh.as_ref() {
                    Some(m) => m.on_event(ev, now_ms()),
                    None => (None, None),
                };
                if let Some(input) = input {
                    lp.core.step(input);
                }
                if let (Some(peer), Some(m)) = (ae_peer, lp.mesh.as_mut()) {
                    m.ae_period = 4;
                    m.anti_entropy(lp.core.digest(), Some(peer)).await;
                }
            }
            _ = ticks.tick() => {
                tick += 1;
                lp.persist_peer_writes()?;
                lp.core.step(Input::Now(now_ms()));
                if let Some(m) = lp.mesh.as_mut() {
                    if let Some(addrs) = m.new_addresses().await {
                        lp.core.step(Input::Addresses(addrs));
                    }
                    while let Ok(delta) = m.deltas.try_recv() {
                        m.note_delta(delta.entries.is_empty());
                        lp.core.step(Input::RemoteDelta { delta, at_ms: now_ms() });
                    }
                    if tick == 1 || tick.is_multiple_of(4) {
                        let members: Vec<Vec<String>> = lp
                            .core
                            .members()
                            .into_iter()
                            .filter(|(_, _, live)| !matches!(live, crate::core::members::Liveness::Left))
                            .map(|(_, rec, _)| rec.addresses)
                            .collect();
                        m.dial_members(members).await;
                    }
                    if tick == 1 || tick.is_multiple_of(m.ae_period) {
                        m.anti_entropy(lp.core.digest(), None).await;
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        // Anti-entropy answers are taken in as soon as they are there.
        if let Some(m) = lp.mesh.as_mut() {
            while let Ok(delta) = m.deltas.try_recv() {
                m.note_delta(delta.entries.is_empty());
                lp.core.step(Input::RemoteDelta {
                    delta,
                    at_ms: now_ms(),
                });
            }
            while let Ok((r, reply)) = m.joined.try_recv() {
                let joined = r.is_ok();
                let _ = reply.send(m.finish_join(r));
                if joined {
                    m.ae_period = 4;
                    m.anti_entropy(lp.core.digest(), None).await;
                }
            }
            while let Ok((name, app)) = m.fetched.try_recv() {
                lp.core.step(Input::Fetched {
                    name,
                    app: app.map(Box::new),
                });
            }
        }
        // Group what is already waiting into the same durable batch.
        for _ in 0..256 {
            if let Ok((run, result)) = done_rx.try_recv() {
                lp.core.step(Input::PluginDone { run, result });
            } else if let Ok((req, reply)) = requests_rx.try_recv() {
                lp.request(req, reply).await;
            } else {
                break;
            }
        }
        lp.flush()?;
        if lp.stop {
            break;
        }
    }
    if lp.stop {
        if let Some(s) = lp.swim.as_mut() {
            s.leave();
        }
        lp.swim_out();
        // Leaving: make sure the peers heard it before going.
        if let Some(m) = &lp.mesh {
            m.push(std::mem::take(&mut lp.last_words), Duration::from_secs(3))
                .await;
        }
    }
    lp.persist_peer_writes()?;
    let _ = std::fs::remove_file(&socket);
    eprintln!("roboconf agent: stopped");
    Ok(())
}
