//! The event loop's side of the mesh that the core does not own: join requests (the
//! core redeems the token, then a certificate is issued), SWIM (its datagrams, timers and
//! verdicts), and the network events the runtime answers itself.

use super::{now_ms, Loop};
use crate::core::{Command, Input};
use std::time::Duration;

/// How long `logs` waits for the agent that hosts the instance.
const RUNS_TIMEOUT: Duration = Duration::from_secs(5);

/// How long SWIM lets a suspect refute before declaring it down.
pub(super) const SWIM_SUSPECT_FOR: Duration = Duration::from_secs(3);

impl Loop {
    /// Carries out what SWIM asked for: datagrams, timers, membership verdicts.
    pub(super) fn swim_out(&mut self) {
        let Some(s) = self.swim.as_mut() else { return };
        let out = s.take();
        if let Some(m) = &self.mesh {
            for (peer, data) in out.sends {
                if let Ok(p) = peer.parse() {
                    m.net.try_swim(p, data);
                }
            }
        }
        for (t, after) in out.timers {
            let tx = self.swim_timer_tx.clone();
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                let _ = tx.send(t).await;
            });
        }
        for p in out.suspected {
            eprintln!("roboconf agent: SWIM suspects {p}");
        }
        for p in out.down {
            eprintln!("roboconf agent: SWIM declared {p} down");
            self.core.step(Input::SwimDown(crate::mesh::NodeId::new(p)));
        }
        for p in out.up {
            self.core.step(Input::SwimUp(crate::mesh::NodeId::new(p)));
        }
    }

    /// A network event the runtime handles itself (join requests, SWIM); false for the
    /// others.
    pub(super) fn own_event(&mut self, ev: &crate::net::Event) -> bool {
        use crate::net::Event;
        match ev {
            Event::JoinRequest { from, id, token } => {
                self.join_request(*from, *id, token);
                true
            }
            Event::Swim { data, .. } => {
                if let Some(s) = self.swim.as_mut() {
                    s.handle(data);
                }
                self.swim_out();
                true
            }
            Event::Connected(p) => {
                if let Some(s) = self.swim.as_mut() {
                    s.announce(&p.to_string());
                }
                self.swim_out();
                false
            }
            Event::Disconnected(p) => {
                if let Some(s) = self.swim.as_mut() {
                    s.suspect(&p.to_string());
                }
                self.swim_out();
                false
            }
            _ => false,
        }
    }

    /// `logs`: the runs kept here for an instance hosted here, else those its host keeps
    /// (asked over the mesh, answered within `RUNS_TIMEOUT`).
    pub(super) fn logs(
        &mut self,
        app: String,
        path: String,
        reply: tokio::sync::oneshot::Sender<crate::api::Response>,
    ) {
        use crate::api::Response;
        let local = |store: &dyn crate::store::Store| match store.runs(&app, &path) {
            Ok(runs) => Response::Logs {
                runs: runs.into_iter().map(Into::into).collect(),
            },
            Err(e) => Response::error(e.to_string()),
        };
        let host = match self.core.runs_host(&app, &path) {
            Err(e) => {
                let _ = reply.send(Response::error(e));
                return;
            }
            Ok(None) => {
                let _ = reply.send(local(self.store.as_ref()));
                return;
            }
            Ok(Some(host)) => host,
        };
        let Some(m) = &self.mesh else {
            let _ = reply.send(Response::error("this agent has no network"));
            return;
        };
        m.ask_runs(host, app, path, RUNS_TIMEOUT, reply);
    }

    /// A node asks to join: the core redeems its token, `flush` answers.
    fn join_request(&mut self, from: libp2p::PeerId, net_id: u64, token: &str) {
        let Some(m) = &self.mesh else { return };
        let Ok(t) = crate::admission::Token::parse(token) else {
            m.answer_join(net_id, from, Err("malformed token".into()));
            return;
        };
        let id = self.next_id;
        self.next_id += 1;
        self.joins.insert(id, (net_id, from));
        self.core.step(Input::Now(now_ms()));
        self.core.step(Input::Command {
            id,
            command: Command::TokenRedeem {
                id: t.id.clone(),
                hash: t.hash(),
                node: from.to_string(),
            },
        });
    }
}
