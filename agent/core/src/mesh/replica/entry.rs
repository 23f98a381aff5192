//! What the replica is made of, as it travels and as it is stored: kinds of records, the
//! origins (a node and the generation of its store) that write them, one write (`Entry`)
//! with its compact stored form, digests (per origin, the watermark held) with their
//! short fingerprint, and deltas (what a peer lacks). Pure data; `Replica` uses it.

use super::super::hlc::Hlc;
use super::super::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Kinds of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Member,
    Application,
    Desired,
    Binding,
    Observed,
    Exports,
    LaunchIntent,
    /// Join tokens (by id: the secret's hash, expiry, who redeemed it).
    Token,
    /// What a node acknowledges of others' tombstones, and how far its own are collected
    /// (`engine::collect`).
    Ack,
    /// Autonomic events: owner records of the node whose probe hit, one per application
    /// and event name (`crate::autonomic::records`).
    Event,
    /// Operators' autonomic wishes: scheduled jobs and `exec` requests.
    Operator,
}

impl Kind {
    /// Owner records are written by one node only: the owner named by the key.
    pub fn owned(self) -> bool {
        matches!(
            self,
            Kind::Member | Kind::Observed | Kind::Exports | Kind::Ack | Kind::Event
        )
    }

    /// Whether a deletion of this kind is collected once every live member holds it:
    /// owner records whose absence says what their tombstone says (no exports, nothing
    /// observed). A desired instance's tombstone is kept: absent, a new member would
    /// take the instance back from the application's bundle.
    pub fn collectible(self) -> bool {
        matches!(self, Kind::Observed | Kind::Exports)
    }
}

/// Separates the owner from the rest in an owner record's key.
pub const OWNER_SEP: char = '\u{1f}';

/// The key of an owner record: `node`, then the rest.
pub fn owner_key(node: &NodeId, rest: &str) -> String {
    if rest.is_empty() {
        node.to_string()
    } else {
        format!("{}{OWNER_SEP}{rest}", node.0)
    }
}

/// The owner named by an owner record's key.
pub fn owner_of(key: &str) -> &str {
    key.split(OWNER_SEP).next().unwrap_or(key)
}

/// A node's keyspace: the node and the generation of its store (a node that lost its
/// disk comes back as a new generation, so its new writes are not mistaken for old ones).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    pub node: NodeId,
    pub generation: u64,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: Kind,
    pub key: String,
    pub origin: Origin,
    /// Position in the origin's sequence of writes.
    pub seq: u64,
    /// Coordinator term (launch intents); 0 otherwise.
    pub term: u64,
    pub hlc: Hlc,
    /// `None`: deleted. Shared, not copied: every replica that takes the entry in holds
    /// the same bytes.
    pub value: Option<Arc<[u8]>>,
}

impl Entry {
    /// A deletion that is collected once every live member holds it.
    pub fn collectible_tombstone(&self) -> bool {
        self.value.is_none() && self.kind.collectible()
    }

    /// The entry as the store keeps it: a compact binary form (a node holds one per
    /// record of the mesh, so JSON's number-per-byte values would triple the store).
    pub fn to_stored(&self) -> Vec<u8> {
        bincode::serde::encode_to_vec(self, stored()).unwrap_or_default()
    }

    /// An entry read back from the store; `None` if the bytes are not one (a damaged
    /// store cannot make it allocate more than a message's worth).
    pub fn from_stored(bytes: &[u8]) -> Option<Entry> {
        bincode::serde::decode_from_slice(bytes, stored())
            .ok()
            .filter(|(_, used)| *used == bytes.len())
            .map(|(e, _)| e)
    }

    /// Last-writer-wins order: term, then clock, then node.
    pub(super) fn rank(&self) -> (u64, &Hlc) {
        (self.term, &self.hlc)
    }
}

/// The store's encoding of an entry: no larger than the message that brought it.
fn stored() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ super::super::wire::MAX_MESSAGE }>()
}

/// Per origin, the highest sequence number up to which a replica holds everything.
pub type Digest = BTreeMap<Origin, u64>;

/// A short, stable fingerprint of a digest: equal digests, equal fingerprints. Lets two
/// replicas that hold the same find it out without sending digests whose size grows
/// with the mesh. It is the sum (mod 2¹²⁸) of one hash per origin and watermark, so a
/// replica keeps it up to date as watermarks move instead of hashing its whole digest
/// for every exchange (`Replica::digest_hash`).
pub fn digest_hash(d: &Digest) -> String {
    fingerprint(
        d.iter()
            .fold(0, |sum, (o, w)| sum.wrapping_add(term(o, *w))),
    )
}

/// One origin's share of the fingerprint.
pub(super) fn term(o: &Origin, watermark: u64) -> u128 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(o.node.as_str().as_bytes());
    h.update([0]);
    h.update(o.generation.to_le_bytes());
    h.update(watermark.to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&h.finalize()[..16]);
    u128::from_le_bytes(first)
}

pub(super) fn fingerprint(sum: u128) -> String {
    sum.to_le_bytes()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a peer lacks: entries, and the watermarks they bring it up to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub entries: Vec<Entry>,
    pub watermarks: BTreeMap<Origin, u64>,
    /// Origins sent whole because the peer was behind a collection of their tombstones:
    /// the peer replaces what it holds of them, up to the watermark, by what came.
    pub replace: Vec<Origin>,
}

/// What taking in a delta did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Entries that changed something.
    pub changed: usize,
    /// Entries refused (not their owner's, a clock too far ahead).
    pub refused: usize,
    /// Entries dropped from replaced origins: the sender no longer holds them.
    pub removed: Vec<Entry>,
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An owner record written by someone else than its owner.
    NotOwner,
    /// A clock far in the future.
    Clock,
}
