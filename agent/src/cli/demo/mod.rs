//! `roboconf demo [--nodes N] [--exit]`: a local mesh of agent processes on loopback
//! running `examples/lamp`: it deploys the application across the nodes (started by
//! hand with `--host`; node1 makes the mesh and leads the coordinator), prints the
//! status tree, scales out by creating and deploying a new root — the coordinator
//! launches a `local` machine for it — and shows the load balancer's regenerated
//! configuration; kills the coordinator's leader in the middle of a second launch and
//! shows another voter taking over and finishing it; kills a node and shows the
//! re-configuration; puts HTTP load on the balancer until its probe fires the rule
//! `scale-up`, whose command replicates an app server's machine (autonomic management:
//! no operator command); then stays up until Ctrl-C (`--exit`: ends there). Everything it
//! started — agents, machines and the application's processes — is stopped and its
//! temporary folder removed.

use super::show;
use crate::api::{Request, Response, State};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod mesh;

use mesh::{call, machine, machine_pids, states, wait_for, Demo};

fn say(text: &str) {
    super::out(&format!("\n==> {text}\n"));
}

/// Four distinct free ports for the servers the instances file names: drawn in
/// 15000–19999, below the ephemeral range (where an outgoing connection could take one
/// before its server binds it), each checked by binding it, all held at once.
fn free_ports() -> anyhow::Result<[u16; 4]> {
    let seed = std::process::id() as usize;
    let held: Vec<std::net::TcpListener> = (0..5000)
        .filter_map(|i| {
            let port = 15_000 + ((seed + i * 7) % 5000) as u16;
            std::net::TcpListener::bind(("0.0.0.0", port)).ok()
        })
        .take(4)
        .collect();
    let mut ports = [0; 4];
    anyhow::ensure!(held.len() == 4, "fewer than 4 free ports in 15000–19999");
    for (p, l) in ports.iter_mut().zip(&held) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

fn servers(conf: &str) -> usize {
    conf.lines().filter(|l| l.starts_with("server ")).count()
}

/// The demo's copy of `examples/lamp`, with free ports for every server (so that it runs
/// beside anything).
fn prepare_app(root: &Path) -> anyhow::Result<(PathBuf, u16)> {
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
    let [lb, db, a1, a2] = free_ports()?;
    let instances = format!(
        "# Written by `roboconf demo`: free ports.\n\
         instance of VM {{\n\tname: vm-lb;\n\tinstance of LB {{\n\t\tname: lb;\n\t\tport: {lb};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-1;\n\tinstance of App {{\n\t\tname: app-1;\n\t\tport: {a1};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-app-2;\n\tinstance of App {{\n\t\tname: app-2;\n\t\tport: {a2};\n\t}}\n}}\n\
         instance of VM {{\n\tname: vm-db;\n\tinstance of Db {{\n\t\tname: db;\n\t\tport: {db};\n\t}}\n}}\n"
    );
    std::fs::write(app.join("instances/lamp.instances"), instances)?;
    // The balancer's port for its probe; thresholds low enough for a demo's load, and
    // no scale-down (it would take the demo's own scale-outs away).
    std::fs::write(
        app.join("probes/LB.measures.properties"),
        format!("lb-port = {lb}\nhigh = 3\nlow = -1\n"),
    )?;
    Ok((app, lb))
}

pub fn run(nodes: usize, exit: bool) -> anyhow::Result<ExitCode> {
    let nodes = nodes.max(2);
    let root = std::env::temp_dir().join(format!("roboconf-demo-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let mut demo = Demo {
        root: root.clone(),
        nodes: Vec::new(),
        lb: 1,
    };
    let (app, lb_port) = prepare_app(&root)?;
    // node1 makes the mesh and is the coordinator's first voter (and leader); the roots
    // are spread over the other nodes, started by hand.
    let roots = ["/vm-lb", "/vm-app-1", "/vm-app-2", "/vm-db"];
    let mut hosting: Vec<Vec<String>> = vec![Vec::new(); nodes];
    for (i, r) in roots.iter().enumerate() {
        hosting[1 + i % (nodes - 1)].push(format!("lamp:{r}"));
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
    say("adding examples/lamp on node2 and starting everything");
    let dir0 = demo.nodes[1].dir.clone();
    match call(
        &dir0,
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
    show_coordinator(&dir0);

    say("scale-out: instance create /vm-app-3 and /vm-app-3/app-3, instance start /vm-app-3: the coordinator launches a local machine for it");
    let t = Instant::now();
    scale_out(&dir0, 3)?;
    wait_for(
        "app-3 and the balancer's update",
        Duration::from_secs(60),
        || servers(&demo.lb_conf()) == 3,
    )?;
    super::out(&format!(
        "    machine launched, joined and app-3 in the balancer {:.1} s after the deploy\n",
        t.elapsed().as_secs_f64()
    ));
    super::out(&demo.lb_conf());
    show_machine(&dir0, "/vm-app-3");

    let leader = leader_index(&demo).unwrap_or(0);
    let leader_name = demo.nodes[leader].name.clone();
    say(&format!(
        "a second scale-out (/vm-app-4), and the coordinator's leader {leader_name} killed (kill -9) while it launches"
    ));
    scale_out(&dir0, 4)?;
    wait_for("the launch in flight", Duration::from_secs(30), || {
        machine(&dir0, "/vm-app-4").is_some()
    })?;
    show_coordinator(&demo.nodes[leader].dir);
    if let Some(mut c) = demo.nodes[leader].child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t = Instant::now();
    let survivor = demo.nodes[demo.lb].dir.clone();
    wait_for("a new leader", Duration::from_secs(30), || {
        leader_index(&demo).is_some()
    })?;
    super::out(&format!(
        "    a new leader in {:.1} s\n",
        t.elapsed().as_secs_f64()
    ));
    show_coordinator(&survivor);
    wait_for(
        "app-4 and the balancer's update",
        Duration::from_secs(60),
        || servers(&demo.lb_conf()) == 4,
    )?;
    let machines = machine_pids(&root.join("roboconf-machines")).len();
    super::out(&format!(
        "    the new leader finished the launch: app-4 is in the balancer; {machines} machines (one per launched root)\n"
    ));
    super::out(&demo.lb_conf());

    say("autonomic scale-up: HTTP load on the balancer until its probe reports more than 3 requests per second per app server; the rule `scale-up` runs commands/scale-up.commands");
    let before = servers(&demo.lb_conf());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = load(lb_port, stop.clone());
    let t = Instant::now();
    let scaled = wait_for("the autonomic scale-up", Duration::from_secs(90), || {
        servers(&demo.lb_conf()) > before
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = loader.join().unwrap_or(0);
    scaled?;
    super::out(&format!(
        "    {sent} requests sent; a new app server in the balancer {:.1} s after the load began\n",
        t.elapsed().as_secs_f64()
    ));
    super::out(&demo.lb_conf());
    show_history(&dir0);

    // The last node: an app server's host, not a voter (the coordinator keeps its
    // majority for the clean-up).
    let victim = demo.nodes.len() - 1;
    let victim_name = demo.nodes[victim].name.clone();
    say(&format!(
        "killing {victim_name} (kill -9): the mesh notices, the balancer is re-configured"
    ));
    let before = servers(&demo.lb_conf());
    let lost = hosting[victim].len();
    if let Some(mut c) = demo.nodes[victim].child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    let t = Instant::now();
    let expected = if victim != demo.lb {
        before.saturating_sub(lost.min(1))
    } else {
        before
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
    // The coordinator terminates the machines once their roots are undeployed.
    let _ = wait_for("the machines terminated", Duration::from_secs(60), || {
        machine_pids(&root.join("roboconf-machines")).is_empty()
    });
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

/// Requests to the balancer in a loop until `stop`; how many were sent.
fn load(
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    use std::io::{Read, Write};
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: lb\r\n\r\n");
                let mut sink = Vec::new();
                let _ = s.read_to_end(&mut sink);
                n += 1;
            }
        }
        n
    })
}

fn show_history(dir: &Path) {
    if let Some(Response::History { items }) = call(
        dir,
        &Request::History {
            app: Some("lamp".into()),
        },
    ) {
        for h in items.iter().filter(|h| h.origin != "operator") {
            super::out(&format!(
                "    history: {} ran by {} `{}`: {} in {} ms\n",
                h.command,
                h.origin,
                h.details,
                h.result.word(),
                h.duration_ms
            ));
        }
    }
}

/// Creates `/vm-app-K` and its app server, and starts it.
fn scale_out(dir: &Path, k: usize) -> anyhow::Result<()> {
    let root = format!("/vm-app-{k}");
    for (path, component) in [(root.clone(), "VM"), (format!("{root}/app-{k}"), "App")] {
        match call(
            dir,
            &Request::InstanceCreate {
                app: "lamp".into(),
                path: path.clone(),
                component: component.into(),
            },
        ) {
            Some(Response::Ok { .. }) => super::out(&format!("    created {path}\n")),
            other => anyhow::bail!("instance create {path}: {other:?}"),
        }
    }
    match call(
        dir,
        &Request::InstanceSet {
            app: "lamp".into(),
            path: root.clone(),
            target: crate::api::Desired::Started,
        },
    ) {
        Some(Response::Ok { message }) => super::out(&format!("    {message}\n")),
        other => anyhow::bail!("instance start {root}: {other:?}"),
    }
    Ok(())
}

/// The index of the live node that leads the coordinator.
fn leader_index(demo: &Demo) -> Option<usize> {
    demo.nodes.iter().position(|n| {
        n.child.is_some()
            && matches!(call(&n.dir, &Request::Stats), Some(Response::Stats { counters })
                if counters.iter().any(|(k, v)| k == "coordinator_leader" && *v == 1))
    })
}

fn show_machine(dir: &Path, root: &str) {
    if let Some(m) = machine(dir, root) {
        super::out(&format!(
            "    {root}: machine {} on target {} ({}), generation {}, {}\n",
            m.id, m.target, m.handler, m.generation, m.state
        ));
    }
}

fn show_coordinator(dir: &Path) {
    if let Some(Response::Coordinator(v)) = call(dir, &Request::Coordinator) {
        let name = |id: &str| {
            v.voters
                .iter()
                .find(|x| x.id == id)
                .map_or(id.to_string(), |x| x.name.clone())
        };
        let voters: Vec<String> = v
            .voters
            .iter()
            .map(|x| match x.name.is_empty() {
                true => format!("{} (not known here yet)", &x.id[..x.id.len().min(16)]),
                false => format!("{} ({})", x.name, x.state),
            })
            .collect();
        super::out(&format!(
            "    coordinator: leader {}, term {}, voters {}\n",
            v.leader.as_deref().map_or("none".into(), name),
            v.term,
            voters.join(", ")
        ));
    }
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
