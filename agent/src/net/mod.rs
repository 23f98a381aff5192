//! The network: one task owns the libp2p `Swarm` (TCP with Noise and Yamux, gossipsub
//! for the fast path, request-response for anti-entropy and bulk transfers, identify);
//! everyone else talks to it through `Net`, a cloneable client sending bounded commands
//! with `oneshot` replies, and receives `Event`s on a bounded channel. Every gossip
//! message is checked against the wire envelope before gossipsub may forward it; what
//! fails is rejected and counted. The mesh logic above does not know libp2p.

mod codec;
mod task;

pub use task::spawn;

use crate::mesh::wire::Counters;
use libp2p::{Multiaddr, PeerId};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Bound of the command and event channels.
pub const QUEUE: usize = 1024;

/// Network settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The mesh id every message must carry.
    pub mesh: String,
    pub listen: Vec<Multiaddr>,
    /// The gossip topic.
    pub topic: String,
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
    /// A gossip message that passed the envelope checks (its bytes).
    Gossip {
        from: PeerId,
        data: Vec<u8>,
    },
    /// A request from a peer; answer with `Net::respond(id, ...)`.
    Request {
        from: PeerId,
        id: u64,
        data: Vec<u8>,
    },
    Connected(PeerId),
    Disconnected(PeerId),
}

pub(crate) enum Command {
    Dial(Multiaddr, oneshot::Sender<Result<(), Error>>),
    Publish(Vec<u8>, oneshot::Sender<Result<(), Error>>),
    Request(PeerId, Vec<u8>, oneshot::Sender<Result<Vec<u8>, Error>>),
    Respond(u64, Vec<u8>),
    Listening(oneshot::Sender<Vec<Multiaddr>>),
    Peers(oneshot::Sender<Vec<PeerId>>),
}

/// A handle on the network task.
#[derive(Clone)]
pub struct Net {
    pub(crate) cmd_tx: mpsc::Sender<Command>,
    pub peer_id: PeerId,
    /// Messages dropped because they failed the envelope checks.
    pub dropped: Arc<Counters>,
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

    /// The addresses the node listens on.
    pub async fn listening(&self) -> Result<Vec<Multiaddr>, Error> {
        self.ask(Command::Listening).await
    }

    /// The peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerId>, Error> {
        self.ask(Command::Peers).await
    }
}
