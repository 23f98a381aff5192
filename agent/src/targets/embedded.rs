//! The `embedded` target with an address (Roboconf's name and keys): a machine is an
//! agent started over SSH on one host of the `embedded.ip` pool (the key's hash picks
//! it, so every leader looks for a key's machine at the same place), in its own folder
//! `<embedded.remote.dir>/<app>-<root>-g<n>`: the agent binary, its identity (made here,
//! so its member id is known before it starts), its user data, its log, and its PID and
//! start time. It runs with the system `ssh` and `scp` (`scp.user`, `scp.keyfile`,
//! `scp.known.hosts.file`, `scp.disable.host.validation`, `embedded.port`), in batch
//! mode: a refused key or an unknown host key is an error with ssh's own words, and a
//! creation that fails half-way removes what it copied. The agent binary is kept on the
//! host by its SHA-256 (`<embedded.remote.dir>/.binaries/<sha256>`, checked with
//! `sha256sum` after the copy, copied once per build); a host of another architecture
//! (`uname -m`) gets a build for it from the mesh (`targets::carry`).

use super::{machine_name, Context, Created, Failure, Target, UserData};
use roboconf_core::coord::MachineKey;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new agent has to open its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Embedded {
    ips: Vec<String>,
    port: String,
    user: String,
    keyfile: Option<String>,
    known_hosts: Option<String>,
    check_host: bool,
    remote_dir: String,
    binary: PathBuf,
    /// `embedded.binary` (or `agent.sha256`) chose the binary: no architecture check.
    explicit: bool,
    ctx: Context,
}

