//! The wire envelope: every message between agents is `(protocol version, mesh id,
//! sender, body)`, encoded with bincode behind this module (so the codec can change), and
//! limited in size. Anything too large, undecodable, of another version or another mesh
//! is dropped and counted — never a panic.

use super::replica::{Delta, Digest, Entry};
use super::NodeId;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// The version of this protocol; messages of another version are dropped.
pub const PROTOCOL_VERSION: u16 = 3;

/// Largest message accepted (gossip messages must also fit the transport's own limit).
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// What agents say to each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Eager push of fresh writes.
    Entries(Vec<Entry>),
    /// Anti-entropy: "here is what I hold" of the origins in the digest buckets of
    /// `mask` (bit `b`: bucket `b`; `replica::bucket_of`).
    Digest { mask: u64, digest: Digest },
    /// Anti-entropy answer: what the asker lacks.
    Delta(Delta),
    /// Anti-entropy, cheaply: "my digest's fingerprint is this" (answered by an empty
    /// `Delta` when the same, `Buckets` otherwise).
    DigestHash(String),
    /// "Our digests differ; here are my buckets' fingerprints": the asker answers with
    /// its `Digest` of the buckets that differ.
    Buckets(Vec<u64>),
    /// Asks for the application bundle with this hash.
    BundleRequest(String),
    /// A bundle (empty: not held here).
    Bundle(Vec<u8>),
    /// Asks the node hosting an instance for its recent script runs (`roboconf logs` on
    /// another agent).
    RunsRequest { app: String, path: String },
    /// The runs kept for it, oldest first (empty: none here).
    Runs(Vec<crate::api::RunView>),
    /// "I am closing our connection (the connection policy), I am not dying": the
    /// close that follows is no sign of a crash.
    Closing,
    /// Asks for the part at `offset` of the agent binary with this SHA-256 (the
    /// coordinator launching a machine that needs one).
    BinaryRequest { sha256: String, offset: u64 },
    /// That part (empty: not held here), and the binary's whole size.
    BinaryPart { total: u64, bytes: Vec<u8> },
}

/// A message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub version: u16,
    pub mesh: String,
    pub sender: NodeId,
    pub body: Body,
}

/// Why a message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    #[error("message of {0} bytes is over the limit")]
    TooLarge(usize),
    #[error("undecodable message: {0}")]
    Malformed(String),
    #[error("protocol version {0} is not {PROTOCOL_VERSION}")]
    WrongVersion(u16),
    #[error("message for another mesh")]
    WrongMesh,
}

/// Counts of dropped messages, by reason.
#[derive(Debug, Default)]
pub struct Counters {
    pub too_large: AtomicU64,
    pub malformed: AtomicU64,
    pub wrong_version: AtomicU64,
    pub wrong_mesh: AtomicU64,
}

impl Counters {
    pub fn count(&self, d: &Dropped) {
        let c = match d {
            Dropped::TooLarge(_) => &self.too_large,
            Dropped::Malformed(_) => &self.malformed,
            Dropped::WrongVersion(_) => &self.wrong_version,
            Dropped::WrongMesh => &self.wrong_mesh,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        [
            &self.too_large,
            &self.malformed,
            &self.wrong_version,
            &self.wrong_mesh,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_MESSAGE>()
}

/// Encodes a message; one over the size limit is refused.
pub fn encode(e: &Envelope) -> Result<Vec<u8>, Dropped> {
    let bytes = bincode::serde::encode_to_vec(e, config())
        .map_err(|err| Dropped::Malformed(err.to_string()))?;
    if bytes.len() > MAX_MESSAGE {
        return Err(Dropped::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decodes a message for mesh `mesh`.
pub fn decode(bytes: &[u8], mesh: &str) -> Result<Envelope, Dropped> {
    if bytes.len() > MAX_MESSAGE {
        return Err(Dropped::TooLarge(bytes.len()));
    }
    let (e, used): (Envelope, usize) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|err| Dropped::Malformed(err.to_string()))?;
    if used != bytes.len() {
        return Err(Dropped::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    if e.version != PROTOCOL_VERSION {
        return Err(Dropped::WrongVersion(e.version));
    }
    if e.mesh != mesh {
        return Err(Dropped::WrongMesh);
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::replica::{Kind, Replica};

    fn envelope(body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            mesh: "m1".into(),
            sender: NodeId::new("a"),
            body,
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let mut r = Replica::new(NodeId::new("a"), 7);
        let e = r.write(Kind::Application, "lamp", Some(vec![1, 2, 3]), 5, 0);
        let msg = envelope(Body::Entries(vec![e]));
        let bytes = encode(&msg).unwrap();
        assert_eq!(decode(&bytes, "m1").unwrap(), msg);
        assert_eq!(decode(&bytes, "other"), Err(Dropped::WrongMesh));
        let mut other = msg.clone();
        other.version = PROTOCOL_VERSION + 1;
        assert_eq!(
            decode(&encode(&other).unwrap(), "m1"),
            Err(Dropped::WrongVersion(PROTOCOL_VERSION + 1))
        );
        assert!(matches!(
            decode(&bytes[..bytes.len() - 1], "m1"),
            Err(Dropped::Malformed(_))
        ));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            decode(&trailing, "m1"),
            Err(Dropped::Malformed(_))
        ));
        assert!(matches!(
            decode(&vec![0u8; MAX_MESSAGE + 1], "m1"),
            Err(Dropped::TooLarge(_))
        ));
        let big = envelope(Body::Entries(vec![r.write(
            Kind::Application,
            "big",
            Some(vec![7; MAX_MESSAGE]),
            6,
            0,
        )]));
        assert!(encode(&big).is_err());
    }

    #[test]
    fn garbage_is_dropped_and_counted() {
        let counters = Counters::default();
        let mut seed: u64 = 42;
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 33) as u8
                })
                .collect();
            if let Err(d) = decode(&bytes, "m1") {
                counters.count(&d);
            }
        }
        assert!(counters.total() >= 290);
    }
}
