//! The simulated network and machines: a virtual clock with one ordered queue of events
//! (ties broken by insertion order, so a seed gives one order), links with a latency
//! distribution, loss and duplication (reordering follows from the jitter), partitions
//! between arbitrary groups, and a CPU model — each node's own processor, or a few cores
//! shared by every node (the real benchmark's one machine, used to calibrate).

use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

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

    /// `node` sends a message at `at`: when it leaves.
    pub fn send(&mut self, node: usize, at: Micros) -> Micros {
        let cost = match self.model {
            Cpu::PerNode { send_us, .. } | Cpu::Shared { send_us, .. } => send_us,
        };
        self.run(node, at, cost)
    }
}

/// When an event is due: its time, then the order it was queued in; `slot` says where
/// the event waits (the heap moves these small keys, not the events).
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: Micros,
    seq: u64,
    slot: u32,
}

/// The virtual clock and its queue.
pub struct Queue<E> {
    heap: BinaryHeap<Reverse<Due>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    pub now: Micros,
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
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
        self.heap.push(Reverse(Due {
            at: at.max(self.now),
            seq: self.seq,
            slot,
        }));
    }

    pub fn after(&mut self, delay: Micros, ev: E) {
        self.at(self.now + delay, ev);
    }

    /// The next event up to `until`, advancing the clock.
    pub fn pop(&mut self, until: Micros) -> Option<E> {
        if self.heap.peek()?.0.at > until {
            return None;
        }
        let Reverse(due) = self.heap.pop()?;
        self.now = due.at;
        self.free.push(due.slot);
        self.slots[due.slot as usize].take()
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
