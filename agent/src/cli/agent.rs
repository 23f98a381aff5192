//! `roboconf agent`: builds the settings (file, environment, flags), then runs the agent
//! until it is told to stop.

use super::AgentArgs;
use crate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(data_dir: Option<PathBuf>, args: AgentArgs) -> anyhow::Result<ExitCode> {
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
    // One thread runs the agent's loop and its network task: on a small machine with
    // many agents, handing each message between threads cost more than it saved
    // (docs/BENCHMARKS.md). Scripts run on tokio's blocking pool, sled has its own.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(crate::runtime::run(cfg)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("roboconf agent: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
