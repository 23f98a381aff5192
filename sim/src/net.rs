//! The simulated network and machines: a virtual clock with one ordered queue of events
//! (ties broken by insertion order, so a seed gives one order), links with a latency
//! distribution, loss and duplication (reordering follows from the jitter), partitions
//! between arbitrary groups, and a CPU model — each node's own processor, or a few cores
//! shared by every node (the real benchmark's one machine, used to calibrate).

use roboconf_core::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Microseconds of virtual time.
pub type Micros = u64;

/// What links do to messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Mean one-way latency.
    pub latency_us: Micros,
    /// Uniform jitter around it (±).
    pub jitter_us: Micros,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
}

impl Link {
    /// One delay drawn from the distribution.
    pub fn delay(&self, rng: &mut Rng) -> Micros {
        let spread = 2 * self.jitter_us + 1;
        (self.latency_us + rng.below(spread as usize) as u64).saturating_sub(self.jitter_us)
    }
}

/// Where message handling takes its processor time.
#[derive(Debug, Clone, PartialEq)]
pub enum Cpu {
    /// Every node has its own processor.
    PerNode { recv_us: Micros, send_us: Micros },
    /// All nodes share `cores` processors (agents as processes on one machine).
    Shared {
        cores: usize,
        recv_us: Micros,
        send_us: Micros,
    },
}

/// The processors' state: when each is free again.
#[derive(Debug, Clone)]
pub struct Processors {
    model: Cpu,
    free_at: Vec<Micros>,
    /// The cost of a duplicate gossip copy, if not that of a received message.
    pub duplicate_us: Option<Micros>,
}

impl Processors {
    pub fn new(model: Cpu, nodes: usize) -> Processors {
        let n = match &model {
            Cpu::PerNode { .. } => nodes,
            Cpu::Shared { cores, .. } => (*cores).max(1),
        };
        Processors {
            model,
            free_at: vec![0; n],
            duplicate_us: None,
        }
    }

    fn run(&mut self, node: usize, at: Micros, cost: Micros) -> Micros {
        let slot = match self.model {
            Cpu::PerNode { .. } => node,
            Cpu::Shared { .. } => {
                // The processor free first (lowest index on ties).
                let mut best = 0;
                for (i, f) in self.free_at.iter().enumerate() {
                    if *f < self.free_at[best] {
                        best = i;
                    }
                }
                best
            }
        };
        let start = at.max(self.free_at[slot]);
        self.free_at[slot] = start + cost;
        start + cost
    }

    /// `node` handles a message arriving at `at`: when it is done.
    pub fn receive(&mut self, node: usize, at: Micros) -> Micros {
        let cost = match self.model {
            Cpu::PerNode { recv_us, .. } | Cpu::Shared { recv_us, .. } => recv_us,
        };
        self.run(node, at, cost)
    }

    /// `node` drops a copy of a gossip message it has seen: when it is done.
    pub fn duplicate(&mut self, node: usize, at: Micros) -> Micros {
        match self.duplicate_us {
            Some(cost) => self.run(node, at, cost),
            None => self.receive(node, at),
        }
    }

    /// `node` sends a message at `at`: when it leaves.
    pub fn send(&mut self, node: usize, at: Micros) -> Micros {
        let cost = match self.model {
            Cpu::PerNode { send_us, .. } | Cpu::Shared { send_us, .. } => send_us,
        };
        self.run(node, at, cost)
    }
}

/// When an event is due: its time, then the order it was queued in; `slot` says where
/// the event waits (the heaps and buckets move these small keys, not the events).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Micros,
    seq: u64,
    slot: u32,
}

/// Width of a bucket of the calendar (virtual µs).
const BUCKET_US: Micros = 1_000;

/// The virtual clock and its queue: a calendar. Events due before `frontier` wait in a
/// small heap; later ones in a bucket per millisecond, unordered, each sorted into the
/// heap only when the clock reaches it. A heap of every pending event (hundreds of
/// thousands at N = 1,000) spent most of its time on cache misses; the order is the
/// same: by time, then by the order of queueing.
pub struct Queue<E> {
    near: BinaryHeap<Reverse<Due>>,
    /// Everything in `near` is due before this; everything in `buckets` at or after it.
    frontier: Micros,
    buckets: BTreeMap<Micros, Vec<Due>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    len: usize,
    pub now: Micros,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            near: BinaryHeap::new(),
            frontier: 0,
            buckets: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            len: 0,
            now: 0,
        }
    }
}

