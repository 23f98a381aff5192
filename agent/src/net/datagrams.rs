//! SWIM's datagrams on long-lived streams (`/roboconf/swim/1`): one outbound stream per
//! peer, opened on first use and reopened after an error, carrying length-prefixed
//! datagrams; inbound streams are read by one task each (bounded in number). A
//! request-response exchange per datagram would cost a substream and a protocol
//! negotiation each time; SWIM sends several datagrams a second, so they share a stream.
//! Like datagrams they may be lost: every queue drops when full.

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

const PROTOCOL: StreamProtocol = StreamProtocol::new("/roboconf/swim/1");
/// Largest datagram (SWIM keeps its packets within it).
pub const MAX_DATAGRAM: usize = roboconf_core::node::MAX_DATAGRAM;
/// Datagrams queued per peer.
const PER_PEER: usize = 64;
/// Inbound streams read at once.
const READERS: usize = 1024;

pub struct Datagrams {
    control: libp2p_stream::Control,
    out: HashMap<PeerId, mpsc::Sender<Vec<u8>>>,
}

impl Datagrams {
    /// Starts accepting streams; what arrives goes to `in_tx` (dropped when it is full).
    pub fn new(
        behaviour: &libp2p_stream::Behaviour,
        in_tx: mpsc::Sender<(PeerId, Vec<u8>)>,
    ) -> Datagrams {
        let mut control = behaviour.new_control();
        if let Ok(mut incoming) = control.accept(PROTOCOL) {
            let readers = Arc::new(Semaphore::new(READERS));
            tokio::spawn(async move {
                while let Some((peer, stream)) = incoming.next().await {
                    let Ok(permit) = readers.clone().try_acquire_owned() else {
                        continue;
                    };
                    let in_tx = in_tx.clone();
                    tokio::spawn(async move {
                        let _permit = permit;
                        read(peer, stream, in_tx).await;
                    });
                }
            });
        }
        Datagrams {
            control,
            out: HashMap::new(),
        }
    }

    /// Queues a datagram for `peer`, opening its stream if needed; false when it is
    /// dropped (too big, or the peer's queue is full).
    pub fn send(&mut self, peer: PeerId, data: Vec<u8>) -> bool {
        if data.len() > MAX_DATAGRAM {
            return false;
        }
        if let Some(tx) = self.out.get(&peer) {
            match tx.try_send(data) {
                Ok(()) => return true,
                Err(mpsc::error::TrySendError::Full(_)) => return false,
                Err(mpsc::error::TrySendError::Closed(d)) => {
                    self.out.remove(&peer);
                    return self.send(peer, d);
                }
            }
        }
        let (tx, rx) = mpsc::channel(PER_PEER);
        let queued = tx.try_send(data).is_ok();
        self.out.insert(peer, tx);
        tokio::spawn(write(self.control.clone(), peer, rx));
        queued
    }

    /// The peer is gone: its writer ends.
    pub fn forget(&mut self, peer: &PeerId) {
        self.out.remove(peer);
    }
}

async fn write(mut control: libp2p_stream::Control, peer: PeerId, mut rx: mpsc::Receiver<Vec<u8>>) {
    let Ok(mut stream) = control.open_stream(peer, PROTOCOL).await else {
        return;
    };
    while let Some(data) = rx.recv().await {
        let len = (data.len() as u16).to_be_bytes();
        if stream.write_all(&len).await.is_err()
            || stream.write_all(&data).await.is_err()
            || stream.flush().await.is_err()
        {
            return;
        }
    }
    let _ = stream.close().await;
}

async fn read(peer: PeerId, mut stream: libp2p::Stream, in_tx: mpsc::Sender<(PeerId, Vec<u8>)>) {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u16::from_be_bytes(len) as usize;
        if len > MAX_DATAGRAM {
            return;
        }
        let mut data = vec![0u8; len];
        if stream.read_exact(&mut data).await.is_err() {
            return;
        }
        let _ = in_tx.try_send((peer, data));
    }
}
