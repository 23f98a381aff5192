//! The elastic `examples/lamp` on a 3-voter mesh, every VM launched by the coordinator
//! with the `local` target: HTTP load on the balancer makes its `rest` probe hit
//! (`lamp-overloaded`), the rule `scale-up` replicates an app server's machine with
//! `$(SMART_INDEX)` and the balancer is re-configured with it; once the load falls,
//! `lamp-idle` fires `scale-down`, which takes the added server away again
//! (`$(EXISTING_INDEX MAX > 2)`) and the coordinator retires its machine. The example's
//! fixed ports, thresholds and 60 s sleep periods are replaced for the test.

use roboconf_tests::Agent;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A copy of examples/lamp: free ports, low thresholds, short sleep periods.
fn lamp(root: &Path, lb: u16) -> PathBuf {
    let app = roboconf_tests::lamp_copy_on(root, lb);
    std::fs::write(
        app.join("probes/LB.measures.properties"),
        format!("lb-port = {lb}\nhigh = 3\nlow = 0.5\n"),
    )
    .expect("probe properties");
    for rule in ["scale-up", "scale-down"] {
        let p = app.join(format!("rules.autonomic/{rule}.drl"));
        let text = std::fs::read_to_string(&p).expect("rule");
        // One scale-up for the test's burst of load; scale-down soon after it.
        let sleep = if rule == "scale-up" { "300s" } else { "3s" };
        std::fs::write(&p, text.replace("60s", sleep)).expect("rule");
    }
    app
}

/// Requests to the balancer in a loop until `stop`.
fn load(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
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

fn start(root: &Path, name: &str) -> Agent {
    Agent::start(
        &root.join(name),
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--node", name],
        &[("ROBOCONF_PROBE_PERIOD_SECS", "1")],
    )
}

fn history(a: &Agent) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&a.cli(&["history", "lamp", "--json"]).stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

#[test]
fn the_elastic_lamp_scales_up_on_load_and_down_when_it_falls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let machines = root.join("roboconf-machines");
    let _guard = roboconf_tests::MachinesGuard(machines.clone());
    let lb = roboconf_tests::free_port();
    let app = lamp(root, lb);
    let a = start(root, "a");
    a.init_mesh();
    let mut agents = vec![a];
    for n in ["b", "c"] {
        let x = start(root, n);
        x.join(&agents[0]);
        agents.push(x);
    }
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "four machines and both app servers in the balancer",
        Duration::from_secs(90),
        |_| {
            roboconf_tests::live_machines(&machines).len() == 4
                && roboconf_tests::lamp_servers(&machines).len() == 2
        },
    );
    // Load: the probe sees more than 3 requests per second per server.
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(lb, stop.clone());
    a.wait_until(
        "a third app server in the balancer",
        Duration::from_secs(90),
        |_| {
            roboconf_tests::lamp_servers(&machines)
                .iter()
                .any(|s| s.contains("/vm-app-3/app-1"))
        },
    );
    stop.store(true, Ordering::Relaxed);
    let sent = loader.join().expect("loader");
    assert!(sent > 0);
    assert_eq!(
        roboconf_tests::live_machines(&machines).len(),
        5,
        "one more machine"
    );
    let h = history(a);
    let ups: Vec<&serde_json::Value> = h.iter().filter(|x| x["command"] == "scale-up").collect();
    assert_eq!(ups.len(), 1, "{h:?}");
    assert_eq!(ups[0]["origin"], "rule");
    assert_eq!(ups[0]["details"], "scale-up");
    // No load: the added server goes, its machine too.
    a.wait_until("back to two app servers", Duration::from_secs(120), |_| {
        roboconf_tests::lamp_servers(&machines).len() == 2
            && roboconf_tests::live_machines(&machines).len() == 4
    });
    a.wait_until(
        "the scale-down in the history",
        Duration::from_secs(30),
        |a| {
            history(a)
                .iter()
                .any(|x| x["command"] == "scale-down" && x["result"] == "ok")
        },
    );
    let o = a.cli(&["app", "undeploy", "lamp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("every machine terminated", Duration::from_secs(90), |_| {
        roboconf_tests::live_machines(&machines).is_empty()
    });
}
