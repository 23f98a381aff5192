//! Carrying out a `Ready`: its writes applied as one store transaction on a blocking
//! worker and awaited (the event loop's thread never waits on the disk), then — and
//! only then, as `Ready::persisted` enforces — every effect, in order, in one `match`.

use super::{apps, now_ms, Error, Loop};
use crate::api::Response;
use crate::core::{Event, RunResult};
use crate::live::LiveEvent;
use roboconf_core::node::{Effect, Input};

/// How long the join token of a launched machine's agent stays valid.
const MACHINE_TOKEN_TTL_MS: u64 = 10 * 60 * 1000;

impl Loop {
    /// Makes the node's writes durable, then carries out its effects.
    pub(super) async fn flush(&mut self) -> Result<(), Error> {
        let mut ready = self.node.ready();
        let writes = std::mem::take(&mut ready.writes);
        self.wake_at = ready.wake_at;
        if !writes.is_empty() {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.apply(&writes))
                .await
                .map_err(|e| Error::Worker(e.to_string()))??;
        }
        let effects = ready.persisted();
        let leaving = effects.iter().any(|e| matches!(e, Effect::Left));
        for effect in effects {
            self.effect(effect, leaving);
        }
        Ok(())
    }

    fn effect(&mut self, effect: Effect, leaving: bool) {
        match effect {
            Effect::Publish(entries) => {
                if let Some(m) = &self.mesh {
                    m.publish(entries);
                }
            }
            Effect::Datagram { to, data } => {
                if let Some(m) = &self.mesh {
                    // A member without a connection is reached at its published UDP address.
                    let published = match self.node.connected().contains(&to) {
                        true => Vec::new(),
                        false => self.node.engine().member_addresses(&to),
                    };
                    m.datagram(&to, data, &published);
                }
            }
            Effect::Request { to, body } => {
                let sent = self.mesh.as_ref().and_then(|m| m.request(to.clone(), body));
                match sent {
                    // The last words of a node that leaves: it waits for them.
                    Some(task) if leaving => self.last_words.push(task),
                    Some(_) => {}
                    None => self.node.step(now_ms(), Input::RequestFailed { to }),
                }
            }
            Effect::Respond { id, body } => {
                if let Some(m) = &self.mesh {
                    m.respond(id, body);
                }
            }
            Effect::Dial { node, addresses } => {
                if let Some(m) = &self.mesh {
                    m.dial(&node, &addresses);
                }
            }
            Effect::DialBootstrap => {
                if let Some(m) = &self.mesh {
                    m.dial_bootstrap();
                }
            }
            Effect::Disconnect(peer) => {
                if let Some(m) = &self.mesh {
                    m.close(&peer, self.node.config().peers.close_after);
                }
            }
            Effect::Run(run) => self.run(*run),
            Effect::Machine(op) => self.machine(op),
            Effect::External(x) => self.external(x),
            Effect::Fetch { name, hash, from } => {
                if let Some(m) = &self.mesh {
                    m.fetch(name, hash, &from);
                }
            }
            Effect::Reply { id, response } => self.reply(id, response),
            Effect::Event(Event::RemoteExports { app, path, present }) => {
                let way = if present { "in" } else { "out" };
                tracing::info!(
                    app = app.as_str(),
                    path = path.as_str(),
                    exports = way,
                    at_ms = now_ms(),
                    "remote exports"
                );
            }
            Effect::Event(Event::StateChanged { app, path, state }) => {
                tracing::info!(
                    app = app.as_str(),
                    path = path.as_str(),
                    state = state.as_str(),
                    at_ms = now_ms(),
                    "instance state"
                );
                self.amqp_state(&app, &path, state);
                self.live.publish(LiveEvent::Instance {
                    app,
                    path,
                    state,
                    node: self.cfg.node.clone(),
                });
            }
            Effect::Event(Event::Application { name, present }) => {
                tracing::info!(app = %name, present, "application {}", if present { "registered" } else { "removed" });
                self.live.publish(LiveEvent::Application {
                    name,
                    created: present,
                });
            }
            Effect::Event(Event::RemoteState {
                app,
                path,
                state,
                node,
            }) => {
                self.live.publish(LiveEvent::Instance {
                    app,
                    path,
                    state,
                    node,
                });
            }
            Effect::Event(Event::Liveness { node, dead }) => {
                let name = self
                    .node
                    .engine()
                    .member_name(&node)
                    .unwrap_or(node.to_string());
                let (id, at_ms) = (node.as_str(), now_ms());
                match dead {
                    true => {
                        tracing::warn!(
                            node = id,
                            name = name.as_str(),
                            verdict = "dead",
                            at_ms,
                            "member verdict"
                        )
                    }
                    false => {
                        tracing::info!(
                            node = id,
                            name = name.as_str(),
                            verdict = "alive",
                            at_ms,
                            "member verdict"
                        )
                    }
                }
                self.live.publish(LiveEvent::Member { node: name, dead });
            }
            Effect::Suspected(p) => tracing::info!(member = %p, "SWIM suspects a member"),
            Effect::Down(p) => tracing::warn!(member = %p, "SWIM declared a member down"),
            Effect::Left => self.stop = true,
        }
    }

    /// A machine operation of the coordinator's leader: a created agent gets a fresh
    /// single-use join token (recorded by this node, which it contacts) and this node's
    /// addresses.
    fn machine(&mut self, op: roboconf_core::node::MachineOp) {
        use roboconf_core::node::MachineAction;
        // This node first, then the other voters: a new leader may finish the launch.
        let mut peers: Vec<String> = self.listening.clone();
        for v in self.node.coordinator_view().voters {
            let id = crate::mesh::NodeId::new(v.id);
            if id != *self.node.id() {
                peers.extend(self.node.engine().member_addresses(&id));
            }
        }
        peers.retain(|a| a.contains("/tcp/"));
        let mut user = crate::targets::UserData {
            peers,
            token: String::new(),
            name: crate::targets::machine_name(&op.key),
            app: op.key.app.clone(),
            root: op.key.root.clone(),
        };
        if op.action == MachineAction::Create {
            match self.mesh.as_ref().map(|m| m.new_token()) {
                Some(Ok(token)) => {
                    user.token = token.reveal();
                    let id = self.next_machine_token();
                    let command = crate::core::Command::TokenIssue {
                        id: token.id.clone(),
                        hash: token.hash(),
                        expires_ms: now_ms().saturating_add(MACHINE_TOKEN_TTL_MS),
                    };
                    self.node.step(now_ms(), Input::Command { id, command });
                }
                _ => {
                    let result = roboconf_core::node::MachineResult::Failed {
                        reason: "this agent cannot issue a join token".into(),
                        problem: false,
                    };
                    self.node.step(
                        now_ms(),
                        Input::MachineDone {
                            key: op.key,
                            result,
                        },
                    );
                    return;
                }
            }
        }
        tracing::info!(
            parent: &self.term.span,
            action = match op.action {
                MachineAction::Create => "create",
                MachineAction::Terminate { .. } => "terminate",
            },
            app = op.key.app.as_str(),
            root = op.key.root.as_str(),
            generation = op.key.generation,
            target = op.target.id.as_str(),
            "coordinator: machine operation"
        );
        // The folder of the target file in the application's bundle (Docker build
        // contexts are named relative to it).
        let target_dir = self.node.engine().app(&op.key.app).and_then(|a| {
            let def = a.targets.iter().find(|t| t.id == op.target.id)?;
            Some(a.bundle.join(&def.file).parent()?.to_path_buf())
        });
        // The members' binaries, for a machine that needs one this agent does not run.
        let me = self.node.id().clone();
        let members: Vec<(libp2p::PeerId, crate::api::BinaryView)> = self
            .node
            .engine()
            .members()
            .into_iter()
            .filter(|(id, rec, live)| {
                *id != me && *live == roboconf_core::engine::members::Liveness::Alive && !rec.left
            })
            .filter_map(|(id, rec, _)| Some((id.as_str().parse().ok()?, rec.binary?)))
            .collect();
        let binaries = self.mesh.as_ref().map(|m| {
            std::sync::Arc::new(m.carrier(members)) as std::sync::Arc<dyn crate::targets::Binaries>
        });
        self.machines.start(op, user, target_dir, binaries);
    }

    /// Runs a plug-in on a worker (at most `max_parallel_scripts` at once); its result
    /// comes back on `done_rx`. Counted in the metrics: waiting, running, ended (by
    /// action and result) and how long it ran.
    fn run(&self, run: crate::core::PluginRun) {
        let (workers, done_tx, plugins, counts) = (
            self.workers.clone(),
            self.done_tx.clone(),
            self.plugins.clone(),
            self.metrics.scripts.clone(),
        );
        counts.waiting.inc();
        tokio::spawn(async move {
            let permit = workers.acquire_owned().await;
            counts.waiting.dec();
            let Ok(_permit) = permit else {
                return;
            };
            let (id, action) = (run.run, run.action.as_str());
            counts.running.inc();
            let started = std::time::Instant::now();
            let result = tokio::task::spawn_blocking(move || apps::execute(&run, &plugins))
                .await
                .unwrap_or_else(|e| RunResult {
                    ok: false,
                    code: None,
                    error: Some(format!("worker failed: {e}")),
                    output: String::new(),
                    at_ms: now_ms(),
                    retry: true,
                });
            counts.running.dec();
            counts.ended(action, result.ok, started.elapsed().as_secs_f64());
            let _ = done_tx.send((id, result)).await;
        });
    }

    /// The node's answer to a command: a join request's verdict, or an operator's answer
    /// finished with what the runtime kept aside (the token, notes, files to delete).
    fn reply(&mut self, id: u64, mut response: Response) {
        if let Some((net_id, peer)) = self.joins.remove(&id) {
            if let Some(m) = &self.mesh {
                let verdict = match response {
                    Response::Ok { .. } => Ok(()),
                    Response::Error { message, .. } => Err(message),
                    _ => Err("unexpected answer".into()),
                };
                m.answer_join(net_id, peer, verdict);
            }
            return;
        }
        if let (Some((token, ttl_ms)), Response::Ok { .. }) = (self.tokens.remove(&id), &response) {
            response = Response::ok(format!(
                "join token (single use, valid {} s): {token}",
                ttl_ms / 1000
            ));
        }
        if let (Some(notes), Response::Ok { message }) = (self.notes.remove(&id), &mut response) {
            for n in notes {
                message.push('\n');
                message.push_str(&n);
            }
        }
        if let (Some((name, bundle)), Response::Ok { .. }) = (self.removals.remove(&id), &response)
        {
            apps::remove_app_files(&self.cfg.data_dir, &name, bundle.as_deref());
        }
        if let Some(tx) = self.replies.remove(&id) {
            let _ = tx.send(response);
        }
    }
}
