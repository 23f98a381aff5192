//! Durable state in sled: one tree per kind of record (applications, instances, script
//! runs). A batch of the core's writes is applied as one transaction across the trees and
//! flushed before the runtime acts on what follows it, so a `kill -9` at any point loses
//! nothing that was acknowledged.

use crate::core::mesh::TREE_REPLICA;
use crate::core::records::{
    AppRecord, InstanceRecord, RunRecord, Write, TREE_APPS, TREE_INSTANCES, TREE_RUNS,
};
use roboconf_core::coord::log::TREE_RAFT;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use std::path::Path;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store in {path}: {source}")]
    Open { path: String, source: sled::Error },
    #[error("store failure: {0}")]
    Sled(#[from] sled::Error),
    #[error("store transaction failed: {0}")]
    Transaction(String),
    /// A write named a tree the store does not have (a bug: nothing of its batch is
    /// written).
    #[error("no tree `{0}` in the store")]
    UnknownTree(String),
}

/// Keys and values of a tree, in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A put (`Some` value) or a delete, on a tree (its index in `Sled::TREES`).
type PlainWrite = (usize, Vec<u8>, Option<Vec<u8>>);

/// What the runtime needs of a store.
pub trait Store: Send + Sync {
    /// Applies writes atomically and makes them durable.
    fn apply(&self, writes: &[Write]) -> Result<(), Error>;
    fn apps(&self) -> Result<Vec<AppRecord>, Error>;
    fn instances(&self) -> Result<Vec<InstanceRecord>, Error>;
    /// The runs kept for an instance, oldest first.
    fn runs(&self, app: &str, path: &str) -> Result<Vec<RunRecord>, Error>;
    /// The replicated entries held.
    fn replica(&self) -> Result<Vec<crate::mesh::replica::Entry>, Error>;
    /// A small value of the store's own (identity, generation).
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error>;
    /// The coordinator's Raft state (`roboconf_core::coord::log`).
    fn raft(&self) -> Result<Pairs, Error>;
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), Error>;
}

/// The sled store.
pub struct Sled {
    db: sled::Db,
    apps: sled::Tree,
    instances: sled::Tree,
    runs: sled::Tree,
    replica: sled::Tree,
    raft: sled::Tree,
    meta: sled::Tree,
}

impl Sled {
    pub fn open(dir: &Path) -> Result<Sled, Error> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            .flush_every_ms(Some(500))
            .open()
            .map_err(|source| Error::Open {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Sled {
            apps: db.open_tree(TREE_APPS)?,
            instances: db.open_tree(TREE_INSTANCES)?,
            runs: db.open_tree(TREE_RUNS)?,
            replica: db.open_tree(TREE_REPLICA)?,
            raft: db.open_tree(TREE_RAFT)?,
            meta: db.open_tree("meta")?,
            db,
        })
    }

    /// A tree of its own for a component beside the store's records (the AMQP
    /// bridge's outbox), in the same database.
    pub fn open_tree(&self, name: &str) -> Result<sled::Tree, Error> {
        Ok(self.db.open_tree(name)?)
    }

    /// The trees writes may name, in the order of `apply`'s transaction.
    const TREES: [&'static str; 5] = [
        TREE_APPS,
        TREE_INSTANCES,
        TREE_RUNS,
        TREE_REPLICA,
        TREE_RAFT,
    ];

    /// The index of a tree in `TREES`; an unknown name is an error, never another tree.
    fn index(name: &str) -> Result<usize, Error> {
        Self::TREES
            .iter()
            .position(|t| *t == name)
            .ok_or_else(|| Error::UnknownTree(name.to_string()))
    }

