//! The runtime's side of the mesh: the node's persistent identity (a libp2p key in the
//! data dir), the network task, and the translation between the core's replication
//! inputs/outputs and messages: records are gossiped in envelopes, anti-entropy asks a
//! peer for what we lack (digest out, delta back) on every new connection and then every
//! 1 s, backing off to 8 s while rounds bring nothing; members that are not connected
//! are dialled at their published addresses, bootstrap peers while no one is connected.
//! It also holds the node's admission credentials: `mesh init` makes them, `join` gets
//! them from a member, and a join request from another node is answered with a
//! certificate once the core has redeemed its token. Nothing is dialled or gossiped
//! before this node is a member.

use crate::admission::{Credentials, Grant, Token};
use crate::api::Response;
use crate::core::Input;
use crate::mesh::replica::{Delta, Digest, Entry};
use crate::mesh::wire::{decode, encode, Body, Envelope, PROTOCOL_VERSION};
use crate::mesh::NodeId;
use crate::net::{self, Event, Net};
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

/// How long `join` waits for the member's answer.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A finished join attempt and whom to tell.
pub type Joined = (Result<Grant, String>, oneshot::Sender<Response>);

/// Requests answered from the disk at once (bundles, other agents' `logs`).
const ANSWER_WORKERS: usize = 4;

/// Gossip messages stay well under the transport's limit.
const GOSSIP_BUDGET: usize = 128 * 1024;

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
    /// Bundles fetched for applications (name, the application read from it, if it could be).
    pub fetched: mpsc::Receiver<(String, Option<crate::core::LoadedApp>)>,
    fetched_tx: mpsc::Sender<(String, Option<crate::core::LoadedApp>)>,
    data_dir: std::path::PathBuf,
    pub net: Net,
    pub events: mpsc::Receiver<Event>,
    pub deltas: mpsc::Receiver<Delta>,
    deltas_tx: mpsc::Sender<Delta>,
    mesh: String,
    me: NodeId,
    bootstrap: Vec<Multiaddr>,
    turn: usize,
    announced: bool,
    /// Ticks (of 250 ms) between anti-entropy rounds: 4 after news, doubling up to 32
    /// (8 s) while rounds bring nothing, since gossip is the fast path.
    pub ae_period: u64,
    /// Set once this node is a member.
    creds: Option<Credentials>,
    pub joined: mpsc::Receiver<Joined>,
    joined_tx: mpsc::Sender<Joined>,
    /// The node's store, to answer other agents' `logs` of what it hosts.
    pub store: Option<std::sync::Arc<dyn crate::store::Store>>,
    /// Workers answering requests from the disk (bundles, runs).
    answer_workers: std::sync::Arc<tokio::sync::Semaphore>,
}

impl MeshIo {
    pub fn start(
        key: Keypair,
        data_dir: &Path,
        creds: Option<Credentials>,
        listen: &[String],
        peers: &[String],
        mdns: bool,
    ) -> Result<MeshIo, net::Error> {
        let mesh = creds.as_ref().map(|c| c.mesh.clone()).unwrap_or_default();
        let me = NodeId::new(key.public().to_peer_id().to_string());
        let parse = |l: &[String]| {
            l.iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .collect::<Vec<_>>()
        };
        let cfg = net::Config {
            listen: parse(listen),
            verifier: creds.as_ref().map(Credentials::verifier),
            mdns,
        };
        let (net, events) = net::spawn(key, cfg)?;
        let (deltas_tx, deltas) = mpsc::channel(64);
        let (joined_tx, joined) = mpsc::channel(4);
        let (fetched_tx, fetched) = mpsc::channel(16);
        Ok(MeshIo {
            fetched,
            fetched_tx,
            data_dir: data_dir.to_path_buf(),
            net,
            events,
            deltas,
            deltas_tx,
            mesh: mesh.to_string(),
            me,
            bootstrap: parse(peers),
            turn: 0,
            announced: false,
            ae_period: 4,
            creds,
            joined,
            joined_tx,
            store: None,
            answer_workers: std::sync::Arc::new(tokio::sync::Semaphore::new(ANSWER_WORKERS)),
        })
    }

    /// The mesh this node belongs to, if any.
    pub fn mesh_id(&self) -> Option<&str> {
        self.creds.as_ref().map(|c| c.mesh.as_str())
    }

