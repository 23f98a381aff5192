//! The replicated records (DESIGN §3). Every write lives in the keyspace of the node that
//! made it — an *origin*, a node and the generation of its store — numbered by that
//! origin's sequence. Peers converge by exchanging, per origin, everything above the
//! other side's watermark (anti-entropy), and by eager deltas in between. What a record
//! *is* comes from its kind's rule: owner records (members, observed instances, exports)
//! are read only from their owner's keyspace, so no one else can write them; operator
//! records (applications, desired instances, bindings) are last-writer-wins by hybrid
//! logical clock, ties on the node; launch intents compare the coordinator's term first.
//! Deletions are tombstones; those of collectible kinds are collected below a *floor* the
//! origin publishes once every live member holds them (`engine::collect` decides), and a
//! peer behind a floor gets that origin whole, to replace what it holds. Nothing here
//! does I/O.

use super::hlc::Clock;
use super::NodeId;
use slots::Slots;
use std::collections::BTreeMap;
use std::sync::Arc;

mod entry;
mod slots;
#[cfg(test)]
mod tests;

pub use entry::*;

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
    /// The current write of each slot (`Slots`: a vector, not a map).
    entries: Slots,
    /// Collectible tombstones up to here are collected (the origin said so).
    floor: u64,
    /// How many collectible tombstones `entries` holds (most spaces hold none: they are
    /// skipped without a look).
    tombstones: u32,
}

impl Space {
    /// Puts an entry in its slot (in place of the one there).
    fn put(&mut self, e: Entry) {
        let new = u32::from(e.collectible_tombstone());
        if let Some(old) = self.entries.insert(e) {
            self.tombstones -= u32::from(old.collectible_tombstone());
        }
        self.tombstones += new;
    }

