//! Operator requests: each becomes a node command once the runtime did its I/O part
//! (`app add` reads and bundles on a worker first; `mesh init` and `join` make or get
//! credentials in a task; `logs` reads the store or asks the host), and join requests of
//! other nodes become token redemptions. What the node answers is finished in
//! `effects` (a token printed, notes added, removed applications' files deleted).

use super::{apps, now_ms, Loop, Prepared};
use crate::api::{Desired, Request, Response};
use crate::core::Command;
use roboconf_core::node::Input;
use std::time::Duration;
use tokio::sync::oneshot;

mod describe;

/// How long `logs` waits for the agent that hosts the instance.
const RUNS_TIMEOUT: Duration = Duration::from_secs(5);

fn no_network() -> Response {
    Response::error(
        "this agent has no network: start it with --listen (e.g. /ip4/0.0.0.0/tcp/7400)",
    )
}

impl Loop {
    /// A command id for the runtime's own commands (answered to no one).
    pub(super) fn next_machine_token(&mut self) -> u64 {
        self.next_id()
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// An operator's request.
    pub(super) fn request(&mut self, req: Request, reply: oneshot::Sender<Response>) {
        if let Err(e) = req.check_bounds() {
            let _ = reply.send(Response::error(e));
            return;
        }
        let Some((req, reply)) = self.describe(req, reply) else {
            return;
        };
        let id = self.next_id();
        let command = match req {
            Request::MeshInit {
                voters,
                max_machines,
                max_machines_per_app,
            } => {
                if let Some(v) = voters.filter(|v| !(1..=7).contains(v)) {
                    let _ = reply.send(Response::error(format!(
                        "--voters {v}: a mesh has from 1 to 7 voters (3 by default)"
                    )));
                    return;
                }
                match &self.mesh {
                    Some(m) => {
                        let limits = match (max_machines, max_machines_per_app) {
                            (None, None) => None,
                            (m, a) => {
                                let d = roboconf_core::coord::Settings::default();
                                Some((m.unwrap_or(d.max_machines), a.unwrap_or(d.max_per_app)))
                            }
                        };
                        self.init_voters = Some((voters, limits));
                        m.init(reply)
                    }
                    None => {
                        let _ = reply.send(no_network());
                    }
                }
                return;
            }
            Request::Join { addr, token } => {
                match &self.mesh {
                    Some(m) => {
                        let name = self.node.engine().config().node.clone();
                        m.join(&addr, token, name, reply)
                    }
                    None => {
                        let _ = reply.send(no_network());
                    }
                }
                return;
            }
            Request::MeshToken { ttl_ms } => {
                if let Err(e) = crate::admission::check_token_ttl(ttl_ms) {
                    let _ = reply.send(Response::error(e));
                    return;
                }
                let token = match self.mesh.as_ref().map(|m| m.new_token()) {
                    Some(Ok(t)) => t,
                    Some(Err(r)) => {
                        let _ = reply.send(r);
                        return;
                    }
                    None => {
                        let _ = reply.send(no_network());
                        return;
                    }
                };
                self.tokens.insert(id, (token.reveal(), ttl_ms));
                Command::TokenIssue {
                    id: token.id.clone(),
                    hash: token.hash(),
                    expires_ms: now_ms().saturating_add(ttl_ms),
                }
            }
            Request::Logs { app, path } => {
                self.logs(app, path, reply);
                return;
            }
            Request::AppAdd { path, name, start } => {
                // Reading, copying and packing an application is disk work: it runs on a
                // worker, and its result comes back as `Prepared`.
                let engine = self.node.engine();
                let registered: std::collections::BTreeMap<String, String> = engine
                    .app_names()
                    .filter_map(|n| engine.app(n).map(|a| (n.to_string(), a.hash.clone())))
                    .collect();
                let (data_dir, prepared_tx) = (self.cfg.data_dir.clone(), self.prepared_tx.clone());
                tokio::spawn(async move {
                    let result = tokio::task::spawn_blocking(move || {
                        apps::prepare_bundle(&data_dir, &path, name, &registered)
                    })
                    .await
                    .unwrap_or_else(|e| Err(Response::error(format!("worker failed: {e}"))));
                    let _ = prepared_tx.send((result, start, reply)).await;
                });
                return;
            }
            Request::Coordinator => {
                let _ = reply.send(match &self.mesh {
                    Some(_) => Response::Coordinator(self.node.coordinator_view()),
                    None => no_network(),
                });
                return;
            }
            Request::MeshVoters { node, add } => {
                let answer = match self.node.change_voters(&node, add) {
                    Ok(m) => Response::ok(m),
                    Err(e) => Response::error(e),
                };
                let _ = reply.send(answer);
                // The proposal leaves with the next flush.
                return;
            }
            Request::Exec { app, command } => {
                let rid = crate::admission::random_bytes::<8>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                Command::Exec {
                    id: format!("{}-{rid}", now_ms()),
                    app,
                    command,
                }
            }
            Request::History { app } => {
                let items = self.node.engine().history(app.as_deref());
                let _ = reply.send(Response::History { items });
                return;
            }
            Request::JobList { app } => {
                let now = now_ms();
                let jobs = self
                    .node
                    .engine()
                    .jobs(app.as_deref())
                    .into_iter()
                    .map(|j| crate::api::JobView {
                        next_ms: roboconf_core::autonomic::parse_cron(&j.cron)
                            .ok()
                            .and_then(|s| s.next_after(now.max(j.created_ms))),
                        app: j.app,
                        name: j.name,
                        command: j.command,
                        cron: j.cron,
                    })
                    .collect();
                let _ = reply.send(Response::Jobs { jobs });
                return;
            }
            Request::JobAdd {
                app,
                name,
                command,
                cron,
            } => {
                let rid = crate::admission::random_bytes::<8>()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>();
                Command::JobAdd(roboconf_core::autonomic::records::JobSpec {
                    id: rid,
                    app,
                    name,
                    command,
                    cron,
                    created_ms: 0,
                })
            }
            Request::JobRemove { app, name } => Command::JobRemove { app, name },
            Request::AmqpStatus => {
                let status = match (&self.amqp, &self.amqp_down) {
                    (Some(l), _) => serde_json::to_value(l.status()).ok(),
                    (None, Some(why)) => Some(serde_json::json!({
                        "connected": false,
                        "running": false,
                        "last_error": why,
                    })),
                    (None, None) => None,
                };
                let _ = reply.send(Response::Amqp { status });
                return;
            }
            Request::Metrics => {
                let _ = reply.send(Response::Metrics {
                    text: self.metrics_text(),
                });
                return;
            }
            Request::Stats => {
                let _ = reply.send(Response::Stats {
                    counters: self.stats(),
                });
                return;
            }
            Request::AppList => Command::AppList,
            Request::Members => Command::Members,
            Request::InstanceBind { app, root, node } => Command::Bind { app, root, node },
            Request::InstanceTarget { app, root, target } => Command::Target { app, root, target },
            Request::Leave => Command::Leave,
            Request::AppRemove { name } => {
                let bundle = self.node.engine().app(&name).map(|a| a.bundle.clone());
                self.removals.insert(id, (name.clone(), bundle));
                Command::AppRemove { name }
            }
            Request::AppSet { name, target } => Command::AppSet { name, target },
            Request::InstanceCreate {
                app,
                path,
                component,
            } => Command::InstanceCreate {
                app,
                path,
                component,
            },
            Request::InstanceDelete { app, path } => Command::InstanceDelete { app, path },
            Request::InstanceSet { app, path, target } => {
                Command::InstanceSet { app, path, target }
            }
            Request::Status { app } => Command::Status { app },
            Request::Components { .. }
            | Request::Commands { .. }
            | Request::Diagnose { .. }
            | Request::InstanceReplicate { .. }
            | Request::HttpToken { .. } => return,
        };
        self.replies.insert(id, reply);
        self.node.step(now_ms(), Input::Command { id, command });
    }

    /// The counters `roboconf stats` shows.
    fn stats(&self) -> Vec<(String, u64)> {
        use std::sync::atomic::Ordering::Relaxed;
        let (started, ended, timed_out) = self.node.sync_counts();
        let members = self.node.engine().member_liveness().count() as u64;
        let mut c: Vec<(&str, u64)> = vec![
            ("members", members),
            ("connections", self.node.connected().len() as u64),
            (
                "connections_target",
                self.node.config().peers.target(members as usize) as u64,
            ),
            ("sync_rounds_started", started),
            ("sync_rounds_ended", ended),
            ("sync_rounds_timed_out", timed_out),
            ("swim_datagrams_unreadable", self.node.swim_rejected()),
            ("swim_verdicts_withheld", self.node.swim_withheld()),
            ("tombstones_collected", self.node.engine().collected()),
        ];
        c.extend(self.node.coord_counts());
        c.extend(self.node.autonomic_counts());
        if let Some(m) = &self.mesh {
            let (d, u) = (&m.net.dropped, &m.net.udp);
            c.extend([
                ("dropped_too_large", d.too_large.load(Relaxed)),
                ("dropped_malformed", d.malformed.load(Relaxed)),
                ("dropped_wrong_version", d.wrong_version.load(Relaxed)),
                ("dropped_wrong_mesh", d.wrong_mesh.load(Relaxed)),
                ("peers_refused", m.net.refused_count()),
                ("events_overflowed", m.net.overflow.load(Relaxed)),
                ("udp_sent", u.sent.load(Relaxed)),
                ("udp_sent_bytes", u.sent_bytes.load(Relaxed)),
                ("udp_received", u.received.load(Relaxed)),
                ("udp_received_bytes", u.received_bytes.load(Relaxed)),
                ("udp_refused", u.refused.load(Relaxed)),
            ]);
        }
        c.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// An application prepared by a worker: registered, unless its name was taken
    /// meanwhile (then its bundle goes).
    pub(super) fn prepared(&mut self, prepared: Prepared) {
        let (result, start, reply) = prepared;
        let already = |name: &str| {
            Response::ok(format!(
                "application `{name}` is already registered with this content"
            ))
        };
        let start_all = |name: String| Command::AppSet {
            name,
            target: Desired::Started,
        };
        let id = self.next_id();
        let command = match result {
            Err(r) => {
                let _ = reply.send(r);
                return;
            }
            // Registered already with this content: `--start` still starts it all.
            Ok(apps::Added::Same(name)) if start => start_all(name),
            Ok(apps::Added::Same(name)) => {
                let _ = reply.send(already(&name));
                return;
            }
            Ok(apps::Added::New(app, _)) if self.node.engine().app(&app.name).is_some() => {
                // Registered meanwhile (fetched from a peer, or another `app add`).
                let same = self
                    .node
                    .engine()
                    .app(&app.name)
                    .is_some_and(|a| a.hash == app.hash);
                match (same, start) {
                    (true, true) => start_all(app.name),
                    (true, false) => {
                        let _ = reply.send(already(&app.name));
                        return;
                    }
                    (false, _) => {
                        // Its folder is its own (named by its hash) unless it is the same.
                        let bundle = app.bundle.clone();
                        tokio::task::spawn_blocking(move || std::fs::remove_dir_all(bundle));
                        let _ = reply.send(apps::already(&app.name));
                        return;
                    }
                }
            }
            Ok(apps::Added::New(app, warnings)) => {
                if !warnings.is_empty() {
                    self.notes.insert(id, warnings);
                }
                Command::AppAdd { app, start }
            }
        };
        self.replies.insert(id, reply);
        self.node.step(now_ms(), Input::Command { id, command });
    }

    /// `logs`: the runs kept here for an instance hosted here (read on a worker), else
    /// those its host keeps (asked over the mesh, answered within `RUNS_TIMEOUT`).
    fn logs(&mut self, app: String, path: String, reply: oneshot::Sender<Response>) {
        let host = match self.node.engine().runs_host(&app, &path) {
            Err(e) => {
                let _ = reply.send(Response::error(e));
                return;
            }
            Ok(host) => host,
        };
        match (host, &self.mesh) {
            (None, _) => {
                let store = self.store.clone();
                tokio::task::spawn_blocking(move || {
                    let answer = match store.runs(&app, &path) {
                        Ok(runs) => Response::Logs {
                            runs: runs.into_iter().map(Into::into).collect(),
                        },
                        Err(e) => Response::error(e.to_string()),
                    };
                    let _ = reply.send(answer);
                });
            }
            (Some(host), Some(m)) => m.ask_runs(host, app, path, RUNS_TIMEOUT, reply),
            (Some(_), None) => {
                let _ = reply.send(Response::error("this agent has no network"));
            }
        }
    }

    /// A node asks to join: the node redeems its token, `effects` answers.
    pub(super) fn join_request(
        &mut self,
        from: libp2p::PeerId,
        net_id: u64,
        token: &str,
        name: String,
    ) {
        let Some(m) = &self.mesh else { return };
        let Ok(t) = crate::admission::Token::parse(token) else {
            m.answer_join(net_id, from, Err("malformed token".into()));
            return;
        };
        let id = self.next_id();
        self.joins.insert(id, (net_id, from));
        let command = Command::TokenRedeem {
            id: t.id.clone(),
            hash: t.hash(),
            node: from.to_string(),
            name,
        };
        self.node.step(now_ms(), Input::Command { id, command });
    }
}