impl<E> Queue<E> {
    pub fn at(&mut self, at: Micros, ev: E) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(ev);
                s
            }
            None => {
                self.slots.push(Some(ev));
                (self.slots.len() - 1) as u32
            }
        };
        let due = Due {
            at: at.max(self.now),
            seq: self.seq,
            slot,
        };
        self.len += 1;
        if due.at < self.frontier {
            self.near.push(Reverse(due));
        } else {
            self.buckets
                .entry(due.at / BUCKET_US)
                .or_default()
                .push(due);
        }
    }

    pub fn after(&mut self, delay: Micros, ev: E) {
        self.at(self.now + delay, ev);
    }

    /// The next event up to `until`, advancing the clock.
    pub fn pop(&mut self, until: Micros) -> Option<E> {
        if self.near.is_empty() {
            let (bucket, dues) = self.buckets.pop_first()?;
            self.frontier = (bucket + 1) * BUCKET_US;
            self.near = BinaryHeap::from(dues.into_iter().map(Reverse).collect::<Vec<_>>());
        }
        if self.near.peek()?.0.at > until {
            return None;
        }
        let Reverse(due) = self.near.pop()?;
        self.len -= 1;
        self.now = due.at;
        self.free.push(due.slot);
        self.slots[due.slot as usize].take()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Which nodes can reach which: a group per node; two nodes talk when in the same group.
#[derive(Debug, Clone)]
pub struct Partitions(Vec<u32>);

impl Partitions {
    pub fn whole(nodes: usize) -> Partitions {
        Partitions(vec![0; nodes])
    }

    pub fn connected(&self, a: usize, b: usize) -> bool {
        self.0[a] == self.0[b]
    }

    /// Puts `nodes` in their own group.
    pub fn isolate(&mut self, nodes: &[usize], group: u32) {
        for &n in nodes {
            self.0[n] = group;
        }
    }

    pub fn heal(&mut self) {
        self.0.iter_mut().for_each(|g| *g = 0);
    }

    pub fn is_whole(&self) -> bool {
        self.0.iter().all(|g| *g == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_orders_by_time_then_insertion() {
        let mut q = Queue::default();
        q.at(5, "b");
        q.at(3, "a");
        q.at(5, "c");
        assert_eq!(q.pop(10), Some("a"));
        assert_eq!(q.pop(10), Some("b"));
        assert_eq!(q.pop(4), None);
        assert_eq!(q.pop(10), Some("c"));
        assert_eq!(q.now, 5);
    }

    /// The calendar gives the order a single heap of (time, queueing order) gives, with
    /// events queued while others are taken, across bucket edges and far ahead.
    #[test]
    fn the_calendar_keeps_the_order_of_one_heap() {
        let mut rng = Rng::new(7);
        let mut q = Queue::default();
        let mut reference: BinaryHeap<Reverse<(Micros, u64)>> = BinaryHeap::new();
        let mut next = 0u64;
        for step in 0..20_000u64 {
            if rng.below(3) > 0 {
                let delay = match rng.below(4) {
                    0 => 0,
                    1 => rng.below(2_000) as u64,
                    2 => rng.below(20_000) as u64,
                    _ => rng.below(3_000_000) as u64,
                };
                let at = q.now + delay;
                q.at(at, next);
                reference.push(Reverse((at, next)));
                next += 1;
            } else {
                let until = q.now + rng.below(5_000) as u64;
                let want = match reference.peek() {
                    Some(Reverse((at, _))) if *at <= until => reference.pop().map(|r| r.0 .1),
                    _ => None,
                };
                let got = q.pop(until);
                assert_eq!(got, want, "step {step}");
                if got.is_none() {
                    // As `run_until` does once nothing is due.
                    q.now = q.now.max(until);
                }
            }
            assert_eq!(q.len(), reference.len());
        }
    }

    #[test]
    fn shared_cores_queue_work_and_own_cores_do_not() {
        let mut shared = Processors::new(
            Cpu::Shared {
                cores: 2,
                recv_us: 100,
                send_us: 10,
            },
            10,
        );
        let done: Vec<Micros> = (0..4).map(|n| shared.receive(n, 0)).collect();
        assert_eq!(done, vec![100, 100, 200, 200]);
        let mut own = Processors::new(
            Cpu::PerNode {
                recv_us: 100,
                send_us: 10,
            },
            10,
        );
        let done: Vec<Micros> = (0..4).map(|n| own.receive(n, 0)).collect();
        assert_eq!(done, vec![100; 4]);
    }

    #[test]
    fn delays_stay_in_their_range() {
        let l = Link {
            latency_us: 10_000,
            jitter_us: 5_000,
            loss: 0.0,
            duplicate: 0.0,
        };
        let mut rng = Rng::new(1);
        for _ in 0..1000 {
            let d = l.delay(&mut rng);
            assert!((5_000..=15_000).contains(&d), "{d}");
        }
    }
}