    fn tree(&self, name: &str) -> Result<&sled::Tree, Error> {
        Ok(match Self::index(name)? {
            0 => &self.apps,
            1 => &self.instances,
            2 => &self.runs,
            3 => &self.replica,
            _ => &self.raft,
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(tree: &sled::Tree) -> Result<Vec<T>, Error> {
    read_all(tree.iter(), |v| serde_json::from_slice(v).ok())
}

/// Every value `parse` can read. A record this version cannot read is skipped rather
/// than stopping the agent (a replica entry comes back by anti-entropy).
fn read_all<T>(
    kvs: impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>,
    parse: impl Fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, Error> {
    let mut out = Vec::new();
    for kv in kvs {
        let (_, v) = kv?;
        out.extend(parse(&v));
    }
    Ok(out)
}

impl Store for Sled {
    fn apply(&self, writes: &[Write]) -> Result<(), Error> {
        if writes.is_empty() {
            return Ok(());
        }
        // Prefix deletions become plain deletions of the keys present now.
        let mut plain: Vec<PlainWrite> = Vec::with_capacity(writes.len());
        for w in writes {
            match w {
                Write::Put { tree, key, value } | Write::Peer { tree, key, value } => {
                    plain.push((Self::index(tree)?, key.clone(), Some(value.clone())))
                }
                Write::Delete { tree, key } => plain.push((Self::index(tree)?, key.clone(), None)),
                Write::DeletePrefix { tree, prefix } => {
                    let i = Self::index(tree)?;
                    for kv in self.tree(tree)?.scan_prefix(prefix) {
                        let (k, _) = kv?;
                        plain.push((i, k.to_vec(), None));
                    }
                }
            }
        }
        (
            &self.apps,
            &self.instances,
            &self.runs,
            &self.replica,
            &self.raft,
        )
            .transaction(|(apps, instances, runs, replica, raft)| {
                for (tree, key, value) in &plain {
                    let t = match *tree {
                        0 => apps,
                        1 => instances,
                        2 => runs,
                        3 => replica,
                        _ => raft,
                    };
                    match value {
                        Some(v) => {
                            t.insert(key.as_slice(), v.as_slice())?;
                        }
                        None => {
                            t.remove(key.as_slice())?;
                        }
                    }
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| Error::Transaction(format!("{e:?}")))?;
        // Copies of peers' records alone need no flush (sled flushes them within 500 ms,
        // and the peers have them); anything of this node's own does.
        if writes.iter().any(|w| !matches!(w, Write::Peer { .. })) {
            self.db.flush()?;
        }
        Ok(())
    }

    fn apps(&self) -> Result<Vec<AppRecord>, Error> {
        decode(&self.apps)
    }

    fn instances(&self) -> Result<Vec<InstanceRecord>, Error> {
        decode(&self.instances)
    }

    fn replica(&self) -> Result<Vec<crate::mesh::replica::Entry>, Error> {
        read_all(
            self.replica.iter(),
            crate::mesh::replica::Entry::from_stored,
        )
    }

    fn raft(&self) -> Result<Pairs, Error> {
        let mut out = Vec::new();
        for kv in self.raft.iter() {
            let (k, v) = kv?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.meta.get(key)?.map(|v| v.to_vec()))
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.meta.insert(key, value)?;
        self.db.flush()?;
        Ok(())
    }

    fn runs(&self, app: &str, path: &str) -> Result<Vec<RunRecord>, Error> {
        let mut prefix = crate::core::records::instance_key(app, path);
        prefix.push(0);
        read_all(self.runs.scan_prefix(prefix), |v| {
            serde_json::from_slice(v).ok()
        })
    }
}

/// Opens a store again in a test, once the previous handle's lock is released: sled's
/// flusher thread keeps the dropped database (and its file lock) a moment longer, so an
/// immediate reopen in the same process may find the lock taken. Gives up after 5 s.
#[cfg(test)]
pub(crate) fn reopen<T, E: std::fmt::Debug>(open: impl Fn() -> Result<T, E>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open() {
            Ok(t) => return t,
            Err(e) if std::time::Instant::now() >= deadline => panic!("reopen: {e:?}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Desired, State};
    use crate::core::records::{instance_key, run_key};

    fn rec(path: &str) -> InstanceRecord {
        InstanceRecord {
            state: State::DeployedStarted,
            ..InstanceRecord::new("a", path, "x", "C", Desired::Started)
        }
    }

    #[test]
    fn a_write_to_an_unknown_tree_fails_its_whole_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = Sled::open(dir.path()).expect("open");
        let r = s.apply(&[
            Write::put(TREE_INSTANCES, instance_key("a", "/vm"), &rec("/vm")),
            Write::Put {
                tree: "nope",
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            },
        ]);
        assert!(matches!(r, Err(Error::UnknownTree(t)) if t == "nope"));
        assert!(s.instances().expect("instances").is_empty());
        assert_eq!(s.runs.len(), 0);
    }

    #[test]
    fn writes_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = Sled::open(dir.path()).expect("open");
            s.apply(&[
                Write::put(TREE_INSTANCES, instance_key("a", "/vm"), &rec("/vm")),
                Write::put(TREE_INSTANCES, instance_key("a", "/vm/x"), &rec("/vm/x")),
                Write::Put {
                    tree: TREE_RUNS,
                    key: run_key("a", "/vm/x", 1),
                    value: b"{}".to_vec(),
                },
            ])
            .expect("apply");
            s.apply(&[
                Write::Delete {
                    tree: TREE_INSTANCES,
                    key: instance_key("a", "/vm"),
                },
                Write::DeletePrefix {
                    tree: TREE_RUNS,
                    prefix: instance_key("a", "/vm/x"),
                },
            ])
            .expect("apply");
        }
        let s = reopen(|| Sled::open(dir.path()));
        let inst = s.instances().expect("instances");
        assert_eq!(inst.len(), 1);
        assert_eq!(inst[0].path, "/vm/x");
        assert_eq!(s.runs.len(), 0);
    }
}
