//! Two meshes (three agents each) linked only through the machine's RabbitMQ, with
//! Roboconf's external exports: `lamp` on mesh A says `exports-prefix = Lamp` and
//! `exports = Apache.ip as lb_ip`; `shop` on mesh B imports `external Lamp.lb_ip`. The
//! importer starts when an exporter appears on the other mesh, is updated when a second
//! one comes, and stops when they go.

use roboconf_tests::broker::{self, URL};
use roboconf_tests::{wait, Agent};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn write_app(
    root: &Path,
    name: &str,
    extra: &str,
    graph: &str,
    instances: &str,
    files: &[(&str, &str)],
) -> PathBuf {
    let app = root.join(name);
    let w = |rel: &str, text: &str| {
        let p = app.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    w(
        "descriptor/application.properties",
        &format!("application-name = {name}\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n{extra}"),
    );
    w("graph/main.graph", graph);
    w("instances/main.instances", instances);
    w(
        "graph/VM/local.target.properties",
        "id = by-hand\nhandler = embedded\nname = machines started by hand\n",
    );
    for (rel, text) in files {
        w(rel, text);
    }
    app
}

fn agent(root: &Path, name: &str, host: Option<&str>, domain: &str, journal: &str) -> Agent {
    let mut args = vec![
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--node",
        name,
        "--amqp",
        URL,
        "--amqp-domain",
        domain,
    ];
    if let Some(h) = host {
        args.extend(["--host", h]);
    }
    Agent::start(&root.join(name), &args, &[("JOURNAL", journal)])
}

fn mesh(root: &Path, names: [(&str, Option<&str>); 3], domain: &str, journal: &str) -> Vec<Agent> {
    let agents: Vec<Agent> = names
        .iter()
        .map(|(n, h)| agent(root, n, *h, domain, journal))
        .collect();
    agents[0].init_mesh();
    for a in &agents[1..] {
        a.join(&agents[0]);
    }
    agents
}

fn journal_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn an_application_on_one_mesh_imports_what_another_mesh_exports_through_the_broker() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let domain = format!(
        "ia{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let journal = root.join("journal.log");
    let j = journal.display().to_string();
    let script = |word: &str| {
        format!("#!/bin/bash\necho \"{word} $ROBOCONF_INSTANCE_PATH lb=${{Lamp_0_lb_ip:-none}} n=${{Lamp_1_lb_ip:+2}}\" >> \"$JOURNAL\"\n")
    };
    let (start, update, stop) = (script("start"), script("update"), script("stop"));
    let lamp = write_app(
        root,
        "lamp",
        "exports-prefix = Lamp\nexports = Apache.ip as lb_ip\n",
        "VM {\n\tinstaller: target;\n\tchildren: Apache;\n}\nApache {\n\tinstaller: script;\n\texports: ip, port = 80;\n}\n",
        "instance of VM {\n\tname: vm-a;\n\tinstance of Apache {\n\t\tname: apache;\n\t}\n}\ninstance of VM {\n\tname: vm-b;\n\tinstance of Apache {\n\t\tname: apache;\n\t}\n}\n",
        &[("graph/Apache/scripts/start.sh", "#!/bin/bash\nexit 0\n")],
    );
    let shop = write_app(
        root,
        "shop",
        "",
        "VM {\n\tinstaller: target;\n\tchildren: Web;\n}\nWeb {\n\tinstaller: script;\n\timports: external Lamp.lb_ip;\n}\n",
        "instance of VM {\n\tname: vm-web;\n\tinstance of Web {\n\t\tname: web;\n\t}\n}\n",
        &[
            ("graph/Web/scripts/start.sh", start.as_str()),
            ("graph/Web/scripts/update.sh", update.as_str()),
            ("graph/Web/scripts/stop.sh", stop.as_str()),
        ],
    );
    let a = mesh(
        root,
        [
            ("a1", Some("lamp:/vm-a")),
            ("a2", Some("lamp:/vm-b")),
            ("a3", None),
        ],
        &domain,
        &j,
    );
    let b = mesh(
        root,
        [("b1", Some("shop:/vm-web")), ("b2", None), ("b3", None)],
        &domain,
        &j,
    );
    // The importer first: nothing exports `Lamp` yet.
    let o = b[1].cli(&["app", "add", shop.to_str().expect("path"), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b[0].wait_states("shop", &["/vm-web/web"], "UNRESOLVED");
    let o = a[2].cli(&["app", "add", lamp.to_str().expect("path")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (ag, root) in [(&a[0], "/vm-a"), (&a[1], "/vm-b")] {
        ag.wait_until("the application fetched", Duration::from_secs(30), |x| {
            !x.state("lamp", &format!("{root}/apache")).is_empty()
        });
    }
    // One exporter on mesh A: the importer on mesh B starts with its address.
    let o = a[2].cli(&["instance", "start", "lamp", "/vm-a/apache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    b[0].wait_states("shop", &["/vm-web/web"], "DEPLOYED_STARTED");
    let lines = journal_lines(&journal);
    assert!(
        lines
            .iter()
            .any(|l| l == "start /vm-web/web lb=127.0.0.1 n="),
        "{lines:?}"
    );
    // A second exporter: the importer is updated with both.
    let o = a[2].cli(&["instance", "start", "lamp", "/vm-b/apache"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait(
        "the update with two exporters",
        Duration::from_secs(30),
        || {
            journal_lines(&journal)
                .iter()
                .any(|l| l.starts_with("update /vm-web/web") && l.ends_with("n=2"))
        },
    );
    // Both go: the mandatory import is gone, the importer stops.
    for p in ["/vm-a/apache", "/vm-b/apache"] {
        let o = a[2].cli(&["instance", "stop", "lamp", p]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    b[0].wait_states("shop", &["/vm-web/web"], "UNRESOLVED");
    assert!(
        journal_lines(&journal)
            .iter()
            .any(|l| l.starts_with("stop /vm-web/web")),
        "{:?}",
        journal_lines(&journal)
    );
    drop(b);
    drop(a);
    // What the bridges declared in the domain goes with the test.
    cleanup(&domain);
}

/// Deletes the exchanges the bridges declared in the domain.
fn cleanup(domain: &str) {
    broker::runtime().block_on(async {
        let conn = broker::connect(URL).await;
        broker::delete_domain(&conn, domain, &["lamp", "shop"]).await;
        let _ = conn.close(200, broker::short("bye")).await;
    });
}
