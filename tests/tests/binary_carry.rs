//! The agent binary travels with the mesh: every member publishes the build it runs (its
//! SHA-256, size and architecture), `members` shows it and flags a member whose build
//! differs from most; a target file that pins a build (`agent.sha256`) gets machines
//! running that build even when the leader runs another — the leader fetches it by hash
//! from a member that runs it, checks it and keeps it in `<data-dir>/binaries/`; a
//! pinned build that no member runs leaves the root NOT_DEPLOYED with the reason.

use roboconf_tests::Agent;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn sha256(path: &Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

fn members(a: &Agent) -> Vec<serde_json::Value> {
    serde_json::from_slice(&a.cli(&["members", "--json"]).stdout).unwrap_or_default()
}

fn build_of(a: &Agent, name: &str) -> Option<(String, bool)> {
    members(a)
        .into_iter()
        .find(|m| m["name"] == name)
        .and_then(|m| {
            Some((
                m["binary"]["sha256"].as_str()?.to_string(),
                m["differs"].as_bool()?,
            ))
        })
}

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n";
const INSTANCES: &str =
    "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n";

fn app(root: &Path, pin: &str) -> PathBuf {
    let app = roboconf_tests::shop_app(root, GRAPH, INSTANCES, &[]);
    std::fs::write(
        app.join("graph/VM/local.target.properties"),
        format!(
            "id = pinned\nhandler = local\nlocal.dir = {}\nagent.sha256 = {pin}\n",
            root.join("machines").display()
        ),
    )
    .expect("target");
    app
}

#[test]
fn a_pinned_build_is_carried_by_the_mesh_and_a_differing_member_is_flagged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let _guard = roboconf_tests::MachinesGuard(root.join("machines"));
    // Another build: the same program with bytes appended (it runs the same, its hash
    // differs).
    let other = root.join("roboconf-other");
    let mut bytes = std::fs::read(roboconf_tests::roboconf_bin()).expect("binary");
    bytes.extend_from_slice(b"another build of the agent");
    std::fs::write(&other, &bytes).expect("copy");
    drop(bytes);
    std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let (usual, pinned) = (sha256(&roboconf_tests::roboconf_bin()), sha256(&other));
    assert_ne!(usual, pinned);

    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"];
    let a = Agent::start(
        &root.join("a"),
        &[&listen[..], &["--node", "a"]].concat(),
        &[],
    );
    let o = a.cli(&["mesh", "init", "--voters", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let b = Agent::start_binary(
        None,
        &other,
        &root.join("b"),
        &[&listen[..], &["--node", "b"]].concat(),
        &[],
    );
    b.join(&a);
    let c = Agent::start(
        &root.join("c"),
        &[&listen[..], &["--node", "c"]].concat(),
        &[],
    );
    c.join(&a);
    a.wait_until("every member's build known", Duration::from_secs(60), |a| {
        build_of(a, "a") == Some((usual.clone(), false))
            && build_of(a, "c") == Some((usual.clone(), false))
            && build_of(a, "b") == Some((pinned.clone(), true))
    });
    let text = String::from_utf8_lossy(&a.cli(&["members"]).stdout).to_string();
    assert!(
        text.lines()
            .any(|l| l.starts_with("b ") && l.contains(&pinned[..12]) && l.contains("DIFFERS")),
        "{text}"
    );

    // Machines of a target pinned to b's build: the leader (a) fetches it from b.
    let o = a.cli(&[
        "app",
        "add",
        &app(root, &pinned).display().to_string(),
        "--start",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("the database started", Duration::from_secs(90), |a| {
        a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED"
    });
    let kept = root.join("a/binaries").join(&pinned);
    assert_eq!(
        sha256(&kept),
        pinned,
        "the fetched build is kept by its hash"
    );
    let machine = members(&a)
        .into_iter()
        .find(|m| {
            m["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("shop-vm-db"))
        })
        .expect("the machine's member");
    assert_eq!(machine["binary"]["sha256"], pinned.as_str(), "{machine}");
    assert!(a.log_text().contains("agent binary fetched from the mesh"));
    let o = a.cli(&["app", "undeploy", "shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("its machine terminated", Duration::from_secs(60), |a| {
        a.state("shop", "/vm-db") == "NOT_DEPLOYED"
            && roboconf_tests::live_machines(&root.join("machines")).is_empty()
    });
    let o = a.cli(&["app", "remove", "shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A build no member runs: NOT_DEPLOYED, and why.
    let nowhere = "0".repeat(64);
    let o = a.cli(&[
        "app",
        "add",
        &app(root, &nowhere).display().to_string(),
        "--start",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("the launch refused", Duration::from_secs(60), |a| {
        let s = a.status("shop");
        s["instances"].as_array().is_some_and(|l| {
            l.iter().any(|i| {
                i["path"] == "/vm-db"
                    && i["state"] == "NOT_DEPLOYED"
                    && i["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("no live member runs the agent binary"))
            })
        })
    });
    drop((b, c));
}
