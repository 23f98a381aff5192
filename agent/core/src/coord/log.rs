//! The coordinator's Raft log as raft-rs's `Storage` reads it: held in memory and
//! mirrored to the store as `Write`s (tree `raft`), which the driver makes durable before
//! any message of the same step leaves — so a vote or an append is on disk before it is
//! acknowledged. The applied state is kept as a snapshot (the replicated `Machine` at the
//! applied index, with the configuration in force there): a restart resumes from it, a
//! voter that fell behind or was just added receives it, and the entries before it are
//! dropped but for a short tail.

use crate::engine::Write;
use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

/// The store tree of the Raft state.
pub const TREE_RAFT: &str = "raft";
const KEY_HARD: &[u8] = b"hs";
const KEY_SNAP: &[u8] = b"snap";
const KEY_OFFSET: &[u8] = b"off";
const ENTRY_PREFIX: u8 = b'e';
/// Entries kept behind the applied index (a follower a little behind gets entries, not
/// the snapshot).
const TAIL: u64 = 64;

fn entry_key(index: u64) -> Vec<u8> {
    let mut k = vec![ENTRY_PREFIX];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn put(key: &[u8], value: Vec<u8>) -> Write {
    Write::Put {
        tree: TREE_RAFT,
        key: key.to_vec(),
        value,
    }
}

/// The log of one voter.
#[derive(Debug, Clone, Default)]
pub struct Log {
    hard: HardState,
    /// The applied state: index, term and configuration in its metadata, the `Machine`
    /// in its data.
    snap: Snapshot,
    /// The last entry dropped from `entries` (index, term): its term is still asked for.
    offset: (u64, u64),
    /// Entries after `offset`, consecutive.
    entries: Vec<Entry>,
}

impl Log {
    /// The log of the mesh's first voter: a snapshot at index 1, term 1, holding the
    /// first configuration and state.
    pub fn founded(conf: ConfState, data: Vec<u8>, writes: &mut Vec<Write>) -> Log {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 1;
        snap.mut_metadata().term = 1;
        snap.mut_metadata().set_conf_state(conf);
        snap.data = data.into();
        let hard = HardState {
            term: 1,
            commit: 1,
            ..Default::default()
        };
        let log = Log {
            hard,
            snap,
            offset: (1, 1),
            entries: Vec::new(),
        };
        log.persist_all(writes);
        log
    }

    /// What the store held (`None`: nothing, this node was never a voter).
    pub fn restore(stored: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<Log>, String> {
        if stored.is_empty() {
            return Ok(None);
        }
        let mut log = Log::default();
        let bad = |what: &str, e: protobuf::ProtobufError| format!("raft {what}: {e}");
        for (k, v) in stored {
            match k.as_slice() {
                KEY_HARD => log.hard = HardState::parse_from_bytes(v).map_err(|e| bad("hs", e))?,
                KEY_SNAP => log.snap = Snapshot::parse_from_bytes(v).map_err(|e| bad("snap", e))?,
                KEY_OFFSET => {
                    let b: [u8; 16] = v.as_slice().try_into().map_err(|_| "raft offset")?;
                    let (i, t) = b.split_at(8);
                    log.offset = (
                        u64::from_be_bytes(i.try_into().unwrap_or_default()),
                        u64::from_be_bytes(t.try_into().unwrap_or_default()),
                    );
                }
                [ENTRY_PREFIX, ..] => log
                    .entries
                    .push(Entry::parse_from_bytes(v).map_err(|e| bad("entry", e))?),
                _ => {}
            }
        }
        log.entries.sort_by_key(|e| e.index);
        log.entries.retain(|e| e.index > log.offset.0);
        // Only a consecutive run after the offset counts (a torn tail is dropped).
        let mut next = log.offset.0 + 1;
        let keep = log
            .entries
            .iter()
            .take_while(|e| {
                let ok = e.index == next;
                next += 1;
                ok
            })
            .count();
        log.entries.truncate(keep);
        Ok(Some(log))
    }

    fn persist_all(&self, writes: &mut Vec<Write>) {
        writes.push(Write::DeletePrefix {
            tree: TREE_RAFT,
            prefix: vec![ENTRY_PREFIX],
        });
        writes.push(put(
            KEY_HARD,
            self.hard.write_to_bytes().unwrap_or_default(),
        ));
        writes.push(put(
            KEY_SNAP,
            self.snap.write_to_bytes().unwrap_or_default(),
        ));
        self.persist_offset(writes);
        for e in &self.entries {
            writes.push(put(
                &entry_key(e.index),
                e.write_to_bytes().unwrap_or_default(),
            ));
        }
    }

    fn persist_offset(&self, writes: &mut Vec<Write>) {
        let mut v = self.offset.0.to_be_bytes().to_vec();
        v.extend_from_slice(&self.offset.1.to_be_bytes());
        writes.push(put(KEY_OFFSET, v));
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard
    }

    /// The applied snapshot (index, term, configuration, `Machine`).
    pub fn snapshot_ref(&self) -> &Snapshot {
        &self.snap
    }

    pub fn applied(&self) -> u64 {
        self.snap.get_metadata().index
    }

    fn first(&self) -> u64 {
        self.offset.0 + 1
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.offset.0, |e| e.index)
    }

    pub fn set_hard_state(&mut self, hs: HardState, writes: &mut Vec<Write>) {
        if hs != self.hard {
            self.hard = hs;
            writes.push(put(
                KEY_HARD,
                self.hard.write_to_bytes().unwrap_or_default(),
            ));
        }
    }

    pub fn set_commit(&mut self, commit: u64, writes: &mut Vec<Write>) {
        if commit > self.hard.commit {
            let mut hs = self.hard.clone();
            hs.commit = commit;
            self.set_hard_state(hs, writes);
        }
    }

    /// Appends entries, replacing any that conflict (and those after them).
    pub fn append(&mut self, ents: &[Entry], writes: &mut Vec<Write>) {
        let Some(first) = ents.first() else { return };
        if first.index <= self.offset.0 {
            // Already applied and dropped: raft-rs never sends these again.
            return;
        }
        let old_last = self.last();
        let keep = (first.index - self.first()) as usize;
        self.entries.truncate(keep.min(self.entries.len()));
        self.entries.extend_from_slice(ents);
        let new_last = self.last();
        for e in ents {
            writes.push(put(
                &entry_key(e.index),
                e.write_to_bytes().unwrap_or_default(),
            ));
        }
        for gone in new_last + 1..=old_last {
            writes.push(Write::Delete {
                tree: TREE_RAFT,
                key: entry_key(gone),
            });
        }
    }

    /// A snapshot from the leader replaces everything.
    pub fn install(&mut self, snap: Snapshot, writes: &mut Vec<Write>) {
        let (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
        self.snap = snap;
        self.offset = (index, term);
        self.entries.clear();
        self.hard.term = self.hard.term.max(term);
        self.hard.commit = self.hard.commit.max(index);
        self.persist_all(writes);
    }

    /// The state at `index` (term `term`) was applied: it becomes the snapshot, and the
    /// entries more than `TAIL` behind it are dropped.
    pub fn applied_to(
        &mut self,
        index: u64,
        term: u64,
        conf: ConfState,
        data: Vec<u8>,
        writes: &mut Vec<Write>,
    ) {
        let meta = self.snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf);
        self.snap.data = data.into();
        writes.push(put(
            KEY_SNAP,
            self.snap.write_to_bytes().unwrap_or_default(),
        ));
        let cut = index.saturating_sub(TAIL);
        if cut > self.offset.0 {
            let n = (cut - self.offset.0) as usize;
            let n = n.min(self.entries.len());
            if n > 0 {
                let last = &self.entries[n - 1];
                self.offset = (last.index, last.term);
                for e in self.entries.drain(..n) {
                    writes.push(Write::Delete {
                        tree: TREE_RAFT,
                        key: entry_key(e.index),
                    });
                }
                self.persist_offset(writes);
            }
        }
    }
}

impl raft::Storage for Log {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard.clone(),
            self.snap.get_metadata().get_conf_state().clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let from = (low - self.first()) as usize;
        let to = (high - self.first()) as usize;
        let mut out = Vec::new();
        let mut size = 0u64;
        let max = max_size.into().unwrap_or(u64::MAX);
        for e in &self.entries[from..to] {
            size += u64::from(e.compute_size());
            if !out.is_empty() && size > max {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.offset.0 {
            return Ok(self.offset.1);
        }
        if idx < self.offset.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.first()) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snap.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snap.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn stored(writes: &[Write]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut m = std::collections::BTreeMap::new();
        for w in writes {
            match w {
                Write::Put { key, value, .. } => {
                    m.insert(key.clone(), value.clone());
                }
                Write::Delete { key, .. } => {
                    m.remove(key);
                }
                Write::DeletePrefix { prefix, .. } => m.retain(|k, _| !k.starts_with(prefix)),
                Write::Peer { .. } => {}
            }
        }
        m.into_iter().collect()
    }

    #[test]
    fn appends_truncate_conflicts_and_a_restart_reads_back_the_same_log() {
        let mut w = Vec::new();
        let conf = ConfState {
            voters: vec![7],
            ..Default::default()
        };
        let mut log = Log::founded(conf, b"m".to_vec(), &mut w);
        assert_eq!((log.first(), log.last()), (2, 1));
        log.append(&[entry(2, 2), entry(3, 2), entry(4, 2)], &mut w);
        log.append(&[entry(3, 3)], &mut w);
        assert_eq!(log.last(), 3);
        assert_eq!(log.term(3), Ok(3));
        assert_eq!(log.term(1), Ok(1));
        let back = Log::restore(&stored(&w)).expect("read").expect("some");
        assert_eq!(back.last(), 3);
        assert_eq!(back.term(2), Ok(2));
        assert_eq!(
            back.initial_state().expect("state").conf_state.voters,
            vec![7]
        );
        // Applying far ahead drops all but the tail.
        let ents: Vec<Entry> = (4..200).map(|i| entry(i, 3)).collect();
        log.append(&ents, &mut w);
        log.applied_to(199, 3, ConfState::default(), b"n".to_vec(), &mut w);
        assert_eq!(log.first(), 199 - TAIL + 1);
        assert!(log
            .entries(2, 10, None, GetEntriesContext::empty(false))
            .is_err());
        let back = Log::restore(&stored(&w)).expect("read").expect("some");
        assert_eq!(
            (back.first(), back.last(), back.applied()),
            (log.first(), 199, 199)
        );
    }
}
