//! The records one origin wrote, by slot (kind, key): a vector kept in slot order. Most
//! origins hold one or two records (a member's own record, a few exports), and a node
//! holds one set per origin of the mesh: a map's first node, room for eleven slots and
//! a copy of each key, would be most of a replica's memory; here a record costs its
//! entry, and its key is the entry's own.

use super::entry::{Entry, Kind};

#[derive(Debug, Clone, Default)]
pub(super) struct Slots(Vec<Entry>);

impl Slots {
    fn find(&self, kind: Kind, key: &str) -> Result<usize, usize> {
        self.0
            .binary_search_by(|e| (e.kind, e.key.as_str()).cmp(&(kind, key)))
    }

    pub(super) fn get(&self, slot: &(Kind, String)) -> Option<&Entry> {
        self.find(slot.0, &slot.1).ok().map(|i| &self.0[i])
    }

    /// Puts `e` in its slot; returns what was there.
    pub(super) fn insert(&mut self, e: Entry) -> Option<Entry> {
        match self.find(e.kind, &e.key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i], e)),
            Err(i) => {
                // Room for one more, not four (a vector's first growth): most hold one.
                if self.0.len() < 4 {
                    self.0.reserve_exact(1);
                }
                self.0.insert(i, e);
                None
            }
        }
    }

    pub(super) fn remove(&mut self, slot: &(Kind, String)) -> Option<Entry> {
        let i = self.find(slot.0, &slot.1).ok()?;
        let e = self.0.remove(i);
        if self.0.len() < self.0.capacity() / 4 {
            self.0.shrink_to_fit();
        }
        Some(e)
    }

    /// Every record, in slot order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.0.iter()
    }

    /// The records from slot (`kind`, `key`) on, in slot order.
    pub(super) fn from<'a>(&'a self, kind: Kind, key: &str) -> impl Iterator<Item = &'a Entry> {
        let start = self.find(kind, key).unwrap_or_else(|i| i);
        self.0[start..].iter()
    }
}
