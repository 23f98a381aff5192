//! Benchmark of the `docker` target with real agent processes and a private Docker
//! engine (`roboconf_tests::dockerd`, its data under `/tmp/rbd-*`): 3 voters on
//! loopback, an application whose root component launches with `docker` (the minimal
//! image, host network). Each round times the deploy of a new root (`instance start` →
//! its container's agent joined and the instance under the root DEPLOYED_STARTED), then
//! retires the machine (container removed) before the next. The first round imports the
//! minimal image into the fresh engine and is reported on its own; the others find it
//! there. Needs root and Debian's `docker.io` (it says so and does nothing otherwise).
//! Run with `cargo bench -p roboconf-agent --bench docker` (`DOCKER_ROUNDS=20` rounds
//! with the image present, default 10).

use roboconf_tests::dockerd::{self, Dockerd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roboconf");

/// One of the mesh's voters; killed when dropped.
struct Node {
    dir: PathBuf,
    child: Child,
}

impl Node {
    fn start(dir: &Path, name: &str) -> Node {
        std::fs::create_dir_all(dir).expect("data dir");
        let log = std::fs::File::create(dir.with_extension("log")).expect("log file");
        let child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["agent", "--listen", "/ip4/127.0.0.1/tcp/0", "--node", name])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        let n = Node {
            dir: dir.to_path_buf(),
            child,
        };
        until(
            "the agent's control socket",
            Duration::from_secs(20),
            || n.run(&["app", "list"]).status.success(),
        );
        n
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(args)
            .output()
            .expect("run roboconf")
    }

    fn must(&self, args: &[&str]) {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "roboconf {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        serde_json::from_slice(&self.run(args).stdout).unwrap_or_default()
    }

    /// Its first TCP address, from its log.
    fn address(&self) -> String {
        let log = self.dir.with_extension("log");
        let mut found = String::new();
        until("the agent's address", Duration::from_secs(20), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            found = roboconf_tests::log::addresses(&text)
                .into_iter()
                .find(|a| a.contains("/tcp/"))
                .unwrap_or_default();
            !found.is_empty()
        });
        found
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The `p` quantile (nearest rank) of `v`, sorted in place.
fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The application: a `VM` root launched by the docker target on `engine`, a `Db` under
/// it whose deploy script does nothing.
fn write_app(dir: &Path, engine: &Dockerd) {
    let put = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    put(
        "descriptor/application.properties",
        "application-name = bench\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    );
    put(
        "graph/main.graph",
        "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n",
    );
    // A root declared and never deployed: each round makes its own.
    put(
        "instances/main.instances",
        "instance of VM {\n\tname: seed;\n}\n",
    );
    put("graph/Db/scripts/deploy.sh", "#!/bin/sh\ntrue\n");
    // The private engine has no bridge: the containers use the host's network, where
    // the voters listen on loopback.
    put(
        "graph/VM/target.properties",
        &format!(
            "id = containers\nhandler = docker\ndocker.endpoint = {}\ndocker.option.run.network-mode = host\n",
            engine.endpoint
        ),
    );
}

/// A mesh of three voters on loopback.
fn voters(root: &Path) -> Vec<Node> {
    let first = Node::start(&root.join("v0"), "v0");
    first.must(&["mesh", "init", "--voters", "3"]);
    let addr = first.address();
    let mut all = vec![first];
    for k in 1..3 {
        let n = Node::start(&root.join(format!("v{k}")), &format!("v{k}"));
        let out = all[0].run(&["mesh", "token"]);
        let token = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .last()
            .unwrap_or_default()
            .to_string();
        n.must(&["join", &addr, "--token", &token]);
        all.push(n);
    }
    until("three voters", Duration::from_secs(60), || {
        all[0].json(&["coordinator", "--json"])["voters"]
            .as_array()
            .is_some_and(|v| v.len() == 3)
    });
    all
}

/// One deploy of a new root `/vm<k>`, in ms; its container removed afterwards.
fn deploy_once(a: &Node, engine: &Dockerd, k: usize) -> f64 {
    let vm = format!("/vm{k}");
    let db = format!("{vm}/db");
    a.must(&["instance", "create", "bench", &vm, "--component", "VM"]);
    a.must(&["instance", "create", "bench", &db, "--component", "Db"]);
    let t = Instant::now();
    a.must(&["instance", "start", "bench", &vm]);
    until(
        "the container's agent and its instance",
        Duration::from_secs(180),
        || {
            let s = a.json(&["status", "bench", "--json"]);
            s["instances"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|i| i["path"] == db.as_str() && i["state"] == "DEPLOYED_STARTED")
            })
        },
    );
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    a.must(&["instance", "undeploy", "bench", &vm]);
    until("the container removed", Duration::from_secs(60), || {
        engine.containers(true).is_empty()
    });
    ms
}

fn main() {
    if !dockerd::available() {
        println!(
            "docker bench skipped: it needs root and Debian's dockerd and docker CLI (docker.io)"
        );
        return;
    }
    let rounds: usize = std::env::var("DOCKER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let engine = Dockerd::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write_app(&root.join("app"), &engine);
    let mesh = voters(root);
    let a = &mesh[0];
    a.must(&["app", "add", &root.join("app").display().to_string()]);

    let first = deploy_once(a, &engine, 0);
    let images = engine.cli(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    let image = String::from_utf8_lossy(&images.stdout).trim().to_string();
    let mut t: Vec<f64> = (1..=rounds).map(|k| deploy_once(a, &engine, k)).collect();
    drop(mesh);
    drop(engine);

    println!(
        "deploy of a root with the docker target, first deploy incl. image import (the minimal image {image}): {first:.0} ms"
    );
    println!(
        "deploy of a root with the docker target, image present (instance start -> container's agent joined, its instance DEPLOYED_STARTED): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} rounds)",
        quantile(&mut t, 0.5),
        quantile(&mut t, 0.99),
        quantile(&mut t, 1.0),
        t.len()
    );
}
