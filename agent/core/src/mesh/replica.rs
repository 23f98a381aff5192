//! The replicated records (DESIGN §3). Every write lives in the keyspace of the node that
//! made it — an *origin*, a node and the generation of its store — numbered by that
//! origin's sequence. Peers converge by exchanging, per origin, everything above the
//! other side's watermark (anti-entropy), and by eager deltas in between. What a record
//! *is* comes from its kind's rule: owner records (members, observed instances, exports)
//! are read only from their owner's keyspace, so no one else can write them; operator
//! records (applications, desired instances, bindings) are last-writer-wins by hybrid
//! logical clock, ties on the node; launch intents compare the coordinator's term first.
//! Deletions are tombstones. Nothing here does I/O.

use super::hlc::{Clock, Hlc};
use super::NodeId;
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
}

impl Kind {
    /// Owner records are written by one node only: the owner named by the key.
    pub fn owned(self) -> bool {
        matches!(self, Kind::Member | Kind::Observed | Kind::Exports)
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
    fn rank(&self) -> (u64, &Hlc) {
        (self.term, &self.hlc)
    }
}

/// The store's encoding of an entry: no larger than the message that brought it.
fn stored() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ super::wire::MAX_MESSAGE }>()
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
fn term(o: &Origin, watermark: u64) -> u128 {
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

fn fingerprint(sum: u128) -> String {
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
}

/// Why an entry was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An owner record written by someone else than its owner.
    NotOwner,
    /// A clock far in the future.
    Clock,
}

/// At most this many sequence numbers are remembered beyond a gap per origin (a peer
/// sending ever higher numbers cannot grow the set without bound); past it the highest
/// are forgotten, and anti-entropy brings their watermark up instead.
const MAX_ABOVE: usize = 4_096;

#[derive(Debug, Clone, Default)]
struct Space {
    /// Everything up to here is held.
    watermark: u64,
    /// Sequence numbers received above the watermark (beyond a gap): when the gap fills,
    /// the watermark moves past them too.
    above: std::collections::BTreeSet<u64>,
    /// Boxed: most origins hold one or two records, and a map's first node has room for
    /// eleven — eleven whole entries would be most of a replica's memory.
    entries: BTreeMap<(Kind, String), Box<Entry>>,
}

/// The origins that wrote one record, and the one whose write is current (the highest
/// ranked; among equals, the highest origin).
#[derive(Debug, Clone, Default)]
struct Writers {
    all: std::collections::BTreeSet<Origin>,
    current: Option<Origin>,
}

impl Writers {
    /// Finds the current write again by visiting every writer.
    fn recount(&mut self, spaces: &BTreeMap<Origin, Space>, slot: &(Kind, String)) {
        self.current = self
            .all
            .iter()
            .filter_map(|o| Some((spaces.get(o)?.entries.get(slot)?.rank(), o)))
            .max()
            .map(|(_, o)| o.clone());
    }
}

/// Keeps `e` for `key` unless a write ranked at least as high is already there.
fn keep_newest<'a>(out: &mut BTreeMap<&'a str, &'a Entry>, key: &'a str, e: &'a Entry) {
    if out.get(key).is_none_or(|cur| cur.rank() < e.rank()) {
        out.insert(key, e);
    }
}

/// A node's replica of the mesh's records.
#[derive(Debug, Clone)]
pub struct Replica {
    me: Origin,
    clock: Clock,
    seq: u64,
    spaces: BTreeMap<Origin, Space>,
    /// For records any node may write (not owner records): which origins wrote each and
    /// whose write is current, so that finding it visits no origin at all.
    writers: BTreeMap<(Kind, String), Writers>,
    /// The digest's fingerprint, as a sum kept up to date (see `digest_hash`).
    sum: u128,
}

impl Replica {
    pub fn new(node: NodeId, generation: u64) -> Replica {
        Replica {
            clock: Clock::new(node.clone()),
            me: Origin { node, generation },
            seq: 0,
            spaces: BTreeMap::new(),
            writers: BTreeMap::new(),
            sum: 0,
        }
    }

    pub fn origin(&self) -> &Origin {
        &self.me
    }

