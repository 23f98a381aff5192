//! The task that owns the Swarm: one `select!` over commands from `Net` handles, swarm
//! events and a housekeeping tick, one `match` for each. Admission is in `admit`.

use super::admit::Waiting;
use super::codec::Frames;
use super::datagrams::Datagrams;
use super::gate::Gate;
use super::udp::Udp;
use super::{Command, Config, Error, Event, Net, QUEUE};
use crate::admission::{Grant, Verifier};
use crate::mesh::wire::{decode, Counters};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, mdns, noise, tcp, yamux, PeerId, StreamProtocol, Swarm};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

/// A connection dialed to present a join token on: the token, the name the node joins
/// under, and who waits for the answer.
type JoinDial = (String, String, oneshot::Sender<Result<Grant, Error>>);

/// Largest gossip message; must be the same on every node.
pub const MAX_GOSSIP: usize = 256 * 1024;

#[derive(NetworkBehaviour)]
pub(super) struct Behaviour {
    pub(super) gossipsub: Gate,
    pub(super) sync: request_response::Behaviour<Frames>,
    pub(super) admit: request_response::Behaviour<Frames>,
    /// Long-lived streams (SWIM's datagrams).
    pub(super) streams: libp2p_stream::Behaviour,
    /// LAN discovery, when the config turns it on.
    mdns: Toggle<mdns::tokio::Behaviour>,
    identify: identify::Behaviour,
}

