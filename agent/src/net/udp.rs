//! SWIM's datagrams to members this node holds no connection to. The connection
//! policy keeps a bounded set of connections, while SWIM probes the whole membership:
//! a probe to a member outside that set goes over UDP, as memberlist's and foca's
//! users do. Each datagram is signed with the sender's node key (ed25519, the key its
//! peer id names), over the mesh id, the sender, the time it was sent and the payload:
//! the receiver checks the signature against the public key in the sender's peer id,
//! refuses a datagram of another mesh or sent more than `FRESH_FOR` away from its own
//! clock (a replay), and the runtime then refuses a sender that is not a member. No key
//! is shared, nothing is handed out at admission, and a datagram costs one signature
//! and one check (about 20 and 50 µs) where a short-lived connection would cost a TCP,
//! Noise and Yamux handshake plus the admission exchange (several round trips).
//!
//! Layout: `b"RS1"`, sender peer id (length-prefixed, 1 byte), sent at (ms, 8 bytes
//! BE), payload, signature (64 bytes).

use libp2p::identity::{Keypair, PublicKey};
use libp2p::PeerId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

const MAGIC: &[u8; 3] = b"RS1";
const SIGNATURE: usize = 64;
/// Largest datagram read (SWIM's packets, with room for the header and signature).
const MAX_PACKET: usize = super::datagrams::MAX_DATAGRAM + 128 + SIGNATURE;
/// How far the sent-at time may be from the receiver's clock.
const FRESH_FOR_MS: u64 = 30_000;

/// Why a datagram was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Malformed,
    Signature,
    Stale,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The bytes a signature covers.
fn signed(mesh: &str, head: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(mesh.len() + 1 + head.len());
    m.extend_from_slice(mesh.as_bytes());
    m.push(0);
    m.extend_from_slice(head);
    m
}

/// A signed datagram.
pub fn seal(key: &Keypair, mesh: &str, sent_ms: u64, payload: &[u8]) -> Option<Vec<u8>> {
    let me = key.public().to_peer_id().to_bytes();
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + me.len() + 8 + payload.len() + SIGNATURE);
    out.extend_from_slice(MAGIC);
    out.push(u8::try_from(me.len()).ok()?);
    out.extend_from_slice(&me);
    out.extend_from_slice(&sent_ms.to_be_bytes());
    out.extend_from_slice(payload);
    let sig = key.sign(&signed(mesh, &out)).ok()?;
    if sig.len() != SIGNATURE {
        return None;
    }
    out.extend_from_slice(&sig);
    Some(out)
}

/// The sender and payload of a datagram, if it is signed by its sender for this mesh
/// and fresh.
pub fn open(bytes: &[u8], mesh: &str, now_ms: u64) -> Result<(PeerId, Vec<u8>), Refused> {
    let body = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or(Refused::Malformed)?;
    let (&id_len, rest) = body.split_first().ok_or(Refused::Malformed)?;
    let id_len = id_len as usize;
    if rest.len() < id_len + 8 + SIGNATURE {
        return Err(Refused::Malformed);
    }
    let (id, rest) = rest.split_at(id_len);
    let (at, rest) = rest.split_at(8);
    let (payload, sig) = rest.split_at(rest.len() - SIGNATURE);
    let peer = PeerId::from_bytes(id).map_err(|_| Refused::Malformed)?;
    // Ed25519 peer ids hold the public key itself (an identity multihash).
    let hash = peer.as_ref();
    if hash.code() != 0 {
        return Err(Refused::Malformed);
    }
    let key = PublicKey::try_decode_protobuf(hash.digest()).map_err(|_| Refused::Malformed)?;
    let head = &bytes[..bytes.len() - SIGNATURE];
    if !key.verify(&signed(mesh, head), sig) {
        return Err(Refused::Signature);
    }
    let sent = u64::from_be_bytes(at.try_into().map_err(|_| Refused::Malformed)?);
    if sent.abs_diff(now_ms) > FRESH_FOR_MS {
        return Err(Refused::Stale);
    }
    Ok((peer, payload.to_vec()))
}

