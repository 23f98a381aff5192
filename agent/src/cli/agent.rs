//! `roboconf agent`: builds the settings (file, environment, flags), sets up the logs,
//! then runs the agent until it is told to stop.
//!
//! Logs go through `tracing` to stderr, filtered by `log` (config file < `RUST_LOG` <
//! `--log`). The human format is `tracing_subscriber`'s: time, level, spans, target,
//! message, then the fields as `key=value` (strings quoted); the JSON format is one
//! object per line (`timestamp`, `level`, `fields`, `target`, `span`, `spans`).
//! Announcements (`runtime::ANNOUNCE`: the addresses listened on, ready, stopped, a fatal
//! error) are shown whatever the filter: in the human format as plain
//! `roboconf agent: <message>` lines, as before logs were structured, since tools read the
//! listening address from them; in the JSON format as JSON events like the others.

use super::AgentArgs;
use crate::config::{Config, LogFormat};
use crate::runtime::ANNOUNCE;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::fmt::{self, format, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Set on the agent's second start, by itself, with `MALLOC_ARENA_MAX`.
const ARENAS_MARK: &str = "ROBOCONF_MALLOC_ARENAS_SET";

/// glibc gives a thread that allocates under contention an arena of its own (up to 8
/// per core) and keeps what each frees: the workers running scripts made an agent grow
/// by about 15 MB during a start-all of 1,000 instances (docs/BENCHMARKS.md, issue 19).
/// The agent keeps one: it starts itself again (same PID, arguments and `argv[0]`)
/// with `MALLOC_ARENA_MAX=1`, which glibc reads before `main`, unless the variable is set
/// already; then it removes the variable so that the scripts do not inherit it. Called
/// first, while the process has a single thread.
fn limit_malloc_arenas() {
    if std::env::var_os(ARENAS_MARK).is_some() {
        std::env::remove_var("MALLOC_ARENA_MAX");
        std::env::remove_var(ARENAS_MARK);
        return;
    }
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    // `exec` returns only when it failed: the agent then goes on with glibc's default.
    let _ = std::process::Command::new(&exe)
        .arg0(arg0)
        .args(args)
        .env("MALLOC_ARENA_MAX", "1")
        .env(ARENAS_MARK, "1")
        .exec();
}

pub fn run(data_dir: Option<PathBuf>, args: AgentArgs) -> anyhow::Result<ExitCode> {
    limit_malloc_arenas();
    let mut cfg = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("roboconf agent: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    cfg.listen.extend(args.listen);
    cfg.peer.extend(args.peer);
    cfg.host.extend(args.host);
    cfg.mdns |= args.mdns;
    cfg.reset_store = args.reset_store;
    if let Some(n) = args.node {
        cfg.node = n;
    }
    if let Some(ip) = args.ip {
        cfg.ip = ip;
    }
    if let Some(t) = args.script_timeout {
        cfg.script_timeout_secs = t;
    }
    if let Some(p) = args.probe_period {
        cfg.probe_period_secs = p;
    }
    if args.amqp.is_some() || args.amqp_commands || args.amqp_domain.is_some() {
        let a = cfg.amqp.get_or_insert_with(Default::default);
        if let Some(url) = args.amqp {
            a.url = Some(url);
        }
        a.commands |= args.amqp_commands;
        if let Some(d) = args.amqp_domain {
            a.domain = d;
        }
    }
    if args.http.is_some() || args.http_cert.is_some() || args.http_require_token {
        let h = cfg.http.get_or_insert_with(Default::default);
        if let Some(listen) = args.http {
            h.listen = listen;
        }
        if args.http_cert.is_some() {
            h.tls_cert = args.http_cert;
            h.tls_key = args.http_key;
        }
        h.require_token |= args.http_require_token;
    }
    if let Ok(filter) = std::env::var("RUST_LOG") {
        cfg.log = filter;
    }
    if let Some(filter) = args.log {
        cfg.log = filter;
    }
    if let Some(f) = args.log_format {
        cfg.log_format = f;
    }
    if let Some(path) = args.user_data {
        match crate::targets::UserData::read(&path) {
            Ok(ud) => {
                cfg.peer.extend(ud.peers.iter().cloned());
                if cfg.node.is_empty() {
                    cfg.node = ud.name.clone();
                }
                cfg.join = Some((ud.peers.clone(), ud.token.clone()));
                cfg.user_data = Some(path.clone());
            }
            Err(e) => {
                eprintln!("roboconf agent: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    if let Err(e) = cfg.validate() {
        eprintln!("roboconf agent: {e}");
        return Ok(ExitCode::from(2));
    }
    let logging = match init_logs(&cfg) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("roboconf agent: the logs cannot be set up: {e}");
            false
        }
    };
    // One thread runs the agent's loop and its network task: on a small machine with
    // many agents, handing each message between threads cost more than it saved
    // (docs/BENCHMARKS.md). Scripts run on tokio's blocking pool, sled has its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(crate::runtime::run(cfg)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if logging => {
            tracing::error!(target: ANNOUNCE, "{e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("roboconf agent: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Installs the global subscriber for `cfg.log` and `cfg.log_format`.
fn init_logs(cfg: &Config) -> Result<(), String> {
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    // The user's filter, with announcements always on (JSON) or left to their own
    // layer (human).
    let filter = |announcements: &str| -> Result<EnvFilter, String> {
        let directive = format!("{ANNOUNCE}={announcements}")
            .parse()
            .map_err(|e| format!("{e}"))?;
        let f = EnvFilter::try_new(&cfg.log).map_err(|e| format!("log `{}`: {e}", cfg.log))?;
        Ok(f.add_directive(directive))
    };
    let installed = match cfg.log_format {
        LogFormat::Human => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let logs = fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_filter(filter("off")?);
            let announcements = fmt::layer()
                .with_writer(std::io::stderr)
                .event_format(Announcement)
                .with_filter(Targets::new().with_target(ANNOUNCE, LevelFilter::TRACE));
            tracing_subscriber::registry()
                .with(logs)
                .with(announcements)
                .try_init()
        }
        LogFormat::Json => {
            let logs = fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_writer(std::io::stderr)
                .with_filter(filter("trace")?);
            tracing_subscriber::registry().with(logs).try_init()
        }
    };
    installed.map_err(|e| e.to_string())
}

/// An announcement in the human format: `roboconf agent: <message>`.
struct Announcement;

impl<S, N> FormatEvent<S, N> for Announcement
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut message = Message(String::new());
        event.record(&mut message);
        writeln!(writer, "roboconf agent: {}", message.0)
    }
}

/// The `message` field of an event.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}