    fn become_member(&mut self, creds: Credentials, data_dir: &Path) -> Result<(), String> {
        creds.save(data_dir).map_err(|e| e.to_string())?;
        self.mesh = creds.mesh.clone();
        self.creds = Some(creds);
        Ok(())
    }

    /// `mesh init`: a new mesh with this node as its first member.
    pub async fn init(&mut self) -> Response {
        if let Some(m) = self.mesh_id() {
            return Response::error(format!("this node is already a member of mesh {m}"));
        }
        let creds = match Credentials::init(&self.net.peer_id) {
            Ok(c) => c,
            Err(e) => return Response::error(format!("cannot create the mesh: {e}")),
        };
        let verifier = creds.verifier();
        let mesh = creds.mesh.clone();
        if let Err(e) = self.become_member(creds, &self.data_dir.clone()) {
            return Response::error(format!("cannot keep the mesh credentials: {e}"));
        }
        if self.net.set_credentials(verifier).await.is_err() {
            return Response::error("the network task has stopped");
        }
        Response::ok(format!(
            "mesh {mesh} created; this node ({}) is its first member",
            self.net.peer_id
        ))
    }

    /// `join`: presents the token to the member at `addr`; the answer comes back on
    /// `joined`, to be finished by `finish_join`.
    pub fn join(&self, addr: &str, token: String, reply: oneshot::Sender<Response>) {
        if let Some(m) = self.mesh_id() {
            let _ = reply.send(Response::error(format!(
                "this node is already a member of mesh {m}"
            )));
            return;
        }
        let Ok(addr) = addr.parse::<Multiaddr>() else {
            let _ = reply.send(Response::error(format!("`{addr}` is not a multiaddr")));
            return;
        };
        let (net, tx) = (self.net.clone(), self.joined_tx.clone());
        tokio::spawn(async move {
            let r = match tokio::time::timeout(JOIN_TIMEOUT, net.join(addr, token)).await {
                Ok(Ok(grant)) => Ok(grant),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no answer from the member in time".into()),
            };
            let _ = tx.send((r, reply)).await;
        });
    }

    /// Keeps the credentials a member granted.
    pub fn finish_join(&mut self, r: Result<Grant, String>) -> Response {
        match r {
            Ok(grant) => {
                let mesh = grant.creds.mesh.clone();
                match self.become_member(grant.creds, &self.data_dir.clone()) {
                    Ok(()) => Response::ok(format!("joined mesh {mesh}")),
                    Err(e) => Response::error(format!("cannot keep the mesh credentials: {e}")),
                }
            }
            Err(e) => Response::error(format!("join refused: {e}")),
        }
    }

    /// `mesh token`: a fresh token (the core records its hash).
    pub fn new_token(&self) -> Result<Token, Response> {
        match self.mesh_id() {
            Some(_) => Ok(crate::admission::new_token()),
            None => Err(Response::error(
                "this node is not a member of a mesh: run `roboconf mesh init` or `roboconf join` first",
            )),
        }
    }

    /// Answers a join request the core has ruled on: a certificate for `peer`, or why not.
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

    /// Dials the bootstrap peers (once a member).
    pub async fn dial_bootstrap(&self) {
        if self.creds.is_none() {
            return;
        }
        for a in &self.bootstrap {
            let _ = self.net.dial(a.clone()).await;
        }
    }

    /// Gossips entries, in messages of bounded size. Losses are repaired by anti-entropy.
    pub fn broadcast(&self, entries: Vec<Entry>) {
        let mut batches: Vec<Vec<Entry>> = vec![Vec::new()];
        let mut size = 0;
        for e in entries {
            let len = e.value.as_ref().map_or(0, |v| v.len()) + e.key.len() + 128;
            if size + len > GOSSIP_BUDGET && !batches.last().is_some_and(Vec::is_empty) {
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
                self.net.try_publish(bytes);
            }
        }
    }

    /// Sends entries straight to every connected peer and waits for each to take them
    /// (bounded by `timeout`): used for the last words of a node that leaves.
    pub async fn push(&self, entries: Vec<Entry>, timeout: std::time::Duration) {
        let Some(bytes) = self.envelope(Body::Entries(entries)) else {
            return;
        };
        let peers = self.net.peers().await.unwrap_or_default();
        let sends = peers.into_iter().map(|p| {
            let (net, bytes) = (self.net.clone(), bytes.clone());
            async move {
                let _ = tokio::time::timeout(timeout, net.request(p, bytes)).await;
            }
        });
        futures::future::join_all(sends).await;
    }

