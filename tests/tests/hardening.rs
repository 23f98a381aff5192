//! What a hostile or unlucky operator broke on one agent (issue 14), each case as it was
//! seen: instances whose working folders collided, a deploy that failed for lack of a
//! working folder and was never tried again, a store deleted under a data dir that still
//! held applications.

use roboconf_tests::{ok, roboconf_bin, shop_app, Agent};
use std::path::Path;
use std::time::Duration;

const GRAPH: &str = "VM {
	installer: target;
	children: App;
}
App {
	installer: script;
	exports: ip;
}
";

/// Three instances whose paths Roboconf cleans to the same `vm_a_b`.
const CLASHING: &str = "instance of VM {
	name: vm;
	instance of App {
		name: a b;
	}
	instance of App {
		name: a-b;
	}
	instance of App {
		name: a_b;
	}
}
";

/// Deploy leaves the instance's own path in its working folder; start checks it is still
/// its own and journals what the script contract says.
const DEPLOY: &str = "#!/bin/bash\necho \"$ROBOCONF_INSTANCE_PATH\" > mine.txt\n";
const START: &str = "#!/bin/bash\ngrep -qxF \"$ROBOCONF_INSTANCE_PATH\" mine.txt || { echo \"not mine: $(cat mine.txt)\"; exit 1; }\necho \"$ROBOCONF_INSTANCE_PATH $ROBOCONF_CLEAN_INSTANCE_PATH $PWD\" >> \"$JOURNAL\"\n";

fn app(root: &Path, instances: &str) -> std::path::PathBuf {
    shop_app(
        root,
        GRAPH,
        instances,
        &[
            ("graph/App/scripts/deploy.sh", DEPLOY),
            ("graph/App/scripts/start.sh", START),
        ],
    )
}

/// Runs `roboconf agent ARGS` that must exit at once (refused); an agent that starts
/// instead is killed after the deadline and the test fails.
fn refused_agent(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let mut child = std::process::Command::new(roboconf_bin())
        .arg("agent")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started instead of refusing: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `/vm/a b`, `/vm/a-b` and `/vm/a_b` shared `instances/shop/vm_a_b`: deploying one wiped
/// another's folder. Each now has its own, and scripts still see Roboconf's clean path.
#[test]
fn instances_whose_clean_paths_collide_keep_their_own_working_folders() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = app(tmp.path(), CLASHING);
    let journal = tmp.path().join("journal");
    let j = journal.display().to_string();
    let agent = Agent::start(
        &tmp.path().join("data"),
        &["--host", "shop:/vm"],
        &[("JOURNAL", j.as_str())],
    );
    ok(&agent.cli(&["app", "add", &app.display().to_string(), "--start"]));
    agent.wait_until(
        "all three started, or one failed",
        Duration::from_secs(30),
        |a| {
            let s = a.status("shop");
            let list = s["instances"].as_array().cloned().unwrap_or_default();
            list.iter().any(|i| !i["last_error"].is_null())
                || ["/vm/a b", "/vm/a-b", "/vm/a_b"]
                    .iter()
                    .all(|p| a.state("shop", p) == "DEPLOYED_STARTED")
        },
    );
    let status = agent.status("shop");
    for i in status["instances"].as_array().expect("instances") {
        assert!(i["last_error"].is_null(), "{i}");
    }
    let lines = std::fs::read_to_string(&journal).expect("journal");
    let mut dirs = std::collections::BTreeSet::new();
    for l in lines.lines() {
        // "<path> <clean path> <working folder>"; the path may hold a space.
        let parts: Vec<&str> = l.rsplitn(3, ' ').collect();
        assert_eq!(parts[1], "vm_a_b", "Roboconf's clean path, kept: {l}");
        dirs.insert(parts[0].to_string());
    }
    assert_eq!(dirs.len(), 3, "three folders: {lines}");
}

fn write_instances(root: &Path) -> std::path::PathBuf {
    app(
        root,
        "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n",
    )
}

