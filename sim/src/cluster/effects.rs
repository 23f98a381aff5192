//! Carrying out a node's effects, as the agent's runtime does: the one `match` over
//! `Effect` — changes published, datagrams, requests and answers sent over links, dials
//! and disconnects as the node's connection policy asks, fake plug-in runs and
//! application fetches answered later through the queue, replies and events recorded in
//! `Metrics` (a liveness verdict checked against the truth) — and, once the node asks
//! nothing more, its next wake-up queued.

use super::links::{body_size, entries_size};
use super::{Cluster, Ev, Msg};
use crate::net::Micros;
use roboconf_core::api::Response;
use roboconf_core::engine::{Event, RunResult};
use roboconf_core::mesh::wire::Body;
use roboconf_core::node::{Effect, Input};
use std::rc::Rc;

/// How long after a crash a verdict that the node is dead still concerns that crash.
const LATE_VERDICT_US: Micros = 15_000_000;
/// How long after a heal a verdict on a member that was cut off still concerns the cut:
/// a suspicion that started during the cut, whose refutation came too late (the longest
/// suspicion, at N = 1,000, is 6 s).
const LATE_CUT_VERDICT_US: Micros = 6_000_000;
/// How many of the first nodes are every node's bootstrap peers.
const BOOTSTRAP_SEEDS: usize = 3;

impl Cluster {
    /// Carries out what node `k` asked for, until it asks nothing more; then queues its
    /// next wake-up.
    pub fn effects(&mut self, k: usize) {
        loop {
            let mut ready = self.nodes[k].node.ready();
            let wake_at = ready.wake_at;
            if ready.is_empty() {
                self.watch_group(k);
                self.queue_wake(k, wake_at);
                return;
            }
            let writes = std::mem::take(&mut ready.writes);
            self.nodes[k].persist(writes, &mut self.interner);
            for e in ready.persisted() {
                self.effect(k, e);
            }
        }
    }

    fn queue_wake(&mut self, k: usize, wake_at_ms: u64) {
        let at = self.virtual_us(k, wake_at_ms).max(self.queue.now);
        if self.nodes[k].wake_queued.is_some_and(|q| q <= at) {
            return;
        }
        self.nodes[k].wake_queued = Some(at);
        let life = self.nodes[k].life;
        self.queue.at(at, Ev::Wake { node: k, life });
    }

