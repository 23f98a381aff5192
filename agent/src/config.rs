//! The agent's settings: a serde struct with defaults, read from a TOML file, overlaid by
//! environment variables (`ROBOCONF_DATA_DIR`, `ROBOCONF_NODE`, `ROBOCONF_IP`) and then by
//! command-line flags, and checked by `validate()` before anything starts.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Agent settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Where the agent keeps its store, application bundles, working directories and its
    /// control socket.
    pub data_dir: PathBuf,
    /// Network addresses to listen on (multiaddrs; used by the mesh).
    pub listen: Vec<String>,
    /// Peers to connect to at start (multiaddrs of mesh members).
    pub peer: Vec<String>,
    /// Discover other members on the LAN with mDNS (for LANs behind a switch; loopback
    /// has no multicast).
    pub mdns: bool,
    /// Root instances this agent hosts, as `APP:/ROOT`.
    pub host: Vec<String>,
    /// This node's name, unique in the mesh. Empty (the default): the host name followed
    /// by a short part of the node's id (`web1-k3x9qz`), so that agents sharing a host
    /// never share a name; without a network, the host name.
    pub node: String,
    /// The address published as the `ip` of what this agent hosts.
    pub ip: String,
    /// Seconds a script may run before it is killed.
    pub script_timeout_secs: u64,
    /// Most scripts running at once.
    pub max_parallel_scripts: usize,
    /// Bytes of a script's output kept (its end).
    pub script_output_limit: usize,
    /// Script runs kept per instance for `roboconf logs`.
    pub runs_kept: u64,
    /// Ports never given to `random[port]` variables (as Roboconf's preference).
    pub forbidden_ports: Vec<u16>,
    /// The range `random[port]` variables are given ports from, lowest free first
    /// (Roboconf's 10000–65500): `[low, high]`; `ROBOCONF_RANDOM_PORTS=low-high`.
    pub random_ports: [u16; 2],
    /// How often withdrawn exports are acknowledged and collected, in seconds.
    pub collect_every_secs: u64,
    /// How long a withdrawal stands before it is acknowledged for collection, in seconds.
    pub collect_after_secs: u64,
    /// Seconds between two rounds of the probes of the instances this agent hosts
    /// (Roboconf's 20 s).
    pub probe_period_secs: u64,
    /// Seconds one probe may take (an unreachable target does not block the others).
    pub probe_timeout_secs: u64,
    /// The SMTP relay of the commands' `email` instruction (on the coordinator's leader).
    pub email: Option<Email>,
    /// The AMQP bridge (`[amqp]`): off when absent.
    pub amqp: Option<crate::amqp::Config>,
    /// The HTTP API, live events, metrics and console (`[http]`, `--http ADDR`): off
    /// when absent.
    pub http: Option<crate::http::Config>,
    /// The Puppet plug-in (`[puppet]`): the program, where listed modules are looked
    /// for, and whether the Forge may be used.
    pub puppet: Puppet,
    /// What is logged: a `tracing` filter (`info`, `roboconf_agent=debug,warn`...);
    /// `RUST_LOG` and then `--log` win over it.
    pub log: String,
    /// `human` (the default) or `json` (one object per line, for collectors).
    pub log_format: LogFormat,
    /// `--reset-store`: start although the store is gone while the data dir still holds
    /// applications or instance folders (a one-time decision, never read from the file).
    #[serde(skip)]
    pub reset_store: bool,
    /// From a user data file: join the mesh of this member with this token at start
    /// (when not a member yet).
    #[serde(skip)]
    pub join: Option<(Vec<String>, String)>,
    /// The user data file `join` came from: read again before each attempt (a new
    /// coordinator leader writes its own token there).
    #[serde(skip)]
    pub user_data: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: default_data_dir(),
            listen: Vec::new(),
            peer: Vec::new(),
            mdns: false,
            host: Vec::new(),
            node: String::new(),
            ip: "127.0.0.1".into(),
            script_timeout_secs: 300,
            max_parallel_scripts: 16,
            script_output_limit: 64 * 1024,
            runs_kept: 20,
            forbidden_ports: Vec::new(),
            random_ports: [10_000, 65_500],
            collect_every_secs: 30,
            collect_after_secs: 60,
            probe_period_secs: 20,
            probe_timeout_secs: 10,
            email: None,
            amqp: None,
            http: None,
            puppet: Puppet::default(),
            log: "info".into(),
            log_format: LogFormat::Human,
            reset_store: false,
            join: None,
            user_data: None,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    /// For people: time, level, what, fields.
    Human,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The SMTP relay (`[email]`; Roboconf's `mail.*` preferences). Plain SMTP, with
/// `AUTH PLAIN` when a user is given: use a relay on the agent's host or network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Added to every e-mail's recipients (Roboconf's `email.default.recipients`).
    pub default_recipients: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            host: "127.0.0.1".into(),
            port: 25,
            from: format!("roboconf@{}", hostname()),
            username: None,
            password: None,
            default_recipients: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl Email {
    pub fn relay(&self) -> crate::autonomic::email::Relay {
        crate::autonomic::email::Relay {
            host: self.host.clone(),
            port: self.port,
            from: self.from.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
        }
    }
}

/// The Puppet plug-in's settings (`[puppet]`). Its timeout and output bounds are the
/// scripts' (`script-timeout-secs`, `script-output-limit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Puppet {
    /// The `puppet` program: a path, or a name looked up in `PATH`.
    pub program: PathBuf,
    /// Folders holding Puppet modules that recipes' `modules.properties` may name (after
    /// the recipe itself and the application's `puppet-modules/`). By default Debian's,
    /// where its `puppet-module-*` packages install.
    pub module_dirs: Vec<PathBuf>,
    /// Whether a listed module found in none of those folders may be installed from the
    /// Forge (as Roboconf always does). Set it to false on air-gapped sites: such a
    /// module then fails `deploy` at once with where it was looked for.
    pub forge: bool,
    /// Another Forge (`puppet module install --module_repository URL`), e.g. a mirror.
    pub forge_url: Option<String>,
    /// Seconds to wait for the Forge to accept a connection before deciding it is out of
    /// reach.
    pub forge_timeout_secs: u64,
}

