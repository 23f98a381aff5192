//! The embedded web console in headless Chromium: `examples/lamp` deployed on a 3-voter
//! mesh (every VM launched by the coordinator with the `local` target), the first agent
//! serving the console on loopback without a token and the second asking for one; then
//! `tests/console/console.test.mjs` (playwright-core driving Debian's chromium) checks
//! that the tree shows every instance, that a change made with the CLI shows within 1 s
//! without reload, that a Stop clicked in the console stops the instance, and that a
//! read-only token's Stop is refused with the 403 in `#error-banner`. Screenshots go to
//! `target/console-screenshots/` (or `$CONSOLE_SCREENSHOTS`). (The first paint of 1,000
//! instances, `tests/console/first-paint.mjs`, is measured by `agent/benches/http.rs`.)
//!
//! Needs node and chromium (CI installs both; `$CHROMIUM` names another browser): the
//! test fails, it does not skip, when they are missing. `npm ci` runs first when
//! `tests/console/node_modules` is missing (the lockfile pins playwright-core).

use roboconf_tests::Agent;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PATHS: [&str; 8] = [
    "/vm-lb",
    "/vm-lb/lb",
    "/vm-app-1",
    "/vm-app-1/app-1",
    "/vm-app-2",
    "/vm-app-2/app-2",
    "/vm-db",
    "/vm-db/db",
];

fn start(root: &Path, name: &str, http: &[&str]) -> Agent {
    let mut args = vec!["--listen", "/ip4/127.0.0.1/tcp/0", "--node", name];
    args.extend_from_slice(http);
    Agent::start(&root.join(name), &args, &[])
}

/// Fails (never skips) when a tool the test needs is missing.
fn require_tools() -> PathBuf {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "node is missing: the console test needs Node.js 20 or later and Chromium \
         (CI installs them; locally: apt-get install nodejs npm chromium)"
    );
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "{} is missing: the console test drives Chromium headless (CI installs it; locally: \
         apt-get install chromium, or set CHROMIUM to another Chromium)",
        chromium.display()
    );
    let dir = roboconf_tests::workspace().join("tests/console");
    if !dir.join("node_modules/playwright-core").is_dir() {
        let o = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run npm ci in {}: {e}", dir.display()));
        assert!(
            o.status.success(),
            "npm ci in {} failed:\n{}{}",
            dir.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    chromium
}

/// Runs `node SCRIPT` in tests/console with `envs`, printing its output; panics when it
/// fails or outlives `timeout`. Returns its output.
fn node(script: &str, envs: &[(&str, String)], timeout: Duration) -> String {
    let dir = roboconf_tests::workspace().join("tests/console");
    let out_path = std::env::temp_dir().join(format!(
        "roboconf-console-{}-{script}.out",
        std::process::id()
    ));
    let out = std::fs::File::create(&out_path).expect("output file");
    let began = Instant::now();
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("output"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node {script}: {e}"));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for node") {
            break Some(s);
        }
        if began.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    println!(
        "--- node {script} ({:.1} s) ---\n{text}",
        began.elapsed().as_secs_f64()
    );
    let _ = std::io::stdout().flush();
    match status {
        Some(s) if s.success() => text,
        Some(s) => panic!("node {script} failed ({s}):\n{text}"),
        None => panic!("node {script} took more than {timeout:?}:\n{text}"),
    }
}

#[test]
fn the_console_shows_and_drives_lamp_in_chromium() {
    let chromium = require_tools();
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let machines = root.join("roboconf-machines");
    let _guard = roboconf_tests::MachinesGuard(machines.clone());
    let shots = std::env::var_os("CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/roboconf -> target/console-screenshots
            let bin = roboconf_tests::roboconf_bin();
            bin.parent()
                .and_then(Path::parent)
                .map(|t| t.join("console-screenshots"))
                .unwrap_or_else(|| PathBuf::from("console-screenshots"))
        });
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshots dir");

    // The mesh: `a` serves the console openly, `b` asks for a token.
    let app = roboconf_tests::lamp_copy(root);
    let mut agents = vec![start(root, "a", &["--http", "127.0.0.1:0"])];
    agents[0].init_mesh();
    let b = start(
        root,
        "b",
        &["--http", "127.0.0.1:0", "--http-require-token"],
    );
    b.join(&agents[0]);
    agents.push(b);
    let c = start(root, "c", &[]);
    c.join(&agents[0]);
    agents.push(c);
    agents[0].wait_until("three voters", Duration::from_secs(30), |a| {
        let v: serde_json::Value =
            serde_json::from_slice(&a.cli(&["coordinator", "--json"]).stdout).unwrap_or_default();
        v["voters"].as_array().is_some_and(|l| l.len() == 3)
    });
    let base = roboconf_tests::http::base_url(&agents[0]);
    let token_base = roboconf_tests::http::base_url(&agents[1]);
    use roboconf_tests::http::{metric, metrics_checked};
    let gossip_in = "roboconf_net_messages_total{kind=\"gossip\",direction=\"in\"}";
    let before = metrics_checked(&base);
    let o = agents[0].cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[0].wait_until(
        "every lamp instance started",
        Duration::from_secs(120),
        |a| {
            let s = a.status("lamp");
            PATHS.iter().all(|p| {
                s["instances"].as_array().is_some_and(|l| {
                    l.iter()
                        .any(|i| i["path"] == *p && i["state"] == "DEPLOYED_STARTED")
                })
            })
        },
    );

    // `/metrics` passes promtool and moves with the deployment: the lamp's instances
    // are counted started (hosted by the machines' agents), gossip came in.
    agents[0].wait_until(
        "lamp started in the metrics",
        Duration::from_secs(30),
        |_| {
            metric(
                &metrics_checked(&base),
                "roboconf_instances{app=\"lamp\",state=\"DEPLOYED_STARTED\",hosted=\"elsewhere\"}",
            ) == PATHS.len() as f64
        },
    );
    let after = metrics_checked(&base);
    assert!(
        metric(&after, gossip_in) > metric(&before, gossip_in),
        "{after}"
    );

    let bin = roboconf_tests::roboconf_bin();
    let envs = vec![
        ("BASE_URL", base),
        ("TOKEN_BASE_URL", token_base),
        ("ROBOCONF_BIN", bin.display().to_string()),
        (
            "ROBOCONF_DATA_DIR",
            agents[0].data_dir.display().to_string(),
        ),
        ("APP", "lamp".to_string()),
        ("SCREENSHOTS", shots.display().to_string()),
        ("CHROMIUM", chromium.display().to_string()),
        // Both app servers for the CLI's and the click's stops: the balancer keeps
        // running while one remains, and the read-only check uses a started machine.
        ("CLI_PATH", "/vm-app-1/app-1".to_string()),
        ("CLICK_PATH", "/vm-app-2/app-2".to_string()),
        ("READONLY_PATH", "/vm-db".to_string()),
    ];
    node("console.test.mjs", &envs, Duration::from_secs(300));
    assert_eq!(
        agents[0].state("lamp", "/vm-app-2/app-2"),
        "DEPLOYED_STOPPED",
        "the console's Stop holds"
    );
    assert_eq!(
        agents[0].state("lamp", "/vm-db"),
        "DEPLOYED_STARTED",
        "the read-only token changed nothing"
    );
}