    /// An anti-entropy round ended: back off while they bring nothing.
    pub fn note_delta(&mut self, empty: bool) {
        self.ae_period = if empty {
            (self.ae_period * 2).min(32)
        } else {
            4
        };
    }

    /// Tells a peer that our digests differ.
    pub fn ask_digest(&self, id: u64) {
        let bytes = self.envelope(Body::SendDigest).unwrap_or_default();
        self.net.try_respond(id, bytes);
    }

    /// Answers a peer's digest.
    pub fn respond(&self, id: u64, delta: Delta) {
        let bytes = self.envelope(Body::Delta(delta)).unwrap_or_default();
        self.net.try_respond(id, bytes);
    }

    /// The addresses to publish in the member record, once the listeners are up (once).
    pub async fn new_addresses(&mut self) -> Option<Vec<String>> {
        if self.announced {
            return None;
        }
        let addrs = self.net.listening().await.ok()?;
        if addrs.is_empty() {
            return None;
        }
        self.announced = true;
        let full: Vec<String> = addrs
            .iter()
            .map(|a| format!("{a}/p2p/{}", self.net.peer_id))
            .collect();
        for a in &full {
            eprintln!("roboconf agent: listening on {a}");
        }
        Some(full)
    }

    /// Dials members that are not connected (their published addresses).
    pub async fn dial_members(&self, members: Vec<Vec<String>>) {
        if self.creds.is_none() {
            return;
        }
        // Peer ids as text once per call (their base58 form is costly to make).
        let mut connected: std::collections::HashSet<String> = self
            .net
            .peers()
            .await
            .unwrap_or_default()
            .iter()
            .map(PeerId::to_string)
            .collect();
        connected.insert(self.net.peer_id.to_string());
        for addrs in members {
            let Some(first) = addrs.first() else { continue };
            let peer = first.rsplit_once("/p2p/").map_or("", |(_, p)| p);
            if connected.contains(peer) {
                continue;
            }
            for a in addrs {
                if let Ok(m) = a.parse::<Multiaddr>() {
                    let _ = self.net.dial(m).await;
                }
            }
        }
    }

    /// Asks `peer` (or the next connected peer in turn) for what we lack.
    pub async fn anti_entropy(&mut self, digest: Digest, peer: Option<PeerId>) {
        let peer = match peer {
            Some(p) => p,
            None => {
                let peers = self.net.peers().await.unwrap_or_default();
                if peers.is_empty() {
                    self.dial_bootstrap().await;
                    return;
                }
                self.turn = self.turn.wrapping_add(1);
                peers[self.turn % peers.len()]
            }
        };
        let hash = crate::mesh::replica::digest_hash(&digest);
        let (Some(short), Some(full)) = (
            self.envelope(Body::DigestHash(hash)),
            self.envelope(Body::Digest(digest)),
        ) else {
            return;
        };
        let (net, tx, mesh) = (self.net.clone(), self.deltas_tx.clone(), self.mesh.clone());
        tokio::spawn(async move {
            // The fingerprint first; the digest only when they differ.
            let mut answer = net
                .request(peer, short)
                .await
                .ok()
                .and_then(|a| decode(&a, &mesh).ok());
            if matches!(
                answer,
                Some(Envelope {
                    body: Body::SendDigest,
                    ..
                })
            ) {
                answer = net
                    .request(peer, full)
                    .await
                    .ok()
                    .and_then(|a| decode(&a, &mesh).ok());
            }
            if let Some(Envelope {
                body: Body::Delta(d),
                ..
            }) = answer
            {
                let _ = tx.send(d).await;
            }
        });
    }

