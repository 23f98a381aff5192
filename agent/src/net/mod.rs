//! The network: one task owns the libp2p `Swarm` (TCP with Noise and Yamux, gossipsub
//! for the fast path, request-response for anti-entropy and bulk transfers, identify);
//! everyone else talks to it through `Net`, a cloneable client sending bounded commands
//! with `oneshot` replies, and receives `Event`s on a bounded channel. Every gossip
//! message is checked against the wire envelope before gossipsub may forward it; what
//! fails is rejected and counted. Every connection runs the admission exchange (`admit`)
//! first: until a peer is admitted, the gate (`gate`) keeps it out of gossip and the sync
//! protocol refuses it. The mesh logic above does not know libp2p.

mod admit;
mod codec;
mod datagrams;
mod gate;
mod task;
#[cfg(test)]
mod tests;
mod traffic;
mod udp;

pub use traffic::Traffic;
pub use udp::Counters as UdpCounters;

pub use task::spawn;

use crate::admission::{Grant, Verifier};
use crate::mesh::wire::Counters;
use libp2p::{Multiaddr, PeerId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Bound of the command and event channels.
pub const QUEUE: usize = 1024;

/// Network settings.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<Multiaddr>,
    /// What peers are checked with, if this node is a member (else it waits for
    /// `Net::join` or `Net::set_credentials`).
    pub verifier: Option<Verifier>,
    /// Discover peers on the LAN with mDNS (members dial what they find).
    pub mdns: bool,
    /// The gossip mesh's degrees and memory (the node's settings, which the simulator
    /// runs too).
    pub gossip: roboconf_core::node::GossipSettings,
}

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the network task has stopped")]
    Stopped,
    #[error("{0}")]
    Failed(String),
}

/// What the network tells the agent.
#[derive(Debug)]
pub enum Event {
    /// A gossip message that passed the envelope checks (decoded once, there).
    Gossip {
        from: PeerId,
        envelope: crate::mesh::wire::Envelope,
    },
    /// A request from a peer; answer with `Net::respond(id, ...)`.
    Request {
        from: PeerId,
        id: u64,
        data: Vec<u8>,
    },
    /// A node asks to join with a token; answer with `Net::join_answer(id, ...)`.
    JoinRequest {
        from: PeerId,
        id: u64,
        token: String,
        /// The name the node will be known by (a second live member of one name is
        /// refused).
        name: String,
    },
    /// A SWIM datagram from an admitted peer.
    Swim {
        from: PeerId,
        data: Vec<u8>,
    },
    /// A peer was admitted, or the last connection of an admitted peer closed.
    Connected(PeerId),
    Disconnected(PeerId),
    /// The addresses the node listens on, once it does (and each time they change).
    Listening(Vec<Multiaddr>),
}

pub(crate) enum Command {
    /// Join the mesh of the member at the address with a token, under a node name.
    Join(
        Multiaddr,
        String,
        String,
        oneshot::Sender<Result<Grant, Error>>,
    ),
    JoinAnswer(u64, Result<Grant, String>),
    Credentials(Verifier),
    /// A SWIM datagram: over the peer's stream when connected, else over UDP to this
    /// address (if it published one).
    Swim(PeerId, Vec<u8>, Option<std::net::SocketAddr>),
    Dial(Multiaddr, oneshot::Sender<Result<(), Error>>),
    /// Dials without telling how it went (the connection, if any, says it).
    TryDial(Multiaddr),
    /// Dials a peer at these addresses unless it is connected or being dialled.
    DialPeer(PeerId, Vec<Multiaddr>),
    /// Closes every connection to a peer.
    Disconnect(PeerId),
    Publish(Vec<u8>, oneshot::Sender<Result<(), Error>>),
    Request(PeerId, Vec<u8>, oneshot::Sender<Result<Vec<u8>, Error>>),
    Respond(u64, Vec<u8>),
    Listening(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
    Connected(oneshot::Sender<Vec<PeerId>>),
}

/// A handle on the network task.
#[derive(Clone)]
pub struct Net {
    pub(crate) cmd_tx: mpsc::Sender<Command>,
    pub peer_id: PeerId,
    /// Messages dropped because they failed the envelope checks.
    pub dropped: Arc<Counters>,
    /// Peers refused at admission (and requests of peers not admitted).
    pub refused: Arc<AtomicU64>,
    /// Events dropped because the agent's queue was full (gossip, requests: the peers
    /// repair it; connections and datagrams are counted too).
    pub overflow: Arc<AtomicU64>,
    /// The UDP port SWIM's datagrams to members without a connection arrive on (bound
    /// on the IP of the first IPv4 TCP listen address), if any.
    pub udp_port: Option<u16>,
    /// What went through the UDP socket.
    pub udp: Arc<UdpCounters>,
    /// Messages sent and received over connections, by kind.
    pub traffic: Arc<Traffic>,
}

impl Net {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(make(tx))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Connects to a peer (returns once the dial is started or fails).
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.ask(|tx| Command::Dial(addr, tx)).await?
    }

