//! The autonomic commands: `exec` runs a commands file through the coordinator and
//! waits for its execution to show in the history; `history` lists the executions (any
//! agent answers: the leader publishes them to the mesh); `job add|list|remove` manage
//! the scheduled jobs.

use super::client::{call, dir, finish};
use super::out;
use crate::api::{Request, Response};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Schedule a commands file: a Quartz cron expression with seconds, in UTC
    /// (e.g. "0 0 8 ? * MON-FRI": 8:00 on weekdays).
    Add {
        app: String,
        #[arg(long)]
        name: String,
        /// The commands file, without `.commands`.
        #[arg(long)]
        command: String,
        #[arg(long)]
        cron: String,
    },
    /// The scheduled jobs, with their next instant.
    List {
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    Remove {
        app: String,
        name: String,
    },
}

fn time(ms: u64) -> String {
    roboconf_core::autonomic::format_time("yyyy-MM-dd HH:mm:ss'Z'", ms)
}

/// `roboconf exec APP NAME`: exits 0 once the execution ended ok (or ok with skipped
/// instructions), 1 if it failed or did not end within `timeout`.
pub fn exec(
    data_dir: Option<PathBuf>,
    app: String,
    command: String,
    timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    let req = Request::Exec {
        app: app.clone(),
        command,
    };
    let id = match call(&d, &req) {
        Ok(Response::Ok { message }) => message,
        other => return finish(other, json),
    };
    let deadline = Instant::now() + timeout;
    loop {
        let items = match call(
            &d,
            &Request::History {
                app: Some(app.clone()),
            },
        ) {
            Ok(Response::History { items }) => items,
            other => return finish(other, json),
        };
        if let Some(h) = items
            .iter()
            .find(|h| h.origin == "operator" && h.details == id)
        {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(h)?));
            } else {
                let reason = h
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                out(&format!(
                    "{} {}: {} in {} ms{reason}\n",
                    h.app,
                    h.command,
                    h.result.word(),
                    h.duration_ms
                ));
            }
            let failed = h.result == roboconf_core::coord::autonomic::Outcome::Error;
            return Ok(ExitCode::from(failed as u8));
        }
        if Instant::now() >= deadline {
            eprintln!(
                "roboconf exec: request {id} taken, not ended within {} s (see `roboconf history {app}`)",
                timeout.as_secs()
            );
            return Ok(ExitCode::from(1));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `roboconf history [APP]`.
pub fn history(
    data_dir: Option<PathBuf>,
    app: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match call(&d, &Request::History { app }) {
        Ok(Response::History { items }) => {
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&items)?));
                return Ok(ExitCode::SUCCESS);
            }
            let mut text = String::new();
            for h in &items {
                let reason = h
                    .reason
                    .as_deref()
                    .map(|r| format!("  {r}"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "{}  {}  {}  {} ({})  {}  {} ms{reason}\n",
                    time(h.start_ms),
                    h.app,
                    h.command,
                    h.origin,
                    h.details,
                    h.result.word(),
                    h.duration_ms
                ));
            }
            if items.is_empty() {
                text.push_str("no execution yet\n");
            }
            out(&text);
            Ok(ExitCode::SUCCESS)
        }
        other => finish(other, json),
    }
}

/// `roboconf job ...`.
pub fn job(data_dir: Option<PathBuf>, c: JobCommand) -> anyhow::Result<ExitCode> {
    let d = dir(data_dir);
    match c {
        JobCommand::Add {
            app,
            name,
            command,
            cron,
        } => finish(
            call(
                &d,
                &Request::JobAdd {
                    app,
                    name,
                    command,
                    cron,
                },
            ),
            false,
        ),
        JobCommand::Remove { app, name } => {
            finish(call(&d, &Request::JobRemove { app, name }), false)
        }
        JobCommand::List { app, json } => match call(&d, &Request::JobList { app }) {
            Ok(Response::Jobs { jobs }) => {
                if json {
                    out(&format!("{}\n", serde_json::to_string_pretty(&jobs)?));
                    return Ok(ExitCode::SUCCESS);
                }
                let mut text = String::new();
                for j in &jobs {
                    let next = j.next_ms.map_or("never".to_string(), time);
                    text.push_str(&format!(
                        "{}  {}  `{}`  runs {}  next {next}\n",
                        j.app, j.name, j.cron, j.command
                    ));
                }
                if jobs.is_empty() {
                    text.push_str("no job\n");
                }
                out(&text);
                Ok(ExitCode::SUCCESS)
            }
            other => finish(other, json),
        },
    }
}
