//! The task that owns the Swarm: one `select!` over commands from `Net` handles and
//! swarm events, one `match` for each.

use super::codec::Frames;
use super::{Command, Config, Error, Event, Net, QUEUE};
use crate::mesh::wire::{decode, Counters};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, ValidationMode};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, identity, noise, tcp, yamux, StreamProtocol, Swarm};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Largest gossip message; must be the same on every node.
pub const MAX_GOSSIP: usize = 256 * 1024;

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<Frames>,
    identify: identify::Behaviour,
}

/// Starts the network task with `key` as this node's identity. Returns the handle and
/// the receiving end of its events.
pub fn spawn(key: identity::Keypair, cfg: Config) -> Result<(Net, mpsc::Receiver<Event>), Error> {
    let fail = |e: &dyn std::fmt::Display| Error::Failed(e.to_string());
    let peer_id = key.public().to_peer_id();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| fail(&e))?
        .with_behaviour(|key| {
            let gossip_cfg = gossipsub::ConfigBuilder::default()
                .validation_mode(ValidationMode::Strict)
                .validate_messages()
                .max_transmit_size(MAX_GOSSIP)
                .heartbeat_initial_delay(Duration::from_millis(100))
                .heartbeat_interval(Duration::from_secs(1))
                .build()?;
            Ok(Behaviour {
                gossipsub: gossipsub::Behaviour::new(
                    MessageAuthenticity::Signed(key.clone()),
                    gossip_cfg,
                )?,
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
    let topic = IdentTopic::new(cfg.topic.clone());
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| fail(&e))?;
    for addr in &cfg.listen {
        swarm.listen_on(addr.clone()).map_err(|e| fail(&e))?;
    }
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (event_tx, event_rx) = mpsc::channel(QUEUE);
    let dropped = Arc::new(Counters::default());
    let task = Task {
        swarm,
        topic,
        mesh: cfg.mesh,
        event_tx,
        dropped: dropped.clone(),
        pending: HashMap::new(),
        inbound: HashMap::new(),
        next_inbound: 1,
    };
    tokio::spawn(task.run(cmd_rx));
    Ok((
        Net {
            cmd_tx,
            peer_id,
            dropped,
        },
        event_rx,
    ))
}

struct Task {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    mesh: String,
    event_tx: mpsc::Sender<Event>,
    dropped: Arc<Counters>,
    pending: HashMap<OutboundRequestId, oneshot::Sender<Result<Vec<u8>, Error>>>,
    inbound: HashMap<u64, ResponseChannel<Vec<u8>>>,
    next_inbound: u64,
}

impl Task {
    async fn run(mut self, mut cmd_rx: mpsc::Receiver<Command>) {
        loop {
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    Some(c) => self.command(c),
                    None => return,
                },
                ev = self.swarm.select_next_some() => self.event(ev).await,
            }
        }
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Dial(addr, tx) => {
                let _ = tx.send(
                    self.swarm
                        .dial(addr)
                        .map_err(|e| Error::Failed(e.to_string())),
                );
            }
            Command::Publish(data, tx) => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), data);
                let _ = tx.send(r.map(|_| ()).map_err(|e| Error::Failed(e.to_string())));
            }
            Command::Request(peer, data, tx) => {
                let id = self.swarm.behaviour_mut().sync.send_request(&peer, data);
                self.pending.insert(id, tx);
            }
            Command::Respond(id, data) => {
                if let Some(ch) = self.inbound.remove(&id) {
                    let _ = self.swarm.behaviour_mut().sync.send_response(ch, data);
                }
            }
            Command::Listening(tx) => {
                let _ = tx.send(self.swarm.listeners().cloned().collect());
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.swarm.connected_peers().copied().collect());
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
                let verdict = match decode(&message.data, &self.mesh) {
                    Ok(_) => MessageAcceptance::Accept,
                    Err(d) => {
                        self.dropped.count(&d);
                        MessageAcceptance::Reject
                    }
                };
                let accepted = verdict == MessageAcceptance::Accept;
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
                if accepted {
                    let from = message.source.unwrap_or(propagation_source);
                    let _ = self
                        .event_tx
                        .send(Event::Gossip {
                            from,
                            data: message.data,
                        })
                        .await;
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let id = self.next_inbound;
                    self.next_inbound += 1;
                    self.inbound.insert(id, channel);
                    let _ = self
                        .event_tx
                        .send(Event::Request {
                            from: peer,
                            id,
                            data: request,
                        })
                        .await;
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
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
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => {
                let _ = self.event_tx.send(Event::Connected(peer_id)).await;
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                let _ = self.event_tx.send(Event::Disconnected(peer_id)).await;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::wire::{encode, Body, Envelope, PROTOCOL_VERSION};
    use crate::mesh::NodeId;
    use std::time::Instant;

    fn node() -> (Net, mpsc::Receiver<Event>) {
        let cfg = Config {
            mesh: "m".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            topic: "roboconf-test".into(),
        };
        spawn(identity::Keypair::generate_ed25519(), cfg).expect("network")
    }

    async fn listening(n: &Net) -> libp2p::Multiaddr {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(a) = n.listening().await.expect("net").into_iter().next() {
                return a;
            }
            assert!(Instant::now() < deadline, "never listened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn message() -> Vec<u8> {
        encode(&Envelope {
            version: PROTOCOL_VERSION,
            mesh: "m".into(),
            sender: NodeId::new("a"),
            body: Body::Entries(Vec::new()),
        })
        .expect("encode")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_gossip_and_request() {
        let (a, mut a_events) = node();
        let (b, mut b_events) = node();
        b.dial(listening(&a).await).await.expect("dial");
        // Gossip: publishing needs the peer's subscription; retry until the deadline.
        let deadline = Instant::now() + Duration::from_secs(20);
        while a.publish(message()).await.is_err() {
            assert!(Instant::now() < deadline, "no gossip peer in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let got = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match b_events.recv().await {
                    Some(Event::Gossip { from, data }) => return (from, data),
                    Some(_) => continue,
                    None => panic!("events ended"),
                }
            }
        })
        .await
        .expect("gossip in time");
        assert_eq!(got.0, a.peer_id);
        assert_eq!(got.1, message());
        // A message of another mesh is rejected and counted, not delivered.
        let other = encode(&Envelope {
            version: PROTOCOL_VERSION,
            mesh: "other".into(),
            sender: NodeId::new("a"),
            body: Body::Digest(Default::default()),
        })
        .unwrap();
        a.publish(other).await.expect("publish");
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.dropped.total() == 0 {
            assert!(
                Instant::now() < deadline,
                "the foreign message was not counted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Request-response: b asks a, a answers.
        let asker = tokio::spawn({
            let b = b.clone();
            let a_id = a.peer_id;
            async move { b.request(a_id, b"ping".to_vec()).await }
        });
        let (id, data) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(Event::Request { id, data, .. }) = a_events.recv().await {
                    return (id, data);
                }
            }
        })
        .await
        .expect("request in time");
        assert_eq!(data, b"ping");
        a.respond(id, b"pong".to_vec()).await.expect("respond");
        assert_eq!(asker.await.expect("join").expect("answer"), b"pong");
        assert!(a.peers().await.unwrap().contains(&b.peer_id));
    }
}