    fn effect(&mut self, k: usize, e: Effect) {
        let now_us = self.queue.now;
        match e {
            Effect::Publish(entries) => {
                let id = self.next_gossip;
                self.next_gossip += 1;
                let size = entries_size(&entries);
                let _ = self.nodes[k].first_sight(id, now_us);
                let entries = Rc::new(entries);
                for j in self.nodes[k].conns.clone() {
                    self.send(
                        k,
                        j,
                        Msg::Gossip {
                            id,
                            entries: entries.clone(),
                        },
                        size,
                    );
                }
            }
            Effect::Datagram { to, data } => {
                if let Some(j) = index(to.as_str()) {
                    let size = datagram_size(&data);
                    self.send(k, j, Msg::Datagram(data), size);
                }
            }
            Effect::Request { to, body } => match index(to.as_str()) {
                Some(j) if self.nodes[k].conns.contains(&j) => {
                    let size = body_size(&body);
                    self.send(k, j, Msg::Request(body), size);
                }
                _ => {
                    let now = self.wall_ms(k);
                    self.nodes[k].node.step(now, Input::RequestFailed { to });
                }
            },
            Effect::Respond { id, body } => {
                if let Some(to) = self.nodes[k].asks.remove(&id) {
                    if self.nodes[k].conns.contains(&to) {
                        let size = body_size(&body);
                        self.send(k, to, Msg::Response(body), size);
                    }
                }
            }
            Effect::Dial { node, .. } => {
                if let Some(j) = index(node.as_str()) {
                    if j != k && !self.nodes[k].conns.contains(&j) {
                        self.send(k, j, Msg::Dial, 64);
                    }
                }
            }
            Effect::DialBootstrap => {
                // The bootstrap peers an operator gives (`--peer`): the first nodes of
                // the fleet, as a mesh starts from its first members; one that is up.
                let seeds: Vec<usize> = (0..self.nodes.len().min(BOOTSTRAP_SEEDS))
                    .filter(|&j| j != k && self.nodes[j].up && !self.nodes[k].conns.contains(&j))
                    .collect();
                for j in seeds {
                    self.send(k, j, Msg::Dial, 64);
                }
            }
            Effect::Disconnect(peer) => {
                if let Some(j) = index(peer.as_str()) {
                    if self.nodes[k].conns.contains(&j) {
                        self.send(k, j, Msg::Request(Body::Closing), 8);
                        let life = self.nodes[k].life;
                        self.queue.after(
                            self.nodes[k].node.config().peers.close_after.as_micros() as Micros,
                            Ev::Close {
                                node: k,
                                peer: j,
                                life,
                            },
                        );
                    }
                }
            }
            Effect::Machine(op) => self.machine_op(k, op),
            Effect::External(x) => self.external(k, x),
            Effect::Run(run) => {
                let at_ms = self.wall_ms(k) + 2;
                let life = self.nodes[k].life;
                self.queue.after(
                    2_000,
                    Ev::Done {
                        node: k,
                        life,
                        run: run.run,
                        result: RunResult {
                            ok: true,
                            code: Some(0),
                            error: None,
                            output: String::new(),
                            at_ms,
                            retry: false,
                        },
                    },
                );
            }
            Effect::Fetch { name, .. } => {
                let life = self.nodes[k].life;
                self.queue.after(
                    5_000,
                    Ev::Fetched {
                        node: k,
                        life,
                        name,
                    },
                );
            }
            Effect::Reply { id, response } => {
                let ok = matches!(response, Response::Ok { .. });
                self.metrics.replied(id, ok, now_us);
            }
            Effect::Event(Event::RemoteExports { path, present, .. }) => {
                self.metrics.remote_exports(k, &path, present, now_us);
            }
            Effect::Event(Event::StateChanged { path, state, .. }) => {
                let awaited = if state == roboconf_core::api::State::DeployedStarted {
                    self.reachable_from(k)
                } else {
                    Vec::new()
                };
                self.metrics.state_changed(k, &path, state, now_us, awaited);
            }
            Effect::Event(Event::RemoteState { .. } | Event::Application { .. }) => {}
            Effect::Event(Event::Liveness { node, dead }) => {
                if let Some(j) = index(node.as_str()) {
                    // A late verdict on a life that ended lately is not false.
                    let lately = self.nodes[j]
                        .crashed_at
                        .is_some_and(|t| now_us.saturating_sub(t) < LATE_VERDICT_US);
                    let cut_lately = self.last_cut.as_ref().is_some_and(|(t, parts)| {
                        now_us.saturating_sub(*t) < LATE_CUT_VERDICT_US && !parts.connected(k, j)
                    });
                    let real =
                        !self.nodes[j].up || !self.parts.connected(k, j) || lately || cut_lately;
                    self.metrics.liveness(dead, real);
                    if !real && dead && self.debug {
                        eprintln!(
                            "debug: t={} n{k} says n{j} dead (crashed {:?}, life {}, connected {})",
                            now_us / 1000,
                            self.nodes[j].crashed_at.map(|t| t / 1000),
                            self.nodes[j].life,
                            self.nodes[k].conns.contains(&j)
                        );
                    }
                }
            }
            Effect::Suspected(p) => {
                if let Some(j) = index(p.as_str()) {
                    let real = !self.nodes[j].up || !self.parts.connected(k, j);
                    self.metrics.suspected(real);
                }
            }
            // It left: its process stops (its connections close) until the calm.
            Effect::Down(_) => {}
            Effect::Left => self.crash(k, false),
        }
    }
}

/// The index of the node named `name` (`n<index>`).
fn index(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok()
}

/// What a SWIM datagram weighs on a real network: its payload with each member identity
/// as long as a real peer id (52 characters, where the simulator's are `n123`), in the
/// agent's signed frame (`RS1`, the sender's peer id, the time, a 64-byte signature:
/// 114 bytes) inside UDP and IP headers (28) — the 40 bytes every message is counted
/// with (`links::OVERHEAD`) are part of that.
fn datagram_size(data: &[u8]) -> usize {
    const FRAME: usize = 114 + 28 - 40;
    let ids = match data.split_first() {
        Some((0, swim)) => roboconf_core::swim::inspect(swim).1,
        _ => 0,
    };
    data.len() + ids * super::links::ID_GROWTH + FRAME
}
