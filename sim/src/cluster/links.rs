//! Connections and what travels on them: a message (`Msg`) sent through the network
//! model (`net.rs`: partitions, loss, duplication, delay, and the order a connection
//! keeps, as a TCP stream does), and its delivery to the receiving node — the dial and
//! accept that open a connection, the reset or close that ends it, SWIM datagrams to any
//! member, requests and answers over connections, and a model of gossipsub as the agent
//! configures it (the origin sends a change to every connected peer, each receiver
//! forwards it once to its gossip-mesh peers, duplicates dropped by id; the mesh grafted
//! among connections as gossipsub's heartbeat does). Also what messages weigh on the wire.

use super::{Cluster, Ev};
use roboconf_core::mesh::replica::Entry;
use roboconf_core::mesh::wire::Body;
use roboconf_core::mesh::NodeId;
use roboconf_core::node::Input;
use std::rc::Rc;

/// Framing around every message (Noise, Yamux, gossipsub), counted in the bytes.
const OVERHEAD: usize = 40;

/// A segment lost on a connection is sent again after TCP's retransmission timeout
/// (Linux's minimum, 200 ms), doubling at each further loss of the same segment.
const RTO_US: u64 = 200_000;

/// Retransmissions after which a connection gives up on a segment: the message is lost
/// (TCP would reset the connection after ~15; a loss rate this high is a cut link).
const RETRIES: u32 = 6;

/// A message between agents.
#[derive(Clone)]
pub enum Msg {
    Gossip {
        id: u64,
        entries: Rc<Vec<Entry>>,
    },
    Datagram(Vec<u8>),
    Request(Body),
    Response(Body),
    /// A dial reached its target (the handshake's first half)...
    Dial,
    /// ... and the target's acceptance reached the dialler.
    Accept,
    /// The connection closed (a crash resets it; a close the node asked for).
    Closed,
}

impl Msg {
    /// What the message is, for the traffic's breakdown.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Gossip { .. } => "gossip",
            Msg::Datagram(d) => match roboconf_core::swim::inspect(d).0 {
                "ping" => "swim-ping",
                "ack" => "swim-ack",
                "ping-req" | "indirect-ping" | "indirect-ack" | "forwarded-ack" => "swim-indirect",
                "announce" => "swim-announce",
                "feed" => "swim-feed",
                "gossip" => "swim-gossip",
                _ => "swim-other",
            },
            Msg::Request(b) | Msg::Response(b) => match b {
                Body::DigestHash(_) => "digest-hash",
                Body::Buckets(_) => "buckets",
                Body::Digest { .. } => "digest",
                Body::Delta(_) => "delta",
                Body::Entries(_) => "entries",
                _ => "other",
            },
            Msg::Dial | Msg::Accept | Msg::Closed => "connection",
        }
    }
}

impl Cluster {
    /// Sends `msg` from `from` to `to` through the model (partitions, loss, duplication).
    /// A datagram lost is lost; a message on a connection lost is retransmitted, as TCP
    /// does: it arrives a retransmission timeout later (its bytes counted again), and
    /// what the connection carries after it waits behind it.
    pub fn send(&mut self, from: usize, to: usize, msg: Msg, bytes: usize) {
        let bytes = bytes + OVERHEAD;
        let kind = msg.kind();
        self.metrics.sent(from, kind, bytes);
        let leaves = self.cpu.send(from, self.queue.now);
        if !self.parts.connected(from, to) {
            return;
        }
        // What travels on a connection keeps its order, as on a TCP stream: an `Accept`
        // is never overtaken by the data sent after it (which the dialer would take for
        // data on a connection it does not have, and reset).
        let ordered = !matches!(msg, Msg::Datagram(_));
        let mut resent_after = 0;
        if ordered {
            let mut rto = RTO_US;
            let mut tries = 0;
            while self.rng.chance(self.link.loss) {
                tries += 1;
                if tries > RETRIES {
                    return;
                }
                self.metrics.sent(from, kind, bytes);
                resent_after += rto;
                rto *= 2;
            }
        } else if self.rng.chance(self.link.loss) {
            return;
        }
        let copies = if self.rng.chance(self.link.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = leaves + resent_after + self.link.delay(&mut self.rng);
            if ordered {
                let last = self.fifo.entry((from, to)).or_insert(0);
                at = at.max(*last);
                *last = at;
            }
            self.queue.at(
                at,
                Ev::Deliver {
                    to,
                    from,
                    msg: msg.clone(),
                    handled: false,
                },
            );
        }
    }

