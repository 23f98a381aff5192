//! The `docker` target (Roboconf's handler and keys): a machine is a container named
//! `rbcf-<app>-<root>-g<n>` that runs the agent, created through the engine's API
//! (`bollard`, the API version negotiated: Debian's engine answers an older one than the
//! client's default). The container is labelled with its key and its member id, so any
//! leader finds a key's container and its agent. Its identity (made here, so its member
//! id is known before it starts) and its user data are copied into the container before
//! it starts, never mounted, so a remote engine (`tcp://`) works the same; the agent
//! binary is the minimal image's own, or copied in for an image of the operator's. Start
//! is awaited until the agent says it is ready; a container that exits at once is removed
//! and the reason is the end of its log. Terminate asks the agent to leave the mesh, then
//! removes the container.

mod image;
mod options;

use super::{machine_name, Context, Created, Failure, Target, UserData};
use bollard::models::{ContainerCreateBody, ExecConfig};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, CreateImageOptions, InspectContainerOptions,
    LogsOptions, RemoveContainerOptions, UploadToContainerOptions,
};
use futures::StreamExt;
use options::Settings;
use roboconf_core::coord::MachineKey;
use roboconf_core::coord::TargetSpec;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a new agent has to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `leave` may take before the container is removed anyway.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(15);
/// The engine's answer to one call.
const API_TIMEOUT: u64 = 120;

/// One image build or import at a time on this agent (two launches at once must not
/// build the same image twice).
static BUILDING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Docker {
    settings: Settings,
    ctx: Context,
    rt: tokio::runtime::Handle,
}

fn label(key: &MachineKey) -> HashMap<String, String> {
    HashMap::from([
        ("roboconf.app".to_string(), key.app.clone()),
        ("roboconf.root".to_string(), key.root.clone()),
        (
            "roboconf.generation".to_string(),
            key.generation.to_string(),
        ),
    ])
}

