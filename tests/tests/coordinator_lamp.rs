//! `examples/lamp` on a 3-voter mesh where every VM root is launched by the coordinator
//! with the `local` target (the example's own target file): four machines, the balancer
//! configured with both app servers; `instance create` + `start` of a new VM launches
//! exactly one more agent, which joins and hosts it, and the balancer is re-configured;
//! a second scale-out with the leader killed (`kill -9`) while it launches: another voter
//! leads and finishes it, one machine for that root; `app undeploy` terminates every
//! machine (no process left). The example's fixed ports are replaced by free ones.

use roboconf_tests::Agent;
use std::path::Path;
use std::time::Duration;

fn stats(a: &Agent) -> serde_json::Value {
    serde_json::from_slice(&a.cli(&["stats", "--json"]).stdout).unwrap_or_default()
}

fn start(root: &Path, name: &str) -> Agent {
    Agent::start(
        &root.join(name),
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--node", name],
        &[],
    )
}

#[test]
fn lamp_with_every_machine_launched_by_the_coordinator() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // The example's target has no `local.dir`: machines go beside the agents' data dirs.
    let machines = root.join("roboconf-machines");
    let _guard = roboconf_tests::MachinesGuard(machines.clone());
    let app = roboconf_tests::lamp_copy(root);
    let mut agents = vec![start(root, "a")];
    agents[0].init_mesh();
    for n in ["b", "c"] {
        let x = start(root, n);
        x.join(&agents[0]);
        agents.push(x);
    }
    agents[0].wait_until("three voters", Duration::from_secs(30), |a| {
        let v: serde_json::Value =
            serde_json::from_slice(&a.cli(&["coordinator", "--json"]).stdout).unwrap_or_default();
        v["voters"].as_array().is_some_and(|l| l.len() == 3)
    });
    let o = agents[0].cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[0].wait_until(
        "four machines and both app servers in the balancer",
        Duration::from_secs(90),
        |_| {
            roboconf_tests::live_machines(&machines).len() == 4
                && roboconf_tests::lamp_servers(&machines).len() == 2
        },
    );
    // Scale-out on a follower: one more machine, three servers.
    let f = (0..3)
        .find(|&k| stats(&agents[k])["coordinator_leader"] != 1)
        .expect("a follower");
    for (path, comp) in [("/vm-app-3", "VM"), ("/vm-app-3/app-3", "App")] {
        let o = agents[f].cli(&["instance", "create", "lamp", path, "--component", comp]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = agents[f].cli(&["instance", "start", "lamp", "/vm-app-3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[f].wait_until("app-3 in the balancer", Duration::from_secs(60), |_| {
        roboconf_tests::lamp_servers(&machines)
            .iter()
            .any(|s| s.contains("/vm-app-3/app-3"))
    });
    assert_eq!(
        roboconf_tests::live_machines(&machines).len(),
        5,
        "exactly one more machine"
    );
    // A second scale-out, the leader killed while it launches.
    let l = (0..3)
        .find(|&k| stats(&agents[k])["coordinator_leader"] == 1)
        .expect("the leader");
    let f = (0..3).find(|&k| k != l).expect("a survivor");
    for (path, comp) in [("/vm-app-4", "VM"), ("/vm-app-4/app-4", "App")] {
        let o = agents[f].cli(&["instance", "create", "lamp", path, "--component", comp]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = agents[f].cli(&["instance", "start", "lamp", "/vm-app-4"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[f].wait_until(
        "the launch of /vm-app-4 under way",
        Duration::from_secs(30),
        |a| {
            a.status("lamp")["instances"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|i| i["path"] == "/vm-app-4" && i["machine"].is_object())
            })
        },
    );
    agents[l].kill9();
    agents[f].wait_until("a new leader", Duration::from_secs(10), |_| {
        (0..3).any(|k| k != l && stats(&agents[k])["coordinator_leader"] == 1)
    });
    agents[f].wait_until("app-4 in the balancer", Duration::from_secs(90), |_| {
        roboconf_tests::lamp_servers(&machines)
            .iter()
            .any(|s| s.contains("/vm-app-4/app-4"))
    });
    // One machine per root, /vm-app-4's launched once (a machine's agent may be between
    // two lives for a moment: the count settles, never above one per root).
    let mut counts = Vec::new();
    roboconf_tests::wait(
        "one machine per root, /vm-app-4's launched once",
        Duration::from_secs(20),
        || {
            let n = roboconf_tests::live_machines(&machines).len();
            counts.push(n);
            n == 6
        },
    );
    assert!(
        counts.iter().all(|n| *n <= 6),
        "more machines than roots: {counts:?}"
    );
    // Undeploy everything: every machine terminated.
    let o = agents[f].cli(&["app", "undeploy", "lamp"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[f].wait_until("every machine terminated", Duration::from_secs(90), |_| {
        roboconf_tests::live_machines(&machines).is_empty()
            && std::fs::read_dir(&machines).map_or(0, |d| d.count()) == 0
    });
}