    pub(super) fn deliver(&mut self, to: usize, from: usize, msg: Msg) {
        if !self.nodes[to].up {
            return;
        }
        let now = self.wall_ms(to);
        let who = NodeId::new(format!("n{from}"));
        // What travels on a connection needs the connection.
        let on_connection = matches!(msg, Msg::Gossip { .. } | Msg::Request(_) | Msg::Response(_));
        if on_connection && !self.nodes[to].conns.contains(&from) {
            // Data on a connection this side does not have (it crashed and came back,
            // or closed it): a reset answers it, as TCP's would.
            self.send(to, from, Msg::Closed, 0);
            return;
        }
        let input = match msg {
            Msg::Gossip { id, entries } => {
                // (Copies already seen were dropped on arrival.)
                let size = entries_size(&entries);
                for j in self.nodes[to].mesh.clone() {
                    if j != from {
                        self.send(
                            to,
                            j,
                            Msg::Gossip {
                                id,
                                entries: entries.clone(),
                            },
                            size,
                        );
                    }
                }
                Input::Gossip {
                    from: who,
                    entries: (*entries).clone(),
                }
            }
            Msg::Datagram(data) => Input::Datagram { from: who, data },
            Msg::Request(body) => {
                let n = &mut self.nodes[to];
                let id = n.next_ask;
                n.next_ask += 1;
                n.asks.insert(id, from);
                Input::Request {
                    id,
                    from: who,
                    body,
                }
            }
            Msg::Response(body) => Input::Response { from: who, body },
            Msg::Dial => {
                self.send(to, from, Msg::Accept, 0);
                if self.nodes[to].conns.contains(&from) {
                    return;
                }
                self.open(to, from);
                Input::Connected(who)
            }
            Msg::Accept => {
                if self.nodes[to].conns.contains(&from) || !self.nodes[from].conns.contains(&to) {
                    return;
                }
                self.open(to, from);
                Input::Connected(who)
            }
            Msg::Closed => {
                if !self.nodes[to].conns.remove(&from) {
                    return;
                }
                self.nodes[to].mesh.remove(&from);
                Input::Disconnected(who)
            }
        };
        self.nodes[to].node.step(now, input);
        self.effects(to);
    }

    /// One end of a connection opens (the gossip mesh grafts it while it has room).
    fn open(&mut self, k: usize, peer: usize) {
        self.nodes[k].conns.insert(peer);
        let degree = self.nodes[k].node.config().gossip.degree;
        let high = self.nodes[k].node.config().gossip.degree_high;
        // A mesh edge needs the connection at both ends (the dialer's opens on `Accept`).
        if self.nodes[peer].conns.contains(&k)
            && self.nodes[k].mesh.len() < degree
            && self.nodes[peer].mesh.len() < high
        {
            self.nodes[k].mesh.insert(peer);
            self.nodes[peer].mesh.insert(k);
        }
    }

    /// Keeps node `k`'s gossip mesh at its degree among its connections (gossipsub's
    /// heartbeat grafts peers when the mesh is below its low mark).
    pub(super) fn graft(&mut self, k: usize) {
        let g = self.nodes[k].node.config().gossip.clone();
        if self.nodes[k].mesh.len() >= g.degree_low {
            return;
        }
        let room: Vec<usize> = self.nodes[k]
            .conns
            .iter()
            .copied()
            .filter(|j| {
                !self.nodes[k].mesh.contains(j)
                    && self.nodes[*j].conns.contains(&k)
                    && self.nodes[*j].mesh.len() < g.degree_high
            })
            .collect();
        for j in room.into_iter().take(g.degree - self.nodes[k].mesh.len()) {
            self.nodes[k].mesh.insert(j);
            self.nodes[j].mesh.insert(k);
        }
    }

    /// Node `k` closes its connection to `peer` (it told it first: `Body::Closing`).
    pub(super) fn close(&mut self, k: usize, peer: usize) {
        self.nodes[k].conns.remove(&peer);
        self.nodes[k].mesh.remove(&peer);
        self.nodes[peer].mesh.remove(&k);
        self.send(k, peer, Msg::Closed, 0);
        let now = self.wall_ms(k);
        self.nodes[k]
            .node
            .step(now, Input::Disconnected(NodeId::new(format!("n{peer}"))));
    }
}

/// How much longer a real peer id is than a simulated one (52 characters for `n123`):
/// every id on the wire is counted at its real length.
pub(super) const ID_GROWTH: usize = 47;

/// Bytes of entries on the wire, approximately (key, value, origin, stamps; the origin
/// and the clock's node are peer ids).
pub(super) fn entries_size(entries: &[Entry]) -> usize {
    entries
        .iter()
        .map(|e| e.key.len() + e.value.as_ref().map_or(0, |v| v.len()) + 48 + 2 * ID_GROWTH)
        .sum()
}

/// Bytes of a request or an answer on the wire, approximately.
pub(super) fn body_size(body: &Body) -> usize {
    match body {
        Body::Entries(e) => entries_size(e),
        Body::Digest { digest, .. } => 8 + digest.len() * (24 + ID_GROWTH),
        Body::Buckets(b) => 2 + b.len() * 9,
        Body::Delta(d) => entries_size(&d.entries) + d.watermarks.len() * (24 + ID_GROWTH),
        Body::DigestHash(h) => h.len() + 8,
        _ => 16,
    }
}
