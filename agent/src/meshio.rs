//! The runtime's hands on the mesh: the node's persistent identity (a libp2p key in the
//! data dir), its admission credentials (`mesh init` makes them, `join` gets them from a
//! member, a join request from another node is answered with a certificate once the
//! node has redeemed its token), and the I/O behind the node's effects — envelopes,
//! gossip batches, requests whose answers come back as `Report`s, dials, closes,
//! datagrams, bundle fetches, and the requests answered from the disk (bundles, other
//! agents' `logs`). Everything here returns at once: slow work runs in spawned tasks
//! that report to the event loop. No protocol decision is taken here (those are
//! `roboconf_core::node`'s).

use crate::admission::{Credentials, Grant, Token};
use crate::api::Response;
use crate::mesh::wire::{decode, encode, Body, Envelope, PROTOCOL_VERSION};
use crate::mesh::NodeId;
use crate::net::{self, Net};
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long `join` waits for the member's answer.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests answered from the disk at once (bundles, other agents' `logs`).
const ANSWER_WORKERS: usize = 4;

/// Bound of the reports channel.
pub const REPORTS: usize = 1024;

/// What the tasks spawned here tell the event loop.
#[derive(Debug)]
pub enum Report {
    /// The answer to a request the node made.
    Response { from: NodeId, body: Body },
    /// A request the node made got no (readable) answer.
    Failed { to: NodeId },
    /// A bundle fetched and read (`None`: it could not be).
    Fetched {
        name: String,
        app: Option<Box<crate::core::LoadedApp>>,
    },
    /// This agent's binary, hashed (published in its member record).
    Binary(crate::api::BinaryView),
    /// `mesh init` or `join` ended: the credentials, already saved, and what to answer
    /// (or why not).
    Member {
        result: Result<(Credentials, String), String>,
        reply: oneshot::Sender<Response>,
        /// `mesh init` (not `join`).
        founded: bool,
    },
}

/// Loads the node's key from `<data-dir>/identity.key`, creating it (owner-only) once.
pub fn identity(data_dir: &Path) -> std::io::Result<Keypair> {
    let path = data_dir.join("identity.key");
    if let Ok(bytes) = std::fs::read(&path) {
        return Keypair::from_protobuf_encoding(&bytes).map_err(std::io::Error::other);
    }
    let key = Keypair::generate_ed25519();
    let bytes = key.to_protobuf_encoding().map_err(std::io::Error::other)?;
    std::fs::write(&path, bytes)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(key)
}

/// The mesh as the runtime drives it.
pub struct MeshIo {
    pub net: Net,
    data_dir: PathBuf,
    mesh: String,
    me: NodeId,
    bootstrap: Vec<Multiaddr>,
    /// Set once this node is a member.
    creds: Option<Credentials>,
    /// Gossip messages stay under this many bytes.
    max_message: usize,
    reports_tx: mpsc::Sender<Report>,
    /// The node's store, to answer other agents' `logs` of what it hosts.
    store: Arc<dyn crate::store::Store>,
    /// Workers answering requests from the disk (bundles, runs).
    answer_workers: Arc<tokio::sync::Semaphore>,
}

/// What the network starts with.
pub struct Settings<'a> {
    pub key: Keypair,
    pub data_dir: &'a Path,
    pub creds: Option<Credentials>,
    pub listen: &'a [String],
    pub peers: &'a [String],
    pub mdns: bool,
    pub gossip: &'a roboconf_core::node::GossipSettings,
    pub store: Arc<dyn crate::store::Store>,
}

