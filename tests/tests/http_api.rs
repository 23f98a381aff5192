//! The agent's HTTP API on a real two-agent mesh: every resource with its errors, the
//! same answers as the CLI, live events over WebSocket and Server-Sent Events, bounds
//! (bodies, path parameters, a client that never reads). Real processes, port 0.

use roboconf_tests::http::{base_url, enc, get_json, request};
use roboconf_tests::Agent;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
const START: &str =
    "#!/bin/bash\necho started $ROBOCONF_INSTANCE_PATH arenas=${MALLOC_ARENA_MAX:-unset}\n";
const SCALE: &str = "replicate /vm-app as vm-app-2\n";

/// Agent a (`--http`, hosts /vm-db) and b (hosts /vm-app) in one mesh, shop registered
/// and started on both.
fn mesh(root: &Path) -> (Agent, Agent, String) {
    let app = roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        &[
            ("graph/Db/scripts/start.sh", START),
            ("graph/App/scripts/start.sh", START),
            ("commands/scale.commands", SCALE),
        ],
    );
    let listen = ["--listen", "/ip4/127.0.0.1/tcp/0"];
    let a = Agent::start(
        &root.join("a"),
        &[
            &listen[..],
            &[
                "--host",
                "shop:/vm-db",
                "--node",
                "node-a",
                "--http",
                "127.0.0.1:0",
            ],
        ]
        .concat(),
        &[],
    );
    a.init_mesh();
    let b = Agent::start(
        &root.join("b"),
        &[&listen[..], &["--host", "shop:/vm-app", "--node", "node-b"]].concat(),
        &[],
    );
    b.join(&a);
    for agent in [&a, &b] {
        let o = agent.cli(&["app", "add", app.to_str().expect("path"), "--start"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    a.wait_states("shop", &["/vm-db/db", "/vm-app/app"], "DEPLOYED_STARTED");
    let url = base_url(&a);
    (a, b, url)
}

fn states(url: &str) -> std::collections::BTreeMap<String, String> {
    get_json(url, "/roboconf-dm/app/shop/instances?all-children=true")
        .as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            (
                i["path"].as_str().unwrap_or_default().to_string(),
                i["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn wait_state(url: &str, path: &str, state: &str) {
    roboconf_tests::wait(
        &format!("{path} {state} through the API"),
        Duration::from_secs(30),
        || states(url).get(path).map(String::as_str) == Some(state),
    );
}

fn post(url: &str, target: &str) -> roboconf_tests::http::Reply {
    request(url, "POST", target, None, None)
}

#[test]
fn every_resource_answers_like_the_cli() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, url) = mesh(tmp.path());

    // Applications with their health.
    roboconf_tests::wait("shop healthy", Duration::from_secs(30), || {
        get_json(&url, "/roboconf-dm/applications")[0]["health"] == "ok"
    });
    let apps = get_json(&url, "/roboconf-dm/applications");
    assert_eq!(apps[0]["name"], "shop");
    assert_eq!(apps[0]["instances"], 4);
    assert_eq!(apps[0]["started"], 4);

    // Instances: roots, children, all; the same states as `status --json` on both agents.
    let roots = get_json(&url, "/roboconf-dm/app/shop/instances");
    let names: Vec<&str> = roots
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names, ["vm-app", "vm-db"]);
    let children = get_json(
        &url,
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-app")
        ),
    );
    assert_eq!(children[0]["path"], "/vm-app/app");
    assert_eq!(children[0]["component"]["name"], "App");
    assert_eq!(children[0]["node"], "node-b");
    assert_eq!(children[0]["exports"]["App.port"], "8080");
    for agent in [&a, &b] {
        let cli: std::collections::BTreeMap<String, String> = agent.status("shop")["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["path"].as_str().unwrap().to_string(),
                    i["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(cli, states(&url), "the API and `status --json` agree");
    }
    let cli_members: Vec<Value> =
        serde_json::from_slice(&a.cli(&["members", "--json"]).stdout).unwrap();
    let members = get_json(&url, "/roboconf-dm/members");
    assert_eq!(members.as_array().unwrap().len(), cli_members.len());
    for m in cli_members {
        let api = members
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == m["id"])
            .expect("same member");
        assert_eq!(api["name"], m["name"]);
        assert_eq!(api["state"], m["state"]);
    }
    let coord = get_json(&url, "/roboconf-dm/coordinator");
    let leader = coord["leader"].as_str().expect("a leader").to_string();
    assert!(members
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == leader.as_str()
            && m["roles"].as_array().unwrap().iter().any(|r| r == "leader")));

    // Changing states: one instance, then a subtree, then the whole application.
    let r = post(
        &url,
        &format!(
            "/roboconf-dm/app/shop/change-state?new-state=DEPLOYED_STOPPED&instance-path={}",
            enc("/vm-db/db")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_state(&url, "/vm-db/db", "DEPLOYED_STOPPED");
    assert_eq!(a.state("shop", "/vm-db/db"), "DEPLOYED_STOPPED");
    wait_state(&url, "/vm-app/app", "UNRESOLVED");
    let r = post(
        &url,
        &format!(
            "/roboconf-dm/app/shop/deploy-all?instance-path={}",
            enc("/vm-db")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    wait_state(&url, "/vm-app/app", "DEPLOYED_STARTED");
    let r = post(&url, "/roboconf-dm/app/shop/stop-all");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_state(&url, "/vm-app/app", "DEPLOYED_STOPPED");
    wait_state(&url, "/vm-db/db", "DEPLOYED_STOPPED");
    assert_eq!(post(&url, "/roboconf-dm/app/shop/deploy-all").status, 200);
    wait_state(&url, "/vm-app/app", "DEPLOYED_STARTED");

    // Script runs of an instance hosted by the other agent, through this one.
    let runs = get_json(
        &url,
        &format!(
            "/roboconf-dm/app/shop/runs?instance-path={}",
            enc("/vm-app/app")
        ),
    );
    assert!(
        runs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["action"] == "start"
                && r["output"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("started /vm-app/app arenas=unset")),
        "{runs}"
    );

    // Creating, replicating and deleting instances.
    let body = br#"{"name":"db2","component":{"name":"Db"}}"#;
    let r = request(
        &url,
        "POST",
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-db")
        ),
        Some(body),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(states(&url).contains_key("/vm-db/db2"));
    let r = request(
        &url,
        "POST",
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-db")
        ),
        Some(body),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.body);
    let r = request(
        &url,
        "DELETE",
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-db/db2")
        ),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!states(&url).contains_key("/vm-db/db2"));
    let r = post(
        &url,
        &format!(
            "/roboconf-dm/app/shop/replicate?instance-path={}&name=vm-copy",
            enc("/vm-app")
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let s = states(&url);
    assert_eq!(s.get("/vm-copy").map(String::as_str), Some("NOT_DEPLOYED"));
    assert_eq!(
        s.get("/vm-copy/app").map(String::as_str),
        Some("NOT_DEPLOYED")
    );
    let r = post(
        &url,
        &format!(
            "/roboconf-dm/app/shop/replicate?instance-path={}&name=x",
            enc("/vm-app/app")
        ),
    );
    assert_eq!(r.status, 400, "only roots: {}", r.body);
    let r = request(
        &url,
        "DELETE",
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-copy")
        ),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // What the application offers, its diagnosis, commands, history and jobs.
    let comps = get_json(&url, "/roboconf-dm/app/shop/components");
    let roots = comps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "")
        .expect("roots");
    assert_eq!(roots["children"], serde_json::json!(["VM"]));
    let vm = comps
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "VM")
        .expect("VM");
    assert_eq!(vm["children"], serde_json::json!(["App", "Db"]));
    let diag = get_json(
        &url,
        "/roboconf-dm/debug/diagnose-application?application-name=shop",
    );
    let app = diag
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "/vm-app/app")
        .expect("app");
    assert_eq!(app["dependencies"][0]["prefix"], "Db");
    assert_eq!(app["dependencies"][0]["resolved"], true);
    assert_eq!(
        get_json(&url, "/roboconf-dm/app/shop/commands"),
        serde_json::json!(["scale"])
    );
    assert!(get_json(&url, "/roboconf-dm/history/commands?app=shop").is_array());
    let r = post(
        &url,
        "/roboconf-dm/scheduler?app-name=shop&job-name=nightly&cmd-name=scale&cron=0+0+3+*+*+%3F",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let jobs = get_json(&url, "/roboconf-dm/scheduler?app-name=shop");
    assert_eq!(jobs[0]["name"], "nightly");
    assert!(jobs[0]["next_ms"].as_u64().is_some());
    let cli_jobs = String::from_utf8_lossy(&b.cli(&["job", "list", "shop"]).stdout).to_string();
    assert!(
        cli_jobs.contains("nightly"),
        "the CLI on the other agent sees it: {cli_jobs}"
    );
    let r = request(
        &url,
        "DELETE",
        "/roboconf-dm/scheduler?app-name=shop&job-name=nightly",
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The OpenAPI document lists every resource served.
    let doc = get_json(&url, "/openapi.json");
    for p in [
        "/roboconf-dm/applications",
        "/roboconf-dm/app/{name}/instances",
        "/roboconf-dm/app/{name}/change-state",
        "/roboconf-dm/debug/diagnose-application",
        "/roboconf-dm/members",
        "/roboconf-dm-websocket",
        "/metrics",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} documented");
    }
    let documented: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    for p in documented {
        let concrete = p.replace("{name}", "shop");
        let r = request(&url, "OPTIONS", &concrete, None, None);
        assert_ne!(
            r.status, 404,
            "{p} is documented but not served: {}",
            r.body
        );
    }
}

/// A request (method, target, body) and the status and error text it must get.
type Case<'a> = (&'a str, String, Option<&'a [u8]>, u16, &'a str);

#[test]
fn bad_input_gets_clear_json_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (_a, _b, url) = mesh(tmp.path());
    let error = |r: &roboconf_tests::http::Reply| {
        r.json()["error"].as_str().unwrap_or_default().to_string()
    };
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/roboconf-dm/app/nope/instances".into(),
            None,
            404,
            "no application named `nope`",
        ),
        (
            "GET",
            format!(
                "/roboconf-dm/app/shop/instances?instance-path={}",
                enc("/nope")
            ),
            None,
            404,
            "no instance",
        ),
        (
            "POST",
            format!(
                "/roboconf-dm/app/shop/change-state?new-state=RUNNING&instance-path={}",
                enc("/vm-db")
            ),
            None,
            400,
            "not a state",
        ),
        (
            "POST",
            "/roboconf-dm/app/shop/change-state?new-state=NOT_DEPLOYED".into(),
            None,
            400,
            "`instance-path` is required",
        ),
        (
            "GET",
            "/roboconf-dm/nothing-here".into(),
            None,
            404,
            "no resource",
        ),
        (
            "GET",
            "/roboconf-dm/app/..%2F..%2Fetc/instances".into(),
            None,
            400,
            "not an application name",
        ),
        (
            "GET",
            format!(
                "/roboconf-dm/app/shop/instances?instance-path={}",
                enc("/vm-db/../../etc")
            ),
            None,
            400,
            "not an instance path",
        ),
        (
            "POST",
            format!(
                "/roboconf-dm/app/shop/instances?instance-path={}",
                enc("/vm-db")
            ),
            Some(b"{not json".as_slice()),
            400,
            "not an instance",
        ),
        (
            "POST",
            format!(
                "/roboconf-dm/app/shop/instances?instance-path={}",
                enc("/vm-db")
            ),
            Some(br#"{"name":"../x","component":{"name":"Db"}}"#.as_slice()),
            400,
            "not an instance path",
        ),
        (
            "POST",
            "/roboconf-dm/app/shop/replicate?name=x".into(),
            None,
            400,
            "required",
        ),
        (
            "DELETE",
            "/roboconf-dm/applications/nope".into(),
            None,
            404,
            "no application",
        ),
    ];
    for (method, target, body, status, says) in cases {
        let r = request(&url, method, &target, body, None);
        assert_eq!(r.status, status, "{method} {target}: {}", r.body);
        assert!(error(&r).contains(says), "{method} {target}: {}", r.body);
    }
    // A body over the bound is refused without being read whole.
    let huge = vec![b'x'; 3 << 20];
    let r = request(
        &url,
        "POST",
        &format!(
            "/roboconf-dm/app/shop/instances?instance-path={}",
            enc("/vm-db")
        ),
        Some(&huge),
        None,
    );
    assert!(
        r.status == 413 || r.status == 400,
        "{} {}",
        r.status,
        r.body
    );
    // Clients that connect and say nothing, or send half a request, hold no one up.
    let host = url.strip_prefix("http://").expect("http");
    let mut idle = Vec::new();
    for k in 0..100 {
        let mut c = std::net::TcpStream::connect(host).expect("connect");
        if k % 2 == 0 {
            use std::io::Write;
            let _ = c.write_all(b"GET /roboconf-dm/applications HTTP/1.1\r\nHost: x\r\n");
        }
        idle.push(c);
    }
    let t = std::time::Instant::now();
    assert_eq!(
        get_json(&url, "/roboconf-dm/applications")[0]["name"],
        "shop"
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    drop(idle);
}