impl Default for Puppet {
    /// The plug-in's own defaults.
    fn default() -> Self {
        let p = roboconf_plugins::puppet::Puppet::default();
        Puppet {
            program: p.program,
            module_dirs: p.module_dirs,
            forge: p.forge.allowed,
            forge_url: p.forge.url,
            forge_timeout_secs: p.forge.probe_timeout.as_secs(),
        }
    }
}

impl Puppet {
    /// The plug-in these settings make, with the scripts' bounds.
    pub fn plugin(
        &self,
        timeout: std::time::Duration,
        capture_limit: usize,
    ) -> roboconf_plugins::puppet::Puppet {
        roboconf_plugins::puppet::Puppet {
            program: self.program.clone(),
            timeout,
            capture_limit,
            module_dirs: self.module_dirs.clone(),
            forge: roboconf_plugins::puppet::Forge {
                allowed: self.forge,
                url: self.forge_url.clone(),
                probe_timeout: std::time::Duration::from_secs(self.forge_timeout_secs.max(1)),
            },
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.program.as_os_str().is_empty() {
            return Err("[puppet] program must not be empty".into());
        }
        if let Some(u) = &self.forge_url {
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                return Err(format!(
                    "[puppet] forge-url `{u}` must be an http:// or https:// URL"
                ));
            }
        }
        if self.forge_timeout_secs == 0 {
            return Err("[puppet] forge-timeout-secs must be at least 1".into());
        }
        Ok(())
    }
}

/// Why a configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// `$ROBOCONF_DATA_DIR`, else `$XDG_DATA_HOME/roboconf`, else `~/.local/share/roboconf`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ROBOCONF_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("roboconf");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".local/share/roboconf")
}

/// The machine's host name (`local` when it has none).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "local".into())
}

/// The default name of a node: the host name, then the end of its id when it has one
/// (peer ids end in base58 characters; six of them make a clash on one host unlikely).
pub fn default_node_name(id: Option<&str>) -> String {
    let host = hostname();
    match id.map(|i| &i[i.len().saturating_sub(6)..]) {
        Some(tail) if !tail.is_empty() => format!("{host}-{tail}"),
        _ => host,
    }
}

