//! The `docker` target against a private Docker engine the test starts itself
//! (`roboconf_tests::dockerd`): `examples/lamp` with every VM root a container (the
//! minimal image made from the agent binary, no registry) deploys; one more app server
//! VM is one more container; a container killed with `docker kill` is PROBLEM, and
//! deploying the root again replaces it (a new generation, the dead container removed);
//! `app undeploy` removes every container. Also: an image built from the application's
//! `docker.generate.image.from` Dockerfile (`FROM ${ROBOCONF_AGENT_IMAGE}`), and bad
//! input — an image that exists nowhere, a container whose agent exits at once, an engine
//! that does not answer — leaves the root NOT_DEPLOYED with a reason and no container. Runs when the tests run as root with
//! Debian's `docker.io` installed (CI does); otherwise it says so and passes.

use roboconf_tests::dockerd::{self, Dockerd};
use roboconf_tests::Agent;
use std::path::Path;
use std::time::Duration;

fn skip() -> bool {
    if dockerd::available() {
        return false;
    }
    eprintln!("skipped: the docker target's tests need root and Debian's docker.io (dockerd)");
    true
}

/// One agent that is the mesh's only voter (it leads and launches).
fn leader(root: &Path) -> Agent {
    let a = Agent::start(
        &root.join("a"),
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--node", "a"],
        &[],
    );
    let o = a.cli(&["mesh", "init", "--voters", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a
}

/// Replaces the VM's target files with one docker target.
fn docker_target(app: &Path, extra: &str, engine: &Dockerd) {
    let vm = app.join("graph/VM");
    for e in std::fs::read_dir(&vm).expect("graph/VM").flatten() {
        if e.file_name().to_string_lossy().ends_with(".properties") {
            std::fs::remove_file(e.path()).expect("rm");
        }
    }
    std::fs::write(
        vm.join("docker.target.properties"),
        format!(
            "id = docker\nhandler = docker\nname = Containers\ndocker.endpoint = {}\ndocker.option.run.network-mode = host\ndocker.option.run.memory = 512m\ndocker.option.env.APP_NAME = <application-name>\n{extra}",
            engine.endpoint
        ),
    )
    .expect("target");
}

fn instance(a: &Agent, app: &str, path: &str) -> serde_json::Value {
    a.status(app)["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["path"] == path))
        .cloned()
        .unwrap_or_default()
}

fn cli_ok(a: &Agent, args: &[&str]) {
    let o = a.cli(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn lamp_on_containers_deploys_scales_replaces_and_undeploys() {
    if skip() {
        return;
    }
    let engine = Dockerd::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let app = roboconf_tests::lamp_copy(root);
    docker_target(&app, "", &engine);
    let a = leader(root);
    cli_ok(&a, &["app", "add", &app.display().to_string(), "--start"]);
    let all = [
        "/vm-lb/lb",
        "/vm-app-1/app-1",
        "/vm-app-2/app-2",
        "/vm-db/db",
    ];
    a.wait_until(
        "lamp started in four containers",
        Duration::from_secs(120),
        |a| all.iter().all(|p| a.state("lamp", p) == "DEPLOYED_STARTED"),
    );
    assert_eq!(
        engine.containers(false),
        vec![
            "rbcf-lamp-vm-app-1-g1",
            "rbcf-lamp-vm-app-2-g1",
            "rbcf-lamp-vm-db-g1",
            "rbcf-lamp-vm-lb-g1"
        ]
    );
    // Each machine is a member whose agent runs in its container, with the env option.
    let m = instance(&a, "lamp", "/vm-db");
    assert_eq!(m["machine"]["handler"], "docker", "{m}");
    let env = engine.cli(&["exec", "rbcf-lamp-vm-db-g1", "/usr/bin/env"]);
    assert!(
        String::from_utf8_lossy(&env.stdout).contains("APP_NAME=lamp"),
        "{}",
        String::from_utf8_lossy(&env.stdout)
    );

    // Scale out: one more container.
    for (path, comp) in [("/vm-app-3", "VM"), ("/vm-app-3/app-3", "App")] {
        cli_ok(
            &a,
            &["instance", "create", "lamp", path, "--component", comp],
        );
    }
    cli_ok(&a, &["instance", "start", "lamp", "/vm-app-3"]);
    a.wait_until(
        "app-3 started in its container",
        Duration::from_secs(90),
        |a| a.state("lamp", "/vm-app-3/app-3") == "DEPLOYED_STARTED",
    );
    assert_eq!(
        engine.containers(false).len(),
        5,
        "exactly one more container"
    );

    // A container killed: PROBLEM, then deployed again in a new one.
    let o = engine.cli(&["kill", "rbcf-lamp-vm-app-3-g1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "the killed machine's root in PROBLEM",
        Duration::from_secs(60),
        |a| instance(a, "lamp", "/vm-app-3")["state"] == "PROBLEM",
    );
    cli_ok(&a, &["instance", "start", "lamp", "/vm-app-3"]);
    a.wait_until(
        "app-3 again, in a second generation",
        Duration::from_secs(90),
        |a| {
            let m = instance(a, "lamp", "/vm-app-3");
            m["machine"]["generation"] == 2
                && m["machine"]["state"] == "running"
                && a.state("lamp", "/vm-app-3/app-3") == "DEPLOYED_STARTED"
        },
    );
    let names = engine.containers(true);
    assert!(
        names.contains(&"rbcf-lamp-vm-app-3-g2".to_string()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"rbcf-lamp-vm-app-3-g1".to_string()),
        "{names:?}"
    );

    // Undeploy: every container removed.
    cli_ok(&a, &["app", "undeploy", "lamp"]);
    a.wait_until("every container removed", Duration::from_secs(90), |_| {
        engine.containers(true).is_empty()
    });
    let roots = ["/vm-lb", "/vm-app-1", "/vm-app-2", "/vm-app-3", "/vm-db"];
    a.wait_until("every root NOT_DEPLOYED", Duration::from_secs(30), |a| {
        let states: Vec<String> = roots.iter().map(|p| a.state("lamp", p)).collect();
        eprintln!("root states: {states:?}");
        states.iter().all(|s| s == "NOT_DEPLOYED")
    });
}

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n";
const INSTANCES: &str =
    "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n";

#[test]
fn images_are_built_from_the_application_and_bad_input_leaves_nothing() {
    if skip() {
        return;
    }
    let engine = Dockerd::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let app = roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[(
            "graph/Db/scripts/start.sh",
            "#!/bin/bash\ncat /etc/built-by-the-test > \"$ROBOCONF_FILES_DIR/../seen\" 2>/dev/null; test -f /etc/built-by-the-test\n",
        )],
    );
    let a = leader(root);
    let root_state = |a: &Agent| instance(a, "shop", "/vm-db");

    // An image that is nowhere and cannot be built: NOT_DEPLOYED with the reason.
    docker_target(&app, "docker.image = nowhere/never:1\n", &engine);
    cli_ok(&a, &["app", "add", &app.display().to_string()]);
    cli_ok(&a, &["instance", "start", "shop", "/vm-db"]);
    a.wait_until("the launch refused", Duration::from_secs(60), |a| {
        let m = root_state(a);
        m["state"] == "NOT_DEPLOYED"
            && m["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("nowhere/never:1") && e.contains("never pulled"))
    });
    assert!(engine.containers(true).is_empty());
    cli_ok(&a, &["app", "remove", "shop"]);

    // A container whose agent exits at once (it cannot listen where it is told to).
    docker_target(
        &app,
        "docker.agent.listen = /ip4/203.0.113.9/tcp/0\n",
        &engine,
    );
    cli_ok(&a, &["app", "add", &app.display().to_string()]);
    cli_ok(&a, &["instance", "start", "shop", "/vm-db"]);
    a.wait_until("the launch refused", Duration::from_secs(60), |a| {
        let m = root_state(a);
        m["state"] == "NOT_DEPLOYED"
            && m["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("exited at start"))
    });
    assert!(
        engine.containers(true).is_empty(),
        "the container is removed"
    );
    cli_ok(&a, &["app", "remove", "shop"]);

    // An engine that does not answer.
    let dead = root.join("no-engine.sock");
    std::fs::write(
        app.join("graph/VM/docker.target.properties"),
        format!(
            "id = docker\nhandler = docker\ndocker.endpoint = unix://{}\n",
            dead.display()
        ),
    )
    .expect("target");
    cli_ok(&a, &["app", "add", &app.display().to_string()]);
    cli_ok(&a, &["instance", "start", "shop", "/vm-db"]);
    a.wait_until("the launch refused", Duration::from_secs(60), |a| {
        let m = root_state(a);
        m["state"] == "NOT_DEPLOYED"
            && m["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("does not answer"))
    });
    cli_ok(&a, &["app", "remove", "shop"]);

    // A Dockerfile beside the target file extends the agent's minimal image.
    let img = app.join("graph/VM/img");
    std::fs::create_dir_all(&img).expect("img");
    std::fs::write(
        img.join("Dockerfile"),
        "ARG ROBOCONF_AGENT_IMAGE\nFROM ${ROBOCONF_AGENT_IMAGE}\nRUN echo built > /etc/built-by-the-test\n",
    )
    .expect("Dockerfile");
    docker_target(
        &app,
        "docker.image = shop-db:1\ndocker.generate.image.from = img\n",
        &engine,
    );
    cli_ok(&a, &["app", "add", &app.display().to_string()]);
    cli_ok(&a, &["instance", "start", "shop", "/vm-db"]);
    a.wait_until(
        "the database started in the built image",
        Duration::from_secs(120),
        |a| a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED",
    );
    let images = engine.cli(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let images = String::from_utf8_lossy(&images.stdout).to_string();
    assert!(images.contains("shop-db:1"), "{images}");
    assert!(images.contains("roboconf-agent:"), "{images}");
    cli_ok(&a, &["app", "undeploy", "shop"]);
    a.wait_until("its container removed", Duration::from_secs(60), |_| {
        engine.containers(true).is_empty()
    });
    drop(a);
    assert!(!engine.log().is_empty());
}
