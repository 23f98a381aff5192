//! The network's events and the mesh tasks' reports, turned into node inputs: gossip,
//! datagrams, requests (those about the disk — bundles, runs — answered by `meshio`
//! off the loop), connections, the addresses listened on, answers to the node's
//! requests, fetched bundles, and the credentials of `mesh init` or `join`. Records that
//! arrive are measured on the way (the propagation lag of remote exports, the entries of
//! anti-entropy deltas), and the coordinator's term is watched here: each new term or
//! leader is logged, and its span groups what the coordinator does meanwhile.

use super::{now_ms, Loop, ANNOUNCE};
use crate::mesh::replica::{Entry, Kind};
use crate::mesh::wire::{decode, Body};
use crate::mesh::NodeId;
use crate::meshio::Report;
use crate::net::Event;
use roboconf_core::node::Input;

impl Loop {
    /// A network event.
    pub(super) fn net_event(&mut self, ev: Event) {
        let Some(m) = &self.mesh else { return };
        let input = match ev {
            Event::Gossip { from, envelope } => match envelope.body {
                Body::Entries(entries) => {
                    let span = tracing::debug_span!(
                        "gossip",
                        origin = %envelope.sender,
                        from = %from,
                        entries = entries.len()
                    );
                    let _entered = span.enter();
                    self.arriving(&entries);
                    let input = Input::Gossip {
                        from: node_id(&from),
                        entries,
                    };
                    self.node.step(now_ms(), input);
                    tracing::debug!("gossip applied");
                    return;
                }
                _ => return,
            },
            Event::Request { from, id, data } => match decode(&data, m.mesh()) {
                Ok(e) if m.answer(id, &e.body) => return,
                Ok(e) => Input::Request {
                    id,
                    from: node_id(&from),
                    body: e.body,
                },
                Err(d) => {
                    m.net.dropped.count(&d);
                    m.respond(id, Body::Delta(Default::default()));
                    return;
                }
            },
            Event::JoinRequest {
                from,
                id,
                token,
                name,
            } => {
                self.join_request(from, id, &token, name);
                return;
            }
            Event::Swim { from, data } => {
                // Over a connection the peer was admitted; over UDP its signature was
                // checked, and it must be a member.
                let from = node_id(&from);
                if !self.node.connected().contains(&from) && !self.node.engine().is_member(&from) {
                    return;
                }
                Input::Datagram { from, data }
            }
            Event::Connected(p) => Input::Connected(node_id(&p)),
            Event::Disconnected(p) => Input::Disconnected(node_id(&p)),
            Event::Listening(addrs) => {
                let published = m.published(&addrs);
                for a in published.iter().filter(|a| !self.listening.contains(*a)) {
                    tracing::info!(target: ANNOUNCE, address = a.as_str(), "listening on {a}");
                }
                if published.is_empty() || published == self.listening {
                    return;
                }
                self.listening = published.clone();
                Input::Addresses(published)
            }
        };
        self.node.step(now_ms(), input);
    }

    /// Joins with the user data's token through its `k`-th member (round robin); on a
    /// refusal, the next one is asked a second later.
    pub(super) fn join_with_user_data(
        &mut self,
        k: usize,
        retry_tx: &tokio::sync::mpsc::Sender<usize>,
    ) {
        // The file may hold a newer leader's token and addresses.
        if let Some(ud) = self
            .cfg
            .user_data
            .as_deref()
            .and_then(|p| crate::targets::UserData::read(p).ok())
        {
            self.cfg.join = Some((ud.peers, ud.token));
        }
        let (Some((addrs, token)), Some(m)) = (self.cfg.join.clone(), &self.mesh) else {
            return;
        };
        if addrs.is_empty() || m.is_member() {
            return;
        }
        let addr = addrs[k % addrs.len()].clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        m.join(&addr, token, self.cfg.node.clone(), tx);
        let retry_tx = retry_tx.clone();
        tokio::spawn(async move {
            match rx.await {
                Ok(crate::api::Response::Ok { message }) => {
                    tracing::info!(member = addr.as_str(), "user data: {message}")
                }
                Ok(crate::api::Response::Error { message, .. }) => {
                    tracing::warn!(member = addr.as_str(), "user data: {message}");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    let _ = retry_tx.send(k + 1).await;
                }
                _ => {}
            }
        });
    }

    /// What a mesh task reports.
    pub(super) fn report(&mut self, r: Report) {
        let input = match r {
            Report::Response { from, body } => {
                if let Body::Delta(d) = &body {
                    self.metrics.delta_received(d.entries.len());
                    self.arriving(&d.entries);
                }
                Input::Response { from, body }
            }
            Report::Failed { to } => Input::RequestFailed { to },
            Report::Fetched { name, app } => Input::Fetched { name, app },
            Report::Binary(b) => Input::Binary(b),
            Report::Member {
                result,
                reply,
                founded,
            } => {
                let answer = match result {
                    Ok((creds, text)) => {
                        tracing::info!(mesh = creds.mesh.as_str(), founded, "member of a mesh");
                        if let Some(m) = self.mesh.as_mut() {
                            m.member(creds);
                        }
                        let (voters, limits) = self.init_voters.take().unwrap_or_default();
                        self.node.step(
                            now_ms(),
                            Input::Joined {
                                founded,
                                voters,
                                limits,
                            },
                        );
                        crate::api::Response::ok(text)
                    }
                    Err(e) => {
                        tracing::warn!(error = e.as_str(), founded, "not a member of a mesh");
                        crate::api::Response::error(e)
                    }
                };
                let _ = reply.send(answer);
                return;
            }
        };
        self.node.step(now_ms(), input);
    }
}

fn node_id(p: &libp2p::PeerId) -> NodeId {
    NodeId::new(p.to_string())
}

/// The coordinator's term and leader as this node last saw them, and the span of that
/// term (what the coordinator does in it is logged inside).
#[derive(Debug)]
pub(super) struct Term {
    term: u64,
    leader: Option<String>,
    pub(super) span: tracing::Span,
}

impl Default for Term {
    fn default() -> Self {
        Term {
            term: 0,
            leader: None,
            span: tracing::Span::none(),
        }
    }
}

impl Loop {
    /// Exports of other nodes new to this one: their propagation lag (from the origin's
    /// clock at the write to now) goes to the metrics.
    fn arriving(&self, entries: &[Entry]) {
        let replica = self.node.engine().replica();
        let me = self.node.id();
        let now = now_ms();
        for e in entries {
            let fresh = e.kind == Kind::Exports
                && e.origin.node != *me
                && e.seq > replica.watermark(&e.origin)
                && !replica.holds(e);
            if fresh {
                self.metrics.exports_arrived(e.hlc.ms, now);
            }
        }
    }

    /// A new coordinator term or leader, as this node sees it: logged, and a new span.
    pub(super) fn watch_term(&mut self) {
        let Some(g) = self.node.group() else { return };
        let (term, leader) = (g.term(), g.leader().map(|l| l.to_string()));
        if term == self.term.term && leader == self.term.leader {
            return;
        }
        let leads = g.is_leader();
        let name = leader
            .as_ref()
            .and_then(|l| self.node.engine().member_name(&NodeId::new(l.clone())));
        self.term.span = tracing::info_span!(parent: None, "term", term);
        tracing::info!(
            parent: &self.term.span,
            leader = leader.as_deref().unwrap_or(""),
            leader_name = name.as_deref().unwrap_or(""),
            this_node_leads = leads,
            "coordinator term"
        );
        self.term.term = term;
        self.term.leader = leader;
    }
}