/// A deploy that failed because the working folder could not be made (a full disk, here
/// a file in the way) was never tried again, even after a restart, until the operator
/// asked again. It is now tried again by itself, with a backoff shown in `status`.
#[test]
fn an_action_whose_environment_failed_is_tried_again_by_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = write_instances(tmp.path());
    let data = tmp.path().join("data");
    let journal = tmp.path().join("journal").display().to_string();
    let envs = [("JOURNAL", journal.as_str())];
    let mut agent = Agent::start(&data, &["--host", "shop:/vm"], &envs);
    // The working folders' parent is a file: no folder can be made there.
    std::fs::create_dir_all(data.join("instances")).expect("mkdir");
    std::fs::write(data.join("instances/shop"), "in the way").expect("write");
    ok(&agent.cli(&["app", "add", &app.display().to_string(), "--start"]));
    agent.wait_until(
        "a failed attempt, with its next one",
        Duration::from_secs(20),
        |a| {
            let s = a.status("shop");
            s["instances"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|i| i["path"] == "/vm/app" && i["retry"]["attempt"].as_u64() >= Some(2))
            })
        },
    );
    let human = ok(&agent.cli(&["status", "shop"]));
    assert!(human.contains("next attempt: in"), "{human}");
    assert!(
        human.contains("cannot prepare the working directory"),
        "{human}"
    );
    // The agent restarts while it still fails; then the disk is "given more space".
    agent.kill9();
    let agent = Agent::start(&data, &["--host", "shop:/vm"], &envs);
    std::fs::remove_file(data.join("instances/shop")).expect("rm");
    agent.wait_states("shop", &["/vm/app"], "DEPLOYED_STARTED");
    let s = agent.status("shop");
    let app_view = s["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["path"] == "/vm/app").cloned())
        .expect("app");
    assert!(app_view["retry"].is_null(), "{app_view}");
    assert!(app_view["last_error"].is_null(), "{app_view}");
}

/// A script's own failure still waits for the operator (Roboconf does not retry it).
#[test]
fn a_failed_script_is_not_tried_again_by_itself() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = shop_app(
        tmp.path(),
        GRAPH,
        "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n",
        &[(
            "graph/App/scripts/deploy.sh",
            "#!/bin/bash\necho run >> \"$JOURNAL\"\nexit 4\n",
        )],
    );
    let journal = tmp.path().join("journal");
    let j = journal.display().to_string();
    let agent = Agent::start(
        &tmp.path().join("data"),
        &["--host", "shop:/vm"],
        &[("JOURNAL", j.as_str())],
    );
    ok(&agent.cli(&["app", "add", &app.display().to_string(), "--start"]));
    agent.wait_until("the failure", Duration::from_secs(20), |a| {
        a.status("shop")["instances"]
            .as_array()
            .is_some_and(|l| l.iter().any(|i| !i["last_error"].is_null()))
    });
    // Longer than the first retries would take.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let runs = std::fs::read_to_string(&journal).unwrap_or_default();
    assert_eq!(runs.lines().count(), 1, "{runs}");
    let s = agent.status("shop");
    assert!(s["instances"]
        .as_array()
        .is_some_and(|l| l.iter().all(|i| i["retry"].is_null())));
}

/// `rm -rf <data-dir>/store` with `apps/` and `instances/` still there: the agent used to
/// start empty without a word. It refuses, and `--reset-store` moves the folders aside.
#[test]
fn a_lost_store_is_refused_unless_reset() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = write_instances(tmp.path());
    let data = tmp.path().join("data");
    let journal = tmp.path().join("journal").display().to_string();
    let envs = [("JOURNAL", journal.as_str())];
    let mut agent = Agent::start(&data, &["--host", "shop:/vm"], &envs);
    ok(&agent.cli(&["app", "add", &app.display().to_string(), "--start"]));
    agent.wait_states("shop", &["/vm/app"], "DEPLOYED_STARTED");
    agent.kill9();
    std::fs::remove_dir_all(data.join("store")).expect("rm store");
    let refused = refused_agent(&[
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--host".as_ref(),
        "shop:/vm".as_ref(),
    ]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--reset-store") && err.contains("instances/"),
        "{err}"
    );
    // Refused again the next time (the attempt made an empty store: still refused).
    let again = refused_agent(&["--data-dir".as_ref(), data.as_os_str()]);
    assert_eq!(again.status.code(), Some(1));
    let agent = Agent::start(&data, &["--host", "shop:/vm", "--reset-store"], &envs);
    let aside: Vec<_> = std::fs::read_dir(&data)
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("reset-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(aside[0].path().join("instances/shop").is_dir());
    let list = ok(&agent.cli(&["app", "list"]));
    assert!(list.contains("no application"), "{list}");
}