impl Config {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Error> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| Error::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                toml::from_str(&text).map_err(|e| Error::Parse {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => Config::default(),
        };
        if let Some(d) = std::env::var_os("ROBOCONF_DATA_DIR") {
            cfg.data_dir = PathBuf::from(d);
        }
        if let Ok(n) = std::env::var("ROBOCONF_NODE") {
            cfg.node = n;
        }
        if let Ok(ip) = std::env::var("ROBOCONF_IP") {
            cfg.ip = ip;
        }
        if let Some(p) = std::env::var("ROBOCONF_PROBE_PERIOD_SECS")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            cfg.probe_period_secs = p;
        }
        // Machines launched by a `local` target inherit it, like the AMQP settings.
        if let Ok(r) = std::env::var("ROBOCONF_RANDOM_PORTS") {
            cfg.random_ports = r
                .split_once('-')
                .and_then(|(l, h)| Some([l.trim().parse().ok()?, h.trim().parse().ok()?]))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "ROBOCONF_RANDOM_PORTS=`{r}`: expected LOW-HIGH, e.g. 10000-65500"
                    ))
                })?;
        }
        // The AMQP bridge from the environment (machines launched by a `local` target
        // inherit it): the broker's URL, and the domain.
        if let Ok(url) = std::env::var("ROBOCONF_AMQP_URL") {
            cfg.amqp.get_or_insert_with(Default::default).url = Some(url);
        }
        if let Ok(d) = std::env::var("ROBOCONF_AMQP_DOMAIN") {
            cfg.amqp.get_or_insert_with(Default::default).domain = d;
        }
        Ok(cfg)
    }

    /// The hosted roots as (application, root path).
    pub fn hosts(&self) -> Result<Vec<(String, String)>, Error> {
        self.host
            .iter()
            .map(|h| match h.split_once(':') {
                Some((app, root)) if !app.is_empty() && root.starts_with('/') && root.len() > 1 && !root[1..].contains('/') => {
                    Ok((app.to_string(), root.to_string()))
                }
                _ => Err(Error::Invalid(format!("`--host {h}`: expected APP:/ROOT, the application's name and a root instance's path"))),
            })
            .collect()
    }

    pub fn validate(&self) -> Result<(), Error> {
        self.hosts()?;
        if self.script_timeout_secs == 0 {
            return Err(Error::Invalid(
                "script-timeout-secs must be at least 1".into(),
            ));
        }
        if self.collect_every_secs == 0 || self.collect_after_secs == 0 {
            return Err(Error::Invalid(
                "collect-every-secs and collect-after-secs must be at least 1".into(),
            ));
        }
        if self.probe_period_secs == 0 || self.probe_timeout_secs == 0 {
            return Err(Error::Invalid(
                "probe-period-secs and probe-timeout-secs must be at least 1".into(),
            ));
        }
        let [low, high] = self.random_ports;
        if low == 0 || low > high {
            return Err(Error::Invalid(format!(
                "random-ports [{low}, {high}]: expected 1 <= low <= high"
            )));
        }
        if self.max_parallel_scripts == 0 {
            return Err(Error::Invalid(
                "max-parallel-scripts must be at least 1".into(),
            ));
        }
        for a in self.listen.iter().chain(&self.peer) {
            if a.parse::<libp2p::Multiaddr>().is_err() {
                return Err(Error::Invalid(format!(
                    "`{a}` is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/0)"
                )));
            }
        }
        if !self.node.is_empty() && self.node.trim().is_empty() {
            return Err(Error::Invalid("node must not be blank".into()));
        }
        roboconf_model::limits::check_name("node", &self.node).map_err(Error::Invalid)?;
        for (app, root) in self.hosts()? {
            roboconf_model::limits::check_name("application", &app)
                .and_then(|()| roboconf_model::limits::check_instance_path(&root))
                .map_err(|e| Error::Invalid(format!("`--host`: {e}")))?;
        }
        self.puppet.validate().map_err(Error::Invalid)?;
        if let Some(h) = &self.http {
            h.validate().map_err(Error::Invalid)?;
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(Error::Invalid(format!(
                "log `{}` is not a filter (e.g. info, or roboconf_agent=debug,warn)",
                self.log
            )));
        }
        if self.ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::Invalid(format!(
                "ip `{}` is not an IP address",
                self.ip
            )));
        }
        Ok(())
    }

    pub fn socket_path(&self) -> PathBuf {
        crate::control::socket_path(&self.data_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_validation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("agent.toml");
        std::fs::write(
            &f,
            "data-dir = \"/tmp/x\"\nhost = [\"lamp:/vm-lb\"]\nscript-timeout-secs = 10\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).expect("load");
        assert_eq!(c.script_timeout_secs, 10);
        assert_eq!(
            c.hosts().unwrap(),
            vec![("lamp".to_string(), "/vm-lb".to_string())]
        );
        c.validate().expect("valid");
        std::fs::write(&f, "nonsense = 1\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
        let bad = Config {
            host: vec!["lamp/vm".into()],
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        std::fs::write(&f, "random-ports = [20001, 20099]\n").unwrap();
        let c = Config::load(Some(&f)).expect("load");
        assert_eq!(c.random_ports, [20001, 20099]);
        c.validate().expect("valid");
        for bad in [[0, 10], [20, 10]] {
            let c = Config {
                random_ports: bad,
                ..Config::default()
            };
            assert!(matches!(c.validate(), Err(e) if e.to_string().contains("random-ports")));
        }
    }

    #[test]
    fn the_packaged_config_file_is_read_and_valid() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/agent.toml");
        let c = Config::load(Some(&f)).expect("packaging/agent.toml loads");
        c.validate().expect("packaging/agent.toml is valid");
        assert_eq!(c.listen, vec!["/ip4/0.0.0.0/tcp/4001".to_string()]);
        assert_eq!(c.script_timeout_secs, Config::default().script_timeout_secs);
    }

    #[test]
    fn an_amqp_table_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("agent.toml");
        let text = "[amqp]\ndomain = \"prod\"\ncommands = true\n\
                    \"net.roboconf.messaging.rabbitmq.server.ip\" = \"mq:5673\"\n";
        std::fs::write(&f, text).unwrap();
        let c = Config::load(Some(&f)).expect("load");
        c.validate().expect("valid");
        let a = c.amqp.as_ref().expect("[amqp]");
        assert!(a.commands);
        assert_eq!(
            a.effective_url().unwrap().to_string(),
            "amqp://guest:***@mq:5673/%2f"
        );
        assert!(Config::default().amqp.is_none(), "off unless configured");
        std::fs::write(&f, "[amqp]\ndomain = \"a b\"\n").unwrap();
        let c = Config::load(Some(&f)).expect("load");
        // A bridge's settings never stop the agent: the bridge is down, and says why.
        c.validate().expect("the agent starts");
        let a = c.amqp.as_ref().expect("[amqp]");
        assert!(matches!(a.validate(), Err(e) if e.to_string().contains("domain")));
        std::fs::write(&f, "[amqp]\nnope = 1\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
    }

    #[test]
    fn a_puppet_table_is_read_and_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("agent.toml");
        std::fs::write(
            &f,
            "[puppet]\nprogram = \"/opt/puppetlabs/bin/puppet\"\nmodule-dirs = [\"/srv/modules\"]\n\
             forge = false\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).expect("load");
        c.validate().expect("valid");
        let p = c.puppet.plugin(std::time::Duration::from_secs(60), 1024);
        assert_eq!(p.program, Path::new("/opt/puppetlabs/bin/puppet"));
        assert_eq!(p.module_dirs, vec![PathBuf::from("/srv/modules")]);
        assert!(!p.forge.allowed);
        assert!(
            Config::default().puppet.forge,
            "Roboconf's behaviour unless told"
        );
        std::fs::write(&f, "[puppet]\nforge-url = \"ftp://mirror\"\n").unwrap();
        let c = Config::load(Some(&f)).expect("load");
        assert!(matches!(c.validate(), Err(e) if e.to_string().contains("forge-url")));
        std::fs::write(&f, "[puppet]\nforge-timeout = 1\n").unwrap();
        assert!(Config::load(Some(&f)).is_err());
    }
}
