//! The bridge's outbox: a bounded FIFO of messages to publish, in a sled tree of the
//! agent's database, so that events wait out a broker outage and an agent restart. Keys
//! are sequence numbers (u64 big-endian, from 1; key 0 holds the persisted overflow
//! counter); values are the encoded [`Message`]. An entry leaves only when the broker has
//! confirmed it ([`Outbox::remove`]). When full, a new event is dropped and counted,
//! never silently. Writes reach the disk with the database's periodic flush (the agent's
//! store flushes every 500 ms), or at once with [`Outbox::flush`].

use super::messages::Message;
use super::Error;
use std::sync::{Arc, Mutex, MutexGuard};

/// The tree's name in the agent's database.
pub const TREE: &str = "amqp-outbox";

/// Key 0: the number of events dropped because the outbox was full.
const OVERFLOW_KEY: [u8; 8] = 0u64.to_be_bytes();
/// The encoding's version, the first byte of every value.
const VERSION: u8 = 1;

/// What became of a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued under this sequence number.
    Queued(u64),
    /// Dropped: the outbox was full (the overflow counter went up).
    Overflowed,
}

/// A cloneable handle on the outbox.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    tree: sled::Tree,
    max: u64,
    state: Mutex<Counters>,
}

struct Counters {
    next: u64,
    len: u64,
    overflowed: u64,
}