impl MeshIo {
    /// Starts the network task; its events come on the returned receiver.
    pub fn start(
        s: Settings<'_>,
        reports_tx: mpsc::Sender<Report>,
    ) -> Result<(MeshIo, mpsc::Receiver<net::Event>), net::Error> {
        let mesh = s.creds.as_ref().map(|c| c.mesh.clone()).unwrap_or_default();
        let me = NodeId::new(s.key.public().to_peer_id().to_string());
        let parse = |l: &[String]| {
            l.iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .collect::<Vec<_>>()
        };
        let cfg = net::Config {
            listen: parse(s.listen),
            verifier: s.creds.as_ref().map(Credentials::verifier),
            mdns: s.mdns,
            gossip: s.gossip.clone(),
        };
        let (net, events) = net::spawn(s.key, cfg)?;
        // This agent's binary, hashed on a worker, goes into its member record.
        let tx = reports_tx.clone();
        tokio::spawn(async move {
            let own = tokio::task::spawn_blocking(|| crate::binary::own().cloned()).await;
            match own {
                Ok(Ok(l)) => {
                    let b = crate::api::BinaryView {
                        sha256: l.info.sha256,
                        size: l.info.size,
                        arch: l.info.arch,
                        os: l.info.os,
                    };
                    let _ = tx.send(Report::Binary(b)).await;
                }
                Ok(Err(e)) => tracing::warn!("the agent's binary cannot be hashed: {e}"),
                Err(_) => {}
            }
        });
        Ok((
            MeshIo {
                net,
                data_dir: s.data_dir.to_path_buf(),
                mesh,
                me,
                bootstrap: parse(s.peers),
                creds: s.creds,
                max_message: s.gossip.max_message,
                reports_tx,
                store: s.store,
                answer_workers: Arc::new(tokio::sync::Semaphore::new(ANSWER_WORKERS)),
            },
            events,
        ))
    }

