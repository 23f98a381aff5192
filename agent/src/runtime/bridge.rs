//! The agent's side of the AMQP bridge (`crate::amqp`): which events this node hands to
//! its bridge, under which stable message ids, and the commands the broker hands in,
//! turned into operator requests. Each bridge publishes what its own node knows first
//! hand — the state changes of the instances it hosts, their exports as they start and
//! stop, its probes' hits — and, while this node leads the coordinator, the mesh-wide
//! events: members joined or dead, the coordinator's changes, command executions. So
//! with a bridge on every agent each event goes out once per mesh in normal operation;
//! a leader change may repeat a mesh-wide event, under the same message id.

use super::{now_ms, Loop};
use crate::amqp::interapp::InterApp;
use crate::amqp::{self, Command, Event, MemberState};
use roboconf_core::api::{Desired, Request, Response, State};
use roboconf_core::engine::members::Liveness;
use std::collections::{BTreeMap, HashMap};
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the event loop (the bridge's consumer prefetches 32).
pub(super) const COMMANDS: usize = 64;

/// Mesh-wide events are looked for at most this often (ms).
const MESH_EVERY_MS: u64 = 500;

/// The bridge and what the node told it.
pub(super) struct Link {
    bridge: amqp::Bridge,
    /// `<node id>:<start ms>`: the prefix of the ids of this run's own events.
    prefix: String,
    next: u64,
    /// The export prefixes announced per (application, instance), withdrawn when it stops.
    exported: HashMap<(String, String), Vec<String>>,
    /// The external exports announced per (application, instance): prefix, alias → value.
    external: HashMap<(String, String), (String, BTreeMap<String, String>)>,
    /// The inter-application link (external imports and exports).
    interapp: amqp::interapp::Link,
    /// The last coordinator change published (leader, term).
    coordinator: Option<(Option<String>, u64)>,
    /// Per application, the last history item published.
    executions: HashMap<String, u64>,
    /// Whether this node led at the last look (a new leader starts from the history).
    leading: bool,
    /// The members as the leader saw them at its last look: id → (state, roots).
    members: BTreeMap<String, (MemberState, Vec<String>)>,
    next_look_ms: u64,
}

impl Link {
    /// Starts the bridge on the agent's store; `None` (with a word) when it cannot.
    pub(super) fn start(
        cfg: &amqp::Config,
        outbox: sled::Tree,
        node_id: &str,
        commands_tx: mpsc::Sender<(Command, oneshot::Sender<amqp::Answer>)>,
        interapp_tx: mpsc::Sender<InterApp>,
    ) -> Result<Link, amqp::Error> {
        let outbox = amqp::Outbox::open(outbox, cfg.outbox_max)?;
        let interapp = amqp::interapp::Link::start(cfg, interapp_tx)?;
        let bridge = amqp::Bridge::start(cfg, outbox, Some(commands_tx))?;
        tracing::info!(
            url = %cfg.effective_url()?,
            domain = cfg.domain.as_str(),
            commands = if cfg.commands { "accepted" } else { "off" },
            "amqp bridge started"
        );
        Ok(Link {
            bridge,
            prefix: format!("{node_id}:{}", now_ms()),
            next: 0,
            exported: HashMap::new(),
            external: HashMap::new(),
            interapp,
            coordinator: None,
            executions: HashMap::new(),
            leading: false,
            members: BTreeMap::new(),
            next_look_ms: 0,
        })
    }

    fn push(&mut self, event: &Event) {
        self.next += 1;
        let id = format!("{}:{}", self.prefix, self.next);
        self.push_as(&id, event);
    }

    fn push_as(&self, id: &str, event: &Event) {
        match self.bridge.push(id, event) {
            Ok(amqp::Pushed::Queued(_)) => {}
            // Counted in the bridge's status (`overflowed`).
            Ok(amqp::Pushed::Overflowed) => {}
            Err(e) => tracing::error!(error = %e, "amqp: an event could not be queued"),
        }
    }

    pub(super) fn status(&self) -> amqp::Status {
        self.bridge.status()
    }
}

impl Loop {
    /// An instance hosted here changed state: Roboconf's notification, and its exports
    /// announced when it starts, withdrawn when it leaves DEPLOYED_STARTED.
    pub(super) fn amqp_state(&mut self, app: &str, path: &str, state: State) {
        let Some(link) = self.amqp.as_mut() else {
            return;
        };
        link.push(&Event::InstanceChanged {
            app: app.to_string(),
            path: path.to_string(),
            state,
            imports: BTreeMap::new(),
        });
        let key = (app.to_string(), path.to_string());
        if state == State::DeployedStarted {
            let engine = self.node.engine();
            if let Some((prefix, variables)) = engine.external_exports_of(app, path, &self.cfg.ip) {
                link.push(&Event::ExternalExportsAdded {
                    app: app.to_string(),
                    prefix: prefix.clone(),
                    path: path.to_string(),
                    variables: variables.clone(),
                });
                link.external.insert(key.clone(), (prefix, variables));
            }
            let Some(a) = engine.app(app) else {
                return;
            };
            let mut by_prefix: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
            for (name, value) in a.exports(path, &self.cfg.ip) {
                let prefix = name.split('.').next().unwrap_or_default().to_string();
                by_prefix.entry(prefix).or_default().insert(name, value);
            }
            let prefixes: Vec<String> = by_prefix.keys().cloned().collect();
            for (component, variables) in by_prefix {
                link.push(&Event::ExportsAdded {
                    app: app.to_string(),
                    component,
                    path: path.to_string(),
                    variables,
                });
            }
            link.exported.insert(key, prefixes);
        } else if let Some(prefixes) = link.exported.remove(&key) {
            if let Some((prefix, _)) = link.external.remove(&key) {
                link.push(&Event::ExternalExportsRemoved {
                    app: app.to_string(),
                    prefix,
                    path: path.to_string(),
                });
            }
            for component in prefixes {
                link.push(&Event::ExportsRemoved {
                    app: app.to_string(),
                    component,
                    path: path.to_string(),
                });
            }
        }
    }

    /// A probe of an instance hosted here hit.
    pub(super) fn amqp_probe(&mut self, app: &str, path: &str, event: &str, details: &str) {
        if let Some(link) = self.amqp.as_mut() {
            link.push(&Event::Autonomic {
                app: app.to_string(),
                root: path.to_string(),
                event_name: event.to_string(),
                event_info: details.to_string(),
            });
        }
    }

    fn leads(&self) -> bool {
        self.node
            .coord_counts()
            .iter()
            .any(|(k, v)| *k == "coordinator_leader" && *v == 1)
    }

    /// The leader's mesh-wide events: its own coming to office, and the executions ended
    /// since the last look (ids from the replicated history: the same whichever leader
    /// publishes them).
    pub(super) fn amqp_mesh(&mut self) {
        let now = now_ms();
        let leads = self.leads();
        let Some(link) = self.amqp.as_mut() else {
            return;
        };
        if now < link.next_look_ms {
            return;
        }
        link.next_look_ms = now + MESH_EVERY_MS;
        let engine = self.node.engine();
        let exported: std::collections::BTreeSet<String> = engine
            .app_names()
            .filter_map(|n| engine.app(n)?.exports_prefix.clone())
            .collect();
        link.interapp
            .set_prefixes((engine.external_import_prefixes(), exported));
        let was = std::mem::replace(&mut link.leading, leads);
        if !leads {
            return;
        }
        let view = self.node.coordinator_view();
        let current = (view.leader.clone(), view.term);
        if link.coordinator.as_ref() != Some(&current) {
            link.push_as(
                &format!("coordinator:{}", view.term),
                &Event::CoordinatorChanged {
                    leader: view.leader.clone(),
                    term: view.term,
                },
            );
            link.coordinator = Some(current);
        }
        // Members: joined, left, dead (and the machines of the roots they hosted down).
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut now_members: BTreeMap<String, (MemberState, Vec<String>)> = BTreeMap::new();
        for (id, rec, live) in engine.members() {
            let state = match live {
                _ if rec.left => MemberState::Left,
                Liveness::Left => MemberState::Left,
                Liveness::Dead | Liveness::Retired => MemberState::Dead,
                Liveness::Alive | Liveness::Suspect => MemberState::Joined,
            };
            names.insert(id.to_string(), rec.name);
            now_members.insert(id.to_string(), (state, rec.roots));
        }
        let before = std::mem::replace(&mut link.members, now_members.clone());
        if was {
            for (id, (state, roots)) in &now_members {
                if before.get(id).map(|(s, _)| s) == Some(state) {
                    continue;
                }
                link.push(&Event::MemberChanged {
                    node: id.clone(),
                    name: names.get(id).cloned().unwrap_or_default(),
                    state: *state,
                });
                if *state != MemberState::Joined {
                    for r in roots {
                        if let Some((app, root)) = r.split_once(':') {
                            link.push(&Event::MachineDown {
                                app: app.to_string(),
                                root: root.to_string(),
                            });
                        }
                    }
                }
            }
        }
        for item in self.node.engine().history(None) {
            let seen = link.executions.entry(item.app.clone()).or_insert(0);
            if item.id <= *seen {
                continue;
            }
            *seen = item.id;
            if !was {
                // A new office: what ended before it was published by the one before.
                continue;
            }
            link.push_as(
                &format!("execution:{}:{}", item.app, item.id),
                &Event::CommandExecuted {
                    app: item.app.clone(),
                    command: item.command.clone(),
                    origin: item.origin.clone(),
                    result: serde_json::to_value(item.result)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    start_ms: item.start_ms,
                    duration_ms: item.duration_ms,
                },
            );
        }
    }

    /// What the inter-application exchange brought: another mesh's exports for this
    /// node's importers, or an importer's request for this node's external exports.
    pub(super) fn amqp_interapp(&mut self, m: InterApp) {
        match m {
            InterApp::Exports {
                source,
                prefix,
                vars,
            } => self.node.step(
                now_ms(),
                roboconf_core::node::Input::ExternalExports {
                    source,
                    prefix,
                    vars,
                },
            ),
            InterApp::Requested { prefix } => {
                let Some(link) = self.amqp.as_mut() else {
                    return;
                };
                let again: Vec<Event> = link
                    .external
                    .iter()
                    .filter(|(_, (p, _))| *p == prefix)
                    .map(
                        |((app, path), (p, variables))| Event::ExternalExportsAdded {
                            app: app.clone(),
                            prefix: p.clone(),
                            path: path.clone(),
                            variables: variables.clone(),
                        },
                    )
                    .collect();
                for e in &again {
                    link.push(e);
                }
            }
        }
    }

    /// A command from the broker: the operator request it stands for, answered when the
    /// node answers.
    pub(super) fn amqp_command(&mut self, command: Command, answer: oneshot::Sender<amqp::Answer>) {
        let req = match request_of(command) {
            Ok(r) => r,
            Err(e) => {
                let _ = answer.send(Err(e));
                return;
            }
        };
        let (reply_tx, reply_rx) = oneshot::channel();
        self.request(req, reply_tx);
        tokio::spawn(async move {
            let a = match reply_rx.await {
                Ok(Response::Ok { message }) => Ok(message),
                Ok(Response::Error { message, details }) => Err(if details.is_empty() {
                    message
                } else {
                    format!("{message}: {}", details.join("; "))
                }),
                Ok(other) => Ok(serde_json::to_string(&other).unwrap_or_default()),
                Err(_) => Err("the agent stopped before answering".to_string()),
            };
            let _ = answer.send(a);
        });
    }
}

/// The operator request a broker command stands for.
fn request_of(command: Command) -> Result<Request, String> {
    let set = |app: String, path: Option<String>, target: Desired| match path {
        Some(path) => Request::InstanceSet { app, path, target },
        None => Request::AppSet { name: app, target },
    };
    Ok(match command {
        Command::ChangeState { app, path, state } => {
            let target = match state {
                State::NotDeployed => Desired::NotDeployed,
                State::DeployedStopped => Desired::Deployed,
                State::DeployedStarted => Desired::Started,
                other => {
                    return Err(format!(
                        "{} is not a state to ask for (NOT_DEPLOYED, DEPLOYED_STOPPED or DEPLOYED_STARTED)",
                        other.as_str()
                    ))
                }
            };
            Request::InstanceSet { app, path, target }
        }
        Command::DeployAndStartAll { app, path } => set(app, path, Desired::Started),
        Command::StopAll { app, path } => set(app, path, Desired::Deployed),
        Command::UndeployAll { app, path } => set(app, path, Desired::NotDeployed),
        Command::CreateInstance {
            app,
            parent,
            name,
            component,
        } => Request::InstanceCreate {
            app,
            path: format!(
                "{}/{name}",
                parent.unwrap_or_default().trim_end_matches('/')
            ),
            component,
        },
        Command::DeleteInstance { app, path } => Request::InstanceDelete { app, path },
        Command::ExecuteCommand { app, command } => Request::Exec { app, command },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_commands_become_operator_requests() {
        let r = request_of(Command::ChangeState {
            app: "a".into(),
            path: "/vm/web".into(),
            state: State::DeployedStopped,
        });
        assert_eq!(
            r,
            Ok(Request::InstanceSet {
                app: "a".into(),
                path: "/vm/web".into(),
                target: Desired::Deployed
            })
        );
        assert!(request_of(Command::ChangeState {
            app: "a".into(),
            path: "/vm".into(),
            state: State::Starting,
        })
        .is_err());
        let r = request_of(Command::CreateInstance {
            app: "a".into(),
            parent: Some("/vm/".into()),
            name: "web 2".into(),
            component: "Web".into(),
        });
        assert!(matches!(r, Ok(Request::InstanceCreate { path, .. }) if path == "/vm/web 2"));
        let r = request_of(Command::StopAll {
            app: "a".into(),
            path: None,
        });
        assert!(matches!(
            r,
            Ok(Request::AppSet {
                target: Desired::Deployed,
                ..
            })
        ));
    }
}