    /// A replica rebuilt from the entries it had stored: its own sequence continues
    /// after the highest of its own entries; watermarks are the highest sequence held from
    /// 1 without gaps (anti-entropy repairs the rest).
    pub fn restore(node: NodeId, generation: u64, entries: Vec<Entry>) -> Replica {
        let mut r = Replica::new(node, generation);
        let mut seqs: BTreeMap<Origin, Vec<u64>> = BTreeMap::new();
        for e in entries {
            seqs.entry(e.origin.clone()).or_default().push(e.seq);
            let _ = r.clock.observe(&e.hlc, u64::MAX / 2);
            r.spaces
                .entry(e.origin.clone())
                .or_default()
                .entries
                .insert((e.kind, e.key.clone()), Box::new(e.clone()));
            r.note_writer(&e);
        }
        for (origin, mut list) in seqs {
            list.sort_unstable();
            if origin == r.me {
                r.seq = list.last().copied().unwrap_or(0);
            }
            let mut w: u64 = 0;
            for &s in &list {
                if s == w.saturating_add(1) {
                    w = s;
                }
            }
            let space = r.spaces.entry(origin.clone()).or_default();
            space.watermark = if origin == r.me { r.seq } else { w };
            let held = space.watermark;
            space.above = list.into_iter().filter(|&s| s > held).collect();
        }
        r.sum = r
            .spaces
            .iter()
            .fold(0, |sum, (o, s)| sum.wrapping_add(term(o, s.watermark)));
        r
    }

    /// The store key of an entry (one per origin, kind and record key).
    pub fn store_key(e: &Entry) -> Vec<u8> {
        format!(
            "{}\u{0}{}\u{0}{:?}\u{0}{}",
            e.origin.node, e.origin.generation, e.kind, e.key
        )
        .into_bytes()
    }

    /// Writes a record (`None` deletes it) at wall time `wall_ms`; returns the entry to
    /// spread.
    pub fn write(
        &mut self,
        kind: Kind,
        key: &str,
        value: Option<Vec<u8>>,
        wall_ms: u64,
        term: u64,
    ) -> Entry {
        self.seq += 1;
        let e = Entry {
            kind,
            key: key.to_string(),
            origin: self.me.clone(),
            seq: self.seq,
            term,
            hlc: self.clock.now(wall_ms),
            value: value.map(Arc::from),
        };
        let me = self.me.clone();
        self.set_watermark(&me, self.seq);
        self.space(&me)
            .entries
            .insert((kind, key.to_string()), Box::new(e.clone()));
        self.note_writer(&e);
        e
    }

    /// Takes in an entry from a peer. Returns whether it changed anything.
    pub fn apply(&mut self, e: Entry, wall_ms: u64) -> Result<bool, Refused> {
        if e.kind.owned() && owner_of(&e.key) != e.origin.node.as_str() {
            return Err(Refused::NotOwner);
        }
        if !self.clock.observe(&e.hlc, wall_ms) {
            return Err(Refused::Clock);
        }
        let space = self.space(&e.origin);
        let w = space.watermark;
        if e.seq > w.saturating_add(1) {
            space.above.insert(e.seq);
            if space.above.len() > MAX_ABOVE {
                space.above.pop_last();
            }
        }
        let slot = (e.kind, e.key.clone());
        let changed = match space.entries.get(&slot) {
            Some(old) if old.seq >= e.seq => false,
            _ => {
                space.entries.insert(slot, Box::new(e.clone()));
                true
            }
        };
        if e.seq == w.saturating_add(1) {
            self.set_watermark(&e.origin, e.seq);
        }
        if changed {
            self.note_writer(&e);
        }
        Ok(changed)
    }

    /// An origin's space, made (with watermark 0) if it is new.
    fn space(&mut self, origin: &Origin) -> &mut Space {
        if !self.spaces.contains_key(origin) {
            self.sum = self.sum.wrapping_add(term(origin, 0));
            self.spaces.insert(origin.clone(), Space::default());
        }
        self.spaces.get_mut(origin).expect("just made")
    }

    /// Moves an origin's watermark (on past what was held beyond it), and the fingerprint
    /// with it.
    fn set_watermark(&mut self, origin: &Origin, mut w: u64) {
        let space = self.space(origin);
        space.above = space.above.split_off(&w.saturating_add(1));
        while w < u64::MAX && space.above.remove(&(w + 1)) {
            w += 1;
        }
        let old = std::mem::replace(&mut space.watermark, w);
        if old != w {
            self.sum = self
                .sum
                .wrapping_sub(term(origin, old))
                .wrapping_add(term(origin, w));
        }
    }