#[cfg(test)]
mod flood {
    use super::*;
    use std::time::Instant;

    fn node() -> (Net, mpsc::Receiver<Event>) {
        let cfg = Config {
            mesh: "m".into(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")],
            topic: "roboconf-flood".into(),
        };
        spawn(identity::Keypair::generate_ed25519(), cfg).expect("network")
    }

    /// A peer that floods garbage: every message is rejected and counted, none reaches the
    /// agent, queues stay bounded, and the node still answers requests promptly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flooding_peer_is_dropped_and_counted() {
        let (target, mut target_events) = node();
        let (rogue, _rogue_events) = node();
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = loop {
            if let Some(a) = target.listening().await.expect("net").into_iter().next() {
                break a;
            }
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        rogue.dial(addr).await.expect("dial");
        let deadline = Instant::now() + Duration::from_secs(20);
        while rogue.publish(b"warm-up garbage".to_vec()).await.is_err() {
            assert!(Instant::now() < deadline, "no gossip peer in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut sent = 0u64;
        for i in 0..5_000u32 {
            let mut junk = i.to_be_bytes().to_vec();
            junk.extend_from_slice(&[0xff; 200]);
            if rogue.publish(junk).await.is_ok() {
                sent += 1;
            }
        }
        assert!(sent > 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while target.dropped.total() < sent / 2 {
            assert!(
                Instant::now() < deadline,
                "only {} of {sent} counted",
                target.dropped.total()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Nothing of it reached the agent.
        while let Ok(ev) = target_events.try_recv() {
            assert!(!matches!(ev, Event::Gossip { .. }), "garbage was delivered");
        }
        // Still responsive: a request is answered at once.
        let asker = tokio::spawn({
            let rogue = rogue.clone();
            let id = target.peer_id;
            async move { rogue.request(id, b"ping".to_vec()).await }
        });
        let t = Instant::now();
        let (id, _) = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(Event::Request { id, data, .. }) = target_events.recv().await {
                    return (id, data);
                }
            }
        })
        .await
        .expect("the request arrives");
        target.respond(id, b"pong".to_vec()).await.expect("respond");
        assert_eq!(asker.await.expect("join").expect("answer"), b"pong");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