/// Reads WebSocket text frames until one satisfies `found`, within `timeout`.
async fn ws_until(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    timeout: Duration,
    found: impl Fn(&Value) -> bool,
) -> Option<Value> {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .ok()??
            .ok()?;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).ok()?;
            if found(&v) {
                return Some(v);
            }
        }
    }
}

#[test]
fn live_events_reach_websocket_and_sse_clients() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, url) = mesh(tmp.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let ws_url = url.replace("http://", "ws://") + "/roboconf-dm-websocket";
        let (mut ws, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect("websocket");
        // A client that connects and never reads: the agent must not wait for it.
        let (_stuck, _) = tokio_tungstenite::connect_async(&ws_url)
            .await
            .expect("websocket");
        // SSE: a raw connection reading the stream.
        let host = url.strip_prefix("http://").unwrap().to_string();
        let mut sse = tokio::net::TcpStream::connect(&host).await.expect("sse");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        sse.write_all(
            format!("GET /roboconf-dm/events HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        )
        .await
        .expect("sse request");
        // A change made with the CLI on the other agent, for an instance it hosts.
        let o = b.cli(&["instance", "stop", "shop", "/vm-app/app"]);
        assert!(o.status.success());
        let ev = ws_until(&mut ws, Duration::from_secs(10), |v| {
            v["inst"]["path"] == "/vm-app/app" && v["inst"]["status"] == "DEPLOYED_STOPPED"
        })
        .await
        .expect("the remote state change arrives over the WebSocket");
        assert_eq!(ev["event"], "CHANGED");
        assert_eq!(ev["app"]["name"], "shop");
        assert_eq!(ev["inst"]["data"]["node"], "node-b");
        // An application registered.
        let app = tmp.path().join("app");
        let o = a.cli(&["app", "add", app.to_str().expect("path"), "--name", "shop2"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        ws_until(&mut ws, Duration::from_secs(10), |v| {
            v["event"] == "CREATED" && v["app"]["name"] == "shop2"
        })
        .await
        .expect("the registration arrives over the WebSocket");
        // A local one (hosted by a).
        let o = a.cli(&["instance", "stop", "shop", "/vm-db/db"]);
        assert!(o.status.success());
        ws_until(&mut ws, Duration::from_secs(10), |v| {
            v["inst"]["path"] == "/vm-db/db" && v["inst"]["status"] == "DEPLOYED_STOPPED"
        })
        .await
        .expect("the local state change arrives over the WebSocket");
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 4096];
        while !seen.contains("\"path\":\"/vm-db/db\"") || !seen.contains("DEPLOYED_STOPPED") {
            let n = tokio::time::timeout_at(deadline, sse.read(&mut buf))
                .await
                .expect("SSE events in time")
                .expect("SSE read");
            assert!(n > 0, "the SSE stream ended: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(seen.contains("text/event-stream"), "{seen}");
        assert!(seen.contains("event: CHANGED"), "{seen}");
    });
    // The agent answers at once meanwhile.
    let t = std::time::Instant::now();
    assert_eq!(
        get_json(&url, "/roboconf-dm/applications")[0]["name"],
        "shop"
    );
    assert!(t.elapsed() < Duration::from_secs(2));
}