/// Starts the network task with `key` as this node's identity. Returns the handle and
/// the receiving end of its events.
pub fn spawn(key: identity::Keypair, cfg: Config) -> Result<(Net, mpsc::Receiver<Event>), Error> {
    let fail = |e: &dyn std::fmt::Display| Error::Failed(e.to_string());
    let peer_id = key.public().to_peer_id();
    let lan = if cfg.mdns {
        let c = mdns::Config {
            query_interval: Duration::from_secs(5),
            ..Default::default()
        };
        Some(mdns::tokio::Behaviour::new(c, peer_id).map_err(|e| fail(&e))?)
    } else {
        None
    };
    let udp_key = key.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| fail(&e))?
        .with_behaviour(|key| {
            // The fast path is the origin's own send to every connected peer (flood
            // publish over the bounded set of connections the node's policy keeps); each
            // receiver forwards once to its gossipsub mesh (the node's `GossipSettings`
            // degrees, the same the simulator runs), IHAVE gossip at each heartbeat is a
            // third path, anti-entropy the fourth. With a full mesh of connections a
            // degree of 1 was enough (each extra degree cost ~2 ms of CPU per change at
            // 30 agents); with bounded connections the forwarding carries a change past
            // the origin's neighbours, so the degrees are the simulated ones.
            // Messages are not signed: authenticity is per connection (admission), and
            // gossipsub checks a signature on every copy before dropping duplicates,
            // which was the largest cost of a change. Ids are content hashes; entries
            // carry sequence numbers, so two different messages never share one.
            let g = &cfg.gossip;
            let gossip_cfg = gossipsub::ConfigBuilder::default()
                .mesh_n(g.degree)
                .mesh_n_low(g.degree_low)
                .mesh_n_high(g.degree_high)
                .mesh_outbound_min(0)
                .duplicate_cache_time(g.seen_for)
                .flood_publish(true)
                .validation_mode(ValidationMode::Anonymous)
                .message_id_fn(|m: &gossipsub::Message| {
                    use sha2::Digest as _;
                    gossipsub::MessageId::new(&sha2::Sha256::digest(&m.data)[..20])
                })
                .validate_messages()
                .max_transmit_size(MAX_GOSSIP)
                .heartbeat_initial_delay(Duration::from_millis(100))
                .heartbeat_interval(Duration::from_secs(1))
                .build()?;
            Ok(Behaviour {
                gossipsub: Gate::new(gossipsub::Behaviour::new(
                    MessageAuthenticity::Anonymous,
                    gossip_cfg,
                )?),
                mdns: Toggle::from(lan),
                streams: libp2p_stream::Behaviour::new(),
                admit: request_response::Behaviour::with_codec(
                    Frames,
                    [(
                        StreamProtocol::new("/roboconf/admit/1"),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10)),
                ),
                sync: request_response::Behaviour::with_codec(
                    Frames,
                    [(
                        StreamProtocol::new("/roboconf/sync/1"),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(30)),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/roboconf/1".into(),
                    key.public(),
                )),
            })
        })
        .map_err(|e| fail(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    for addr in &cfg.listen {
        swarm.listen_on(addr.clone()).map_err(|e| fail(&e))?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (datagram_tx, datagram_rx) = mpsc::channel(QUEUE);
    let datagrams = Datagrams::new(&swarm.behaviour().streams, datagram_tx);
    let (event_tx, event_rx) = mpsc::channel(QUEUE);
    let dropped = Arc::new(Counters::default());
    let refused = Arc::new(AtomicU64::new(0));
    // SWIM's UDP socket, on the IP of the first IPv4 TCP listen address.
    let udp_ip = cfg.listen.iter().find_map(|a| {
        let mut parts = a.iter();
        match (parts.next(), parts.next()) {
            (
                Some(libp2p::multiaddr::Protocol::Ip4(ip)),
                Some(libp2p::multiaddr::Protocol::Tcp(_)),
            ) => Some(std::net::IpAddr::V4(ip)),
            _ => None,
        }
    });
    let (udp_tx, udp_rx) = mpsc::channel(QUEUE);
    let udp_counters = Arc::new(super::UdpCounters::default());
    let udp = match udp_ip {
        Some(ip) => {
            Some(Udp::bind(ip, udp_key, udp_tx, udp_counters.clone()).map_err(|e| fail(&e))?)
        }
        None => None,
    };
    let udp_port = udp.as_ref().map(|u| u.port);
    let overflow = Arc::new(AtomicU64::new(0));
    let traffic = Arc::new(super::Traffic::default());
    let mut task = Task {
        swarm,
        topic: None,
        mesh: String::new(),
        verifier: None,
        event_tx,
        dropped: dropped.clone(),
        refused: refused.clone(),
        overflow: overflow.clone(),
        pending: HashMap::new(),
        inbound: HashMap::new(),
        next_inbound: 1,
        admitted: HashSet::new(),
        unadmitted: HashMap::new(),
        waiting: HashMap::new(),
        joining: HashMap::new(),
        join_dials: HashMap::new(),
        closing: Vec::new(),
        held_requests: HashMap::new(),
        lan_peers: HashMap::new(),
        datagrams,
        udp,
        traffic: traffic.clone(),
    };
    if let Some(v) = cfg.verifier {
        task.set_verifier(v);
    }
    tokio::spawn(task.run(cmd_rx, datagram_rx, udp_rx));
    Ok((
        Net {
            cmd_tx,
            peer_id,
            dropped,
            refused,
            overflow,
            udp_port,
            udp: udp_counters,
            traffic,
        },
        event_rx,
    ))
}

pub(super) struct Task {
    pub(super) swarm: Swarm<Behaviour>,
    /// The mesh's gossip topic, once a member.
    pub(super) topic: Option<IdentTopic>,
    pub(super) mesh: String,
    pub(super) verifier: Option<Verifier>,
    pub(super) event_tx: mpsc::Sender<Event>,
    dropped: Arc<Counters>,
    pub(super) refused: Arc<AtomicU64>,
    overflow: Arc<AtomicU64>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, Error>>>,
    inbound: HashMap<u64, ResponseChannel<Vec<u8>>>,
    pub(super) next_inbound: u64,
    /// Connected peers that passed the admission exchange.
    pub(super) admitted: HashSet<PeerId>,
    /// Connected peers not admitted yet, since when.
    pub(super) unadmitted: HashMap<PeerId, Instant>,
    /// Outbound admission requests.
    pub(super) waiting: HashMap<OutboundRequestId, Waiting>,
    /// Join requests handed to the runtime, by the id it answers with.
    pub(super) joining: HashMap<u64, (PeerId, ResponseChannel<Vec<u8>>)>,
    /// Connections dialed to present a join token on.
    join_dials: HashMap<ConnectionId, JoinDial>,
    /// Peers to disconnect, and when.
    pub(super) closing: Vec<(PeerId, Instant)>,
    /// Peers found on the LAN by mDNS, with their addresses (bounded).
    lan_peers: HashMap<PeerId, Vec<libp2p::Multiaddr>>,
    datagrams: Datagrams,
    /// SWIM's datagrams to and from members without a connection.
    pub(super) udp: Option<Udp>,
    /// Sync requests of peers not admitted yet.
    pub(super) held_requests: HashMap<PeerId, Vec<HeldRequest>>,
    /// What was sent and received, for the agent's metrics.
    traffic: Arc<super::Traffic>,
}

/// Most peers remembered from mDNS.
const LAN_PEERS: usize = 1024;

/// A sync request and where its answer goes.
pub(super) type HeldRequest = (Vec<u8>, ResponseChannel<Vec<u8>>);

/// Sync requests held per peer waiting for admission.
const HELD_REQUESTS: usize = 8;

impl Task {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut datagram_rx: mpsc::Receiver<(PeerId, Vec<u8>)>,
        mut udp_rx: mpsc::Receiver<(PeerId, Vec<u8>)>,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_millis(500));
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => return,
                },
                ev = self.swarm.select_next_some() => {
                    let span = peer_span(&ev);
                    self.event(ev).instrument(span).await
                }
                Some((from, data)) = datagram_rx.recv() => {
                    self.traffic.datagram.received.add(data.len());
                    // Only members' datagrams reach the agent; best effort, like datagrams.
                    if self.admitted.contains(&from) {
                        self.tell(Event::Swim { from, data });
                    }
                }
                // Signed by a key of this mesh's member (the runtime checks membership).
                Some((from, data)) = udp_rx.recv() => self.tell(Event::Swim { from, data }),
                _ = sweep.tick() => {
                    self.sweep();
                    ticks += 1;
                    if ticks.is_multiple_of(4) {
                        self.dial_lan_peers();
                    }
                }
            }
        }
    }

    /// A member dials the peers mDNS found that it is not connected to (both sides find
    /// each other; one connection is enough, and a failed dial is tried again later).
    fn dial_lan_peers(&mut self) {
        if self.verifier.is_none() {
            return;
        }
        let todo: Vec<(PeerId, Vec<libp2p::Multiaddr>)> = self
            .lan_peers
            .iter()
            .filter(|(p, _)| !self.swarm.is_connected(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        for (peer, addrs) in todo {
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .addresses(addrs)
                .build();
            let _ = self.swarm.dial(opts);
        }
    }

    /// Hands a request of an admitted peer to the agent.
    pub(super) async fn deliver(
        &mut self,
        peer: PeerId,
        request: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let id = self.next_inbound;
        self.next_inbound += 1;
        self.inbound.insert(id, channel);
        // Never wait for the agent: a request it has no room for is dropped (the peer's
        // times out and it asks again).
        let ev = Event::Request {
            from: peer,
            id,
            data: request,
        };
        if self.event_tx.try_send(ev).is_err() {
            self.inbound.remove(&id);
            self.overflow
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Hands an event to the agent without waiting; counts it when there is no room.
    fn tell(&self, ev: Event) {
        if self.event_tx.try_send(ev).is_err() {
            self.overflow
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    async fn command(&mut self, c: Command) {
        match c {
            Command::Join(addr, token, name, tx) => {
                let opts = DialOpts::unknown_peer_id().address(addr).build();
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.join_dials.insert(id, (token, name, tx));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(Error::Failed(e.to_string())));
                    }
                }
            }
            Command::JoinAnswer(id, verdict) => self.join_answer(id, verdict).await,
            Command::Credentials(v) => self.set_verifier(v),
            Command::Swim(peer, data, udp) => {
                if self.admitted.contains(&peer) {
                    let len = data.len();
                    if self.datagrams.send(peer, data) {
                        self.traffic.datagram.sent.add(len);
                    }
                } else if let (Some(u), Some(to)) = (&self.udp, udp) {
                    u.send(to, &data);
                }
            }
            Command::Dial(addr, tx) => {
                let _ = tx.send(
                    self.swarm
                        .dial(addr)
                        .map_err(|e| Error::Failed(e.to_string())),
                );
            }
            Command::TryDial(addr) => {
                let _ = self.swarm.dial(addr);
            }
            Command::DialPeer(peer, addrs) => {
                let opts = DialOpts::peer_id(peer)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .addresses(addrs)
                    .build();
                let _ = self.swarm.dial(opts);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::Publish(data, tx) => {
                let len = data.len();
                let r = match &self.topic {
                    Some(t) => self
                        .swarm
                        .behaviour_mut()
                        .gossipsub
                        .inner
                        .publish(t.clone(), data)
                        .map(|_| ())
                        .map_err(|e| Error::Failed(e.to_string())),
                    None => Err(Error::Failed("not a member of any mesh".into())),
                };
                if r.is_ok() {
                    self.traffic.gossip.sent.add(len);
                }
                let _ = tx.send(r);
            }
            Command::Request(peer, data, tx) => {
                if !self.admitted.contains(&peer) {
                    let _ = tx.send(Err(Error::Failed(format!("{peer} is not admitted"))));
                    return;
                }
                self.traffic.request.sent.add(data.len());
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending.insert(id, tx);
            }
            Command::Respond(id, data) => {
                if let Some(ch) = self.inbound.remove(&id) {
                    self.traffic.response.sent.add(data.len());
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, data);
                }
            }
            Command::Listening(tx) => {
                let _ = tx.send(self.swarm.listeners().cloned().collect());
            }
            Command::Connected(tx) => {
                let _ = tx.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.admitted.iter().copied().collect());
            }
        }
    }

    async fn event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                self.traffic.gossip.received.add(message.data.len());
                let decoded = decode(&message.data, &self.mesh);
                let verdict = match &decoded {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(d) => {
                        self.dropped.count(d);
                        MessageAcceptance::Reject
                    }
                };
                let accepted = verdict == MessageAcceptance::Accept;
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .inner
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
                if let Err(d) = &decoded {
                    tracing::debug!(reason = ?d, bytes = message.data.len(), "gossip message rejected");
                }
                if let (true, Ok(envelope)) = (accepted, decoded) {
                    let from = message.source.unwrap_or(propagation_source);
                    // Never wait for the agent: anti-entropy repairs a dropped message.
                    self.tell(Event::Gossip { from, envelope });
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } if !self.admitted.contains(&peer) => {
                    self.traffic.request.received.add(request.len());
                    // Held until the peer is admitted (its admission may be one round
                    // trip behind ours), dropped with its connection; bounded.
                    let held: usize = self.held_requests.values().map(Vec::len).sum();
                    let mine = self.held_requests.entry(peer).or_default();
                    if mine.len() < HELD_REQUESTS && held < QUEUE {
                        mine.push((request, channel));
                    } else {
                        self.refuse(peer, "too many requests before admission");
                    }
                }
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.traffic.request.received.add(request.len());
                    self.deliver(peer, request, channel).await
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    self.traffic.response.received.add(response.len());
                    if let Some(tx) = self.pending.remove(&request_id) {
                        let _ = tx.send(Ok(response));
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Sync(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) => {
                if let Some(tx) = self.pending.remove(&request_id) {
                    let _ = tx.send(Err(Error::Failed(error.to_string())));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Admit(ev)) => self.on_admit(ev).await,
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if self.lan_peers.len() < LAN_PEERS || self.lan_peers.contains_key(&peer) {
                        let addrs = self.lan_peers.entry(peer).or_default();
                        if !addrs.contains(&addr) && addrs.len() < 8 {
                            addrs.push(addr);
                        }
                    }
                }
                self.dial_lan_peers();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Expired(gone))) => {
                for (peer, addr) in gone {
                    if let Some(addrs) = self.lan_peers.get_mut(&peer) {
                        addrs.retain(|a| *a != addr);
                        if addrs.is_empty() {
                            self.lan_peers.remove(&peer);
                        }
                    }
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if let Some((token, name, tx)) = self.join_dials.remove(&connection_id) {
                    self.send_join(peer_id, token, name, tx);
                } else if num_established.get() == 1 {
                    self.connected(peer_id, endpoint.is_dialer());
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some((_, _, tx)) = self.join_dials.remove(&connection_id) {
                    let _ = tx.send(Err(Error::Failed(error.to_string())));
                }
            }
            SwarmEvent::NewListenAddr { .. } | SwarmEvent::ExpiredListenAddr { .. } => {
                let addrs: Vec<libp2p::Multiaddr> = self.swarm.listeners().cloned().collect();
                self.tell(Event::Listening(addrs));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.unadmitted.remove(&peer_id);
                self.held_requests.remove(&peer_id);
                self.datagrams.forget(&peer_id);
                if self.admitted.remove(&peer_id) {
                    tracing::info!(peer = %peer_id, "lost peer");
                    let _ = self.event_tx.send(Event::Disconnected(peer_id)).await;
                }
            }
            _ => {}
        }
    }
}

/// The span of the handling of a swarm event about one peer (debug: one per event).
fn peer_span(ev: &SwarmEvent<BehaviourEvent>) -> tracing::Span {
    let peer = match ev {
        SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            ..
        })) => Some(propagation_source),
        SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
            peer,
            ..
        }))
        | SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure {
            peer,
            ..
        }))
        | SwarmEvent::Behaviour(BehaviourEvent::Admit(request_response::Event::Message {
            peer,
            ..
        })) => Some(peer),
        SwarmEvent::ConnectionEstablished { peer_id, .. }
        | SwarmEvent::ConnectionClosed { peer_id, .. } => Some(peer_id),
        _ => None,
    };
    match peer {
        Some(p) => tracing::debug_span!("peer", peer = %p),
        None => tracing::Span::none(),
    }
}