    /// Takes an entry out of its slot.
    fn take(&mut self, slot: &(Kind, String)) -> Option<Entry> {
        let old = self.entries.remove(slot)?;
        self.tombstones -= u32::from(old.collectible_tombstone());
        Some(old)
    }
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

/// How many parts the digest's fingerprint comes in (one bit of a `u64` mask each).
pub const BUCKETS: usize = 64;

/// Every bucket.
pub const ALL_BUCKETS: u64 = u64::MAX;

/// The bucket of an origin: a stable hash of it, the same on every node.
pub fn bucket_of(o: &Origin) -> usize {
    let h = super::fnv1a(o.node.as_str().as_bytes()) ^ super::fnv1a(&o.generation.to_le_bytes());
    (h % BUCKETS as u64) as usize
}

/// Moves an origin's term in its bucket's sum from watermark `old` to `new` (`None`: the
/// origin is not, or no longer, in the digest).
fn retally(sums: &mut [u128; BUCKETS], o: &Origin, old: Option<u64>, new: Option<u64>) {
    let b = bucket_of(o);
    let (sub, add) = (old.map_or(0, |w| term(o, w)), new.map_or(0, |w| term(o, w)));
    sums[b] = sums[b].wrapping_sub(sub).wrapping_add(add);
}

fn in_mask(mask: u64, o: &Origin) -> bool {
    mask & (1 << bucket_of(o)) != 0
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
    /// The digest's fingerprint in `BUCKETS` parts, each the sum of its origins' terms,
    /// kept up to date as watermarks move (see `digest_hash`, `buckets`).
    sums: Box<[u128; BUCKETS]>,
}

impl Replica {
    pub fn new(node: NodeId, generation: u64) -> Replica {
        Replica {
            clock: Clock::new(node.clone()),
            me: Origin { node, generation },
            seq: 0,
            spaces: BTreeMap::new(),
            writers: BTreeMap::new(),
            sums: Box::new([0; BUCKETS]),
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
            r.spaces.entry(e.origin.clone()).or_default().put(e.clone());
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
        for (o, s) in &r.spaces {
            retally(&mut r.sums, o, None, Some(s.watermark));
        }
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
        self.space(&me).put(e.clone());
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
            // Held up to here, yet not held: written over, or collected (a late copy).
            None if e.seq <= space.floor.min(w) => false,
            // A tombstone below the floor: collected on arrival, with what it deletes.
            _ if e.collectible_tombstone() && e.seq <= space.floor => space.take(&slot).is_some(),
            _ => {
                space.put(e.clone());
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
            retally(&mut self.sums, origin, None, Some(0));
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
            retally(&mut self.sums, origin, Some(old), Some(w));
        }
    }

    /// One origin's watermark (0 if unknown).
    pub fn watermark(&self, origin: &Origin) -> u64 {
        self.spaces.get(origin).map_or(0, |s| s.watermark)
    }

    /// The fingerprint of `digest()`, without building it.
    pub fn digest_hash(&self) -> String {
        fingerprint(self.sums.iter().fold(0, |a, s| a.wrapping_add(*s)))
    }

    /// The fingerprint of each bucket of the digest (`BUCKETS` of them): two replicas whose
    /// digests differ compare these, then exchange only the differing buckets' watermarks.
    pub fn buckets(&self) -> Vec<u64> {
        self.sums.iter().map(|s| *s as u64).collect()
    }

    /// The buckets (bit `b` for bucket `b`) whose fingerprints differ from a peer's; a
    /// bucket the peer did not send differs.
    pub fn differing(&self, theirs: &[u64]) -> u64 {
        self.sums
            .iter()
            .enumerate()
            .filter(|(b, mine)| theirs.get(*b) != Some(&(**mine as u64)))
            .fold(0, |mask, (b, _)| mask | (1 << b))
    }

    /// The watermarks of every origin known.
    pub fn digest(&self) -> Digest {
        self.digest_in(ALL_BUCKETS)
    }

    /// The watermarks of the origins in the buckets of `mask`.
    pub fn digest_in(&self, mask: u64) -> Digest {
        self.spaces
            .iter()
            .filter(|(o, _)| in_mask(mask, o))
            .map(|(o, s)| (o.clone(), s.watermark))
            .collect()
    }

    /// What a peer with `theirs` lacks, at most `max_entries` entries: whole origins only,
    /// so that each watermark sent is exact.
    pub fn delta_for(&self, theirs: &Digest, max_entries: usize) -> Delta {
        self.delta_in(theirs, max_entries, ALL_BUCKETS)
    }

    /// `delta_for`, for the origins of the buckets in `mask` only (`theirs` holds the
    /// peer's watermarks of those buckets: an origin of them it does not list, it lacks).
    pub fn delta_in(&self, theirs: &Digest, max_entries: usize, mask: u64) -> Delta {
        let mut d = Delta::default();
        // Both maps are in origin order: one walk through each, no lookups.
        let mut theirs = theirs.iter().peekable();
        for (origin, space) in self.spaces.iter().filter(|(o, _)| in_mask(mask, o)) {
            while theirs.next_if(|(o, _)| *o < origin).is_some() {}
            let have = theirs.next_if(|(o, _)| *o == origin).map_or(0, |(_, w)| *w);
            // Behind a collection: the peer may hold what a collected tombstone deleted,
            // so it gets the origin whole, to replace what it holds.
            let whole = have < space.floor;
            if space.watermark <= have && !whole {
                continue;
            }
            let mut missing: Vec<&Entry> = space
                .entries
                .values()
                .filter(|e| whole || e.seq > have)
                .collect();
            if !d.entries.is_empty() && d.entries.len() + missing.len() > max_entries {
                break;
            }
            missing.sort_by_key(|e| e.seq);
            d.entries.extend(missing.into_iter().cloned());
            d.watermarks.insert(origin.clone(), space.watermark);
            if whole {
                d.replace.push(origin.clone());
            }
        }
        d
    }

    /// Takes in a delta; the watermarks rise to the sender's for the origins it covered,
    /// and the origins it sent whole replace what is held of them up to the sender's
    /// watermark (what the sender no longer holds was written over or collected).
    pub fn apply_delta(&mut self, d: Delta, wall_ms: u64) -> Applied {
        let mut out = Applied::default();
        let mut ok_origins: BTreeMap<Origin, bool> =
            d.watermarks.keys().map(|o| (o.clone(), true)).collect();
        let mut sent: std::collections::BTreeSet<(Origin, Kind, String)> = Default::default();
        for e in d.entries {
            let origin = e.origin.clone();
            if d.replace.contains(&origin) {
                sent.insert((origin.clone(), e.kind, e.key.clone()));
            }
            match self.apply(e, wall_ms) {
                Ok(true) => out.changed += 1,
                Ok(false) => {}
                Err(_) => {
                    out.refused += 1;
                    ok_origins.insert(origin, false);
                }
            }
        }
        for (origin, w) in d.watermarks {
            if ok_origins.get(&origin) != Some(&true) {
                continue;
            }
            if d.replace.contains(&origin) && origin != self.me {
                let space = self.space(&origin);
                let gone: Vec<(Kind, String)> = space
                    .entries
                    .values()
                    .filter(|e| {
                        e.seq <= w && !sent.contains(&(origin.clone(), e.kind, e.key.clone()))
                    })
                    .map(|e| (e.kind, e.key.clone()))
                    .collect();
                for slot in gone {
                    if let Some(e) = space.take(&slot) {
                        out.removed.push(e);
                    }
                }
            }
            let have = self.space(&origin).watermark;
            self.set_watermark(&origin, have.max(w));
        }
        for e in &out.removed {
            self.drop_writer(e);
        }
        out
    }

    /// Whether this very write (origin and sequence) is held.
    pub fn holds(&self, e: &Entry) -> bool {
        self.spaces
            .get(&e.origin)
            .and_then(|s| s.entries.get(&(e.kind, e.key.clone())))
            .is_some_and(|x| x.seq == e.seq)
    }

    /// How far an origin's collectible tombstones are collected.
    pub fn floor(&self, origin: &Origin) -> u64 {
        self.spaces.get(origin).map_or(0, |s| s.floor)
    }

    /// Per origin (this node's own included), the highest collectible tombstone held
    /// above its floor whose clock is at or before `aged_ms` (a deletion that stood that
    /// long), when there is one.
    pub fn pending(&self, aged_ms: u64) -> BTreeMap<Origin, u64> {
        self.spaces
            .iter()
            .filter(|(_, s)| s.tombstones > 0)
            .filter_map(|(o, s)| {
                let top = s
                    .entries
                    .values()
                    .filter(|e| e.collectible_tombstone() && e.seq > s.floor && e.hlc.ms <= aged_ms)
                    .map(|e| e.seq)
                    .max()?;
                Some((o.clone(), top))
            })
            .collect()
    }

    /// The origin says its collectible tombstones up to `floor` are held by every live
    /// member: they go. Returns them (to be deleted from the store).
    pub fn collect(&mut self, origin: &Origin, floor: u64) -> Vec<Entry> {
        let Some(space) = self.spaces.get_mut(origin) else {
            return Vec::new();
        };
        space.floor = space.floor.max(floor);
        if space.tombstones == 0 {
            return Vec::new();
        }
        let gone: Vec<(Kind, String)> = space
            .entries
            .values()
            .filter(|e| e.collectible_tombstone() && e.seq <= space.floor)
            .map(|e| (e.kind, e.key.clone()))
            .collect();
        gone.into_iter()
            .filter_map(|slot| space.take(&slot))
            .collect()
    }

    /// Forgets `e` as a writer of its record (it was dropped from its origin's space).
    fn drop_writer(&mut self, e: &Entry) {
        if e.kind.owned() {
            return;
        }
        let slot = (e.kind, e.key.clone());
        if let Some(writers) = self.writers.get_mut(&slot) {
            if writers.all.remove(&e.origin) && writers.current.as_ref() == Some(&e.origin) {
                writers.recount(&self.spaces, &slot);
            }
            if writers.all.is_empty() {
                self.writers.remove(&slot);
            }
        }
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
            return self.spaces.get(o)?.entries.get(&slot);
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
                for e in space.entries.from(kind, "") {
                    if e.kind != kind {
                        break;
                    }
                    if origin.node.as_str() == owner_of(&e.key) {
                        keep_newest(&mut out, &e.key, e);
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
            for e in space.entries.from(kind, node.as_str()) {
                let key = e.key.as_str();
                if e.kind != kind || !(key == node.as_str() || key.starts_with(&prefix)) {
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
            retally(&mut self.sums, origin, Some(space.watermark), None);
        }
        for (slot, writers) in self.writers.iter_mut() {
            if writers.all.remove(origin) && writers.current.as_ref() == Some(origin) {
                writers.recount(&self.spaces, slot);
            }
        }
        self.writers.retain(|_, w| !w.all.is_empty());
    }
}
