//! The runtime's side of the mesh: the node's persistent identity (a libp2p key in the
//! data dir), the network task, and the translation between the core's replication
//! inputs/outputs and messages: records are gossiped in envelopes, anti-entropy asks a
//! peer for what we lack (digest out, delta back) once a second and on every new
//! connection, bootstrap peers are redialled while no one is connected.

use crate::core::Input;
use crate::mesh::replica::{Delta, Digest, Entry};
use crate::mesh::wire::{decode, encode, Body, Envelope, PROTOCOL_VERSION};
use crate::mesh::NodeId;
use crate::net::{self, Event, Net};
use libp2p::{identity::Keypair, Multiaddr, PeerId};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tokio::sync::mpsc;

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
    pub net: Net,
    pub events: mpsc::Receiver<Event>,
    pub deltas: mpsc::Receiver<Delta>,
    deltas_tx: mpsc::Sender<Delta>,
    mesh: String,
    me: NodeId,
    bootstrap: Vec<Multiaddr>,
    turn: usize,
    announced: bool,
}

impl MeshIo {
    pub fn start(
        key: Keypair,
        mesh: &str,
        listen: &[String],
        peers: &[String],
    ) -> Result<MeshIo, net::Error> {
        let me = NodeId::new(key.public().to_peer_id().to_string());
        let parse = |l: &[String]| {
            l.iter()
                .filter_map(|a| a.parse::<Multiaddr>().ok())
                .collect::<Vec<_>>()
        };
        let cfg = net::Config {
            mesh: mesh.to_string(),
            listen: parse(listen),
            topic: format!("roboconf/{mesh}"),
        };
        let (net, events) = net::spawn(key, cfg)?;
        let (deltas_tx, deltas) = mpsc::channel(64);
        Ok(MeshIo {
            net,
            events,
            deltas,
            deltas_tx,
            mesh: mesh.to_string(),
            me,
            bootstrap: parse(peers),
            turn: 0,
            announced: false,
        })
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

    /// Dials the bootstrap peers.
    pub async fn dial_bootstrap(&self) {
        for a in &self.bootstrap {
            let _ = self.net.dial(a.clone()).await;
        }
    }

    /// Gossips entries, in messages of bounded size. Losses are repaired by anti-entropy.
    pub fn broadcast(&self, entries: Vec<Entry>) {
        let mut batches: Vec<Vec<Entry>> = vec![Vec::new()];
        let mut size = 0;
        for e in entries {
            let len = e.value.as_ref().map_or(0, Vec::len) + e.key.len() + 128;
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
                let net = self.net.clone();
                tokio::spawn(async move {
                    let _ = net.publish(bytes).await;
                });
            }
        }
    }

    /// Answers a peer's digest.
    pub fn respond(&self, id: u64, delta: Delta) {
        let bytes = self.envelope(Body::Delta(delta)).unwrap_or_default();
        let net = self.net.clone();
        tokio::spawn(async move {
            let _ = net.respond(id, bytes).await;
        });
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
        let connected = self.net.peers().await.unwrap_or_default();
        for addrs in members {
            let Some(first) = addrs.first() else { continue };
            if connected
                .iter()
                .any(|p| first.ends_with(&format!("/p2p/{p}")))
                || first.ends_with(&format!("/p2p/{}", self.net.peer_id))
            {
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
        let Some(bytes) = self.envelope(Body::Digest(digest)) else {
            return;
        };
        let (net, tx, mesh) = (self.net.clone(), self.deltas_tx.clone(), self.mesh.clone());
        tokio::spawn(async move {
            if let Ok(answer) = net.request(peer, bytes).await {
                if let Ok(Envelope {
                    body: Body::Delta(d),
                    ..
                }) = decode(&answer, &mesh)
                {
                    let _ = tx.send(d).await;
                }
            }
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
                    body: Body::Digest(digest),
                    ..
                }) => (Some(Input::Digest { id, digest }), None),
                Err(d) => {
                    self.net.dropped.count(&d);
                    self.respond(id, Delta::default());
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
        }
    }
}
