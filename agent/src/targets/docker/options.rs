//! The `docker` target's settings read from a target file: Roboconf's keys
//! (`docker.endpoint`, `docker.image`, `docker.generate.image.from`,
//! `docker.option.run.<opt>`, `docker.option.env.<VAR>`) turned into what the engine's
//! create-container call takes. Option names are Roboconf's, normalised the way it
//! accepts them (`cpu-shares` and `cpushares` alike); the supported set is the one
//! `roboconf validate` checks (model `targets`), and anything else is refused here too.

use bollard::models::{HostConfig, RestartPolicy, RestartPolicyNameEnum};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the engine is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(String),
    /// `host:port`.
    Tcp(String),
}

impl Endpoint {
    pub fn parse(v: &str) -> Result<Endpoint, String> {
        let v = v.trim();
        if let Some(p) = v.strip_prefix("unix://") {
            return Ok(Endpoint::Unix(p.to_string()));
        }
        if v.starts_with('/') {
            return Ok(Endpoint::Unix(v.to_string()));
        }
        for scheme in ["tcp://", "http://"] {
            if let Some(a) = v.strip_prefix(scheme) {
                return Ok(Endpoint::Tcp(a.trim_end_matches('/').to_string()));
            }
        }
        Err(format!(
            "`docker.endpoint` must be unix:///path or tcp://host:port, not `{v}`"
        ))
    }

    /// The host the engine runs on, as the mesh reaches it.
    pub fn host(&self) -> String {
        match self {
            Endpoint::Unix(_) => "127.0.0.1".into(),
            Endpoint::Tcp(a) => a.rsplit_once(':').map_or(a.clone(), |(h, _)| h.into()),
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{p}"),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// A target file's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoint: Endpoint,
    /// `docker.image`: `None` runs the minimal image made from the agent binary.
    pub image: Option<String>,
    /// `docker.generate.image.from`, resolved against the target file's folder.
    pub generate_from: Option<PathBuf>,
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub host: HostConfig,
    /// `docker.option.env.<VAR>`, placeholders not yet replaced.
    pub env: Vec<(String, String)>,
    /// The agent's listen address in the container.
    pub listen: String,
    /// `agent.sha256`: the agent build the container runs.
    pub pinned: Option<String>,
}

fn bool_of(k: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("`{k}` must be true or false, not `{v}`")),
    }
}

/// A size in bytes: digits with an optional `b`, `k`, `m` or `g`.
fn bytes_of(k: &str, v: &str) -> Result<i64, String> {
    let lower = v.to_ascii_lowercase();
    let (digits, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => lower.split_at(i),
        None => (lower.as_str(), ""),
    };
    let mul: i64 = match unit {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return Err(format!("`{k}` must be a size (512m, 1g), not `{v}`")),
    };
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("`{k}` must be a size (512m, 1g), not `{v}`"))
}

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The supported run options, in Roboconf's dashed form (the list `validate` checks).
use roboconf_model::targets::RUN_OPTIONS;

