//! The commands that talk to a running agent: each sends one request over the control
//! socket and prints the answer (`--json` for machines). `wait` asks for the status until
//! the wanted state is reached or the timeout passes, showing progress on a terminal; an
//! application the agent does not know yet is waited for too (it may have been added on
//! another member a moment ago).

use super::{desired_of, AppCommand, InstanceCommand};
use super::{out, show};
use crate::api::{Desired, Request, Response, State};
use crate::config::default_data_dir;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub(super) fn call(data_dir: &Path, req: &Request) -> Result<Response, String> {
    let socket = crate::control::socket_path(data_dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(crate::control::call(&socket, req))
        .map_err(|e| {
            format!(
                "no agent answers on {} ({e}); is `roboconf agent --data-dir {}` running?",
                socket.display(),
                data_dir.display()
            )
        })
}

pub(super) fn dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(default_data_dir)
}

/// Prints a response; the exit code says whether it was a success.
pub(super) fn finish(r: Result<Response, String>, json: bool) -> anyhow::Result<ExitCode> {
    let r = match r {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roboconf: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if json {
        out(&format!("{}\n", serde_json::to_string_pretty(&r)?));
    }
    match r {
        Response::Error { message, details } => {
            if !json {
                eprintln!("roboconf: {message}");
                for d in details {
                    eprintln!("  {d}");
                }
            }
            Ok(ExitCode::from(1))
        }
        Response::Ok { message } if !json => {
            out(&format!("{message}\n"));
            Ok(ExitCode::SUCCESS)
        }
        Response::Apps { apps } if !json => {
            out(&show::apps(&apps));
            Ok(ExitCode::SUCCESS)
        }
        Response::Diagnosis { instances } if !json => {
            let mut text = String::new();
            for d in instances {
                let deps: Vec<String> = d
                    .dependencies
                    .iter()
                    .map(|dep| {
                        format!(
                            "{}{} {}",
                            dep.prefix,
                            if dep.optional { " (optional)" } else { "" },
                            if dep.resolved {
                                "resolved"
                            } else {
                                "UNRESOLVED"
                            }
                        )
                    })
                    .collect();
                text.push_str(&format!(
                    "{} [{}] {}{}\n",
                    d.path,
                    d.component,
                    d.state.as_str(),
                    if deps.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", deps.join(", "))
                    }
                ));
            }
            out(&text);
            Ok(ExitCode::SUCCESS)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn app(data_dir: Option<PathBuf>, c: AppCommand) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    let (req, json) = match c {
        AppCommand::Add { path, name, start } => {
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            (Request::AppAdd { path, name, start }, false)
        }
        AppCommand::List { json } => (Request::AppList, json),
        AppCommand::Diagnose { name, json } => (Request::Diagnose { app: name }, json),
        AppCommand::Remove { name } => (Request::AppRemove { name }, false),
        AppCommand::Start { name } => (
            Request::AppSet {
                name,
                target: Desired::Started,
            },
            false,
        ),
        AppCommand::Stop { name } => (
            Request::AppSet {
                name,
                target: Desired::Deployed,
            },
            false,
        ),
        AppCommand::Undeploy { name } => (
            Request::AppSet {
                name,
                target: Desired::NotDeployed,
            },
            false,
        ),
    };
    finish(call(&d, &req), json)
}

pub fn instance(data_dir: Option<PathBuf>, c: InstanceCommand) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    let target = desired_of(&c);
    let req = match c {
        InstanceCommand::Create {
            app,
            path,
            component,
        } => Request::InstanceCreate {
            app,
            path,
            component,
        },
        InstanceCommand::Delete { app, path } => Request::InstanceDelete { app, path },
        InstanceCommand::Replicate { app, path, name } => {
            Request::InstanceReplicate { app, path, name }
        }
        InstanceCommand::Bind { app, root, node } => Request::InstanceBind { app, root, node },
        InstanceCommand::Target { app, root, target } => {
            Request::InstanceTarget { app, root, target }
        }
        InstanceCommand::Deploy { app, path }
        | InstanceCommand::Start { app, path }
        | InstanceCommand::Stop { app, path }
        | InstanceCommand::Undeploy { app, path } => Request::InstanceSet {
            app,
            path,
            target: target.unwrap_or(Desired::Deployed),
        },
    };
    finish(call(&d, &req), false)
}

pub fn status(
    data_dir: Option<PathBuf>,
    app: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    let single = app.is_some();
    match call(&d, &Request::Status { app }) {
        Ok(Response::Status { apps }) => {
            if json {
                // DESIGN §11: one object for one application, a list otherwise.
                let text = if single {
                    serde_json::to_string_pretty(&apps[0])?
                } else {
                    serde_json::to_string_pretty(&apps)?
                };
                out(&format!("{text}\n"));
            } else {
                out(&show::status(&apps));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

pub fn logs(
    data_dir: Option<PathBuf>,
    app: String,
    path: String,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::Logs { app, path }) {
        Ok(Response::Logs { runs }) if !json => {
            out(&show::runs(&runs));
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

/// What `wait` saw in one status answer.
enum Seen {
    /// The agent knows no application of that name (yet: it may still be on its way
    /// from the member where it was added).
    NoApp,
    /// `reached` of the `total` instances watched are in the wanted state.
    Instances { reached: usize, total: usize },
}

/// The start of the agent's answer about an application it does not know.
const NO_APP: &str = "no application named";

pub fn wait(
    data_dir: Option<PathBuf>,
    app: String,
    path: Option<String>,
    state: State,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    let deadline = Instant::now() + timeout;
    let tty = std::io::stderr().is_terminal();
    loop {
        let seen = match call(
            &d,
            &Request::Status {
                app: Some(app.clone()),
            },
        ) {
            Ok(Response::Status { apps }) => {
                let list: Vec<_> = apps
                    .into_iter()
                    .flat_map(|a| a.instances)
                    .filter(|i| match &path {
                        Some(p) => &i.path == p,
                        None => i.path.matches('/').count() > 1,
                    })
                    .collect();
                Seen::Instances {
                    reached: list.iter().filter(|i| i.state == state).count(),
                    total: list.len(),
                }
            }
            Ok(Response::Error { message, .. }) if message.starts_with(NO_APP) => Seen::NoApp,
            other => return finish(other, false),
        };
        let (reached, total) = match seen {
            Seen::NoApp => (0, 0),
            Seen::Instances { reached, total } => (reached, total),
        };
        if total > 0 && reached == total {
            if tty {
                eprintln!("\r{reached}/{total} {}          ", state.as_str());
            }
            return Ok(ExitCode::SUCCESS);
        }
        if let (Seen::Instances { total: 0, .. }, Some(p)) = (&seen, &path) {
            eprintln!("roboconf wait: `{app}` has no instance {p}");
            return Ok(ExitCode::from(1));
        }
        if Instant::now() >= deadline {
            match seen {
                Seen::NoApp => eprintln!(
                    "roboconf wait: timed out: no application named `{app}` appeared within {}",
                    humane(timeout)
                ),
                Seen::Instances { .. } => eprintln!(
                    "roboconf wait: timed out: {reached}/{total} {}",
                    state.as_str()
                ),
            }
            return Ok(ExitCode::from(1));
        }
        if tty {
            match seen {
                Seen::NoApp => eprint!("\rwaiting for `{app}` to appear   "),
                Seen::Instances { .. } => {
                    eprint!("\rwaiting: {reached}/{total} {}   ", state.as_str())
                }
            }
        }
        std::thread::sleep(
            Duration::from_millis(100).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
}

/// A timeout as the operator wrote it, roughly: `30s`, `1500ms`.
fn humane(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn members(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::Members) {
        Ok(Response::Members { members }) => {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&members)?));
            } else {
                out(&show::members(&members));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

pub fn coordinator(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::Coordinator) {
        Ok(Response::Coordinator(v)) => {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&v)?));
            } else {
                let leader = v.leader.clone().unwrap_or_else(|| "none".into());
                let mut text = format!("leader {leader}\nterm {}\nvoters\n", v.term);
                for voter in &v.voters {
                    let mark = if Some(&voter.id) == v.leader.as_ref() {
                        " (leader)"
                    } else {
                        ""
                    };
                    text.push_str(&format!(
                        "  {} {} {}{mark}\n",
                        voter.name, voter.id, voter.state
                    ));
                }
                out(&text);
            }
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

pub fn stats(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::Stats) {
        Ok(Response::Stats { counters }) => {
            if json {
                let map: serde_json::Map<String, serde_json::Value> =
                    counters.into_iter().map(|(k, v)| (k, v.into())).collect();
                out(&format!("{}\n", serde_json::to_string_pretty(&map)?));
            } else {
                let text: String = counters.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
                out(&text);
            }
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

pub fn amqp_status(data_dir: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::AmqpStatus) {
        Ok(Response::Amqp { status: None }) => {
            eprintln!("roboconf amqp status: this agent runs no bridge (`--amqp URL` or `[amqp]`)");
            Ok(ExitCode::from(1))
        }
        Ok(Response::Amqp {
            status: Some(status),
        }) => {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&status)?));
            } else if let Some(map) = status.as_object() {
                let text: String = map
                    .iter()
                    .map(|(k, v)| match v {
                        serde_json::Value::String(s) => format!("{k} {s}\n"),
                        serde_json::Value::Null => format!("{k} -\n"),
                        other => format!("{k} {other}\n"),
                    })
                    .collect();
                out(&text);
            }
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

/// Sends one request and prints its answer.
pub fn simple(data_dir: Option<PathBuf>, req: &Request) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    finish(call(&d, req), false)
}

pub fn leave(data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    finish(call(&d, &Request::Leave), false)
}