    /// Fetches, checks and unpacks the bundle of an application, then reads it.
    pub fn fetch(&self, name: String, hash: String, from: &NodeId) {
        // A bundle is named by a SHA-256 in hex: anything else from a peer is refused
        // before it names a folder (the core tries again later, and it fails again).
        if !crate::bundle::is_hash(&hash) {
            let tx = self.fetched_tx.clone();
            tokio::spawn(async move {
                let _ = tx.send((name, None)).await;
            });
            return;
        }
        let (net, tx, mesh, data) = (
            self.net.clone(),
            self.fetched_tx.clone(),
            self.mesh.clone(),
            self.data_dir.clone(),
        );
        let Some(req) = self.envelope(Body::BundleRequest(hash.clone())) else {
            return;
        };
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
                // A folder of its own per bundle: an `app add` of the same name on this node
                // (which writes `apps/<folder>`) must not race with it. `@` is escaped in
                // application folders, so no other application's folder looks like it.
                let dir = data.join("apps").join(format!(
                    "{}@{}",
                    crate::core::folders::app_folder(&name),
                    &hash[..12]
                ));
                let read = tokio::task::spawn_blocking({
                    let (name, hash, data) = (name.clone(), hash.clone(), data.clone());
                    move || -> Option<crate::core::LoadedApp> {
                        // Unpacked aside, then put in its place (where an `app add` of the
                        // same bundle may have put it already).
                        let staging = crate::bundle::staging_dir(&data.join("apps"));
                        let unpacked = crate::bundle::unpack(&bytes, &hash, &staging)
                            .and_then(|()| Ok(crate::bundle::settle(&staging, &dir)?));
                        if unpacked.is_err() {
                            let _ = std::fs::remove_dir_all(&staging);
                            return None;
                        }
                        let _ = std::fs::create_dir_all(data.join("bundles"));
                        let _ = std::fs::write(data.join("bundles").join(&hash), &bytes);
                        let (model, diags) = roboconf_model::app::load_application(
                            &dir,
                            roboconf_model::dsl::Limits::default(),
                        );
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
                })
                .await
                .ok()
                .flatten();
                if read.is_some() {
                    let _ = tx.send((name, read)).await;
                    return;
                }
            }
            let _ = tx.send((name, None)).await;
        });
    }

    /// Asks `host` for the script runs it keeps for an instance; answers `reply`.
    pub fn ask_runs(
        &self,
        host: NodeId,
        app: String,
        path: String,
        timeout: std::time::Duration,
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

    /// Turns a network event into a core input, if it is one. A new connection asks for
    /// an immediate anti-entropy round (returned as the peer).
    pub fn on_event(&self, ev: Event, at_ms: u64) -> (Option<Input>, Option<PeerId>) {
        match ev {
            Event::Gossip { data, .. } => match decode(&data, &self.mesh) {
                Ok(Envelope {
                    body: Body::Entries(entries),
                    ..
                }) => (Some(Input::Remote { entries, at_ms }), None),
                _ => (None, None),
            },
            Event::Request { id, data, .. } => match decode(&data, &self.mesh) {
                Ok(Envelope {
                    body: Body::DigestHash(hash),
                    ..
                }) => (Some(Input::DigestHash { id, hash }), None),
                Ok(Envelope {
                    body: Body::Entries(entries),
                    ..
                }) => {
                    self.respond(id, Delta::default());
                    (Some(Input::Remote { entries, at_ms }), None)
                }
                Ok(Envelope {
                    body: Body::Digest(digest),
                    ..
                }) => (Some(Input::Digest { id, digest }), None),
                Err(d) => {
                    self.net.dropped.count(&d);
                    self.respond(id, Delta::default());
                    (None, None)
                }
                Ok(Envelope {
                    body: Body::BundleRequest(hash),
                    ..
                }) => {
                    // Only a plain hex name can name a bundle file.
                    let file = crate::bundle::is_hash(&hash)
                        .then(|| self.data_dir.join("bundles").join(&hash));
                    self.answer_off_loop(id, move || {
                        Body::Bundle(file.and_then(|f| std::fs::read(f).ok()).unwrap_or_default())
                    });
                    (None, None)
                }
                Ok(Envelope {
                    body: Body::RunsRequest { app, path },
                    ..
                }) => {
                    let store = self.store.clone();
                    self.answer_off_loop(id, move || {
                        let runs = store
                            .and_then(|s| s.runs(&app, &path).ok())
                            .unwrap_or_default();
                        Body::Runs(crate::core::records::fit_runs(
                            runs.into_iter().map(Into::into).collect(),
                        ))
                    });
                    (None, None)
                }
                Ok(_) => {
                    self.respond(id, Delta::default());
                    (None, None)
                }
            },
            Event::Connected(peer) => (
                Some(Input::PeerUp(NodeId::new(peer.to_string()))),
                Some(peer),
            ),
            Event::Disconnected(peer) => {
                (Some(Input::PeerDown(NodeId::new(peer.to_string()))), None)
            }
            Event::Swim { .. } => (None, None),
            // The runtime takes join requests before they get here.
            Event::JoinRequest { id, .. } => {
                self.net.join_answer(id, Err("not handled".into()));
                (None, None)
            }
        }
    }
}