    /// One origin's watermark (0 if unknown).
    pub fn watermark(&self, origin: &Origin) -> u64 {
        self.spaces.get(origin).map_or(0, |s| s.watermark)
    }

    /// The fingerprint of `digest()`, without building it.
    pub fn digest_hash(&self) -> String {
        fingerprint(self.sum)
    }

    /// The watermarks of every origin known.
    pub fn digest(&self) -> Digest {
        self.spaces
            .iter()
            .map(|(o, s)| (o.clone(), s.watermark))
            .collect()
    }

    /// What a peer with `theirs` lacks, at most `max_entries` entries: whole origins only,
    /// so that each watermark sent is exact.
    pub fn delta_for(&self, theirs: &Digest, max_entries: usize) -> Delta {
        let mut d = Delta::default();
        // Both maps are in origin order: one walk through each, no lookups.
        let mut theirs = theirs.iter().peekable();
        for (origin, space) in &self.spaces {
            while theirs.next_if(|(o, _)| *o < origin).is_some() {}
            let have = theirs.next_if(|(o, _)| *o == origin).map_or(0, |(_, w)| *w);
            if space.watermark <= have {
                continue;
            }
            let mut missing: Vec<&Entry> = space
                .entries
                .values()
                .map(|e| &**e)
                .filter(|e| e.seq > have)
                .collect();
            if !d.entries.is_empty() && d.entries.len() + missing.len() > max_entries {
                break;
            }
            missing.sort_by_key(|e| e.seq);
            d.entries.extend(missing.into_iter().cloned());
            d.watermarks.insert(origin.clone(), space.watermark);
        }
        d
    }

    /// Takes in a delta; the watermarks rise to the sender's for the origins it covered.
    /// Returns how many entries changed something and how many were refused.
    pub fn apply_delta(&mut self, d: Delta, wall_ms: u64) -> (usize, usize) {
        let (mut changed, mut refused) = (0, 0);
        let mut ok_origins: BTreeMap<Origin, bool> =
            d.watermarks.keys().map(|o| (o.clone(), true)).collect();
        for e in d.entries {
            let origin = e.origin.clone();
            match self.apply(e, wall_ms) {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(_) => {
                    refused += 1;
                    ok_origins.insert(origin, false);
                }
            }
        }
        for (origin, w) in d.watermarks {
            if ok_origins.get(&origin) == Some(&true) {
                let have = self.space(&origin).watermark;
                self.set_watermark(&origin, have.max(w));
            }
        }
        (changed, refused)
    }

    /// Notes `e`, just stored, as a write of its record (not owner records): it becomes
    /// the current one if it ranks at least as high as the current one. A newer write
    /// from the origin that held the current one may rank lower (a lower term): then
    /// every writer is visited.
    fn note_writer(&mut self, e: &Entry) {
        if e.kind.owned() {
            return;
        }
        let slot = (e.kind, e.key.clone());
        let writers = self.writers.entry(slot.clone()).or_default();
        writers.all.insert(e.origin.clone());
        let current = writers
            .current
            .as_ref()
            .and_then(|o| Some((o, self.spaces.get(o)?.entries.get(&slot)?)));
        match current {
            Some((o, _)) if *o == e.origin => {
                if writers.all.len() > 1 {
                    writers.recount(&self.spaces, &slot);
                }
            }
            Some((o, cur)) if (cur.rank(), o) > (e.rank(), &e.origin) => {}
            _ => writers.current = Some(e.origin.clone()),
        }
    }

    /// The current record of `kind`/`key`: the owner's for owner records, else the
    /// last writer's. A deleted record is `None`.
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Entry> {
        self.latest(kind, key).filter(|e| e.value.is_some())
    }