fn be(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

impl Outbox {
    /// Opens the outbox in `tree` (e.g. `store.open_tree(outbox::TREE)`), holding at
    /// most `max` messages. Counts the entries (once, here).
    pub fn open(tree: sled::Tree, max: u64) -> Result<Outbox, Error> {
        let overflowed = tree.get(OVERFLOW_KEY)?.and_then(|v| be(&v)).unwrap_or(0);
        let mut len = 0;
        let mut last = 0;
        for kv in tree.range(1u64.to_be_bytes()..) {
            let (k, _) = kv?;
            last = be(&k).unwrap_or(last);
            len += 1;
        }
        Ok(Outbox {
            inner: Arc::new(Inner {
                tree,
                max: max.max(1),
                state: Mutex::new(Counters {
                    next: last + 1,
                    len,
                    overflowed,
                }),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Counters> {
        // The counters stay consistent whatever panicked while holding them.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a message, or drops it and counts it when the outbox is full.
    pub fn push(&self, msg: &Message) -> Result<Pushed, Error> {
        let value = encode(msg);
        let mut st = self.lock();
        if st.len >= self.inner.max {
            st.overflowed += 1;
            self.inner
                .tree
                .insert(OVERFLOW_KEY, &st.overflowed.to_be_bytes())?;
            return Ok(Pushed::Overflowed);
        }
        let seq = st.next;
        self.inner.tree.insert(seq.to_be_bytes(), value)?;
        st.next += 1;
        st.len += 1;
        Ok(Pushed::Queued(seq))
    }

    /// Up to `n` messages with a sequence number above `after_seq` (0: from the
    /// oldest), oldest first. A record this version cannot read is removed and
    /// reported on stderr.
    pub fn peek(&self, after_seq: u64, n: usize) -> Result<Vec<(u64, Message)>, Error> {
        let mut out = Vec::with_capacity(n.min(1024));
        let from = after_seq.saturating_add(1).max(1);
        for kv in self.inner.tree.range(from.to_be_bytes()..) {
            if out.len() >= n {
                break;
            }
            let (k, v) = kv?;
            let Some(seq) = be(&k) else { continue };
            match decode(&v) {
                Some(m) => out.push((seq, m)),
                None => {
                    tracing::error!(error = %Error::Corrupt(seq), "amqp outbox: dropped");
                    self.remove(seq)?;
                }
            }
        }
        Ok(out)
    }

    /// Removes a message (confirmed by the broker); false if it was not there.
    pub fn remove(&self, seq: u64) -> Result<bool, Error> {
        if seq == 0 {
            return Ok(false);
        }
        let mut st = self.lock();
        let gone = self.inner.tree.remove(seq.to_be_bytes())?.is_some();
        if gone {
            st.len = st.len.saturating_sub(1);
        }
        Ok(gone)
    }

    /// Messages waiting.
    pub fn len(&self) -> u64 {
        self.lock().len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped because the outbox was full, ever (persisted).
    pub fn overflowed(&self) -> u64 {
        self.lock().overflowed
    }

    /// The most messages held.
    pub fn max(&self) -> u64 {
        self.inner.max
    }

    /// Makes every write so far durable now.
    pub fn flush(&self) -> Result<(), Error> {
        self.inner.tree.flush()?;
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// `VERSION`, timestamp (u64), exchange, routing key, type, message id (each u16
/// length + UTF-8), then the body to the end.
fn encode(m: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        1 + 8
            + 8
            + m.exchange.len()
            + m.routing_key.len()
            + m.kind.len()
            + m.message_id.len()
            + m.body.len(),
    );
    out.push(VERSION);
    out.extend_from_slice(&m.timestamp_ms.to_be_bytes());
    for s in [&m.exchange, &m.routing_key, &m.kind, &m.message_id] {
        put_str(&mut out, s);
    }
    out.extend_from_slice(&m.body);
    out
}

fn decode(b: &[u8]) -> Option<Message> {
    let (&version, mut rest) = b.split_first()?;
    if version != VERSION {
        return None;
    }
    let timestamp_ms = be(rest.get(..8)?)?;
    rest = &rest[8..];
    let mut take = || -> Option<String> {
        let len = usize::from(u16::from_be_bytes(rest.get(..2)?.try_into().ok()?));
        let s = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
        rest = &rest[2 + len..];
        Some(s)
    };
    let (exchange, routing_key, kind, message_id) = (take()?, take()?, take()?, take()?);
    Some(Message {
        exchange,
        routing_key,
        kind,
        message_id,
        timestamp_ms,
        body: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u64) -> Message {
        Message {
            exchange: "d.roboconf.dm".into(),
            routing_key: "lamp".into(),
            kind: "MsgNotifHeartbeat".into(),
            message_id: format!("node:{i}"),
            timestamp_ms: 1_700_000_000_000 + i,
            body: format!("{{\"i\":{i}}}").into_bytes(),
        }
    }

    fn db(dir: &std::path::Path) -> sled::Db {
        crate::store::reopen(|| sled::Config::new().path(dir).open())
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let m = msg(3);
        assert_eq!(decode(&encode(&m)), Some(m));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[2, 0, 0]), None);
        assert_eq!(decode(&encode(&msg(1))[..12]), None);
    }

    #[test]
    fn fifo_peek_remove_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let o = Outbox::open(db(dir.path()).open_tree(TREE).expect("tree"), 10).expect("open");
            for i in 1..=5 {
                assert_eq!(o.push(&msg(i)).expect("push"), Pushed::Queued(i));
            }
            assert_eq!(o.len(), 5);
            let got = o.peek(0, 3).expect("peek");
            assert_eq!(
                got.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            assert_eq!(got[1].1, msg(2));
            assert_eq!(o.peek(3, 10).expect("peek").len(), 2);
            assert!(o.remove(1).expect("remove"));
            assert!(!o.remove(1).expect("again"));
            assert!(!o.remove(0).expect("key 0 is no entry"));
            assert_eq!(o.len(), 4);
            o.flush().expect("flush");
        }
        let o = Outbox::open(db(dir.path()).open_tree(TREE).expect("tree"), 10).expect("reopen");
        assert_eq!(o.len(), 4);
        let seqs: Vec<u64> = o
            .peek(0, 100)
            .expect("peek")
            .iter()
            .map(|(s, _)| *s)
            .collect();
        assert_eq!(seqs, vec![2, 3, 4, 5]);
        assert_eq!(
            o.push(&msg(6)).expect("push"),
            Pushed::Queued(6),
            "sequence goes on"
        );
    }

    #[test]
    fn a_full_outbox_drops_and_counts_durably() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let o = Outbox::open(db(dir.path()).open_tree(TREE).expect("tree"), 2).expect("open");
            o.push(&msg(1)).expect("push");
            o.push(&msg(2)).expect("push");
            assert_eq!(o.push(&msg(3)).expect("push"), Pushed::Overflowed);
            assert_eq!(o.push(&msg(4)).expect("push"), Pushed::Overflowed);
            assert_eq!((o.len(), o.overflowed()), (2, 2));
            o.remove(1).expect("remove");
            assert_eq!(o.push(&msg(5)).expect("push"), Pushed::Queued(3));
            o.flush().expect("flush");
        }
        let o = Outbox::open(db(dir.path()).open_tree(TREE).expect("tree"), 2).expect("reopen");
        assert_eq!((o.len(), o.overflowed()), (2, 2));
        let ids: Vec<String> = o
            .peek(0, 9)
            .expect("peek")
            .into_iter()
            .map(|(_, m)| m.message_id)
            .collect();
        assert_eq!(ids, vec!["node:2", "node:5"]);
    }

    #[test]
    fn an_unreadable_record_is_dropped_not_stuck() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tree = db(dir.path()).open_tree(TREE).expect("tree");
        tree.insert(1u64.to_be_bytes(), &[9u8, 9][..])
            .expect("insert");
        let o = Outbox::open(tree, 10).expect("open");
        o.push(&msg(2)).expect("push");
        let got = o.peek(0, 10).expect("peek");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 2);
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn pushes_are_cheap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o =
            Outbox::open(db(dir.path()).open_tree(TREE).expect("tree"), 1_000_000).expect("open");
        let n = 50_000;
        let m = msg(1);
        let t = std::time::Instant::now();
        for _ in 0..n {
            o.push(&m).expect("push");
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        eprintln!("outbox: {rate:.0} pushes/s");
        // Loose: debug builds of sled are several times slower than release.
        assert!(rate > 5_000.0, "{rate:.0} pushes/s");
        assert_eq!(o.len(), n);
    }
}
