//! `roboconf demo --exit` runs its whole script — a mesh of agents on loopback deploying
//! examples/lamp, a scale-out, a scale-up fired by load (autonomic), a node killed and the balancer re-configured — and leaves
//! nothing behind: no temporary folder, no agent, no process of the application.

use roboconf_tests::roboconf;

#[test]
fn the_demo_runs_and_cleans_up() {
    let o = roboconf(&["demo", "--exit"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    for step in [
        "starting 4 agents",
        "deployed and started across the mesh",
        "scale-out",
        "the coordinator launches a local machine",
        "a new leader in",
        "the new leader finished the launch",
        "autonomic scale-up",
        "a new app server in the balancer",
        "history: scale-up ran by rule `scale-up`: ok",
        "killing node4",
        "re-configured",
        "done",
    ] {
        assert!(out.contains(step), "missing `{step}` in:\n{out}");
    }
    assert!(out.contains("server /vm-app-3/app-3"), "{out}");
    assert!(out.contains("server /vm-app-4/app-4"), "{out}");
    assert!(
        out.contains("server /vm-app-5/app-1"),
        "the replica of vm-app-1: {out}"
    );
    assert!(out.contains("2 machines (one per launched root)"), "{out}");
    assert!(
        out.contains("PROBLEM"),
        "the dead node's machine is shown in trouble:\n{out}"
    );
    let root = out
        .lines()
        .find_map(|l| l.strip_prefix("==> starting 4 agents on loopback in "))
        .expect("demo folder")
        .trim()
        .to_string();
    assert!(
        !std::path::Path::new(&root).exists(),
        "{root} was left behind"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "args"])
        .output()
        .expect("ps");
    let leftovers: Vec<String> = String::from_utf8_lossy(&ps.stdout)
        .lines()
        .filter(|l| l.contains(&root))
        .map(String::from)
        .collect();
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
}