    /// Publishes bytes on the gossip topic.
    pub async fn publish(&self, data: Vec<u8>) -> Result<(), Error> {
        self.ask(|tx| Command::Publish(data, tx)).await?
    }

    /// Sends a request and waits for the answer.
    pub async fn request(&self, peer: PeerId, data: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.ask(|tx| Command::Request(peer, data, tx)).await?
    }

    /// Answers the request `id` of an `Event::Request`.
    pub async fn respond(&self, id: u64, data: Vec<u8>) -> Result<(), Error> {
        self.cmd_tx
            .send(Command::Respond(id, data))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Dials without waiting (dropped when the queue is full: the policy dials again).
    pub fn try_dial(&self, addr: Multiaddr) {
        let _ = self.cmd_tx.try_send(Command::TryDial(addr));
    }

    /// Dials `peer` at `addrs` unless connected or dialling already, without waiting.
    pub fn try_dial_peer(&self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let _ = self.cmd_tx.try_send(Command::DialPeer(peer, addrs));
    }

    /// Closes the connections to `peer`, without waiting.
    pub fn try_disconnect(&self, peer: PeerId) {
        let _ = self.cmd_tx.try_send(Command::Disconnect(peer));
    }

    /// Sends a request without waiting for the queue: `None` when it is full (the
    /// request is then as good as lost); the answer comes on the receiver.
    pub fn try_request(
        &self,
        peer: PeerId,
        data: Vec<u8>,
    ) -> Option<oneshot::Receiver<Result<Vec<u8>, Error>>> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .try_send(Command::Request(peer, data, tx))
            .ok()
            .map(|()| rx)
    }

    /// Publishes without waiting: false when the network task's queue is full or it
    /// stopped, and the message is dropped (anti-entropy repairs what gossip missed).
    pub fn try_publish(&self, data: Vec<u8>) -> bool {
        let (tx, _) = oneshot::channel();
        self.cmd_tx.try_send(Command::Publish(data, tx)).is_ok()
    }

    /// Answers without waiting: false when the queue is full (the peer's request then
    /// times out and it asks again on its next round).
    pub fn try_respond(&self, id: u64, data: Vec<u8>) -> bool {
        self.cmd_tx.try_send(Command::Respond(id, data)).is_ok()
    }

    /// Presents `token` to the member at `addr`; on success this node is a member and the
    /// grant holds its credentials.
    pub async fn join(&self, addr: Multiaddr, token: String, name: String) -> Result<Grant, Error> {
        self.ask(|tx| Command::Join(addr, token, name, tx)).await?
    }

    /// Answers a `JoinRequest`: the grant admits the node, a reason refuses it.
    /// Without waiting: when the queue is full the joiner's request times out.
    pub fn join_answer(&self, id: u64, verdict: Result<Grant, String>) {
        let _ = self.cmd_tx.try_send(Command::JoinAnswer(id, verdict));
    }

    /// Makes this node a member (after `mesh init`).
    pub async fn set_credentials(&self, v: Verifier) -> Result<(), Error> {
        self.cmd_tx
            .send(Command::Credentials(v))
            .await
            .map_err(|_| Error::Stopped)
    }

    /// Sends a SWIM datagram, without waiting (dropped when the queue is full: SWIM
    /// expects losses): over the connection to an admitted peer, else signed over UDP to
    /// `udp` (the address the member published).
    pub fn try_swim(&self, peer: PeerId, data: Vec<u8>, udp: Option<std::net::SocketAddr>) {
        let _ = self.cmd_tx.try_send(Command::Swim(peer, data, udp));
    }

    /// Peers refused so far.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The addresses the node listens on.
    pub async fn listening(&self) -> Result<Vec<Multiaddr>, Error> {
        self.ask(Command::Listening).await
    }

    /// Every peer connected now, admitted or not.
    pub async fn connected(&self) -> Result<Vec<PeerId>, Error> {
        self.ask(Command::Connected).await
    }

    /// The admitted peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, Error> {
        self.ask(Command::Peers).await
    }
}
