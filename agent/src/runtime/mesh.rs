//! The network's events and the mesh tasks' reports, turned into node inputs: gossip,
//! datagrams, requests (those about the disk — bundles, runs — answered by `meshio`
//! off the loop), connections, the addresses listened on, answers to the node's
//! requests, fetched bundles, and the credentials of `mesh init` or `join`.

use super::{now_ms, Loop};
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
                Body::Entries(entries) => Input::Gossip {
                    from: node_id(&from),
                    entries,
                },
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
                    eprintln!("roboconf agent: listening on {a}");
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
                Ok(crate::api::Response::Ok { message }) => eprintln!("roboconf agent: {message}"),
                Ok(crate::api::Response::Error { message, .. }) => {
                    eprintln!("roboconf agent: user data: {addr}: {message}");
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
            Report::Response { from, body } => Input::Response { from, body },
            Report::Failed { to } => Input::RequestFailed { to },
            Report::Fetched { name, app } => Input::Fetched { name, app },
            Report::Member {
                result,
                reply,
                founded,
            } => {
                let answer = match result {
                    Ok((creds, text)) => {
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
                    Err(e) => crate::api::Response::error(e),
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
