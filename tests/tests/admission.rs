//! Admission with real agents on loopback: `mesh init`, `mesh token`, `join`; a token
//! admits one node once before it expires; a forged, replayed or expired token is
//! refused, and so is a node under the name of a live member; a node of another mesh that dials a member is refused, logged, and nothing it
//! has (applications, instances, records) reaches the mesh.

use roboconf_tests::Agent;
use std::path::Path;
use std::time::{Duration, Instant};

const LISTEN: [&str; 2] = ["--listen", "/ip4/127.0.0.1/tcp/0"];

fn agent(root: &Path, name: &str, extra: &[&str]) -> Agent {
    let mut args = vec!["--node", name];
    args.extend_from_slice(&LISTEN);
    args.extend_from_slice(extra);
    Agent::start(&root.join(name), &args, &[])
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn member_names(a: &Agent) -> Vec<String> {
    let o = a.cli(&["members", "--json"]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["name"].as_str().map(String::from))
        .collect()
}

#[test]
fn tokens_admit_once_and_bad_ones_are_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let a = agent(root, "node-a", &[]);
    // Not a member yet: no token to give.
    let o = a.cli(&["mesh", "token"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a member"), "{}", stderr(&o));
    a.init_mesh();
    let o = a.cli(&["mesh", "init"]);
    assert_eq!(o.status.code(), Some(1), "a second init is refused");
    assert!(stderr(&o).contains("already a member"), "{}", stderr(&o));
    // Usage errors.
    let o = a.cli(&["mesh", "token", "--ttl", "forever"]);
    assert_eq!(o.status.code(), Some(2));
    let b = agent(root, "node-b", &[]);
    let addr = a.address();
    let o = b.cli(&["join", &addr, "--token", "not-a-token"]);
    assert_eq!(o.status.code(), Some(2));
    // A well-formed token the mesh never issued.
    let forged = "rcm1-0011223344556677-00112233445566778899aabbccddeeff";
    let o = b.cli(&["join", &addr, "--token", forged]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown token"), "{}", stderr(&o));
    // A real token, and its secret changed: unknown too.
    let token = a.token();
    let tampered = format!("{}0", &token[..token.len() - 1]);
    let tampered = if tampered == token {
        format!("{}1", &token[..token.len() - 1])
    } else {
        tampered
    };
    let o = b.cli(&["join", &addr, "--token", &tampered]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unknown token"), "{}", stderr(&o));
    // The real one admits b; b then sees a and a sees b.
    let o = b.cli(&["join", &addr, "--token", &token]);
    assert!(o.status.success(), "{}", stderr(&o));
    a.wait_until("b is a member", Duration::from_secs(20), |a| {
        member_names(a).contains(&"node-b".to_string())
    });
    b.wait_until("b sees a", Duration::from_secs(20), |b| {
        member_names(b).contains(&"node-a".to_string())
    });
    // Replayed: the same token admits no one else.
    let c = agent(root, "node-c", &[]);
    let o = c.cli(&["join", &addr, "--token", &token]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already used"), "{}", stderr(&o));
    // Expired: a one-second token, presented after its end.
    let o = a.cli(&["mesh", "token", "--ttl", "1s"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let issued = Instant::now();
    let short = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string();
    // Waiting for the clock itself, not for another process: the token must be past due.
    std::thread::sleep(Duration::from_millis(1_200).saturating_sub(issued.elapsed()));
    let o = c.cli(&["join", &addr, "--token", &short]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("expired"), "{}", stderr(&o));
    assert!(!member_names(&a).contains(&"node-c".to_string()));
    // Every refusal is in the member's log, and no secret is.
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(log.matches("refused peer").count() >= 4, "{log}");
    assert!(
        !log.contains(&token[5..]),
        "a token's secret reached the log"
    );
    // A second live member of one name is refused, and the token is not spent.
    let mut args = vec!["--node", "node-b"];
    args.extend_from_slice(&LISTEN);
    let twin = Agent::start(&root.join("twin"), &args, &[]);
    let fresh = a.token();
    let o = twin.cli(&["join", &addr, "--token", &fresh]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("a live member is already named `node-b`"),
        "{}",
        stderr(&o)
    );
    drop(twin);
    // That token joins c through b (any member admits).
    let o = c.cli(&["join", &b.address(), "--token", &fresh]);
    assert!(o.status.success(), "{}", stderr(&o));
    a.wait_until("c is a member", Duration::from_secs(20), |a| {
        member_names(a).contains(&"node-c".to_string())
    });
}

#[test]
fn a_node_of_another_mesh_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let a = agent(root, "node-a", &[]);
    a.init_mesh();
    let addr = a.address();
    // The rogue has its own mesh and an application, and dials the member.
    let rogue = agent(root, "rogue", &["--peer", &addr]);
    let app = roboconf_tests::workspace().join("examples/lamp");
    let o = rogue.cli(&["app", "add", app.to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    rogue.init_mesh();
    a.wait_until("the rogue refused", Duration::from_secs(30), |a| {
        std::fs::read_to_string(&a.log)
            .unwrap_or_default()
            .contains("refused peer")
    });
    // Still refused on its next attempts (it keeps dialing), and nothing of it is here.
    a.wait_until("a second refusal", Duration::from_secs(30), |a| {
        std::fs::read_to_string(&a.log)
            .unwrap_or_default()
            .matches("refused peer")
            .count()
            >= 2
    });
    let o = a.cli(&["app", "list", "--json"]);
    assert!(o.status.success());
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("lamp"),
        "the rogue's application reached the mesh"
    );
    assert!(!member_names(&a).contains(&"rogue".to_string()));
    let o = rogue.cli(&["members", "--json"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("node-a"));
}
