//! The admission exchange, on its own request-response protocol: on every new
//! connection the dialing member shows its certificate (`Hello`) and the other side
//! answers with its own (`Welcome`) or a refusal; a node that is joining shows its token
//! instead (`Join`), and the member answers with its credentials (`Joined`) once the
//! runtime has redeemed the token. Until a peer is admitted, the gate keeps it away from
//! gossip and the sync protocol refuses it; a peer that is refused, or says nothing for
//! `ADMIT_TIMEOUT`, is disconnected, logged and counted.

use super::task::Task;
use super::{Error, Event};
use crate::admission::{Grant, Refusal, Verifier};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a connected peer has to be admitted.
pub const ADMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest admission message.
const MAX_ADMIT: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Request {
    Hello {
        mesh: String,
        cert: Vec<u8>,
    },
    /// A node without credentials presents a token, and the name it will be known by.
    Join {
        token: String,
        name: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) enum Response {
    Welcome { cert: Vec<u8> },
    Joined(Box<Grant>),
    Refused(String),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ADMIT>()
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(v, config()).unwrap_or_default()
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Option<T> {
    if b.len() > MAX_ADMIT {
        return None;
    }
    bincode::serde::decode_from_slice(b, config())
        .ok()
        .filter(|(_, used)| *used == b.len())
        .map(|(v, _)| v)
}

/// What an outbound admission request is waiting for.
pub(super) enum Waiting {
    Welcome(PeerId),
    Joined(PeerId, oneshot::Sender<Result<Grant, Error>>),
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Task {
    /// A first connection to `peer`: a member that dialed shows its certificate.
    pub(super) fn connected(&mut self, peer: PeerId, dialer: bool) {
        if self.admitted.contains(&peer) {
            return;
        }
        self.unadmitted.entry(peer).or_insert_with(Instant::now);
        if let (true, Some(v)) = (dialer, &self.verifier) {
            let req = encode(&Request::Hello {
                mesh: v.mesh.clone(),
                cert: v.cert.clone(),
            });
            let id = self.swarm.behaviour_mut().admit.send_request(&peer, req);
            self.waiting.insert(id, Waiting::Welcome(peer));
        }
    }

    /// Sends the join token on the connection made for it.
    pub(super) fn send_join(
        &mut self,
        peer: PeerId,
        token: String,
        name: String,
        tx: oneshot::Sender<Result<Grant, Error>>,
    ) {
        self.unadmitted.entry(peer).or_insert_with(Instant::now);
        // Closing the connection of a refused earlier attempt would close this one too.
        self.closing.retain(|(p, _)| *p != peer);
        let req = encode(&Request::Join { token, name });
        let id = self.swarm.behaviour_mut().admit.send_request(&peer, req);
        self.waiting.insert(id, Waiting::Joined(peer, tx));
    }

    /// Admits `peer`: gossip flows, the sync protocol serves it, the agent hears of it.
    pub(super) async fn admit(&mut self, peer: PeerId) {
        self.unadmitted.remove(&peer);
        self.swarm.behaviour_mut().gossipsub.admit(peer);
        if self.admitted.insert(peer) {
            tracing::info!(peer = %peer, "admitted peer");
            let _ = self.event_tx.send(Event::Connected(peer)).await;
        }
        for (request, channel) in self.held_requests.remove(&peer).unwrap_or_default() {
            self.deliver(peer, request, channel).await;
        }
    }

    /// Refuses `peer`: logged, counted, disconnected shortly (so the answer gets out).
    pub(super) fn refuse(&mut self, peer: PeerId, why: &str) {
        self.refused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(peer = %peer, why, "refused peer");
        self.closing
            .push((peer, Instant::now() + Duration::from_millis(200)));
    }

    fn check(&self, peer: &PeerId, mesh: &str, cert: &[u8]) -> Result<(), String> {
        let Some(v) = &self.verifier else {
            return Err("this node is not a member of any mesh".into());
        };
        if mesh != v.mesh {
            return Err(format!("another mesh ({mesh:?})"));
        }
        v.check(peer, cert, now_s())
            .map_err(|r: Refusal| r.to_string())
    }

    pub(super) async fn on_admit(&mut self, ev: request_response::Event<Vec<u8>, Vec<u8>>) {
        match ev {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => match decode::<Request>(&request) {
                    Some(Request::Hello { mesh, cert }) => {
                        let answer = match self.check(&peer, &mesh, &cert) {
                            Ok(()) => {
                                self.admit(peer).await;
                                let cert = self
                                    .verifier
                                    .as_ref()
                                    .map(|v| v.cert.clone())
                                    .unwrap_or_default();
                                Response::Welcome { cert }
                            }
                            Err(why) => {
                                self.refuse(peer, &why);
                                Response::Refused(why)
                            }
                        };
                        self.answer(channel, &answer);
                    }
                    Some(Request::Join { token, name }) if self.verifier.is_some() => {
                        // A new attempt gets its answer: the close a refused earlier one
                        // scheduled would cut it off. Not past the time limit on being
                        // admitted: a peer refused for that stays refused.
                        if self.unadmitted.contains_key(&peer) {
                            self.closing.retain(|(p, _)| *p != peer);
                        }
                        let id = self.next_inbound;
                        self.next_inbound += 1;
                        self.joining.insert(id, (peer, channel));
                        if self
                            .event_tx
                            .try_send(Event::JoinRequest {
                                from: peer,
                                id,
                                token,
                                name,
                            })
                            .is_err()
                        {
                            self.joining.remove(&id);
                            self.refuse(peer, "busy");
                        }
                    }
                    Some(Request::Join { .. }) => {
                        let why = "this node is not a member of any mesh";
                        self.refuse(peer, why);
                        self.answer(channel, &Response::Refused(why.into()));
                    }
                    None => self.refuse(peer, "malformed admission request"),
                },
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_answer(request_id, decode(&response)).await,
            },
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(Waiting::Joined(_, tx)) = self.waiting.remove(&request_id) {
                    let _ = tx.send(Err(Error::Failed(error.to_string())));
                }
            }
            _ => {}
        }
    }

    async fn on_answer(&mut self, id: OutboundRequestId, answer: Option<Response>) {
        match (self.waiting.remove(&id), answer) {
            (Some(Waiting::Welcome(peer)), Some(Response::Welcome { cert })) => {
                let mesh = self
                    .verifier
                    .as_ref()
                    .map(|v| v.mesh.clone())
                    .unwrap_or_default();
                match self.check(&peer, &mesh, &cert) {
                    Ok(()) => self.admit(peer).await,
                    Err(why) => self.refuse(peer, &why),
                }
            }
            (Some(Waiting::Joined(peer, tx)), Some(Response::Joined(grant))) => {
                let v = grant.creds.verifier();
                let me = *self.swarm.local_peer_id();
                let ok = v
                    .check(&me, &grant.creds.cert, now_s())
                    .and_then(|_| v.check(&peer, &grant.issuer_cert, now_s()));
                match ok {
                    Ok(()) => {
                        self.set_verifier(v);
                        self.admit(peer).await;
                        let _ = tx.send(Ok(*grant));
                    }
                    Err(r) => {
                        self.refuse(peer, &format!("its answer to our join: {r}"));
                        let _ = tx.send(Err(Error::Failed(format!(
                            "the member's answer does not check out: {r}"
                        ))));
                    }
                }
            }
            (Some(Waiting::Joined(peer, tx)), answer) => {
                let why = match answer {
                    Some(Response::Refused(why)) => why,
                    _ => "malformed answer".into(),
                };
                self.closing.push((peer, Instant::now()));
                let _ = tx.send(Err(Error::Failed(why)));
            }
            (Some(Waiting::Welcome(peer)), Some(Response::Refused(why))) => {
                tracing::warn!(peer = %peer, why = %why, "the peer refused us");
                self.closing.push((peer, Instant::now()));
            }
            (Some(Waiting::Welcome(peer)), _) => self.refuse(peer, "malformed admission answer"),
            (None, _) => {}
        }
    }

    /// The runtime's verdict on a join request.
    pub(super) async fn join_answer(&mut self, id: u64, verdict: Result<Grant, String>) {
        let Some((peer, channel)) = self.joining.remove(&id) else {
            return;
        };
        let answer = match verdict {
            Ok(grant) => {
                self.admit(peer).await;
                Response::Joined(Box::new(grant))
            }
            Err(why) => {
                self.refuse(peer, &format!("join refused: {why}"));
                Response::Refused(why)
            }
        };
        self.answer(channel, &answer);
    }

    /// Sends an answer on the admission protocol (a peer that hung up gets nothing).
    fn answer(&mut self, channel: ResponseChannel<Vec<u8>>, answer: &Response) {
        let _ = self
            .swarm
            .behaviour_mut()
            .admit
            .send_response(channel, encode(answer));
    }

    /// Housekeeping: disconnects refused peers and those never admitted in time.
    pub(super) fn sweep(&mut self) {
        let now = Instant::now();
        // Join requests whose answer can no longer reach the joiner (it hung up, or the
        // answer was dropped on a full queue) are forgotten, so the map stays bounded.
        self.joining.retain(|_, (_, channel)| channel.is_open());
        let late: Vec<PeerId> = self
            .unadmitted
            .iter()
            .filter(|(_, since)| now.duration_since(**since) > ADMIT_TIMEOUT)
            .map(|(p, _)| *p)
            .collect();
        for p in late {
            self.unadmitted.remove(&p);
            self.refuse(p, "not admitted in time");
        }
        let (due, later): (Vec<_>, Vec<_>) = self.closing.drain(..).partition(|(_, at)| *at <= now);
        self.closing = later;
        for (p, _) in due {
            if !self.admitted.contains(&p) {
                self.held_requests.remove(&p);
                let _ = self.swarm.disconnect_peer_id(p);
            }
        }
    }

    /// Becomes a member: the mesh's topic and its id in envelopes. Connections made
    /// before are not admitted by this: they time out and are dialled again.
    pub(super) fn set_verifier(&mut self, v: Verifier) {
        let topic = libp2p::gossipsub::IdentTopic::new(format!("roboconf/{}", v.mesh));
        if let Some(old) = self.topic.take() {
            let _ = self.swarm.behaviour_mut().gossipsub.inner.unsubscribe(&old);
        }
        let _ = self.swarm.behaviour_mut().gossipsub.inner.subscribe(&topic);
        self.topic = Some(topic);
        self.mesh = v.mesh.clone();
        if let Some(u) = &self.udp {
            u.set_mesh(&v.mesh);
        }
        self.verifier = Some(v);
    }
}
