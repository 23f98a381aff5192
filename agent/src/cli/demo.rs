//! `roboconf demo [--nodes N] [--exit]`: a local mesh of agent processes on loopback
//! running `examples/lamp`: it deploys the application across the nodes, prints the
//! status tree, scales out (one more app server on one more node) and shows the load
//! balancer's regenerated configuration, kills a node and shows the re-configuration,
//! then stays up until Ctrl-C (`--exit`: ends there). Everything it started — agents and
//! the application's processes — is stopped and its temporary folder removed.

use super::show;
use crate::api::{Request, Response, State};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Node {
    name: String,
    dir: PathBuf,
    child: Option<Child>,
}

struct Demo {
    root: PathBuf,
    nodes: Vec<Node>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        // Processes the application started (pid files in the working copies).
        for pid in pid_files(&self.root) {
            let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn pid_files(dir: &Path) -> Vec<String> {
    roboconf_model::app::list_files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "pid"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn call(dir: &Path, req: &Request) -> Option<Response> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    rt.block_on(crate::control::call(&crate::control::socket_path(dir), req))
        .ok()
}

fn states(dir: &Path) -> Vec<(String, State)> {
    match call(
        dir,
        &Request::Status {
            app: Some("lamp".into()),
        },
    ) {
        Some(Response::Status { apps }) => apps
            .into_iter()
            .flat_map(|a| a.instances)
            .map(|i| (i.path, i.state))
            .collect(),
        _ => Vec::new(),
    }
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn say(text: &str) {
    super::out(&format!("\n==> {text}\n"));
}

impl Demo {
    /// Starts an agent; the first one makes the mesh (`mesh init`), the others join it
    /// with a token from node1 (`mesh token` there, `join` here).
    fn start_node(&mut self, hosts: &[String], join: Option<&str>) -> anyhow::Result<()> {
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
            None => call(&dir, &Request::MeshInit { voters: None }),
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
            Some(Response::Ok { message }) => super::out(&format!("    {name}: {message}\n")),
            other => anyhow::bail!("{name} could not enter the mesh: {other:?}"),
        }
        super::out(&format!(
            "    {name} is up, hosting {}\n",
            if hosts.is_empty() {
                "nothing".to_string()
            } else {
                hosts.join(", ")
            }
        ));
        Ok(())
    }

    fn address(&self, k: usize) -> anyhow::Result<String> {
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

    fn lb_conf(&self) -> String {
        std::fs::read_to_string(
            self.nodes[0]
                .dir
                .join("instances/lamp")
                .join(crate::core::folders::instance_folder("/vm-lb/lb"))
                .join("lb.conf"),
        )
        .unwrap_or_default()
    }
}

fn servers(conf: &str) -> usize {
    conf.lines().filter(|l| l.starts_with("server ")).count()
}

/// The demo's copy of `examples/lamp`, with free ports for every server (so that it runs
/// beside anything) and a third app server machine declared for the scale-out.
fn prepare_app(root: &Path) -> anyhow::Result<PathBuf> {
    let candidates = [
        PathBuf::from("examples/lamp"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lamp"),
    ];
    let src = candidates
        .iter()
        .find(|p| p.join("graph/lamp.graph").is_file())
        .ok_or_else(|| {
            anyhow::anyhow!("examples/lamp not found: run the demo from the repository")
        })?;
    let app = root.join("app");
    crate::runtime::copy_dir(src, &app)?;
    let (lb, db, a1, a2, a3) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let instances = format!(
        "# Written by `roboconf demo`: free ports, and a third app server for the scale-out.\n\
         instance of VM {{\n\tname: vm-lb;\n\tinstance of LB {{\n\t\tname: lb;\n\t\tport: {lb};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-1;\n\tinstance of App {{\n\t\tname: app-1;\n\t\tport: {a1};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-2;\n\tinstance of App {{\n\t\tname: app-2;\n\t\tport: {a2};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-3;\n\tinstance of App {{\n\t\tname: app-3;\n\t\tport: {a3};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-db;\n\tinstance of Db {{\n\t\tname: db;\n\t\tport: {db};\n\t}}\n}}\n"
    );
    std::fs::write(app.join("instances/lamp.instances"), instances)?;
    Ok(app)
}

pub fn run(nodes: usize, exit: bool) -> anyhow::Result<ExitCode> {
    let nodes = nodes.max(1);
    let root = std::env::temp_dir().join(format!("roboconf-demo-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let mut demo = Demo {
        root: root.clone(),
        nodes: Vec::new(),
    };
    let app = prepare_app(&root)?;
    // Roots spread over the nodes: the balancer, two app servers, the database.
    let roots = ["/vm-lb", "/vm-app-1", "/vm-app-2", "/vm-db"];
    let mut hosting: Vec<Vec<String>> = vec![Vec::new(); nodes];
    for (i, r) in roots.iter().enumerate() {
        hosting[i % nodes].push(format!("lamp:{r}"));
    }
    say(&format!(
        "starting {nodes} agents on loopback in {}",
        root.display()
    ));
    demo.start_node(&hosting[0], None)?;
    let first = demo.address(0)?;
    for h in hosting.iter().skip(1) {
        demo.start_node(h, Some(&first))?;
    }
    say("adding examples/lamp on node1 and starting everything");
    match call(
        &demo.nodes[0].dir,
        &Request::AppAdd {
            path: app.clone(),
            name: None,
            start: true,
        },
    ) {
        Some(Response::Ok { message }) => super::out(&format!("    {message}\n")),
        other => anyhow::bail!("app add failed: {other:?}"),
    }
    let wanted = [
        "/vm-lb/lb",
        "/vm-app-1/app-1",
        "/vm-app-2/app-2",
        "/vm-db/db",
    ];
    let dir0 = demo.nodes[0].dir.clone();
    let t = Instant::now();
    wait_for("the deployment", Duration::from_secs(90), || {
        let s = states(&dir0);
        wanted.iter().all(|w| {
            s.iter()
                .any(|(p, st)| p == w && *st == State::DeployedStarted)
        })
    })?;
    super::out(&format!(
        "    deployed and started across the mesh in {:.1} s\n",
        t.elapsed().as_secs_f64()
    ));
    show_status(&dir0);
    say("the load balancer's configuration, generated by its scripts from its imports");
    super::out(&demo.lb_conf());

    say("scale-out: one more node hosting /vm-app-3");
    demo.start_node(&["lamp:/vm-app-3".into()], Some(&first))?;
    wait_for(
        "app-3 and the balancer's update",
        Duration::from_secs(60),
        || servers(&demo.lb_conf()) == 3,
    )?;
    super::out(&demo.lb_conf());

    let victim = 2.min(demo.nodes.len() - 1);
    let victim_name = demo.nodes[victim].name.clone();
    say(&format!(
        "killing {victim_name} (kill -9): the mesh notices, the balancer is re-configured"
    ));
    if let Some(mut c) = demo.nodes[victim].child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t = Instant::now();
    let expected = if nodes >= 3 {
        2
    } else {
        servers(&demo.lb_conf())
    };
    wait_for("the re-configuration", Duration::from_secs(60), || {
        servers(&demo.lb_conf()) == expected
    })?;
    super::out(&format!(
        "    re-configured {:.1} s after the kill\n",
        t.elapsed().as_secs_f64()
    ));
    super::out(&demo.lb_conf());
    show_status(&dir0);

    if !exit {
        say("the mesh stays up; press Ctrl-C to stop everything");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let _ = tokio::signal::ctrl_c().await;
        });
    }
    say("stopping: undeploying the application, then the agents");
    let _ = call(
        &dir0,
        &Request::AppSet {
            name: "lamp".into(),
            target: crate::api::Desired::NotDeployed,
        },
    );
    let alive: Vec<PathBuf> = demo
        .nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| n.dir.clone())
        .collect();
    let undeployed = |d: &PathBuf| {
        states(d)
            .iter()
            .all(|(p, s)| p.matches('/').count() == 1 || *s == State::NotDeployed)
    };
    if wait_for("the undeployment", Duration::from_secs(30), || {
        alive.iter().all(undeployed)
    })
    .is_err()
    {
        for d in &alive {
            let left: Vec<String> = states(d)
                .into_iter()
                .filter(|(p, s)| p.matches('/').count() > 1 && *s != State::NotDeployed)
                .map(|(p, s)| format!("{p} {}", s.as_str()))
                .collect();
            eprintln!(
                "    still up as seen from {}: {}",
                d.display(),
                left.join(", ")
            );
        }
    }
    drop(demo);
    super::out("done\n");
    Ok(ExitCode::SUCCESS)
}

fn show_status(dir: &Path) {
    if let Some(Response::Status { apps }) = call(
        dir,
        &Request::Status {
            app: Some("lamp".into()),
        },
    ) {
        super::out(&show::status(&apps));
    }
}
