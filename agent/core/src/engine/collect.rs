//! Tombstone collection (DESIGN §3: a tombstone is kept until every live member has seen
//! it). Only deletions whose absence says the same thing are collected — withdrawn
//! exports, observed states (`Kind::collectible`) — and only by the rule of their origin:
//! every node publishes an `Ack` record saying, per origin whose deletion has stood
//! `collect_after_ms` here, how far it holds that origin's writes; the origin takes the
//! lowest acknowledgement of its live members as its *floor* and publishes it in its own
//! `Ack` record; every node that learns a floor drops that origin's collectible
//! tombstones below it. A member that was not live meanwhile (dead, cut off, a new
//! one) is behind the floor: anti-entropy sends it the origin whole and it replaces what
//! it held (`Replica::delta_for`, `apply_delta`), so a deleted record never comes back.
//! The rounds run on the engine's clock, every `collect_every_ms`.

use super::members::Liveness;
use super::mesh::TREE_REPLICA;
use super::records::Write;
use super::Core;
use crate::mesh::replica::{owner_key, Entry, Kind, Origin, Replica};
use crate::mesh::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A node's `Ack` record, as it travels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    /// This node's own collectible tombstones up to this sequence are collected.
    pub floor: u64,
    /// (node, generation, sequence): this node holds every write of that origin up to
    /// the sequence, a deletion that stood long enough among them.
    pub acks: Vec<(String, u64, u64)>,
}

impl AckRecord {
    fn ack_of(&self, origin: &Origin) -> u64 {
        self.acks
            .iter()
            .find(|(n, g, _)| n == origin.node.as_str() && *g == origin.generation)
            .map_or(0, |(_, _, s)| *s)
    }
}

/// The collector's state in the core.
#[derive(Debug, Default)]
pub(super) struct Collector {
    next_at: u64,
    /// Every other member's last `Ack` record.
    acks: BTreeMap<NodeId, AckRecord>,
    /// Tombstones collected here.
    pub(super) collected: u64,
}

impl Core {
    /// A round, when one is due: acknowledge what stood long enough, move this node's
    /// own floor to what every live member acknowledged, collect below it.
    pub(super) fn collect_due(&mut self) {
        let t = &self.cfg.timing;
        if t.collect_every_ms == 0 {
            return;
        }
        if self.collector.next_at == 0 {
            // The first round comes at a point of the period that depends on the node:
            // members started together (a fleet's boot, a restart of every agent) do not
            // all rewrite their acknowledgements at the same instant, every period.
            let phase = super::names::name_hash(self.cfg.node_id.as_str()) % t.collect_every_ms;
            self.collector.next_at = self.now_ms + phase.max(1);
            return;
        }
        if self.now_ms < self.collector.next_at {
            return;
        }
        let every = t.collect_every_ms.max(
            t.collect_per_member_ms
                .saturating_mul(self.member_info.len() as u64),
        );
        self.collector.next_at = self.now_ms + every;
        let aged = self.now_ms.saturating_sub(t.collect_after_ms);
        let me = self.replica.origin().clone();
        let pending = self.replica.pending(aged);
        let mut floor = self.replica.floor(&me);
        if let Some(&top) = pending.get(&me) {
            let lowest = self
                .member_info
                .keys()
                .filter(|id| **id != me.node)
                .filter(|id| matches!(self.liveness(id), Liveness::Alive | Liveness::Suspect))
                .map(|id| self.collector.acks.get(id).map_or(0, |a| a.ack_of(&me)))
                .min()
                .unwrap_or(top);
            floor = floor.max(top.min(lowest));
        }
        let acks: Vec<(String, u64, u64)> = pending
            .into_iter()
            .filter(|(o, _)| *o != me)
            .map(|(o, top)| {
                let held = top.min(self.replica.watermark(&o));
                (o.node.to_string(), o.generation, held)
            })
            .filter(|(_, _, held)| *held > 0)
            .collect();
        let rec = AckRecord { floor, acks };
        let key = owner_key(&me.node, "");
        if rec != AckRecord::default() || self.replica.get(Kind::Ack, &key).is_some() {
            let bytes = serde_json::to_vec(&rec).unwrap_or_default();
            self.put_if_changed(Kind::Ack, &key, Some(bytes));
        }
        let gone = self.replica.collect(&me, floor);
        self.forget_stored(gone);
    }

    /// Another member's `Ack` record arrived: keep its acknowledgements, collect its
    /// tombstones below its floor.
    pub(super) fn took_ack(&mut self, key: &str) {
        let Some(e) = self.replica.get(Kind::Ack, key) else {
            return;
        };
        let origin = e.origin.clone();
        let Some(rec) = e
            .value
            .as_ref()
            .and_then(|v| serde_json::from_slice::<AckRecord>(v).ok())
        else {
            return;
        };
        let floor = rec.floor;
        if origin != *self.replica.origin() {
            self.collector.acks.insert(origin.node.clone(), rec);
        }
        let gone = self.replica.collect(&origin, floor);
        self.forget_stored(gone);
    }

    /// A peer's entry that the replica did not keep: a tombstone below its origin's
    /// floor, collected on arrival — the write it deleted leaves the store too.
    pub(super) fn collected_on_arrival(&mut self, e: &Entry) {
        if e.collectible_tombstone() && e.seq <= self.replica.floor(&e.origin) {
            self.forget_stored(vec![e.clone()]);
        }
    }

    /// Collected entries leave the store.
    pub(super) fn forget_stored(&mut self, gone: Vec<Entry>) {
        self.collector.collected += gone.len() as u64;
        for e in gone {
            self.writes.push(Write::Delete {
                tree: TREE_REPLICA,
                key: Replica::store_key(&e),
            });
        }
    }

    /// The replica, to read (the simulator's invariants look at records).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Tombstones collected here so far (and records dropped behind a floor).
    pub fn collected(&self) -> u64 {
        self.collector.collected
    }
}
