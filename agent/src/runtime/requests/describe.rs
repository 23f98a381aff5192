//! Operator requests answered from the node's state without a core command: an
//! application's components, commands files and import diagnosis, a replicated root
//! (a series of instance creations, checked first), and HTTP API tokens.

use crate::api::{Request, Response};
use crate::core::Command;
use crate::runtime::{now_ms, Loop};
use roboconf_core::node::Input;
use tokio::sync::oneshot;

fn no_app(app: &str) -> Response {
    Response::error(format!("no application named `{app}`"))
}

impl Loop {
    /// Answers a request this module owns; gives it back otherwise.
    pub(in crate::runtime) fn describe(
        &mut self,
        req: Request,
        reply: oneshot::Sender<Response>,
    ) -> Option<(Request, oneshot::Sender<Response>)> {
        let engine = self.node.engine();
        let answer = match req {
            Request::Components { app } => engine
                .component_views(&app)
                .map(|components| Response::Components { components })
                .unwrap_or_else(|| no_app(&app)),
            Request::Commands { app } => engine
                .command_names(&app)
                .map(|names| Response::Names { names })
                .unwrap_or_else(|| no_app(&app)),
            Request::Diagnose { app } => engine
                .diagnose(&app)
                .map(|instances| Response::Diagnosis { instances })
                .unwrap_or_else(|| no_app(&app)),
            Request::InstanceReplicate { app, path, name } => {
                self.replicate(&app, &path, &name, reply);
                return None;
            }
            Request::HttpToken { ttl_ms, read_only } => {
                match crate::http::access::Keys::load(&self.cfg.data_dir) {
                    Ok(keys) => match keys.issue(ttl_ms, read_only, now_ms()) {
                        Ok(token) => Response::ok(format!(
                            "{} HTTP API token (valid {} s): {token}",
                            if read_only {
                                "read-only"
                            } else {
                                "full-access"
                            },
                            ttl_ms / 1000
                        )),
                        Err(e) => Response::error(e),
                    },
                    Err(e) => Response::error(e.to_string()),
                }
            }
            other => return Some((other, reply)),
        };
        let _ = reply.send(answer);
        None
    }

    /// Copies root `path` with its children under `/<name>`: every creation is checked
    /// here first, then sent in order (parents first); the last one answers.
    fn replicate(&mut self, app: &str, path: &str, name: &str, reply: oneshot::Sender<Response>) {
        let Some(a) = self.node.engine().app(app) else {
            let _ = reply.send(no_app(app));
            return;
        };
        let Some(root) = a.insts.get(path) else {
            let _ = reply.send(Response::error(format!("`{app}` has no instance `{path}`")));
            return;
        };
        if root.parent.is_some() {
            let _ = reply.send(Response::error(format!(
                "`{path}` is not a root instance: only roots are replicated"
            )));
            return;
        }
        let to = format!("/{name}");
        if a.insts.contains_key(&to) {
            let _ = reply.send(Response::error(format!("instance `{to}` already exists")));
            return;
        }
        let below = format!("{path}/");
        // Parents sort before their children in the map.
        let creations: Vec<(String, String)> = a
            .insts
            .iter()
            .filter(|(p, _)| *p == path || p.starts_with(&below))
            .map(|(p, i)| (format!("{to}{}", &p[path.len()..]), i.rec.component.clone()))
            .collect();
        let count = creations.len();
        let last = count.saturating_sub(1);
        let mut reply = Some(reply);
        for (k, (new_path, component)) in creations.into_iter().enumerate() {
            let id = self.next_machine_token();
            if k == last {
                self.notes.insert(
                    id,
                    vec![format!(
                        "{count} instances created under {to} (not deployed)"
                    )],
                );
                if let Some(r) = reply.take() {
                    self.replies.insert(id, r);
                }
            }
            let command = Command::InstanceCreate {
                app: app.to_string(),
                path: new_path,
                component,
            };
            self.node.step(now_ms(), Input::Command { id, command });
        }
    }
}