/// What went through the UDP socket.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub sent_bytes: AtomicU64,
    pub received: AtomicU64,
    pub received_bytes: AtomicU64,
    /// Datagrams that failed `open` (or came before this node was a member).
    pub refused: AtomicU64,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The node's UDP socket for SWIM.
pub struct Udp {
    socket: Arc<tokio::net::UdpSocket>,
    key: Keypair,
    /// The mesh this node is a member of (empty before: nothing is sent nor taken).
    mesh: Arc<RwLock<String>>,
    pub port: u16,
    counters: Arc<Counters>,
}

impl Udp {
    /// Binds a socket on `ip` (any port) and reads it in a task: what passes `open` goes
    /// to `in_tx` (dropped when it is full); everything is counted in `counters`.
    pub fn bind(
        ip: std::net::IpAddr,
        key: Keypair,
        in_tx: mpsc::Sender<(PeerId, Vec<u8>)>,
        counters: Arc<Counters>,
    ) -> std::io::Result<Udp> {
        let std_socket = std::net::UdpSocket::bind((ip, 0))?;
        std_socket.set_nonblocking(true)?;
        let port = std_socket.local_addr()?.port();
        let socket = Arc::new(tokio::net::UdpSocket::from_std(std_socket)?);
        let mesh = Arc::new(RwLock::new(String::new()));
        let (reader, known, seen) = (socket.clone(), mesh.clone(), counters.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_PACKET];
            loop {
                let Ok((len, _)) = reader.recv_from(&mut buf).await else {
                    if in_tx.is_closed() {
                        return;
                    }
                    continue;
                };
                add(&seen.received, 1);
                add(&seen.received_bytes, len as u64);
                let mesh = known.read().map(|m| m.clone()).unwrap_or_default();
                match open(&buf[..len], &mesh, now_ms()) {
                    Ok(d) if !mesh.is_empty() => {
                        let _ = in_tx.try_send(d);
                    }
                    _ => add(&seen.refused, 1),
                }
                if in_tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Udp {
            socket,
            key,
            mesh,
            port,
            counters,
        })
    }

    /// The node became a member of `mesh`.
    pub fn set_mesh(&self, mesh: &str) {
        if let Ok(mut m) = self.mesh.write() {
            *m = mesh.to_string();
        }
    }

    /// Sends a signed datagram without waiting (dropped when the socket would block).
    pub fn send(&self, to: SocketAddr, payload: &[u8]) {
        let mesh = self.mesh.read().map(|m| m.clone()).unwrap_or_default();
        if mesh.is_empty() || payload.len() > super::datagrams::MAX_DATAGRAM {
            return;
        }
        if let Some(bytes) = seal(&self.key, &mesh, now_ms(), payload) {
            if self.socket.try_send_to(&bytes, to).is_ok() {
                add(&self.counters.sent, 1);
                add(&self.counters.sent_bytes, bytes.len() as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_fresh_datagram_signed_by_its_sender_for_this_mesh_opens() {
        let key = Keypair::generate_ed25519();
        let me = key.public().to_peer_id();
        let d = seal(&key, "m1", 1_000_000, b"ping").expect("seal");
        assert_eq!(open(&d, "m1", 1_000_500), Ok((me, b"ping".to_vec())));
        assert_eq!(open(&d, "m2", 1_000_500), Err(Refused::Signature));
        assert_eq!(open(&d, "m1", 1_000_000 + 31_000), Err(Refused::Stale));
        let mut forged = d.clone();
        let at = forged.len() - SIGNATURE - 1;
        forged[at] ^= 1;
        assert_eq!(open(&forged, "m1", 1_000_500), Err(Refused::Signature));
        // Another key's signature over the same sender: refused.
        let other = Keypair::generate_ed25519();
        let mut stolen = d[..d.len() - SIGNATURE].to_vec();
        stolen.extend(other.sign(&signed("m1", &stolen)).expect("sign"));
        assert_eq!(open(&stolen, "m1", 1_000_500), Err(Refused::Signature));
        for cut in 0..d.len() {
            assert!(open(&d[..cut], "m1", 1_000_500).is_err());
        }
        assert_eq!(open(b"", "m1", 0), Err(Refused::Malformed));
    }
}
