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
use roboconf_tests::launch::{deploy_root, mesh, quantile, write_app};
use roboconf_tests::Agent;
use std::time::Duration;

/// One deploy of a new root `/vm<k>`, in ms; its container removed afterwards.
fn deploy_once(a: &Agent, engine: &Dockerd, k: usize) -> f64 {
    deploy_root(a, k, Duration::from_secs(180), || {
        engine.containers(true).is_empty()
    })
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
    // The private engine has no bridge: the containers use the host's network, where
    // the voters listen on loopback.
    write_app(
        &root.join("app"),
        &format!(
            "id = containers\nhandler = docker\ndocker.endpoint = {}\n\
             docker.option.run.network-mode = host\n",
            engine.endpoint
        ),
    );
    let voters = mesh(root, 3, 3, "/ip4/127.0.0.1/tcp/0");
    let a = &voters[0];
    let o = a.cli(&["app", "add", &root.join("app").display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let first = deploy_once(a, &engine, 0);
    let images = engine.cli(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"]);
    let image = String::from_utf8_lossy(&images.stdout).trim().to_string();
    let mut t: Vec<f64> = (1..=rounds).map(|k| deploy_once(a, &engine, k)).collect();
    drop(voters);
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