/// A single-quoted shell word.
fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl Embedded {
    pub fn new(props: &BTreeMap<String, String>, ctx: &Context) -> Result<Embedded, String> {
        let ips: Vec<String> = props
            .get("embedded.ip")
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() {
            return Err(
                "embedded target without `embedded.ip`: its machines are started by hand".into(),
            );
        }
        let binary = match props.get("embedded.binary") {
            Some(b) => PathBuf::from(b),
            None => std::env::current_exe().map_err(|e| format!("the agent's binary: {e}"))?,
        };
        Ok(Embedded {
            ips,
            port: props
                .get("embedded.port")
                .cloned()
                .unwrap_or_else(|| "22".into()),
            user: props
                .get("scp.user")
                .cloned()
                .unwrap_or_else(|| "root".into()),
            keyfile: props.get("scp.keyfile").cloned(),
            known_hosts: props.get("scp.known.hosts.file").cloned(),
            check_host: props
                .get("scp.disable.host.validation")
                .is_none_or(|v| v.trim() != "true"),
            remote_dir: props
                .get("embedded.remote.dir")
                .cloned()
                .unwrap_or_else(|| "/tmp/roboconf-machines".into()),
            binary,
            explicit: props.contains_key("embedded.binary"),
            ctx: ctx.clone(),
        })
    }

    /// The pool's host for a key.
    fn host(&self, key: &MachineKey) -> String {
        let h = roboconf_core::mesh::fnv1a(machine_name(key).as_bytes());
        self.ips[(h % self.ips.len() as u64) as usize].clone()
    }

    fn options(&self, cmd: &mut Command, port_flag: &str) {
        cmd.args([port_flag, &self.port]);
        cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]);
        if let Some(k) = &self.keyfile {
            cmd.args(["-i", k]);
        }
        if let Some(f) = &self.known_hosts {
            cmd.arg("-o").arg(format!("UserKnownHostsFile={f}"));
        }
        cmd.arg("-o").arg(match self.check_host {
            true => "StrictHostKeyChecking=yes",
            false => "StrictHostKeyChecking=no",
        });
        cmd.stdin(Stdio::null());
    }

    /// Runs a shell command on `ip`; its standard output, or why not.
    fn ssh(&self, ip: &str, script: &str) -> Result<String, String> {
        let mut cmd = Command::new("ssh");
        self.options(&mut cmd, "-p");
        cmd.arg(format!("{}@{ip}", self.user)).arg("--").arg(script);
        let o = cmd
            .output()
            .map_err(|e| format!("embedded target: cannot run ssh: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "embedded target: ssh {}@{ip}:{} failed: {}",
                self.user,
                self.port,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    }

    fn scp(&self, ip: &str, from: &std::path::Path, to: &str) -> Result<(), String> {
        let mut cmd = Command::new("scp");
        self.options(&mut cmd, "-P");
        cmd.arg("-q")
            .arg(from)
            .arg(format!("{}@{ip}:{to}", self.user));
        let o = cmd
            .output()
            .map_err(|e| format!("embedded target: cannot run scp: {e}"))?;
        if !o.status.success() {
            return Err(format!(
                "embedded target: cannot copy {} to {}@{ip}:{to}: {}",
                from.display(),
                self.user,
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        Ok(())
    }

    fn dir(&self, key: &MachineKey) -> String {
        format!(
            "{}/{}",
            self.remote_dir.trim_end_matches('/'),
            machine_name(key)
        )
    }

    /// The binary for a host of `arch`, with its SHA-256.
    fn binary_for(&self, arch: &str) -> Result<(PathBuf, String), String> {
        if self.explicit {
            let own = crate::binary::own()?;
            if own.path == self.binary {
                return Ok((own.path.clone(), own.info.sha256.clone()));
            }
            let (sha, _) = crate::binary::hash_file(&self.binary)
                .map_err(|e| format!("embedded target: {}: {e}", self.binary.display()))?;
            return Ok((self.binary.clone(), sha));
        }
        let b = self
            .ctx
            .binary_for(arch, None)
            .map_err(|e| format!("embedded target: {e}"))?;
        Ok((b.path, b.info.sha256))
    }

    /// The binary on the host, kept by its hash and checked after the copy; linked as
    /// `<dir>/roboconf`.
    fn place_binary(&self, ip: &str, binary: &(PathBuf, String), dir: &str) -> Result<(), String> {
        let (path, sha) = binary;
        let cache = format!("{}/.binaries", self.remote_dir.trim_end_matches('/'));
        let kept = format!("{cache}/{sha}");
        let check = format!(
            "mkdir -p {c} && chmod 700 {c} && [ \"$(sha256sum {k} 2>/dev/null | cut -d' ' -f1)\" = {sha} ] && echo held",
            c = q(&cache),
            k = q(&kept)
        );
        if !self.ssh(ip, &check).unwrap_or_default().starts_with("held") {
            // Its own part per machine: two launches on one host may copy at once.
            let part = format!("{kept}.{}.part", dir.rsplit('/').next().unwrap_or("x"));
            self.scp(ip, path, &part)?;
            let verify = format!(
                "p={p}; if [ \"$(sha256sum \"$p\" | cut -d' ' -f1)\" = {sha} ]; then chmod 755 \"$p\" && mv \"$p\" {k}; else rm -f \"$p\"; echo mismatch; fi",
                p = q(&part),
                k = q(&kept)
            );
            if self.ssh(ip, &verify)?.contains("mismatch") {
                return Err(format!(
                    "embedded target: the agent binary copied to {ip} does not match its hash {sha}"
                ));
            }
        }
        self.ssh(ip, &format!("ln -sf {} {}/roboconf", q(&kept), q(dir)))
            .map(|_| ())
    }

    /// The member id of the machine's agent when it runs (same PID, same start time).
    fn running(&self, ip: &str, dir: &str) -> Result<Option<String>, String> {
        let d = q(dir);
        let script = format!(
            "d={d}; if [ -f \"$d/pid\" ]; then p=$(cat \"$d/pid\"); \
             st=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); s=$(cut -d' ' -f22 /proc/$p/stat 2>/dev/null); \
             if [ -n \"$s\" ] && [ \"$st\" != Z ] && [ \"$s\" = \"$(cat \"$d/start\" 2>/dev/null)\" ]; then cat \"$d/node\"; fi; fi"
        );
        let out = self.ssh(ip, &script)?;
        let node = out.trim();
        Ok((!node.is_empty()).then(|| node.to_string()))
    }
}

/// A local folder for what is copied, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(key: &MachineKey) -> Result<Scratch, Failure> {
        let dir = std::env::temp_dir().join(format!(
            "roboconf-embedded-{}-{}",
            std::process::id(),
            machine_name(key)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            })
            .map_err(|e| Failure::clean(format!("embedded target: {}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Target for Embedded {
    fn create(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure> {
        let ip = self.host(key);
        let dir = self.dir(key);
        let machine_id = format!("{ip}:{}", machine_name(key));
        let created = |node: String| Created {
            machine_id: machine_id.clone(),
            address: ip.clone(),
            node,
        };
        if let Some(node) = self.running(&ip, &dir).map_err(Failure::clean)? {
            // Found: its user data gets this leader's token and addresses (read again by
            // the agent before each attempt to join).
            if let Ok(local) = Scratch::new(key) {
                let ud_path = local.0.join("user-data.json");
                if std::fs::write(
                    &ud_path,
                    serde_json::to_vec_pretty(user).unwrap_or_default(),
                )
                .is_ok()
                {
                    let _ = self.scp(&ip, &ud_path, &format!("{dir}/user-data.json"));
                }
            }
            return Ok(created(node));
        }
        // Made here: the identity (the member id is known before the agent starts) and
        // the user data.
        let local = Scratch::new(key)?;
        let identity = crate::meshio::identity(&local.0)
            .map_err(|e| Failure::clean(format!("embedded target: identity: {e}")))?;
        let node = identity.public().to_peer_id().to_string();
        let ud_path = local.0.join("user-data.json");
        std::fs::write(
            &ud_path,
            serde_json::to_vec_pretty(user).unwrap_or_default(),
        )
        .map_err(|e| Failure::clean(format!("embedded target: user data: {e}")))?;
        let d = q(&dir);
        let cleanup = |why: String| -> Failure {
            match self.ssh(&ip, &format!("rm -rf {d}")) {
                Ok(_) => Failure::clean(why),
                Err(e) => Failure {
                    reason: format!("{why}; and what was copied could not be removed: {e}"),
                    left_behind: true,
                },
            }
        };
        let arch = self
            .ssh(
                &ip,
                &format!("mkdir -p {d}/agent && chmod 700 {d} {d}/agent && uname -m"),
            )
            .map_err(Failure::clean)?;
        let binary = self.binary_for(arch.trim()).map_err(&cleanup)?;
        self.place_binary(&ip, &binary, &dir).map_err(&cleanup)?;
        let copies = [
            (
                local.0.join("identity.key"),
                format!("{dir}/agent/identity.key"),
            ),
            (ud_path.clone(), format!("{dir}/user-data.json")),
        ];
        for (from, to) in &copies {
            self.scp(&ip, from, to).map_err(&cleanup)?;
        }
        let start = format!(
            "d={d}; cd \"$d\" && chmod 600 agent/identity.key user-data.json && \
             {{ setsid ./roboconf --data-dir \"$d/agent\" agent --listen /ip4/{ip}/tcp/0 --user-data \"$d/user-data.json\" </dev/null >\"$d/agent.log\" 2>&1 & echo $! > \"$d/pid\"; }} && \
             cut -d' ' -f22 /proc/$(cat \"$d/pid\")/stat > \"$d/start\" && echo {node} > \"$d/node\""
        );
        self.ssh(&ip, &start).map_err(&cleanup)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let probe = format!(
                "d={d}; if [ -S \"$d/agent/control.sock\" ]; then echo up; elif [ ! -d /proc/$(cat \"$d/pid\") ]; then echo gone; tail -3 \"$d/agent.log\"; fi"
            );
            let out = self.ssh(&ip, &probe).map_err(|e| Failure {
                reason: e,
                left_behind: true,
            })?;
            if out.starts_with("up") {
                return Ok(created(node));
            }
            if let Some(log) = out.strip_prefix("gone") {
                let why = format!(
                    "embedded target: the agent exited at start on {ip}: {}",
                    log.trim().replace('\n', " | ")
                );
                return Err(cleanup(why));
            }
            if Instant::now() >= deadline {
                return Err(Failure {
                    reason: format!(
                        "embedded target: the agent on {ip} did not open its control socket within {} s (log: {dir}/agent.log)",
                        START_TIMEOUT.as_secs()
                    ),
                    left_behind: true,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn terminate(&self, key: &MachineKey, machine_id: &str) -> Result<(), String> {
        let ip = machine_id
            .split_once(':')
            .map_or_else(|| self.host(key), |(ip, _)| ip.to_string());
        let d = q(&self.dir(key));
        let script = format!(
            "d={d}; [ -d \"$d\" ] || exit 0; \
             if [ -f \"$d/pid\" ]; then p=$(cat \"$d/pid\"); \
               if [ -d /proc/$p ]; then timeout 15 \"$d/roboconf\" --data-dir \"$d/agent\" leave >/dev/null 2>&1; \
                 for i in $(seq 50); do [ -d /proc/$p ] && [ \"$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null)\" != Z ] || break; sleep 0.1; done; \
                 kill -TERM -- -$p 2>/dev/null; fi; \
               kill -KILL -- -$p 2>/dev/null; fi; \
             rm -rf \"$d\""
        );
        self.ssh(&ip, &script).map(|_| ())
    }

    fn is_running(&self, key: &MachineKey) -> bool {
        let ip = self.host(key);
        matches!(self.running(&ip, &self.dir(key)), Ok(Some(_)))
    }
}