fn is_missing(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// A tarball of files for `upload_to_container` at `/`: (path, mode, bytes).
fn files_tar(files: &[(&str, u32, &[u8])]) -> Result<Vec<u8>, String> {
    let mut t = tar::Builder::new(Vec::new());
    for (path, mode, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(0);
        t.append_data(&mut h, path, *bytes)
            .map_err(|e| format!("docker target: {e}"))?;
    }
    t.into_inner().map_err(|e| format!("docker target: {e}"))
}

impl Docker {
    pub fn new(spec: &TargetSpec, ctx: &Context) -> Result<Docker, String> {
        let settings = Settings::read(&spec.properties, ctx.target_dir.as_deref())
            .map_err(|e| format!("docker target `{}`: {e}", spec.id))?;
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| "docker target: no runtime to talk to the engine".to_string())?;
        Ok(Docker {
            settings,
            ctx: ctx.clone(),
            rt,
        })
    }

    async fn connect(&self) -> Result<bollard::Docker, String> {
        let ep = &self.settings.endpoint;
        let client = match ep {
            options::Endpoint::Unix(p) => {
                bollard::Docker::connect_with_unix(p, API_TIMEOUT, bollard::API_DEFAULT_VERSION)
            }
            options::Endpoint::Tcp(a) => {
                bollard::Docker::connect_with_http(a, API_TIMEOUT, bollard::API_DEFAULT_VERSION)
            }
        }
        .map_err(|e| format!("docker target: the engine at {ep} does not answer: {e}"))?;
        client
            .negotiate_version()
            .await
            .map_err(|e| format!("docker target: the engine at {ep} does not answer: {e}"))
    }

    async fn logs(d: &bollard::Docker, name: &str) -> String {
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        let mut out = String::new();
        let mut s = d.logs(name, Some(opts));
        while let Some(Ok(l)) = s.next().await {
            out.push_str(&l.to_string());
            if out.len() > 1 << 20 {
                break;
            }
        }
        out
    }

    fn tail(log: &str) -> String {
        let lines: Vec<&str> = log.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// The image to run, made when needed; whether the agent binary must be copied in.
    async fn image(&self, d: &bollard::Docker) -> Result<(String, Option<PathBuf>), String> {
        let arch = d
            .info()
            .await
            .ok()
            .and_then(|i| i.architecture)
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let ctx = self.ctx.clone();
        let pinned = self.settings.pinned.clone();
        let binary = tokio::task::spawn_blocking(move || ctx.binary_for(&arch, pinned.as_deref()))
            .await
            .map_err(|e| format!("docker target: {e}"))??;
        let _building = BUILDING.lock().await;
        let minimal = image::minimal_tag(&binary.info.sha256);
        let Some(wanted) = self.settings.image.clone() else {
            self.ensure_minimal(d, &minimal, &binary).await?;
            return Ok((minimal, None));
        };
        // An image made from the minimal one (`FROM ${ROBOCONF_AGENT_IMAGE}`) has this
        // binary already: its label says which.
        let copy = |i: &bollard::models::ImageInspect| {
            let has = i
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(image::BINARY_LABEL))
                == Some(&binary.info.sha256);
            (!has).then(|| binary.path.clone())
        };
        if let Ok(i) = d.inspect_image(&wanted).await {
            return Ok((wanted, copy(&i)));
        }
        let Some(dir) = self.settings.generate_from.clone() else {
            return Err(format!(
                "docker target: the image `{wanted}` is not on the engine at {} and no `docker.generate.image.from` says how to build it (images are never pulled)",
                self.settings.endpoint
            ));
        };
        if !dir.join("Dockerfile").is_file() {
            return Err(format!(
                "docker target: no Dockerfile in {} (`docker.generate.image.from`)",
                dir.display()
            ));
        }
        self.ensure_minimal(d, &minimal, &binary).await?;
        let context = tokio::task::spawn_blocking(move || image::context_tar(&dir))
            .await
            .map_err(|e| format!("docker target: {e}"))??;
        let opts = BuildImageOptions {
            t: Some(wanted.clone()),
            dockerfile: "Dockerfile".into(),
            rm: true,
            forcerm: true,
            buildargs: Some(HashMap::from([(
                "ROBOCONF_AGENT_IMAGE".to_string(),
                minimal.clone(),
            )])),
            ..Default::default()
        };
        let mut s = d.build_image(opts, None, Some(bollard::body_full(context.into())));
        let mut said = String::new();
        while let Some(r) = s.next().await {
            match r {
                Ok(info) => {
                    if let Some(m) = info.stream {
                        said = m;
                    }
                }
                Err(e) => {
                    return Err(format!(
                        "docker target: building `{wanted}` failed: {e} (last output: {})",
                        said.trim()
                    ))
                }
            }
        }
        match d.inspect_image(&wanted).await {
            Ok(i) => Ok((wanted, copy(&i))),
            Err(_) => Err(format!(
                "docker target: building `{wanted}` made no image (last output: {})",
                said.trim()
            )),
        }
    }

    /// Imports the minimal image for this binary unless the engine has it.
    async fn ensure_minimal(
        &self,
        d: &bollard::Docker,
        tag: &str,
        binary: &crate::binary::Local,
    ) -> Result<(), String> {
        let sha256 = &binary.info.sha256;
        let binary = binary.path.as_path();
        if d.inspect_image(tag).await.is_ok() {
            return Ok(());
        }
        let dir = tempfile::tempdir().map_err(|e| format!("docker target: {e}"))?;
        let tarball = dir.path().join("rootfs.tar");
        let (b, t) = (binary.to_path_buf(), tarball.clone());
        tokio::task::spawn_blocking(move || image::write_rootfs(&b, &t))
            .await
            .map_err(|e| format!("docker target: {e}"))??;
        let file = tokio::fs::File::open(&tarball)
            .await
            .map_err(|e| format!("docker target: {e}"))?;
        let chunks = futures::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let (repo, version) = tag.split_once(':').unwrap_or((tag, "latest"));
        let opts = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo.into()),
            tag: Some(version.into()),
            changes: vec![format!("LABEL {}={sha256}", image::BINARY_LABEL)],
            ..Default::default()
        };
        let mut s = d.create_image(Some(opts), Some(bollard::body_try_stream(chunks)), None);
        while let Some(r) = s.next().await {
            r.map_err(|e| format!("docker target: importing the agent's image failed: {e}"))?;
        }
        Ok(())
    }

    async fn create_async(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure> {
        let d = self.connect().await.map_err(Failure::clean)?;
        let name = format!("rbcf-{}", machine_name(key));
        let user_json = serde_json::to_vec_pretty(user).unwrap_or_default();
        match d
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => {
                let running = c.state.as_ref().and_then(|s| s.running) == Some(true);
                let node = c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get("roboconf.node").cloned());
                if let (true, Some(node)) = (running, node) {
                    // Created for this key already: this leader's token and addresses
                    // replace the user data the agent reads before each join attempt.
                    let tar =
                        files_tar(&[("etc/roboconf-agent/user-data.json", 0o600, &user_json)])
                            .map_err(Failure::clean)?;
                    let _ = d
                        .upload_to_container(
                            &name,
                            Some(UploadToContainerOptions {
                                path: "/".into(),
                                ..Default::default()
                            }),
                            bollard::body_full(tar.into()),
                        )
                        .await;
                    let address = self.address(&c_address(&c));
                    return Ok(Created {
                        machine_id: c.id.unwrap_or(name),
                        address,
                        node,
                    });
                }
                // A container of this key that stopped: it is replaced.
                let _ = d
                    .remove_container(
                        &name,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await;
            }
            Err(e) if is_missing(&e) => {}
            Err(e) => {
                return Err(Failure::clean(format!(
                    "docker target: cannot look for {name}: {e}"
                )))
            }
        }
        let (image_name, copy_binary) = self.image(&d).await.map_err(Failure::clean)?;
        let ident = tempfile::tempdir().map_err(|e| Failure::clean(format!("{e}")))?;
        let identity = crate::meshio::identity(ident.path())
            .map_err(|e| Failure::clean(format!("docker target: the agent's identity: {e}")))?;
        let node = identity.public().to_peer_id().to_string();
        let key_bytes = std::fs::read(ident.path().join("identity.key"))
            .map_err(|e| Failure::clean(format!("docker target: the agent's identity: {e}")))?;
        let mut labels = label(key);
        labels.insert("roboconf.node".into(), node.clone());
        let mut env = self.settings.environment(&key.app, &key.root, "mesh");
        env.push(format!("RBCF_VERSION={}", env!("CARGO_PKG_VERSION")));
        env.push("AGENT_PARAMETERS=file:/etc/roboconf-agent/user-data.json".into());
        let body = ContainerCreateBody {
            image: Some(image_name.clone()),
            cmd: Some(
                [
                    image::AGENT_PATH,
                    "--data-dir",
                    "/var/lib/roboconf",
                    "agent",
                    "--listen",
                    &self.settings.listen,
                    "--user-data",
                    "/etc/roboconf-agent/user-data.json",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            ),
            entrypoint: Some(Vec::new()),
            env: Some(env),
            labels: Some(labels),
            hostname: self.settings.hostname.clone(),
            user: self.settings.user.clone(),
            host_config: Some(self.settings.host.clone()),
            ..Default::default()
        };
        let created = d
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(|e| {
                Failure::clean(format!(
                    "docker target: cannot create a container of `{image_name}`: {e}"
                ))
            })?;
        let id = created.id;
        let result = self
            .start(&d, &id, &name, &key_bytes, &user_json, copy_binary)
            .await;
        match result {
            Ok(c) => Ok(Created {
                machine_id: id,
                address: self.address(&c),
                node,
            }),
            Err(reason) => {
                let removed = d
                    .remove_container(
                        &id,
                        Some(RemoveContainerOptions {
                            force: true,
                            v: true,
                            ..Default::default()
                        }),
                    )
                    .await;
                Err(Failure {
                    reason,
                    left_behind: removed.is_err(),
                })
            }
        }
    }

    /// Copies the agent's files in, starts the container and waits for the agent to be
    /// ready; its address as the engine reports it.
    async fn start(
        &self,
        d: &bollard::Docker,
        id: &str,
        name: &str,
        identity: &[u8],
        user_json: &[u8],
        binary: Option<PathBuf>,
    ) -> Result<String, String> {
        let mut files: Vec<(&str, u32, &[u8])> = vec![
            ("var/lib/roboconf/identity.key", 0o600, identity),
            ("etc/roboconf-agent/user-data.json", 0o600, user_json),
        ];
        let agent =
            match &binary {
                Some(p) => Some(tokio::fs::read(p).await.map_err(|e| {
                    format!("docker target: the agent binary {}: {e}", p.display())
                })?),
                None => None,
            };
        if let Some(a) = &agent {
            files.push((&image::AGENT_PATH[1..], 0o755, a));
        }
        let tar = files_tar(&files)?;
        d.upload_to_container(
            id,
            Some(UploadToContainerOptions {
                path: "/".into(),
                ..Default::default()
            }),
            bollard::body_full(tar.into()),
        )
        .await
        .map_err(|e| format!("docker target: cannot copy the agent's files into {name}: {e}"))?;
        d.start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| format!("docker target: cannot start {name}: {e}"))?;
        let end = Instant::now() + START_TIMEOUT;
        loop {
            let c = d
                .inspect_container(id, None::<InspectContainerOptions>)
                .await
                .map_err(|e| format!("docker target: {name}: {e}"))?;
            let state = c.state.clone().unwrap_or_default();
            let log = Self::logs(d, id).await;
            if state.running != Some(true) {
                return Err(format!(
                    "docker target: the container {name} exited at start (code {}): {}",
                    state.exit_code.unwrap_or(-1),
                    Self::tail(&log)
                ));
            }
            if log.contains("ready, control socket") {
                return Ok(c_address(&c));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "docker target: the agent in {name} was not ready within {} s: {}",
                    START_TIMEOUT.as_secs(),
                    Self::tail(&log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The container's address, or the engine's host (host network, no address).
    fn address(&self, found: &str) -> String {
        match found.is_empty() {
            true => self.settings.endpoint.host(),
            false => found.to_string(),
        }
    }

    async fn terminate_async(&self, key: &MachineKey, machine_id: &str) -> Result<(), String> {
        let d = self.connect().await?;
        let name = format!("rbcf-{}", machine_name(key));
        let mut target = match machine_id.is_empty() {
            true => name.clone(),
            false => machine_id.to_string(),
        };
        let c = match d
            .inspect_container(&target, None::<InspectContainerOptions>)
            .await
        {
            Ok(c) => c,
            Err(e) if is_missing(&e) && target != name => {
                target = name.clone();
                match d
                    .inspect_container(&target, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(c) => c,
                    Err(e) if is_missing(&e) => return Ok(()),
                    Err(e) => return Err(format!("docker target: {target}: {e}")),
                }
            }
            Err(e) if is_missing(&e) => return Ok(()),
            Err(e) => return Err(format!("docker target: {target}: {e}")),
        };
        // Another key's container is never removed under this one's name.
        let labels = c.config.and_then(|c| c.labels).unwrap_or_default();
        if labels.get("roboconf.app") != Some(&key.app)
            || labels.get("roboconf.root") != Some(&key.root)
        {
            return Err(format!(
                "docker target: {target} is not the machine of {}:{}",
                key.app, key.root
            ));
        }
        if c.state.and_then(|s| s.running) == Some(true) {
            // Leave first: the mesh learns it is gone, not dead.
            let exec = d
                .create_exec(
                    &target,
                    ExecConfig {
                        cmd: Some(
                            [
                                image::AGENT_PATH,
                                "--data-dir",
                                "/var/lib/roboconf",
                                "leave",
                            ]
                            .iter()
                            .map(|s| s.to_string())
                            .collect(),
                        ),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await;
            if let Ok(exec) = exec {
                let run = async {
                    if let Ok(bollard::exec::StartExecResults::Attached { mut output, .. }) =
                        d.start_exec(&exec.id, None).await
                    {
                        while output.next().await.is_some() {}
                    }
                };
                let _ = tokio::time::timeout(LEAVE_TIMEOUT, run).await;
            }
        }
        match d
            .remove_container(
                &target,
                Some(RemoveContainerOptions {
                    force: true,
                    v: true,
                    ..Default::default()
                }),
            )
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(format!("docker target: cannot remove {target}: {e}")),
        }
    }

    async fn is_running_async(&self, key: &MachineKey) -> bool {
        let Ok(d) = self.connect().await else {
            return false;
        };
        let name = format!("rbcf-{}", machine_name(key));
        d.inspect_container(&name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            == Some(true)
    }
}

/// The first address the engine gave the container on one of its networks.
fn c_address(c: &bollard::models::ContainerInspectResponse) -> String {
    c.network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| {
            n.values()
                .filter_map(|e| e.ip_address.clone())
                .find(|a| !a.is_empty())
        })
        .unwrap_or_default()
}

impl Target for Docker {
    fn create(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure> {
        self.rt.block_on(self.create_async(key, user))
    }

    fn terminate(&self, key: &MachineKey, machine_id: &str) -> Result<(), String> {
        self.rt.block_on(self.terminate_async(key, machine_id))
    }

    fn is_running(&self, key: &MachineKey) -> bool {
        self.rt.block_on(self.is_running_async(key))
    }
}