/// An application that imports a graph from outside its folder was added as "0
/// instances" and never reached the other agents; one with a link in it lost the link's
/// file on the way. The first is refused, the second added with a warning naming the link.
#[test]
fn app_add_refuses_what_other_nodes_could_not_get_and_names_dropped_links() {
    let tmp = tempfile::tempdir().expect("tmp");
    let outside = tmp.path().join("outside.graph");
    std::fs::write(&outside, GRAPH).expect("write");
    let escaping = shop_app(
        &tmp.path().join("escaping"),
        "import ../../outside.graph;\n",
        "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n",
        &[("graph/App/scripts/deploy.sh", DEPLOY)],
    );
    let agent = Agent::start(&tmp.path().join("data"), &["--host", "shop:/vm"], &[]);
    let o = agent.cli(&["app", "add", &escaping.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("X_FILE_OUTSIDE_FOLDER"), "{err}");
    assert!(ok(&agent.cli(&["app", "list"])).contains("no application"));

    // A folder that only an empty folder makes valid: bundles carry regular files only,
    // so the copy another node would get is not valid.
    let hollow = shop_app(
        &tmp.path().join("hollow"),
        GRAPH,
        "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n",
        &[("graph/App/files/readme.txt", "x")],
    );
    std::fs::create_dir_all(hollow.join("graph/App/scripts")).expect("mkdir");
    let o = agent.cli(&["app", "add", &hollow.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not the same application once bundled")
            && err.contains("REC_SCRIPT_NO_SCRIPTS_DIR"),
        "{err}"
    );
    assert!(ok(&agent.cli(&["app", "list"])).contains("no application"));
    let apps: Vec<_> = std::fs::read_dir(agent.data_dir.join("apps"))
        .expect("apps")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(apps.is_empty(), "nothing stored: {apps:?}");

    let linked = write_instances(&tmp.path().join("linked"));
    std::fs::create_dir_all(linked.join("graph/App/files")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, linked.join("graph/App/files/conf.graph")).expect("link");
    let out = ok(&agent.cli(&["app", "add", &linked.display().to_string()]));
    assert!(out.contains("added: 2 instances"), "{out}");
    assert!(
        out.contains("warning[X_SYMLINK_IGNORED]") && out.contains("conf.graph"),
        "{out}"
    );
    // Added again (edited scripts, same name): refused before anything is written, so
    // the registered bundle — the one every other node has — is untouched.
    let bundles = |a: &Agent| {
        let mut v: Vec<_> = std::fs::read_dir(a.data_dir.join("apps"))
            .expect("apps")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let before = bundles(&agent);
    // The same content again is no error (`app add` may be run on every node).
    let out = ok(&agent.cli(&["app", "add", &linked.display().to_string()]));
    assert!(
        out.contains("already registered with this content"),
        "{out}"
    );
    assert_eq!(bundles(&agent), before);
    std::fs::write(
        linked.join("graph/App/scripts/deploy.sh"),
        "#!/bin/bash\nexit 9\n",
    )
    .expect("edit");
    let o = agent.cli(&["app", "add", &linked.display().to_string()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("already registered"), "{err}");
    assert_eq!(bundles(&agent), before);
    let stored = agent.data_dir.join("apps").join(&before[0]);
    assert_eq!(
        std::fs::read_to_string(stored.join("graph/App/scripts/deploy.sh")).expect("read"),
        DEPLOY
    );
}

/// A 10,000-character instance name was accepted and replicated, then failed to deploy.
/// Every operator entry point now keeps the bounds, without echoing the whole name.
#[test]
fn names_and_paths_are_bounded_at_every_entry_point() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = write_instances(tmp.path());
    let agent = Agent::start(&tmp.path().join("data"), &["--host", "shop:/vm"], &[]);
    ok(&agent.cli(&["app", "add", &app.display().to_string()]));
    let long = "n".repeat(10_000);
    let path = format!("/vm/{long}");
    for args in [
        vec![
            "instance",
            "create",
            "shop",
            path.as_str(),
            "--component",
            "App",
        ],
        vec!["instance", "start", "shop", path.as_str()],
        vec!["instance", "bind", "shop", "/vm", long.as_str()],
        vec!["app", "start", long.as_str()],
        vec!["logs", "shop", path.as_str()],
    ] {
        let o = agent.cli(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("at most"), "{args:?}: {err}");
        assert!(
            err.len() < 400,
            "{args:?}: the whole name echoed: {} bytes",
            err.len()
        );
    }
    let status = agent.status("shop");
    assert_eq!(status["instances"].as_array().map(Vec::len), Some(2));
    // A name at the bound is fine.
    let fine = format!("/vm/{}", "n".repeat(128));
    ok(&agent.cli(&["instance", "create", "shop", &fine, "--component", "App"]));
    // The node name too, at start.
    let other = tmp.path().join("other");
    let o = refused_agent(&[
        "--data-dir".as_ref(),
        other.as_os_str(),
        "--node".as_ref(),
        long.as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at most 128 bytes"));
}
