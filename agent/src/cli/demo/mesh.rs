//! The demo's mesh: agent processes on loopback under one temporary folder, started,
//! joined and asked over their control sockets, and everything they started (machines,
//! the application's processes) killed and the folder removed when the demo ends.

use crate::api::{Request, Response, State};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(super) struct Node {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) child: Option<Child>,
}

pub(super) struct Demo {
    pub(super) root: PathBuf,
    pub(super) nodes: Vec<Node>,
    /// The node hosting the balancer.
    pub(super) lb: usize,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // The coordinator's machines (their agents' sessions).
        for pid in machine_pids(&self.root.join("roboconf-machines")) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        // Processes the application started (pid files in the working copies).
        for pid in pid_files(&self.root) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The PIDs the `local` target recorded for its machines.
pub(super) fn machine_pids(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("machine.json")).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter_map(|v| v["pid"].as_u64())
        .collect()
}

pub(super) fn pid_files(dir: &Path) -> Vec<String> {
    roboconf_model::app::list_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

pub(super) fn call(dir: &Path, req: &Request) -> Option<Response> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(crate::control::call(&crate::control::socket_path(dir), req))
        .ok()
}

/// The instances of `lamp` as the agent at `dir` shows them.
pub(super) fn instances(dir: &Path) -> Vec<crate::api::InstanceView> {
    match call(
        dir,
        &Request::Status {
            app: Some("lamp".into()),
        },
    ) {
        Some(Response::Status { apps }) => apps.into_iter().flat_map(|a| a.instances).collect(),
        _ => Vec::new(),
    }
}

pub(super) fn states(dir: &Path) -> Vec<(String, State)> {
    instances(dir)
        .into_iter()
        .map(|i| (i.path, i.state))
        .collect()
}

/// The machine of a root, as the coordinator's leader published it.
pub(super) fn machine(dir: &Path, root: &str) -> Option<crate::api::MachineView> {
    instances(dir)
        .into_iter()
        .find(|i| i.path == root)
        .and_then(|i| i.machine)
}

pub(super) fn wait_for(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

impl Demo {
    /// Starts an agent; the first one makes the mesh (`mesh init`), the others join it
    /// with a token from node1 (`mesh token` there, `join` here).
    pub(super) fn start_node(
        &mut self,
        hosts: &[String],
        join: Option<&str>,
    ) -> anyhow::Result<()> {
        let k = self.nodes.len() + 1;
        let name = format!("node{k}");
        let dir = self.root.join(&name);
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(self.root.join(format!("{name}.log")))?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("agent").arg("--data-dir").arg(&dir).args([
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--node",
            &name,
        ]);
        for h in hosts {
            cmd.args(["--host", h]);
        }
        // Probes every second (machines launched by the `local` target inherit it).
        cmd.env("ROBOCONF_PROBE_PERIOD_SECS", "1");
        let child = cmd.stdout(Stdio::null()).stderr(log).spawn()?;
        self.nodes.push(Node {
            name: name.clone(),
            dir: dir.clone(),
            child: Some(child),
        });
        wait_for(
            &format!("{name} to answer"),
            Duration::from_secs(20),
            || call(&dir, &Request::AppList).is_some(),
        )?;
        let joined = match join {
            None => call(
                &dir,
                &Request::MeshInit {
                    voters: None,
                    max_machines: None,
                    max_machines_per_app: None,
                },
            ),
            Some(addr) => {
                let token = match call(&self.nodes[0].dir, &Request::MeshToken { ttl_ms: 600_000 })
                {
                    Some(Response::Ok { message }) => message
                        .split_whitespace()
                        .last()
                        .unwrap_or_default()
                        .to_string(),
                    other => anyhow::bail!("mesh token on node1 failed: {other:?}"),
                };
                call(
                    &dir,
                    &Request::Join {
                        addr: addr.to_string(),
                        token,
                    },
                )
            }
        };
        match joined {
            Some(Response::Ok { message }) => {
                super::super::out(&format!("    {name}: {message}\n"))
            }
            other => anyhow::bail!("{name} could not enter the mesh: {other:?}"),
        }
        super::super::out(&format!(
            "    {name} is up, hosting {}\n",
            if hosts.is_empty() {
                "nothing".to_string()
            } else {
                hosts.join(", ")
            }
        ));
        Ok(())
    }

    pub(super) fn address(&self, k: usize) -> anyhow::Result<String> {
        let log = self.root.join(format!("{}.log", self.nodes[k].name));
        let mut addr = None;
        wait_for("a listening address", Duration::from_secs(20), || {
            addr = std::fs::read_to_string(&log).ok().and_then(|l| {
                l.lines().find_map(|x| {
                    x.strip_prefix("roboconf agent: listening on ")
                        .map(String::from)
                })
            });
            addr.is_some()
        })?;
        addr.ok_or_else(|| anyhow::anyhow!("no address"))
    }

    pub(super) fn lb_conf(&self) -> String {
        std::fs::read_to_string(
            self.nodes[self.lb]
                .dir
                .join("instances/lamp")
                .join(crate::core::folders::instance_folder("/vm-lb/lb"))
                .join("lb.conf"),
        )
        .unwrap_or_default()
    }
}