    /// The current write of `kind`/`key`, a tombstone included. Only the origins that
    /// can hold it are visited: the owner's for owner records, the current writer's otherwise.
    pub fn latest(&self, kind: Kind, key: &str) -> Option<&Entry> {
        let slot = (kind, key.to_string());
        if !kind.owned() {
            let o = self.writers.get(&slot)?.current.as_ref()?;
            return self.spaces.get(o)?.entries.get(&slot).map(|e| &**e);
        }
        let owner = NodeId::new(owner_of(key));
        let from = Origin {
            node: owner.clone(),
            generation: 0,
        };
        self.spaces
            .range(from..)
            .take_while(|(o, _)| o.node == owner)
            .filter_map(|(_, space)| space.entries.get(&slot))
            .max_by(|a, b| a.rank().cmp(&b.rank()))
            .map(|e| &**e)
    }

    /// Every current record of a kind, by key. For records any node may write, only
    /// their current writes are visited (not every origin's space: at boot every node
    /// writes the application's record, and the mesh has as many origins as nodes).
    pub fn all(&self, kind: Kind) -> BTreeMap<&str, &Entry> {
        let mut out: BTreeMap<&str, &Entry> = BTreeMap::new();
        let from = (kind, String::new());
        if !kind.owned() {
            for (slot, writers) in self.writers.range(from..) {
                if slot.0 != kind {
                    break;
                }
                let current = writers.current.as_ref().and_then(|o| self.spaces.get(o));
                if let Some(e) = current.and_then(|space| space.entries.get(slot)) {
                    out.insert(slot.1.as_str(), e);
                }
            }
        } else {
            for (origin, space) in &self.spaces {
                // Entries are ordered by kind first: only this kind's are visited.
                for ((k, key), e) in space.entries.range(&from..) {
                    if *k != kind {
                        break;
                    }
                    if origin.node.as_str() == owner_of(key) {
                        keep_newest(&mut out, key, e);
                    }
                }
            }
        }
        out.retain(|_, e| e.value.is_some());
        out
    }