impl Settings {
    /// Reads the keys of a target file (`target_dir`: the folder holding it, for
    /// `docker.generate.image.from`).
    pub fn read(
        props: &BTreeMap<String, String>,
        target_dir: Option<&Path>,
    ) -> Result<Settings, String> {
        let endpoint = Endpoint::parse(
            props
                .get("docker.endpoint")
                .map_or("unix:///var/run/docker.sock", String::as_str),
        )?;
        let generate_from = match props.get("docker.generate.image.from") {
            None => None,
            Some(d) => {
                let p = Path::new(d.trim());
                Some(match (p.is_absolute(), target_dir) {
                    (true, _) => p.to_path_buf(),
                    (false, Some(t)) => t.join(p),
                    (false, None) => {
                        return Err(format!(
                            "`docker.generate.image.from = {d}`: the target file's folder is not known here"
                        ))
                    }
                })
            }
        };
        let mut s = Settings {
            endpoint,
            image: props
                .get("docker.image")
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty()),
            generate_from,
            hostname: None,
            user: None,
            host: HostConfig::default(),
            env: Vec::new(),
            listen: props
                .get("docker.agent.listen")
                .cloned()
                .unwrap_or_else(|| "/ip4/0.0.0.0/tcp/0".into()),
            pinned: props.get("agent.sha256").cloned(),
        };
        for (k, v) in props {
            let v = v.trim();
            if let Some(var) = k.strip_prefix("docker.option.env.") {
                s.env.push((var.to_string(), v.to_string()));
            } else if let Some(opt) = k.strip_prefix("docker.option.run.") {
                s.run_option(k, opt, v)?;
            }
        }
        Ok(s)
    }

    fn run_option(&mut self, k: &str, opt: &str, v: &str) -> Result<(), String> {
        let norm: String = opt
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let h = &mut self.host;
        match norm.as_str() {
            "hostname" => self.hostname = Some(v.to_string()),
            "user" => self.user = Some(v.to_string()),
            "networkmode" => h.network_mode = Some(v.to_string()),
            "memory" => h.memory = Some(bytes_of(k, v)?),
            "memoryswap" => {
                h.memory_swap = Some(match v {
                    "-1" => -1,
                    _ => bytes_of(k, v)?,
                })
            }
            "cpushares" => {
                h.cpu_shares = Some(
                    v.parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 2)
                        .ok_or_else(|| format!("`{k}` must be an integer ≥ 2, not `{v}`"))?,
                )
            }
            "cpus" => {
                let n = v
                    .parse::<f64>()
                    .ok()
                    .filter(|n| *n > 0.0)
                    .ok_or_else(|| format!("`{k}` must be a number of CPUs, not `{v}`"))?;
                h.nano_cpus = Some((n * 1e9) as i64);
            }
            "cpusetcpus" => h.cpuset_cpus = Some(v.to_string()),
            "binds" | "volumes" => h.binds.get_or_insert_with(Vec::new).extend(list(v)),
            "restartpolicy" => {
                let (name, count) = match v.split_once(':') {
                    Some((n, c)) => (n, Some(c)),
                    None => (v, None),
                };
                let name = match name {
                    "no" => RestartPolicyNameEnum::NO,
                    "always" => RestartPolicyNameEnum::ALWAYS,
                    "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
                    "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
                    _ => {
                        return Err(format!(
                            "`{k}` must be no, always, unless-stopped or on-failure[:N], not `{v}`"
                        ))
                    }
                };
                let count = match count {
                    None => None,
                    Some(c) => Some(
                        c.parse::<i64>()
                            .map_err(|_| format!("`{k}`: `{c}` is not a number of retries"))?,
                    ),
                };
                h.restart_policy = Some(RestartPolicy {
                    name: Some(name),
                    maximum_retry_count: count,
                });
            }
            "capadd" => h.cap_add = Some(list(v)),
            "capdrop" => h.cap_drop = Some(list(v)),
            "privileged" => h.privileged = Some(bool_of(k, v)?),
            "dns" => h.dns = Some(list(v)),
            "extrahosts" => h.extra_hosts = Some(list(v)),
            _ => {
                return Err(format!(
                    "`{k}`: this mesh does not support the run option `{opt}` (supported: {})",
                    RUN_OPTIONS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// `docker.option.env.*` with Roboconf's placeholders replaced.
    pub fn environment(&self, app: &str, root: &str, messaging: &str) -> Vec<String> {
        self.env
            .iter()
            .map(|(k, v)| {
                let v = v
                    .replace("<application-name>", app)
                    .replace("<scoped-instance-path>", root)
                    .replace("<scoped-messaging_type>", messaging);
                format!("{k}={v}")
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn roboconf_keys_become_create_options() {
        let s = Settings::read(
            &props(&[
                ("docker.endpoint", "tcp://10.0.0.5:4243"),
                ("docker.image", "web:1"),
                ("docker.generate.image.from", "img"),
                ("docker.option.run.cpushares", "512"),
                ("docker.option.run.memory", "256m"),
                ("docker.option.run.network-mode", "host"),
                ("docker.option.run.restart-policy", "on-failure:3"),
                ("docker.option.run.cap-add", "SYS_PTRACE, NET_ADMIN"),
                ("docker.option.run.volumes", "/srv:/srv:ro"),
                (
                    "docker.option.env.APP",
                    "<application-name> at <scoped-instance-path>",
                ),
            ]),
            Some(Path::new("/apps/x/graph/VM")),
        )
        .expect("settings");
        assert_eq!(s.endpoint, Endpoint::Tcp("10.0.0.5:4243".into()));
        assert_eq!(s.endpoint.host(), "10.0.0.5");
        assert_eq!(
            s.generate_from.as_deref(),
            Some(Path::new("/apps/x/graph/VM/img"))
        );
        assert_eq!(s.host.cpu_shares, Some(512));
        assert_eq!(s.host.memory, Some(256 << 20));
        assert_eq!(s.host.network_mode.as_deref(), Some("host"));
        assert_eq!(
            s.host
                .restart_policy
                .as_ref()
                .and_then(|r| r.maximum_retry_count),
            Some(3)
        );
        assert_eq!(
            s.host.cap_add,
            Some(vec!["SYS_PTRACE".to_string(), "NET_ADMIN".to_string()])
        );
        assert_eq!(
            s.environment("lamp", "/vm-1", "mesh"),
            vec!["APP=lamp at /vm-1".to_string()]
        );
        for bad in [
            ("docker.option.run.attach-stderr", "true"),
            ("docker.option.run.memory", "lots"),
            ("docker.option.run.restart-policy", "sometimes"),
            ("docker.endpoint", "ftp://x"),
        ] {
            assert!(Settings::read(&props(&[bad]), None).is_err(), "{bad:?}");
        }
    }
}
