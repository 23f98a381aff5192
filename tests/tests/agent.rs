//! The agent engine on one machine, for real: a `roboconf agent` process, an application
//! whose scripts journal what they do, and the operator CLI. Start-all order, imports
//! gating starts, cascades, `update` once per changed import, failures, undeploy, a
//! `kill -9` in the middle of a start-all, and bad input (hanging and chatty scripts,
//! garbage on the control socket, unusable or busy data dirs, invalid applications).

use roboconf_tests::{ok, roboconf, Agent};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GRAPH: &str = "VM {
	installer: target;
	children: Db, App, Cache;
}
Db {
	installer: script;
	exports: ip, port = 5432;
}
Cache {
	installer: script;
	exports: ip, port = 6379;
}
App {
	installer: script;
	exports: ip, random[port] port;
	imports: Db.ip, Db.port, Cache.* (optional);
	children: Web;
}
Web {
	installer: script;
}
";

const INSTANCES: &str = "instance of VM {
	name: vm;
	instance of Db {
		name: db;
	}
	instance of App {
		name: app;
		instance of Web {
			name: web;
		}
	}
}
";

/// Every script journals `begin`/`end` with its action and path, sleeps `$DELAY`, and
/// fails, hangs or floods when a flag file tells it to.
const SCRIPT: &str = r#"#!/bin/bash
action=$(basename "$0" .sh)
echo "begin $action $ROBOCONF_INSTANCE_PATH" >> "$JOURNAL"
if [ "$action" = update ]; then
	echo "changed $ROBOCONF_INSTANCE_PATH $ROBOCONF_IMPORT_CHANGED_COMPONENT $ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH ${ROBOCONF_IMPORT_CHANGED_port:-none} $ROBOCONF_UPDATE_STATUS" >> "$JOURNAL"
fi
flag="$FLAGS/$ROBOCONF_INSTANCE_NAME.$action"
if [ -f "$flag.fail" ]; then echo "told to fail by $flag.fail"; exit 3; fi
if [ -f "$flag.hang" ]; then sleep 600; fi
if [ -f "$flag.flood" ]; then head -c 3000000 /dev/zero | tr '\0' 'x'; echo; echo FLOOD-END; fi
sleep "${DELAY:-0}"
echo "end $action $ROBOCONF_INSTANCE_PATH" >> "$JOURNAL"
"#;

struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    app: PathBuf,
    journal: PathBuf,
    flags: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let scripts: Vec<(String, &str)> = ["Db", "Cache", "App", "Web"]
            .iter()
            .flat_map(|comp| {
                ["deploy", "start", "stop", "update", "undeploy"]
                    .map(|action| (format!("graph/{comp}/scripts/{action}.sh"), SCRIPT))
            })
            .collect();
        let files: Vec<(&str, &str)> = scripts.iter().map(|(p, t)| (p.as_str(), *t)).collect();
        let app = roboconf_tests::shop_app(&root, GRAPH, INSTANCES, &files);
        let flags = root.join("flags");
        std::fs::create_dir_all(&flags).expect("flags");
        Fixture {
            journal: root.join("journal.log"),
            flags,
            app,
            root,
            _tmp: tmp,
        }
    }

    fn agent(&self, extra: &[&str], delay: &str) -> Agent {
        let mut args = vec!["--host", "shop:/vm"];
        args.extend_from_slice(extra);
        let journal = self.journal.display().to_string();
        let flags = self.flags.display().to_string();
        Agent::start(
            &self.root.join("data"),
            &args,
            &[
                ("JOURNAL", journal.as_str()),
                ("FLAGS", flags.as_str()),
                ("DELAY", delay),
            ],
        )
    }

    fn journal(&self) -> Vec<String> {
        std::fs::read_to_string(&self.journal)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    fn flag(&self, name: &str) -> PathBuf {
        let p = self.flags.join(name);
        std::fs::write(&p, "").expect("flag");
        p
    }

    fn add(&self, agent: &Agent, start: bool) {
        let app = self.app.display().to_string();
        let mut args = vec!["app", "add", app.as_str()];
        if start {
            args.push("--start");
        }
        let o = agent.cli(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

fn position(journal: &[String], line: &str) -> usize {
    journal
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("`{line}` not in the journal:\n{}", journal.join("\n")))
}

#[test]
fn start_all_parents_first_and_importers_wait() {
    let f = Fixture::new();
    let a = f.agent(&[], "0");
    f.add(&a, true);
    a.wait_states(
        "shop",
        &["/vm/db", "/vm/app", "/vm/app/web"],
        "DEPLOYED_STARTED",
    );
    let j = f.journal();
    assert!(
        position(&j, "end start /vm/db") < position(&j, "begin start /vm/app"),
        "the importer starts after its exporter"
    );
    assert!(
        position(&j, "end start /vm/app") < position(&j, "begin start /vm/app/web"),
        "a child starts after its parent"
    );
    assert!(position(&j, "end deploy /vm/app") < position(&j, "begin deploy /vm/app/web"));
    // status shows the host node and the exports with their full names.
    let s = a.status("shop");
    let app = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["path"] == "/vm/app")
        .unwrap()
        .clone();
    assert!(app["node"].is_string());
    assert_eq!(app["exports"]["App.ip"], "127.0.0.1");
    assert!(app["exports"]["App.port"]
        .as_str()
        .is_some_and(|p| p.parse::<u16>().is_ok_and(|p| p >= 10_000)));
    // Stopping the exporter cascades; starting it again restores everything.
    ok(&a.cli(&["instance", "stop", "shop", "/vm/db"]));
    a.wait_states("shop", &["/vm/db"], "DEPLOYED_STOPPED");
    a.wait_states("shop", &["/vm/app"], "UNRESOLVED");
    a.wait_states("shop", &["/vm/app/web"], "WAITING_FOR_ANCESTOR");
    ok(&a.cli(&["instance", "start", "shop", "/vm/db"]));
    a.wait_states(
        "shop",
        &["/vm/db", "/vm/app", "/vm/app/web"],
        "DEPLOYED_STARTED",
    );
    // An importer created while its exporter is down waits UNRESOLVED, then starts by itself.
    ok(&a.cli(&["instance", "stop", "shop", "/vm/db"]));
    a.wait_states("shop", &["/vm/app"], "UNRESOLVED");
    ok(&a.cli(&[
        "instance",
        "create",
        "shop",
        "/vm/app2",
        "--component",
        "App",
    ]));
    ok(&a.cli(&["instance", "start", "shop", "/vm/app2"]));
    a.wait_states("shop", &["/vm/app2"], "UNRESOLVED");
    ok(&a.cli(&["instance", "start", "shop", "/vm/db"]));
    a.wait_states("shop", &["/vm/app", "/vm/app2"], "DEPLOYED_STARTED");
    // Undeploy reverses deploy: children first.
    ok(&a.cli(&["app", "undeploy", "shop"]));
    a.wait_states(
        "shop",
        &["/vm/db", "/vm/app", "/vm/app/web", "/vm/app2"],
        "NOT_DEPLOYED",
    );
    let j = f.journal();
    let last = |l: &str| {
        j.iter()
            .rposition(|x| x == l)
            .unwrap_or_else(|| panic!("no `{l}`"))
    };
    assert!(last("end undeploy /vm/app/web") < last("begin undeploy /vm/app"));
    assert!(
        last("end stop /vm/app/web") < last("begin stop /vm/app"),
        "a child stops before its parent"
    );
    ok(&a.cli(&["app", "remove", "shop"]));
    assert!(ok(&a.cli(&["app", "list"])).contains("no application"));
}

#[test]
fn an_optional_import_change_runs_update_once() {
    let f = Fixture::new();
    let a = f.agent(&[], "0");
    f.add(&a, true);
    a.wait_states("shop", &["/vm/app"], "DEPLOYED_STARTED");
    ok(&a.cli(&[
        "instance",
        "create",
        "shop",
        "/vm/cache",
        "--component",
        "Cache",
    ]));
    ok(&a.cli(&["instance", "start", "shop", "/vm/cache"]));
    a.wait_states("shop", &["/vm/cache"], "DEPLOYED_STARTED");
    a.wait_until("the update", Duration::from_secs(20), |_| {
        f.journal().iter().any(|l| l == "end update /vm/app")
    });
    let j = f.journal();
    let updates: Vec<&String> = j.iter().filter(|l| l.starts_with("changed ")).collect();
    assert_eq!(
        updates,
        vec!["changed /vm/app Cache /vm/cache 6379 DEPLOYED_STARTED"],
        "{j:?}"
    );
    // The cache leaves: one more update, with the stopped status.
    ok(&a.cli(&["instance", "stop", "shop", "/vm/cache"]));
    a.wait_until("the second update", Duration::from_secs(20), |_| {
        f.journal()
            .iter()
            .filter(|l| l.starts_with("end update"))
            .count()
            == 2
    });
    let j = f.journal();
    assert_eq!(
        j.iter()
            .rfind(|l| l.starts_with("changed "))
            .map(String::as_str),
        Some("changed /vm/app Cache /vm/cache 6379 DEPLOYED_STOPPED")
    );
    assert_eq!(
        a.state("shop", "/vm/app"),
        "DEPLOYED_STARTED",
        "an optional import going away does not stop the importer"
    );
}

#[test]
fn a_failing_script_keeps_the_previous_state_and_says_why() {
    let f = Fixture::new();
    f.flag("db.start.fail");
    let a = f.agent(&[], "0");
    f.add(&a, true);
    a.wait_until("the failed start", Duration::from_secs(20), |a| {
        a.status("shop")["instances"].as_array().is_some_and(|l| {
            l.iter()
                .any(|i| i["path"] == "/vm/db" && i["last_error"].is_string())
        })
    });
    assert_eq!(a.state("shop", "/vm/db"), "DEPLOYED_STOPPED");
    assert_eq!(a.state("shop", "/vm/app"), "UNRESOLVED");
    let human = ok(&a.cli(&["status", "shop"]));
    assert!(
        human.contains("last error: start failed: exit code 3"),
        "{human}"
    );
    let logs = ok(&a.cli(&["logs", "shop", "/vm/db"]));
    assert!(
        logs.contains("start FAILED: exit code 3") && logs.contains("told to fail"),
        "{logs}"
    );
    // Fixed, and asked again: it starts, and its importer follows.
    std::fs::remove_file(f.flags.join("db.start.fail")).expect("unflag");
    ok(&a.cli(&["instance", "start", "shop", "/vm/db"]));
    a.wait_states("shop", &["/vm/db", "/vm/app"], "DEPLOYED_STARTED");
}

#[test]
fn kill_9_in_the_middle_of_start_all_then_restart_converges() {
    let f = Fixture::new();
    let mut a = f.agent(&[], "0.3");
    f.add(&a, true);
    // Wait until something is done and something is still running, then crash.
    a.wait_until("a partial start", Duration::from_secs(30), |a| {
        let s = a.status("shop");
        let l = s["instances"].as_array().cloned().unwrap_or_default();
        l.iter()
            .any(|i| i["state"] == "DEPLOYED_STARTED" && i["path"] != "/vm")
            && l.iter()
                .any(|i| i["path"] != "/vm" && i["state"] != "DEPLOYED_STARTED")
    });
    let snapshot = a.status("shop");
    a.kill9();
    let before = f.journal();
    let done: Vec<(String, String)> = snapshot["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["path"] != "/vm")
        .flat_map(|i| {
            let p = i["path"].as_str().unwrap().to_string();
            match i["state"].as_str().unwrap() {
                "DEPLOYED_STARTED" => {
                    vec![("deploy".to_string(), p.clone()), ("start".to_string(), p)]
                }
                "DEPLOYED_STOPPED" | "UNRESOLVED" | "WAITING_FOR_ANCESTOR" | "STARTING" => {
                    vec![("deploy".to_string(), p)]
                }
                _ => vec![],
            }
        })
        .collect();
    assert!(!done.is_empty());
    let b = f.agent(&[], "0");
    b.wait_states(
        "shop",
        &["/vm/db", "/vm/app", "/vm/app/web"],
        "DEPLOYED_STARTED",
    );
    let after: Vec<String> = f.journal().into_iter().skip(before.len()).collect();
    for (action, path) in &done {
        let again = format!("begin {action} {path}");
        assert!(
            !after.contains(&again),
            "`{action} {path}` was completed before the crash but ran again:\n{}",
            after.join("\n")
        );
    }
}

#[test]
fn bad_scripts_do_not_hurt_the_agent() {
    let f = Fixture::new();
    f.flag("db.start.hang");
    f.flag("app.deploy.flood");
    let a = f.agent(&["--script-timeout", "2"], "0");
    f.add(&a, true);
    // The agent answers while a script hangs.
    let t = std::time::Instant::now();
    ok(&a.cli(&["status", "shop"]));
    assert!(t.elapsed() < Duration::from_secs(2));
    a.wait_until("the timeout", Duration::from_secs(30), |a| {
        a.status("shop")["instances"].as_array().is_some_and(|l| {
            l.iter().any(|i| {
                i["path"] == "/vm/db"
                    && i["last_error"]
                        .as_str()
                        .is_some_and(|e| e.contains("timed out"))
            })
        })
    });
    // Megabytes of output are cut to the end.
    a.wait_states("shop", &["/vm/app"], "UNRESOLVED");
    let logs =
        String::from_utf8_lossy(&a.cli(&["logs", "shop", "/vm/app", "--json"]).stdout).into_owned();
    let v: serde_json::Value = serde_json::from_str(&logs).expect("json");
    let out = v["runs"][0]["output"].as_str().unwrap_or_default();
    assert!(
        out.len() < 70 * 1024 && out.contains("FLOOD-END") && out.contains("earlier bytes dropped"),
        "{}",
        out.len()
    );
    // Garbage on the control socket gets an error answer; the agent stays up.
    use std::io::{BufRead, Write};
    let mut s =
        std::os::unix::net::UnixStream::connect(a.data_dir.join("control.sock")).expect("connect");
    s.write_all(b"this is not json\n{\"op\":\"status\",\"app\":null}\n")
        .expect("write");
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("answer");
    assert!(
        line.contains("\"kind\":\"error\"") && line.contains("invalid request"),
        "{line}"
    );
    line.clear();
    r.read_line(&mut line).expect("second answer");
    assert!(line.contains("\"kind\":\"status\""), "{line}");
    ok(&a.cli(&["status"]));
}

#[test]
fn recipes_without_scripts_are_no_ops() {
    let f = Fixture::new();
    for comp in ["Db", "App"] {
        std::fs::remove_dir_all(f.app.join(format!("graph/{comp}/scripts"))).expect("rm");
    }
    let a = f.agent(&[], "0");
    f.add(&a, true);
    a.wait_states(
        "shop",
        &["/vm/db", "/vm/app", "/vm/app/web"],
        "DEPLOYED_STARTED",
    );
    assert!(ok(&a.cli(&["logs", "shop", "/vm/db"])).contains("no script for this action"));
}

#[test]
fn data_dir_problems_are_clear() {
    let f = Fixture::new();
    let a = f.agent(&[], "0");
    // A second agent on the same data dir refuses to start.
    let o = roboconf(&["agent", "--data-dir", a.data_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another agent is already running"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // An unwritable data dir.
    let o = roboconf(&["agent", "--data-dir", "/proc/roboconf-cannot-be-here"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("data dir /proc/roboconf-cannot-be-here"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // An invalid application: its errors, and nothing stored.
    let bad = f.root.join("bad");
    std::fs::create_dir_all(bad.join("descriptor")).unwrap();
    std::fs::create_dir_all(bad.join("graph")).unwrap();
    std::fs::write(
        bad.join("descriptor/application.properties"),
        "application-name = bad\napplication-version = 1.0\ngraph-entry-point = g.graph\n",
    )
    .unwrap();
    std::fs::write(bad.join("graph/g.graph"), "VM {\n\tinstaller: target\n}\n").unwrap();
    let o = a.cli(&["app", "add", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not a valid application")
            && err.contains("g.graph:2:2: error[P_PROPERTY_ENDS_WITH_SEMI_COLON]"),
        "{err}"
    );
    assert!(ok(&a.cli(&["app", "list"])).contains("no application"));
    assert!(!a.data_dir.join("apps/bad").exists());
    // No agent: a clear message.
    let o = roboconf(&[
        "--data-dir",
        f.root.join("nothing").to_str().unwrap(),
        "status",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no agent answers"));
}

#[test]
fn the_control_socket_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let a = f.agent(&[], "0");
    let mode = std::fs::metadata(a.data_dir.join("control.sock"))
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = Path::new("/");
}

#[test]
fn random_ports_are_unique_stable_and_skip_forbidden_ones() {
    let f = Fixture::new();
    let cfg = f.root.join("agent.toml");
    // The test's agents take random ports from its own range (ROBOCONF_RANDOM_PORTS).
    let low = roboconf_tests::random_ports().map_or(10_000, |(low, _)| low);
    std::fs::write(&cfg, format!("forbidden-ports = [{low}, {}]\n", low + 1)).expect("config");
    let cfg_s = cfg.display().to_string();
    let mut a = f.agent(&["--config", &cfg_s], "0");
    f.add(&a, false);
    ok(&a.cli(&[
        "instance",
        "create",
        "shop",
        "/vm/app2",
        "--component",
        "App",
    ]));
    ok(&a.cli(&["app", "start", "shop"]));
    a.wait_states("shop", &["/vm/app", "/vm/app2"], "DEPLOYED_STARTED");
    let ports = |a: &Agent| -> Vec<String> {
        let s = a.status("shop");
        ["/vm/app", "/vm/app2"]
            .iter()
            .map(|p| {
                s["instances"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["path"] == *p)
                    .unwrap()["exports"]["App.port"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let first = ports(&a);
    assert_eq!(
        first,
        vec![(low + 2).to_string(), (low + 3).to_string()],
        "lowest free ports, skipping the forbidden ones"
    );
    a.kill9();
    let b = f.agent(&["--config", &cfg_s], "0");
    b.wait_states("shop", &["/vm/app", "/vm/app2"], "DEPLOYED_STARTED");
    assert_eq!(ports(&b), first, "stable across restarts");
}

#[test]
fn wait_returns_0_when_reached_and_1_on_timeout() {
    let f = Fixture::new();
    let a = f.agent(&[], "0");
    f.add(&a, false);
    let o = a.cli(&[
        "wait",
        "shop",
        "--state",
        "DEPLOYED_STARTED",
        "--timeout",
        "300ms",
    ]);
    assert_eq!(o.status.code(), Some(1), "nothing was asked to start");
    assert!(String::from_utf8_lossy(&o.stderr).contains("timed out: 0/3"));
    ok(&a.cli(&["app", "start", "shop"]));
    let o = a.cli(&[
        "wait",
        "shop",
        "--state",
        "deployed_started",
        "--timeout",
        "30s",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = a.cli(&["wait", "shop", "/vm/db", "--state", "DEPLOYED_STARTED"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        a.cli(&["wait", "shop", "--state", "NOPE"]).status.code(),
        Some(2)
    );
    let list = ok(&a.cli(&["app", "list"]));
    assert!(
        list.contains("shop 1.0.0 (4 instances, 4 started)"),
        "{list}"
    );
}