    /// The current records of an owned `kind` that `node` owns, by key: only that node's
    /// origins are visited, and in each only its keys.
    pub fn owned_by<'a>(&'a self, kind: Kind, node: &NodeId) -> BTreeMap<&'a str, &'a Entry> {
        let mut out: BTreeMap<&str, &Entry> = BTreeMap::new();
        let prefix = format!("{}{OWNER_SEP}", node.as_str());
        let first = Origin {
            node: node.clone(),
            generation: 0,
        };
        for (o, space) in self.spaces.range(first..) {
            if o.node != *node {
                break;
            }
            let from = (kind, node.as_str().to_string());
            for ((k, key), e) in space.entries.range(from..) {
                if *k != kind || !(key == node.as_str() || key.starts_with(&prefix)) {
                    break;
                }
                keep_newest(&mut out, key, e);
            }
        }
        out.retain(|_, e| e.value.is_some());
        out
    }

    /// Forgets an origin (a node confirmed dead, or an old generation): its owner records
    /// disappear from every view.
    pub fn forget(&mut self, origin: &Origin) {
        if let Some(space) = self.spaces.remove(origin) {
            self.sum = self.sum.wrapping_sub(term(origin, space.watermark));
        }
        for (slot, writers) in self.writers.iter_mut() {
            if writers.all.remove(origin) && writers.current.as_ref() == Some(origin) {
                writers.recount(&self.spaces, slot);
            }
        }
        self.writers.retain(|_, w| !w.all.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> NodeId {
        NodeId::new(n)
    }

    /// The store's form of an entry reads back as the same entry; damaged bytes (cut,
    /// trailing, or claiming a huge value) read back as nothing, without a panic.
    #[test]
    fn stored_entries_read_back_and_damaged_ones_are_skipped() {
        let e = Replica::new(node("a"), 3).write(Kind::Exports, "a", Some(vec![1, 2, 3]), 7, 0);
        let bytes = e.to_stored();
        assert_eq!(Entry::from_stored(&bytes), Some(e));
        assert_eq!(Entry::from_stored(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Entry::from_stored(&[bytes.as_slice(), &[0]].concat()), None);
        assert_eq!(Entry::from_stored(&[0xff; 64]), None);
        assert_eq!(Entry::from_stored(&[]), None);
    }

    /// The current write of a record any node may write is kept as it changes: a
    /// higher term wins over a later clock, a writer's own rewrite at a lower term hands
    /// the record to the next writer, and forgetting the current writer's origin too.
    #[test]
    fn the_current_writer_follows_rewrites_and_forgotten_origins() {
        let mut r = Replica::new(node("r"), 1);
        let mut writers: Vec<Replica> = ["a", "b", "c"]
            .iter()
            .map(|n| Replica::new(node(n), 1))
            .collect();
        let key = "lamp/vm/app";
        let value = |r: &Replica| {
            r.get(Kind::Desired, key)
                .map(|e| e.value.as_deref().map(<[u8]>::to_vec))
        };
        for (i, (w, term)) in writers.iter_mut().zip([5, 3, 0]).enumerate() {
            let e = w.write(
                Kind::Desired,
                key,
                Some(vec![i as u8]),
                100 + i as u64,
                term,
            );
            r.apply(e, 200).unwrap();
        }
        assert_eq!(
            value(&r),
            Some(Some(vec![0])),
            "a's term 5 wins over later clocks"
        );
        let e = writers[0].write(Kind::Desired, key, Some(vec![9]), 300, 0);
        r.apply(e, 300).unwrap();
        assert_eq!(
            value(&r),
            Some(Some(vec![1])),
            "b's term 3 is now the highest"
        );
        r.forget(&writers[1].origin().clone());
        assert_eq!(
            value(&r),
            Some(Some(vec![9])),
            "then a's rewrite, the latest clock"
        );
        r.forget(&writers[0].origin().clone());
        assert_eq!(value(&r), Some(Some(vec![2])));
        r.forget(&writers[2].origin().clone());
        assert_eq!(value(&r), None);
    }

    #[test]
    fn last_writer_wins_across_nodes_and_ties_break_on_the_node() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let ea = a.write(
            Kind::Desired,
            "lamp/vm/app",
            Some(b"started".to_vec()),
            100,
            0,
        );
        let eb = b.write(
            Kind::Desired,
            "lamp/vm/app",
            Some(b"stopped".to_vec()),
            200,
            0,
        );
        a.apply(eb.clone(), 200).unwrap();
        b.apply(ea, 200).unwrap();
        assert_eq!(
            a.get(Kind::Desired, "lamp/vm/app")
                .unwrap()
                .value
                .as_deref(),
            Some(&b"stopped"[..])
        );
        assert_eq!(
            a.get(Kind::Desired, "lamp/vm/app"),
            b.get(Kind::Desired, "lamp/vm/app")
        );
        // A delete is a tombstone that wins the same way.
        let del = a.write(Kind::Desired, "lamp/vm/app", None, 300, 0);
        b.apply(del, 300).unwrap();
        assert!(b.get(Kind::Desired, "lamp/vm/app").is_none());
    }

    /// The fingerprint a replica keeps as it goes is the one of its digest, through
    /// writes, entries out of order, deltas, restores and forgotten origins.
    #[test]
    fn the_kept_fingerprint_is_the_digest_s() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let same = |r: &Replica| assert_eq!(r.digest_hash(), digest_hash(&r.digest()));
        same(&a);
        let mut sent = Vec::new();
        for k in 0..5 {
            sent.push(b.write(Kind::Desired, &format!("k{k}"), Some(vec![k]), 10, 0));
            a.write(Kind::Desired, &format!("a{k}"), Some(vec![k]), 10, 0);
            same(&a);
        }
        // Out of order: a gap keeps the watermark where it was.
        a.apply(sent[3].clone(), 20).unwrap();
        same(&a);
        a.apply(sent[0].clone(), 20).unwrap();
        same(&a);
        let delta = b.delta_for(&a.digest(), 100);
        a.apply_delta(delta, 30);
        same(&a);
        assert_eq!(a.digest()[b.origin()], 5);
        let restored = Replica::restore(node("a"), 1, sent.clone());
        same(&restored);
        a.forget(&b.origin().clone());
        same(&a);
        assert_ne!(a.digest_hash(), restored.digest_hash());
    }

    /// Entries out of order: once the gap fills, the watermark moves past what was
    /// already held beyond it (no anti-entropy round needed to say so).
    #[test]
    fn a_filled_gap_moves_the_watermark_past_what_was_held() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let sent: Vec<Entry> = (0..4)
            .map(|k| b.write(Kind::Desired, &format!("k{k}"), Some(vec![k]), 10, 0))
            .collect();
        for i in [1, 3, 2] {
            a.apply(sent[i].clone(), 20).unwrap();
            assert_eq!(a.watermark(b.origin()), 0);
        }
        a.apply(sent[0].clone(), 20).unwrap();
        assert_eq!(a.watermark(b.origin()), 4);
        assert_eq!(a.digest_hash(), b.digest_hash());
    }

    /// A peer sending ever higher sequence numbers beyond a gap: what is remembered of
    /// them stays bounded, and the watermark still moves once the gap fills.
    #[test]
    fn numbers_held_beyond_a_gap_are_bounded() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let first = b.write(Kind::Desired, "k", Some(vec![0]), 10, 0);
        for k in 0..(MAX_ABOVE as u64 + 100) {
            let mut e = b.write(Kind::Desired, "k", Some(vec![1]), 10, 0);
            e.seq = 10 + k;
            a.apply(e, 20).unwrap();
        }
        assert_eq!(a.spaces[b.origin()].above.len(), MAX_ABOVE);
        a.apply(first, 20).unwrap();
        assert_eq!(a.watermark(b.origin()), 1);
        assert_eq!(a.digest_hash(), digest_hash(&a.digest()));
    }

    /// Sequence numbers at the top of the range (a malformed or hostile peer's) move
    /// watermarks without overflowing.
    #[test]
    fn watermarks_at_the_top_of_the_range_do_not_overflow() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let mut e = b.write(Kind::Desired, "k", Some(vec![1]), 10, 0);
        e.seq = u64::MAX;
        a.apply(e.clone(), 20).unwrap();
        let mut delta = Delta::default();
        delta.entries.push(e);
        delta.watermarks.insert(b.origin().clone(), u64::MAX);
        a.apply_delta(delta, 30);
        assert_eq!(a.watermark(b.origin()), u64::MAX);
        assert_eq!(a.digest_hash(), digest_hash(&a.digest()));
    }

    #[test]
    fn owner_records_cannot_be_forged() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let forged = b.write(
            Kind::Exports,
            &owner_key(&node("a"), "lamp/vm/db"),
            Some(b"evil".to_vec()),
            10,
            0,
        );
        assert_eq!(a.apply(forged, 10), Err(Refused::NotOwner));
        let own = b.write(
            Kind::Exports,
            &owner_key(&node("b"), "lamp/vm/db"),
            Some(b"ok".to_vec()),
            10,
            0,
        );
        assert_eq!(a.apply(own, 10), Ok(true));
        assert_eq!(a.all(Kind::Exports).len(), 1);
    }

    #[test]
    fn anti_entropy_fills_gaps_left_by_lost_deltas() {
        let mut a = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        let mut eager = Vec::new();
        for i in 0..10 {
            eager.push(a.write(
                Kind::Application,
                &format!("app{}", i % 4),
                Some(vec![i]),
                10 + i as u64,
                0,
            ));
        }
        // Only every third delta arrives.
        for e in eager.iter().step_by(3) {
            b.apply(e.clone(), 100).unwrap();
        }
        assert_ne!(a.all(Kind::Application), b.all(Kind::Application));
        let d = a.delta_for(&b.digest(), 1000);
        b.apply_delta(d, 100);
        assert_eq!(a.all(Kind::Application), b.all(Kind::Application));
        assert_eq!(a.digest(), b.digest());
        assert!(
            a.delta_for(&b.digest(), 1000).entries.is_empty(),
            "nothing left to send"
        );
    }

    #[test]
    fn a_new_generation_is_a_new_keyspace() {
        let mut a1 = Replica::new(node("a"), 1);
        let mut b = Replica::new(node("b"), 1);
        b.apply(a1.write(Kind::Member, "a", Some(b"v1".to_vec()), 10, 0), 10)
            .unwrap();
        // `a` lost its disk: its sequence starts again, under a new generation.
        let mut a2 = Replica::new(node("a"), 2);
        let e = a2.write(Kind::Member, "a", Some(b"v2".to_vec()), 20, 0);
        assert_eq!(e.seq, 1);
        b.apply(e, 20).unwrap();
        assert_eq!(
            b.get(Kind::Member, "a").unwrap().value.as_deref(),
            Some(&b"v2"[..])
        );
        b.forget(&Origin {
            node: node("a"),
            generation: 1,
        });
        assert_eq!(b.all(Kind::Member).len(), 1);
    }
}
