//! The command line (DESIGN §11): one `clap` subcommand per operator command. `validate`
//! works offline; `agent` runs the agent; the others talk to a running agent through its
//! control socket, found from `--data-dir`. Each returns the process exit code: 0 ok,
//! 1 the operation failed or the input is invalid, 2 usage error.

mod agent;
mod autonomic;
mod client;
mod demo;
mod man;
mod show;
mod validate;

use crate::api::{Desired, Request, State};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Roboconf mesh: deploy and reconfigure distributed applications, with no central manager.
#[derive(Debug, Parser)]
#[command(name = "roboconf", version, about)]
pub struct Cli {
    /// The agent's data directory (default: $ROBOCONF_DATA_DIR, else ~/.local/share/roboconf).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an application folder, or one .graph / .instances file, offline.
    ///
    /// Exit code 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error.
    Validate {
        /// An application folder, a .graph file or an .instances file.
        path: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Run the agent (until SIGINT or SIGTERM).
    Agent(Box<AgentArgs>),
    /// Register, list, remove, start, stop or undeploy applications.
    #[command(subcommand)]
    App(AppCommand),
    /// Create, delete, deploy, start, stop or undeploy one instance.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Show the instance tree: state, host node, exports, last error.
    Status {
        /// Only this application.
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Wait until an application's instances (or one instance) reach a state.
    ///
    /// Exit code 0 when reached, 1 on timeout.
    Wait {
        app: String,
        /// One instance; default: every instance below the roots.
        path: Option<String>,
        /// The state to wait for, e.g. DEPLOYED_STARTED.
        #[arg(long)]
        state: String,
        /// How long to wait: 30s, 5m, 500ms, 1h30m...
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
    /// List the members of the mesh: id, name, addresses, state, hosted roots, version.
    Members {
        #[arg(long)]
        json: bool,
    },
    /// This agent's counters: connections, members, anti-entropy rounds, SWIM datagrams
    /// (UDP and over connections), messages dropped and why.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Stop what this agent hosts, announce the departure to the mesh, stop the agent.
    Leave,
    /// The coordinator that launches machines: its leader, term and voters.
    Coordinator {
        #[arg(long)]
        json: bool,
    },
    /// Create a mesh, or issue join tokens for it.
    #[command(subcommand)]
    Mesh(MeshCommand),
    /// Join the mesh that the member at ADDR (a multiaddr) belongs to; exits 0 once admitted.
    Join {
        addr: String,
        /// A token printed by `roboconf mesh token` on a member.
        #[arg(long)]
        token: String,
    },
    /// A local mesh of agents on loopback running examples/lamp: deploy, scale out, kill a node.
    Demo {
        /// How many agents to start.
        #[arg(long, default_value_t = 4)]
        nodes: usize,
        /// End after the script (and clean up) instead of waiting for Ctrl-C.
        #[arg(long)]
        exit: bool,
    },
    /// Run a commands file (`commands/NAME.commands`) through the coordinator; exits
    /// once it ended (0: ok, 1: it failed).
    Exec {
        app: String,
        name: String,
        /// How long to wait for its end: 30s, 5m...
        #[arg(long, default_value = "2m")]
        timeout: String,
        #[arg(long)]
        json: bool,
    },
    /// The executions of commands files: origin (operator, rule, job, command), result,
    /// start and duration.
    History {
        app: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Scheduled jobs: commands files run on a cron schedule by the coordinator.
    #[command(subcommand)]
    Job(autonomic::JobCommand),
    /// Print a shell completion script: `roboconf completions bash > /etc/bash_completion.d/roboconf`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write one page per command into `--out DIR`.
    Man {
        /// A folder for `roboconf.1` and a `roboconf-<command>.1` per command.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The HTTP API: `roboconf http token [--ttl 1h] [--read-only]`.
    #[command(subcommand)]
    Http(HttpCommand),
    /// The AMQP bridge: `roboconf amqp status`.
    #[command(subcommand)]
    Amqp(AmqpCommand),
    /// Show the recent script runs of an instance: action, exit code, output.
    Logs {
        app: String,
        path: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Print a bearer token for the HTTP API (the last word of the output), valid on
    /// every agent of this mesh until it expires.
    Token {
        /// How long it stays valid: from 1s to 366 days (15m, 12h, 30d...).
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The token reads but cannot change anything.
        #[arg(long)]
        read_only: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AmqpCommand {
    /// The bridge's connection, outbox depth, published / confirmed / failed counts,
    /// commands taken and the last error.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Address to listen on for the mesh, e.g. /ip4/127.0.0.1/tcp/0.
    #[arg(long)]
    pub listen: Vec<String>,
    /// A member of the mesh to connect to at start (multiaddr, repeatable).
    #[arg(long)]
    pub peer: Vec<String>,
    /// A root instance this agent hosts, as APP:/ROOT (repeatable).
    #[arg(long)]
    pub host: Vec<String>,
    /// Discover other members on the LAN with mDNS.
    #[arg(long)]
    pub mdns: bool,
    /// A TOML file with the same settings (command-line flags win).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// This node's name.
    #[arg(long)]
    pub node: Option<String>,
    /// The address published as the `ip` of what this agent hosts.
    #[arg(long)]
    pub ip: Option<String>,
    /// Seconds a script may run before it is killed.
    #[arg(long)]
    pub script_timeout: Option<u64>,
    /// Seconds between two rounds of the probes of hosted instances (20 by default;
    /// also `ROBOCONF_PROBE_PERIOD_SECS`, which machines launched by a `local` target
    /// inherit).
    #[arg(long)]
    pub probe_period: Option<u64>,
    /// Run an AMQP bridge to this broker (amqp://user:pass@host:port/vhost), on
    /// Roboconf's exchanges (the config file's `[amqp]` table has the other settings).
    #[arg(long)]
    pub amqp: Option<String>,
    /// The bridge accepts commands on `<domain>.roboconf.commands` (off by default: the
    /// broker's own access control is then the boundary).
    #[arg(long)]
    pub amqp_commands: bool,
    /// Roboconf's messaging domain: the prefix of every exchange and queue (`default`).
    #[arg(long)]
    pub amqp_domain: Option<String>,
    /// Serve the HTTP API, live events, /metrics and the web console on this address
    /// (host:port; loopback needs no token, any other address needs TLS and tokens).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<String>,
    /// The HTTP API's TLS certificate chain (PEM), with --http-key (default elsewhere
    /// than loopback: one issued by the mesh's CA).
    #[arg(long, requires = "http_key")]
    pub http_cert: Option<PathBuf>,
    /// The private key (PEM) of --http-cert.
    #[arg(long, requires = "http_cert")]
    pub http_key: Option<PathBuf>,
    /// Ask for a bearer token on loopback too.
    #[arg(long)]
    pub http_require_token: bool,
    /// What to log: a filter such as `info` or `roboconf_agent::runtime=debug,info`
    /// (wins over RUST_LOG and the config file).
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,
    /// How to write log lines: human (default) or json.
    #[arg(long, value_enum)]
    pub log_format: Option<crate::config::LogFormat>,
    /// Start with an empty store although the data dir holds applications or instance
    /// folders (the store was lost): those are moved aside into `reset-<time>/`.
    #[arg(long)]
    pub reset_store: bool,
    /// A user data file (JSON) from the coordinator's target: the members to contact, a
    /// join token, this agent's name; the agent joins the mesh at start.
    #[arg(long)]
    pub user_data: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum MeshCommand {
    /// Make a new mesh (its CA and id) with the local agent as its first member and the
    /// coordinator's first voter.
    Init {
        /// How many voters the coordinator keeps (the next members to join, up to this
        /// count): from 1 to 7.
        #[arg(long, default_value_t = 3)]
        voters: u32,
        /// Most machines the coordinator keeps at once in the mesh (64 by default).
        #[arg(long)]
        max_machines: Option<u32>,
        /// Most machines the coordinator keeps at once per application (64 by default).
        #[arg(long)]
        max_machines_per_app: Option<u32>,
    },
    /// Add a member (name or id) to the coordinator's voters, or remove one (a removed
    /// voter is replaced by a live member). Ask the leader (`roboconf coordinator`).
    #[command(subcommand)]
    Voters(VotersCommand),
    /// Print a single-use join token (the last word of the output).
    Token {
        /// How long the token stays valid: from 1s to 7 days (15m, 1h, 7d, 1d12h...).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VotersCommand {
    Add { node: String },
    Remove { node: String },
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register the application in PATH (validated first); --start deploys and starts all.
    Add {
        path: PathBuf,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        start: bool,
    },
    /// List the registered applications.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove an application (all its instances must be undeployed).
    Remove { name: String },
    /// Deploy and start every instance.
    Start { name: String },
    /// Stop every instance (they stay deployed).
    Stop { name: String },
    /// Stop and undeploy every instance.
    Undeploy { name: String },
    /// Each instance's imports and whether an exporter satisfies them now.
    Diagnose {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create an instance (not deployed) under an existing parent.
    Create {
        app: String,
        path: String,
        #[arg(long)]
        component: String,
    },
    /// Copy a root instance with what is under it as a new root NAME (not deployed).
    Replicate {
        app: String,
        path: String,
        name: String,
    },
    /// Delete an undeployed instance and what is under it.
    Delete { app: String, path: String },
    /// Deploy (and keep stopped).
    Deploy { app: String, path: String },
    /// Deploy if needed, then start.
    Start { app: String, path: String },
    /// Stop (stay deployed).
    Stop { app: String, path: String },
    /// Stop if needed, then undeploy.
    Undeploy { app: String, path: String },
    /// Which target file (by its `id`) launches a root's machine, when its component has
    /// several (the coordinator uses it at the next launch).
    Target {
        app: String,
        root: String,
        target: String,
    },
    /// Which node (name or id) hosts a root instance; what runs under it moves there.
    Bind {
        app: String,
        root: String,
        node: String,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let data_dir = cli.data_dir;
    match cli.command {
        Command::Validate { path, json } => validate::run(&path, json),
        Command::Agent(args) => agent::run(data_dir, *args),
        Command::App(c) => client::app(data_dir, c),
        Command::Instance(c) => client::instance(data_dir, c),
        Command::Status { app, json } => client::status(data_dir, app, json),
        Command::Wait {
            app,
            path,
            state,
            timeout,
        } => {
            let Some(state) = State::parse(&state) else {
                eprintln!("roboconf wait: unknown state `{state}`");
                return Ok(ExitCode::from(2));
            };
            let Some(timeout) = parse_duration(&timeout) else {
                eprintln!(
                    "roboconf wait: invalid duration `{timeout}` (e.g. 30s, 5m, 500ms, 1h30m)"
                );
                return Ok(ExitCode::from(2));
            };
            client::wait(data_dir, app, path, state, timeout)
        }
        Command::Logs { app, path, json } => client::logs(data_dir, app, path, json),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Into memory first: a closed stdout (`| head`) is not a crash.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "roboconf", &mut buf);
            out(&String::from_utf8_lossy(&buf));
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out } => man::write(out),
        Command::Members { json } => client::members(data_dir, json),
        Command::Stats { json } => client::stats(data_dir, json),
        Command::Http(HttpCommand::Token { ttl, read_only }) => {
            let ttl_ms = parse_duration(&ttl)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .filter(|ms| (1000..=crate::http::access::MAX_TTL_MS).contains(ms));
            let Some(ttl_ms) = ttl_ms else {
                eprintln!("roboconf http token: invalid --ttl `{ttl}` (from 1s to 366 days, e.g. 15m, 12h, 30d)");
                return Ok(ExitCode::from(2));
            };
            client::simple(data_dir, &Request::HttpToken { ttl_ms, read_only })
        }
        Command::Amqp(AmqpCommand::Status { json }) => client::amqp_status(data_dir, json),
        Command::Leave => client::leave(data_dir),
        Command::Mesh(MeshCommand::Init {
            voters,
            max_machines,
            max_machines_per_app,
        }) => {
            if !(1..=7).contains(&voters) {
                eprintln!("roboconf mesh init: --voters {voters}: from 1 to 7");
                return Ok(ExitCode::from(2));
            }
            client::simple(
                data_dir,
                &Request::MeshInit {
                    voters: Some(voters),
                    max_machines,
                    max_machines_per_app,
                },
            )
        }
        Command::Mesh(MeshCommand::Voters(c)) => {
            let (node, add) = match c {
                VotersCommand::Add { node } => (node, true),
                VotersCommand::Remove { node } => (node, false),
            };
            client::simple(data_dir, &Request::MeshVoters { node, add })
        }
        Command::Coordinator { json } => client::coordinator(data_dir, json),
        Command::Exec {
            app,
            name,
            timeout,
            json,
        } => {
            let Some(timeout) = parse_duration(&timeout) else {
                eprintln!("roboconf exec: invalid duration `{timeout}` (e.g. 30s, 5m)");
                return Ok(ExitCode::from(2));
            };
            autonomic::exec(data_dir, app, name, timeout, json)
        }
        Command::History { app, json } => autonomic::history(data_dir, app, json),
        Command::Job(c) => autonomic::job(data_dir, c),
        Command::Mesh(MeshCommand::Token { ttl }) => {
            let checked = parse_duration(&ttl)
                .ok_or_else(|| "not a duration".to_string())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .and_then(|ttl_ms| crate::admission::check_token_ttl(ttl_ms).map(|()| ttl_ms));
            let ttl_ms = match checked {
                Ok(ttl_ms) => ttl_ms,
                Err(why) => {
                    eprintln!(
                        "roboconf mesh token: invalid --ttl `{ttl}`: {why} (from 1s to 7 days, e.g. 15m, 1h, 7d)"
                    );
                    return Ok(ExitCode::from(2));
                }
            };
            client::simple(data_dir, &Request::MeshToken { ttl_ms })
        }
        Command::Join { addr, token } => {
            if addr.parse::<libp2p::Multiaddr>().is_err() {
                eprintln!("roboconf join: `{addr}` is not a multiaddr (e.g. /ip4/10.0.0.1/tcp/7400/p2p/12D3...)");
                return Ok(ExitCode::from(2));
            }
            if crate::admission::Token::parse(&token).is_err() {
                eprintln!("roboconf join: malformed token (expected rcm1-<id>-<secret>, as `roboconf mesh token` prints it)");
                return Ok(ExitCode::from(2));
            }
            client::simple(data_dir, &Request::Join { addr, token })
        }
        Command::Demo { nodes, exit } => demo::run(nodes, exit),
    }
}

/// Writes to standard output; a closed pipe (`roboconf status | head -1`) is not an error.
pub fn out(text: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes()).and_then(|_| o.flush());
}

/// A duration: a number of seconds (`30`), or numbers each followed by a unit, `ms`,
/// `s`, `m`, `h` or `d` (`500ms`, `15m`, `1.5h`, `7d`, `1d12h`, `2m30s`). `None` for
/// anything else, or past what a `Duration` holds.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return seconds(s.parse().ok()?);
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let unit_at = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|at| *at > 0)?;
        let n: f64 = rest[..unit_at].parse().ok()?;
        let after = &rest[unit_at..];
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        total += match &after[..unit_len] {
            "ms" => n / 1000.0,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            "d" => n * 86_400.0,
            _ => return None,
        };
        rest = &after[unit_len..];
    }
    if s.is_empty() {
        return None;
    }
    seconds(total)
}

fn seconds(secs: f64) -> Option<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(secs).ok()
}

fn desired_of(c: &InstanceCommand) -> Option<Desired> {
    match c {
        InstanceCommand::Deploy { .. } | InstanceCommand::Stop { .. } => Some(Desired::Deployed),
        InstanceCommand::Start { .. } => Some(Desired::Started),
        InstanceCommand::Undeploy { .. } => Some(Desired::NotDeployed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_days_and_compound_forms() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(parse_duration("30"), secs(30));
        assert_eq!(parse_duration("30s"), secs(30));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), secs(900));
        assert_eq!(parse_duration("1.5h"), secs(5400));
        assert_eq!(parse_duration("7d"), secs(7 * 86_400));
        assert_eq!(parse_duration("6d"), secs(6 * 86_400));
        assert_eq!(parse_duration(" 1d12h "), secs(36 * 3600));
        assert_eq!(parse_duration("2m30s"), secs(150));
        assert_eq!(parse_duration("1s500ms"), Some(Duration::from_millis(1500)));
        for bad in [
            "",
            "d",
            "7x",
            "7 d",
            "-1s",
            "1h30",
            "1e3s",
            "forever",
            "1..2s",
            "h1",
            // Past what a Duration holds: refused, not a panic.
            "99999999999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