    /// What fetches agent binaries from these members (`targets::carry`).
    pub fn carrier(
        &self,
        members: Vec<(PeerId, crate::api::BinaryView)>,
    ) -> crate::targets::carry::Carrier {
        crate::targets::carry::Carrier {
            net: self.net.clone(),
            mesh: self.mesh.clone(),
            me: self.me.clone(),
            data_dir: self.data_dir.clone(),
            members,
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// The mesh this node belongs to (empty before it is a member).
    pub fn mesh(&self) -> &str {
        &self.mesh
    }

    /// Whether this node is a member of a mesh.
    pub fn is_member(&self) -> bool {
        self.creds.is_some()
    }

    fn already_member(&self) -> Option<Response> {
        self.creds
            .as_ref()
            .map(|c| Response::error(format!("this node is already a member of mesh {}", c.mesh)))
    }

    /// Takes credentials saved by `init` or `join`.
    pub fn member(&mut self, creds: Credentials) {
        self.mesh = creds.mesh.clone();
        self.creds = Some(creds);
    }

    /// `mesh init`: a new mesh with this node as its first member (reported as
    /// `Report::Member`).
    pub fn init(&self, reply: oneshot::Sender<Response>) {
        if let Some(r) = self.already_member() {
            let _ = reply.send(r);
            return;
        }
        let (net, data_dir, tx) = (
            self.net.clone(),
            self.data_dir.clone(),
            self.reports_tx.clone(),
        );
        tokio::spawn(async move {
            let me = net.peer_id;
            let made = keep(data_dir, move || {
                Credentials::init(&me).map_err(|e| format!("cannot create the mesh: {e}"))
            });
            let result = match made.await {
                Ok(creds) => match net.set_credentials(creds.verifier()).await {
                    Ok(()) => {
                        let text = format!(
                            "mesh {} created; this node ({me}) is its first member",
                            creds.mesh
                        );
                        Ok((creds, text))
                    }
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e),
            };
            let _ = tx
                .send(Report::Member {
                    result,
                    reply,
                    founded: true,
                })
                .await;
        });
    }

    /// `join`: presents the token to the member at `addr` (reported as
    /// `Report::Member`).
    pub fn join(&self, addr: &str, token: String, name: String, reply: oneshot::Sender<Response>) {
        if let Some(r) = self.already_member() {
            let _ = reply.send(r);
            return;
        }
        let Ok(addr) = addr.parse::<Multiaddr>() else {
            let _ = reply.send(Response::error(format!("`{addr}` is not a multiaddr")));
            return;
        };
        let (net, data_dir, tx) = (
            self.net.clone(),
            self.data_dir.clone(),
            self.reports_tx.clone(),
        );
        tokio::spawn(async move {
            let grant = match tokio::time::timeout(JOIN_TIMEOUT, net.join(addr, token, name)).await
            {
                Ok(Ok(grant)) => Ok(grant),
                Ok(Err(e)) => Err(format!("join refused: {e}")),
                Err(_) => Err("join refused: no answer from the member in time".into()),
            };
            let result = match grant {
                Ok(grant) => keep(data_dir, move || Ok(grant.creds)).await.map(|creds| {
                    let text = format!("joined mesh {}", creds.mesh);
                    (creds, text)
                }),
                Err(e) => Err(e),
            };
            let _ = tx
                .send(Report::Member {
                    result,
                    reply,
                    founded: false,
                })
                .await;
        });
    }

    /// `mesh token`: a fresh token (the node records its hash).
    pub fn new_token(&self) -> Result<Token, Response> {
        match self.creds {
            Some(_) => Ok(crate::admission::new_token()),
            None => Err(Response::error(
                "this node is not a member of a mesh: run `roboconf mesh init` or `roboconf join` first",
            )),
        }
    }

    /// Answers a join request the node has ruled on: a certificate for `peer`, or why not.
    pub fn answer_join(&self, id: u64, peer: PeerId, verdict: Result<(), String>) {
        let verdict = verdict.and_then(|()| {
            let creds = self.creds.as_ref().ok_or("not a member")?;
            let cert = creds.issue(&peer).map_err(|e| e.to_string())?;
            Ok(Grant {
                creds: Credentials {
                    cert,
                    ..creds.clone()
                },
                issuer_cert: creds.cert.clone(),
            })
        });
        self.net.join_answer(id, verdict);
    }

    pub fn node_id(&self) -> NodeId {
        self.me.clone()
    }

    fn envelope(&self, body: Body) -> Option<Vec<u8>> {
        encode(&Envelope {
            version: PROTOCOL_VERSION,
            mesh: self.mesh.clone(),
            sender: self.me.clone(),
            body,
        })
        .ok()
    }

    /// Dials the bootstrap peers (`--peer`).
    pub fn dial_bootstrap(&self) {
        for a in &self.bootstrap {
            self.net.try_dial(a.clone());
        }
    }

    /// Dials a member at its published addresses (those a TCP transport can use).
    pub fn dial(&self, node: &NodeId, addresses: &[String]) {
        let Ok(peer) = node.as_str().parse::<PeerId>() else {
            return;
        };
        let addrs: Vec<Multiaddr> = addresses
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .filter(|a| {
                a.iter()
                    .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
            })
            .collect();
        if !addrs.is_empty() {
            self.net.try_dial_peer(peer, addrs);
        }
    }

    /// Gossips entries, in messages of bounded size. Losses are repaired by anti-entropy.
    pub fn publish(&self, entries: Vec<crate::mesh::replica::Entry>) {
        let mut batches: Vec<Vec<_>> = vec![Vec::new()];
        let mut size = 0;
        for e in entries {
            let len = e.value.as_ref().map_or(0, |v| v.len()) + e.key.len() + 128;
            if size + len > self.max_message && !batches.last().is_some_and(Vec::is_empty) {
                batches.push(Vec::new());
                size = 0;
            }
            size += len;
            if let Some(b) = batches.last_mut() {
                b.push(e);
            }
        }
        for batch in batches.into_iter().filter(|b| !b.is_empty()) {
            if let Some(bytes) = self.envelope(Body::Entries(batch)) {
                let _ = self.net.try_publish(bytes);
            }
        }
    }

    /// Sends the node's request to a connected peer; its answer (or failure) comes back
    /// as a `Report`. `None` when it could not even be queued (the node is told the
    /// request failed).
    pub fn request(&self, to: NodeId, body: Body) -> Option<tokio::task::JoinHandle<()>> {
        let peer = to.as_str().parse::<PeerId>().ok()?;
        let bytes = self.envelope(body)?;
        let answer_rx = self.net.try_request(peer, bytes)?;
        let (tx, mesh) = (self.reports_tx.clone(), self.mesh.clone());
        Some(tokio::spawn(async move {
            let report = match answer_rx.await {
                Ok(Ok(answer)) => match decode(&answer, &mesh) {
                    Ok(e) => Report::Response {
                        from: to,
                        body: e.body,
                    },
                    Err(_) => Report::Failed { to },
                },
                _ => Report::Failed { to },
            };
            let _ = tx.send(report).await;
        }))
    }

    /// Closes the connection to `peer` on purpose: tells it first (so that it does not
    /// take the close for a crash), closes once it answered or after `after`.
    pub fn close(&self, peer: &NodeId, after: Duration) {
        let Ok(p) = peer.as_str().parse::<PeerId>() else {
            return;
        };
        let Some(bytes) = self.envelope(Body::Closing) else {
            return;
        };
        let net = self.net.clone();
        let answer_rx = net.try_request(p, bytes);
        tokio::spawn(async move {
            if let Some(rx) = answer_rx {
                let _ = tokio::time::timeout(after, rx).await;
            }
            net.try_disconnect(p);
        });
    }

    /// Sends a SWIM datagram (dropped when a queue is full: SWIM expects losses): over
    /// the connection to `to` if there is one, else over UDP to the first UDP address
    /// among those it published.
    pub fn datagram(&self, to: &NodeId, data: Vec<u8>, published: &[String]) {
        let Ok(p) = to.as_str().parse::<PeerId>() else {
            return;
        };
        let udp = published.iter().find_map(|a| udp_address(a));
        self.net.try_swim(p, data, udp);
    }

    /// Answers a peer's request that is the runtime's, not the node's (a bundle, the runs
    /// of an instance hosted here), from the disk on a worker. True when `body` was one.
    pub fn answer(&self, id: u64, body: &Body) -> bool {
        match body {
            Body::BundleRequest(hash) => {
                // Only a plain hex name can name a bundle file.
                let file = crate::bundle::stored(&self.data_dir, hash);
                self.answer_off_loop(id, move || {
                    Body::Bundle(file.and_then(|f| std::fs::read(f).ok()).unwrap_or_default())
                });
                true
            }
            Body::BinaryRequest { sha256, offset } => {
                let (data, sha256, offset) = (self.data_dir.clone(), sha256.clone(), *offset);
                self.answer_off_loop(id, move || {
                    let (total, bytes) = crate::binary::chunk(&data, &sha256, offset);
                    Body::BinaryPart { total, bytes }
                });
                true
            }
            Body::RunsRequest { app, path } => {
                let (store, app, path) = (self.store.clone(), app.clone(), path.clone());
                self.answer_off_loop(id, move || {
                    let runs = store.runs(&app, &path).unwrap_or_default();
                    Body::Runs(crate::core::records::fit_runs(
                        runs.into_iter().map(Into::into).collect(),
                    ))
                });
                true
            }
            _ => false,
        }
    }

    /// Answers with the body the node gave.
    pub fn respond(&self, id: u64, body: Body) {
        let bytes = self.envelope(body).unwrap_or_default();
        self.net.try_respond(id, bytes);
    }

    /// Answers a request with what `work` reads from disk, on a worker (the event loop
    /// never waits on the disk): at most `ANSWER_WORKERS` at once; over that, an empty
    /// answer (the asker tries again or says it got nothing).
    fn answer_off_loop(&self, id: u64, work: impl FnOnce() -> Body + Send + 'static) {
        let (net, mesh, me) = (self.net.clone(), self.mesh.clone(), self.me.clone());
        let seal = move |body: Body| {
            encode(&Envelope {
                version: PROTOCOL_VERSION,
                mesh,
                sender: me,
                body,
            })
            .unwrap_or_default()
        };
        let Ok(permit) = self.answer_workers.clone().try_acquire_owned() else {
            net.try_respond(id, seal(Body::Bundle(Vec::new())));
            return;
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            net.try_respond(id, seal(work()));
        });
    }

    /// The addresses to publish in the member record: those listened on, and beside
    /// each IPv4 one the UDP address of SWIM's socket.
    pub fn published(&self, addrs: &[Multiaddr]) -> Vec<String> {
        use libp2p::multiaddr::Protocol;
        let me = self.net.peer_id;
        let mut out: Vec<String> = addrs.iter().map(|a| format!("{a}/p2p/{me}")).collect();
        if let Some(port) = self.net.udp_port {
            for a in addrs {
                if let Some(Protocol::Ip4(ip)) = a.iter().next() {
                    out.push(format!("/ip4/{ip}/udp/{port}/p2p/{me}"));
                }
            }
        }
        out
    }

    /// Fetches, checks and unpacks the bundle of an application, then reads it (reported
    /// as `Report::Fetched`); asks `from` first, then the other connected peers.
    pub fn fetch(&self, name: String, hash: String, from: &NodeId) {
        let tx = self.reports_tx.clone();
        // A bundle is named by a SHA-256 in hex: anything else from a peer is refused
        // before it names a folder (the node tries again later, and it fails again).
        let (Some(_), Some(req)) = (
            crate::bundle::stored(&self.data_dir, &hash),
            self.envelope(Body::BundleRequest(hash.clone())),
        ) else {
            tokio::spawn(async move {
                let _ = tx.send(Report::Fetched { name, app: None }).await;
            });
            return;
        };
        let (net, mesh, data) = (self.net.clone(), self.mesh.clone(), self.data_dir.clone());
        let from: Option<PeerId> = from.as_str().parse().ok();
        tokio::spawn(async move {
            let mut peers: Vec<PeerId> = from.into_iter().collect();
            peers.extend(net.peers().await.unwrap_or_default());
            for peer in peers {
                let Ok(answer) = net.request(peer, req.clone()).await else {
                    continue;
                };
                let Ok(Envelope {
                    body: Body::Bundle(bytes),
                    ..
                }) = decode(&answer, &mesh)
                else {
                    continue;
                };
                if bytes.is_empty() {
                    continue;
                }
                let read = tokio::task::spawn_blocking({
                    let (name, hash, data) = (name.clone(), hash.clone(), data.clone());
                    move || settle_fetched(&data, name, hash, &bytes)
                })
                .await
                .ok()
                .flatten();
                if read.is_some() {
                    let _ = tx
                        .send(Report::Fetched {
                            name,
                            app: read.map(Box::new),
                        })
                        .await;
                    return;
                }
            }
            let _ = tx.send(Report::Fetched { name, app: None }).await;
        });
    }

    /// Asks `host` for the script runs it keeps for an instance; answers `reply`.
    pub fn ask_runs(
        &self,
        host: NodeId,
        app: String,
        path: String,
        timeout: Duration,
        reply: oneshot::Sender<Response>,
    ) {
        let (net, mesh) = (self.net.clone(), self.mesh.clone());
        let req = self.envelope(Body::RunsRequest { app, path });
        tokio::spawn(async move {
            let fail = |why: String| Response::error(why);
            let answer = match (host.as_str().parse::<PeerId>(), req) {
                (Ok(peer), Some(req)) => {
                    match tokio::time::timeout(timeout, net.request(peer, req)).await {
                        Ok(Ok(bytes)) => match decode(&bytes, &mesh) {
                            Ok(Envelope {
                                body: Body::Runs(runs),
                                ..
                            }) => Response::Logs { runs },
                            _ => fail(format!("the agent {host} that hosts it sent no runs")),
                        },
                        Ok(Err(e)) => {
                            fail(format!("cannot ask the agent {host} that hosts it: {e}"))
                        }
                        Err(_) => fail(format!(
                            "the agent {host} that hosts it did not answer within {} s",
                            timeout.as_secs()
                        )),
                    }
                }
                _ => fail(format!("cannot ask the agent {host} that hosts it")),
            };
            let _ = reply.send(answer);
        });
    }
}

/// Makes (or takes) credentials and saves them in the data dir, on a blocking worker.
async fn keep(
    data_dir: PathBuf,
    make: impl FnOnce() -> Result<Credentials, String> + Send + 'static,
) -> Result<Credentials, String> {
    tokio::task::spawn_blocking(move || {
        let creds = make()?;
        creds
            .save(&data_dir)
            .map_err(|e| format!("cannot keep the mesh credentials: {e}"))?;
        Ok(creds)
    })
    .await
    .unwrap_or_else(|e| Err(format!("worker failed: {e}")))
}

/// The socket address of a published `/ip4/…/udp/…` address.
fn udp_address(published: &str) -> Option<std::net::SocketAddr> {
    use libp2p::multiaddr::Protocol;
    let a: Multiaddr = published.parse().ok()?;
    let mut parts = a.iter();
    match (parts.next(), parts.next()) {
        (Some(Protocol::Ip4(ip)), Some(Protocol::Udp(port))) => Some((ip, port).into()),
        _ => None,
    }
}

/// Unpacks a fetched bundle aside, puts it in its place (where an `app add` of the same
/// bundle may have put it already), keeps the bundle file, and reads the application.
fn settle_fetched(
    data: &Path,
    name: String,
    hash: String,
    bytes: &[u8],
) -> Option<crate::core::LoadedApp> {
    let apps = data.join("apps");
    let dir = crate::bundle::app_dir(&apps, &name, &hash);
    let staging = crate::bundle::staging_dir(&apps);
    let unpacked = crate::bundle::unpack(bytes, &hash, &staging)
        .and_then(|()| Ok(crate::bundle::settle(&staging, &dir)?));
    if unpacked.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        return None;
    }
    let file = crate::bundle::stored(data, &hash)?;
    let _ = std::fs::create_dir_all(data.join("bundles"));
    let _ = std::fs::write(file, bytes);
    let (model, diags) =
        roboconf_model::app::load_application(&dir, roboconf_model::dsl::Limits::default());
    if roboconf_model::diag::has_errors(&diags) {
        return None;
    }
    let version = model
        .descriptor
        .as_ref()
        .and_then(|d| d.version.clone())
        .unwrap_or_default();
    Some(crate::core::LoadedApp {
        name,
        version,
        bundle: dir,
        hash,
        model,
    })
}
