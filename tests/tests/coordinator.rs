//! The coordinator with real processes on loopback: three voters elect a leader
//! (`roboconf coordinator --json`), a `kill -9` of the leader gives the mesh another one;
//! a root of a `target` component with a `local` target file gets a machine — an agent
//! process started detached by the leader, which joins the mesh with its user data and
//! hosts the root — and undeploying it terminates the machine (no process left).

use roboconf_tests::Agent;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port = 8080;\n\timports: Db.ip, Db.port;\n}\n";
const INSTANCES: &str = "instance of VM {\n\tname: vm-db;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\ninstance of VM {\n\tname: vm-app;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";
const START: &str =
    "#!/bin/bash\necho \"start $ROBOCONF_INSTANCE_PATH db=${Db_0_port:-none}\" >> \"$JOURNAL\"\n";

/// The machines of a test's `local` target, killed (if any is left) when dropped.
struct Machines(PathBuf);

impl Machines {
    fn alive(&self) -> Vec<u32> {
        roboconf_tests::live_machines(&self.0)
    }

    fn count(&self) -> usize {
        std::fs::read_dir(&self.0).map_or(0, |d| d.count())
    }
}

impl Drop for Machines {
    fn drop(&mut self) {
        roboconf_tests::kill_machines(&self.0);
    }
}

/// The application `shop` whose `VM` roots use the `local` target (machines under
/// `root/machines`), with `files` besides; and the guard of those machines.
fn local_app(root: &Path, files: &[(&str, &str)]) -> (PathBuf, Machines) {
    let dir = root.join("machines");
    let target = format!(
        "handler = local\nid = here\nname = this host\nlocal.dir = {}\n",
        dir.display()
    );
    let mut all = vec![("graph/VM/target.properties", target.as_str())];
    all.extend_from_slice(files);
    let app = roboconf_tests::shop_app(root, GRAPH, INSTANCES, &all);
    (app, Machines(dir))
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("timed out waiting for {what}");
}

/// `stats --json`, as a JSON value.
fn stats(a: &Agent) -> serde_json::Value {
    serde_json::from_slice(&a.cli(&["stats", "--json"]).stdout).unwrap_or_default()
}

fn coordinator(a: &Agent) -> serde_json::Value {
    let o = a.cli(&["coordinator", "--json"]);
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

fn start(root: &Path, name: &str, env: &[(&str, &str)]) -> Agent {
    Agent::start(
        &root.join(name),
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--node", name],
        env,
    )
}

/// Three agents: `a` makes the mesh, `b` and `c` join; all three become voters.
fn three(root: &Path, env: &[(&str, &str)]) -> Vec<Agent> {
    let a = start(root, "a", env);
    a.init_mesh();
    let b = start(root, "b", env);
    b.join(&a);
    let c = start(root, "c", env);
    c.join(&a);
    let agents = vec![a, b, c];
    wait("three voters and a leader", Duration::from_secs(30), || {
        let v = coordinator(&agents[0]);
        v["voters"].as_array().map_or(0, |l| l.len()) == 3 && v["leader"].is_string()
    });
    agents
}

#[test]
fn three_voters_elect_a_leader_and_another_takes_over_after_a_kill9() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut agents = three(tmp.path(), &[]);
    let v = coordinator(&agents[0]);
    let leader = v["leader"].as_str().unwrap_or_default().to_string();
    let term = v["term"].as_u64().unwrap_or(0);
    let ids: Vec<String> = agents
        .iter()
        .map(|a| {
            coordinator(a)["voters"]
                .as_array()
                .map(|l| l.len())
                .unwrap_or(0)
                .to_string()
        })
        .collect();
    assert!(
        ids.iter().all(|n| n == "3"),
        "every voter holds 3 voters: {ids:?}"
    );
    // Every member names the same leader.
    for a in &agents {
        let seen = coordinator(a);
        assert_eq!(seen["leader"].as_str(), Some(leader.as_str()));
    }
    // Kill the leader: one of the others takes over, in a later term.
    let k = agents
        .iter()
        .position(|a| stats(a)["coordinator_leader"] == 1)
        .expect("the leader is one of the three");
    agents[k].kill9();
    let other = (k + 1) % 3;
    let started = Instant::now();
    wait("a new leader", Duration::from_secs(10), || {
        let v = coordinator(&agents[other]);
        v["leader"].as_str().is_some_and(|l| l != leader) && v["term"].as_u64() > Some(term)
    });
    eprintln!("failover in {:?}", started.elapsed());
    let third = 3 - k - other;
    let a = coordinator(&agents[other]);
    let b = coordinator(&agents[third]);
    wait("both survivors agree", Duration::from_secs(5), || {
        coordinator(&agents[third])["leader"] == coordinator(&agents[other])["leader"]
    });
    assert!(a["term"].as_u64() >= Some(term + 1), "{a} {b}");
}

#[test]
fn a_root_with_a_local_target_gets_a_machine_and_loses_it_when_undeployed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (app, machines) = local_app(
        root,
        &[
            ("graph/Db/scripts/start.sh", START),
            ("graph/App/scripts/start.sh", START),
        ],
    );
    let journal = root.join("journal.log").display().to_string();
    let env = [("JOURNAL", journal.as_str())];
    let agents = three(root, &env);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Each root gets a machine whose agent hosts it; the app server finds the database.
    a.wait_until(
        "both machines' instances started",
        Duration::from_secs(60),
        |a| {
            a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED"
                && a.state("shop", "/vm-app/app") == "DEPLOYED_STARTED"
        },
    );
    a.wait_until("the launches recorded", Duration::from_secs(30), |a| {
        a.status("shop")["instances"].as_array().is_some_and(|l| {
            l.iter()
                .filter(|i| i["machine"]["state"] == "running")
                .count()
                == 2
        })
    });
    assert_eq!(
        machines.alive().len(),
        2,
        "one machine per root: {}\n{}",
        a.status("shop"),
        std::fs::read_to_string(&a.log).unwrap_or_default()
    );
    let status = a.status("shop");
    let vm = status["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["path"] == "/vm-db"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(vm["machine"]["target"], "here", "{vm}");
    assert_eq!(vm["machine"]["handler"], "local", "{vm}");
    assert_eq!(vm["machine"]["state"], "running", "{vm}");
    assert_eq!(vm["machine"]["generation"], 1, "{vm}");
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(text.contains("start /vm-app/app db=5432"), "{text}");
    // Choosing among a root's targets: only a root, only one of its component's.
    let o = a.cli(&["instance", "target", "shop", "/vm-db", "nope"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && err.contains("by-hand, here"),
        "{err}"
    );
    let o = a.cli(&["instance", "target", "shop", "/vm-db/db", "here"]);
    assert!(!o.status.success());
    let o = a.cli(&["instance", "target", "shop", "/vm-db", "here"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Undeploy one root: its subtree stops, then its machine goes.
    let o = a.cli(&["instance", "undeploy", "shop", "/vm-app"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "the app server's machine terminated",
        Duration::from_secs(60),
        |_| machines.count() == 1 && machines.alive().len() == 1,
    );
    let undeployed = |a: &Agent| {
        a.state("shop", "/vm-app") == "NOT_DEPLOYED"
            && a.state("shop", "/vm-app/app") == "NOT_DEPLOYED"
    };
    let end = Instant::now() + Duration::from_secs(20);
    while !undeployed(a) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(undeployed(a), "/vm-app undeployed: {}", a.status("shop"));
    let o = a.cli(&["app", "undeploy", "shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("every machine terminated", Duration::from_secs(60), |_| {
        machines.count() == 0
    });
    assert!(machines.alive().is_empty());
}

/// The leader alone on one side of a partition (network namespaces, when root): the two
/// others elect a new leader, the old one steps down, and a root deployed on its side
/// launches nothing; after the heal one leader remains and the root gets exactly one
/// machine. (The launched agent listens on loopback in its leader's namespace: that it
/// joins is the other tests' business; here only the machines are counted.)
#[test]
fn a_leader_cut_off_in_the_minority_launches_nothing() {
    if !roboconf_tests::netns::available() {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (app, machines) = local_app(root, &[]);
    let lan = roboconf_tests::netns::Lan::new(3);
    let agents: Vec<Agent> = (0..3)
        .map(|k| {
            let listen = format!("/ip4/{}/tcp/0", lan.addr(k));
            let name = format!("n{k}");
            let args = [
                "--listen",
                listen.as_str(),
                "--ip",
                &lan.addr(k),
                "--node",
                &name,
            ];
            Agent::start_in(Some(lan.ns(k)), &root.join(&name), &args, &[])
        })
        .collect();
    agents[0].init_mesh();
    for a in &agents[1..] {
        a.join(&agents[0]);
    }
    let leads = |a: &Agent| {
        let s = stats(a);
        (
            s["coordinator_leader"] == 1,
            s["coordinator_term"].as_u64().unwrap_or(0),
        )
    };
    agents[0].wait_until("three voters", Duration::from_secs(30), |a| {
        coordinator(a)["voters"].as_array().map_or(0, |l| l.len()) == 3
    });
    // Registered, nothing deployed yet.
    let o = agents[0].cli(&["app", "add", &app.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for a in &agents {
        a.wait_until("the application everywhere", Duration::from_secs(30), |a| {
            !a.status("shop").is_null() && a.status("shop")["instances"].is_array()
        });
    }
    let k = (0..3).find(|&k| leads(&agents[k]).0).expect("a leader");
    let old_term = leads(&agents[k]).1;
    lan.split(&[k]);
    let others: Vec<usize> = (0..3).filter(|&j| j != k).collect();
    agents[others[0]].wait_until(
        "a leader on the majority side",
        Duration::from_secs(30),
        |_| {
            others
                .iter()
                .any(|&j| leads(&agents[j]).0 && leads(&agents[j]).1 > old_term)
        },
    );
    agents[k].wait_until(
        "the cut-off leader steps down",
        Duration::from_secs(30),
        |a| !leads(a).0,
    );
    // Deployed on the minority side: nothing can commit there.
    let o = agents[k].cli(&["instance", "start", "shop", "/vm-db"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A negative check over a window (not a synchronisation): three leader rounds' worth.
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        assert_eq!(machines.count(), 0, "the minority launched a machine");
        std::thread::sleep(Duration::from_millis(100));
    }
    lan.heal();
    agents[k].wait_until("one machine once healed", Duration::from_secs(60), |_| {
        machines.count() == 1
    });
    let leaders: Vec<usize> = (0..3).filter(|&j| leads(&agents[j]).0).collect();
    assert!(leaders.len() <= 1, "one leader at most: {leaders:?}");
    agents[k].wait_until("exactly one leader", Duration::from_secs(30), |_| {
        (0..3).filter(|&j| leads(&agents[j]).0).count() == 1
    });
    assert_eq!(machines.count(), 1, "no duplicate machine");
}

/// The remote machines of a test's `embedded` target, killed (if any is left) when
/// dropped: each folder's `pid` names its agent's session.
struct Remote(PathBuf);

impl Remote {
    /// Machine folders (the agent binaries kept by hash in `.binaries` are not one).
    fn count(&self) -> usize {
        std::fs::read_dir(&self.0).map_or(0, |d| {
            d.flatten().filter(|e| e.file_name() != ".binaries").count()
        })
    }

    /// The agent binaries kept on the host, by hash.
    fn binaries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(".binaries"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        for e in std::fs::read_dir(&self.0).into_iter().flatten().flatten() {
            if let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", pid.trim())])
                    .status();
            }
        }
    }
}

fn embedded_app(root: &Path, sshd: &roboconf_tests::sshd::Sshd, port: u16) -> PathBuf {
    let target = format!(
        "handler = embedded\nid = over-ssh\nname = over SSH\nembedded.ip = 127.0.0.1\nembedded.port = {port}\nscp.user = root\nscp.keyfile = {}\nscp.known.hosts.file = {}\nembedded.remote.dir = {}\n",
        sshd.key.display(),
        sshd.known_hosts.display(),
        root.join("remote").display()
    );
    roboconf_tests::shop_app(
        root,
        GRAPH,
        INSTANCES,
        // The remote agents' scripts run without the test's environment.
        &[("graph/VM/ssh.target.properties", target.as_str())],
    )
}

#[test]
fn the_embedded_target_starts_machines_over_ssh_and_removes_them() {
    if !roboconf_tests::sshd::available() {
        eprintln!("skipped: needs root and openssh-server (CI installs it)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let sshd = roboconf_tests::sshd::Sshd::start(&root.join("sshd"));
    let remote = Remote(root.join("remote"));
    let app = embedded_app(root, &sshd, sshd.port);
    let agents = three(root, &[]);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "both machines' instances started",
        Duration::from_secs(90),
        |a| {
            a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED"
                && a.state("shop", "/vm-app/app") == "DEPLOYED_STARTED"
        },
    );
    assert_eq!(remote.count(), 2, "one machine per root");
    // The binary was copied once, kept by its hash, checked.
    let kept = remote.binaries();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let o = std::process::Command::new("sha256sum")
        .arg(root.join("remote/.binaries").join(&kept[0]))
        .output()
        .expect("sha256sum");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&kept[0]));
    a.wait_until("the launches recorded", Duration::from_secs(30), |a| {
        a.status("shop")["instances"].as_array().is_some_and(|l| {
            l.iter()
                .filter(|i| i["machine"]["state"] == "running")
                .count()
                == 2
        })
    });
    let status = a.status("shop");
    let vm = status["instances"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["path"] == "/vm-app"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(vm["machine"]["handler"], "embedded", "{vm}");
    assert_eq!(vm["machine"]["address"], "127.0.0.1", "{vm}");
    let o = a.cli(&["app", "undeploy", "shop"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "every remote machine removed",
        Duration::from_secs(60),
        |_| remote.count() == 0,
    );
}

#[test]
fn an_unreachable_ssh_host_leaves_the_root_not_deployed_with_the_reason() {
    if !roboconf_tests::sshd::available() {
        eprintln!("skipped: needs root and openssh-server (CI installs it)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let sshd = roboconf_tests::sshd::Sshd::start(&root.join("sshd"));
    let _remote = Remote(root.join("remote"));
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port");
    let app = embedded_app(root, &sshd, closed);
    let agents = three(root, &[]);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = a.cli(&["instance", "start", "shop", "/vm-db"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let failed = |a: &Agent| {
        let s = a.status("shop");
        s["instances"].as_array().is_some_and(|l| {
            l.iter().any(|i| {
                i["path"] == "/vm-db"
                    && i["state"] == "NOT_DEPLOYED"
                    && i["last_error"].as_str().is_some_and(|e| e.contains("ssh"))
            })
        })
    };
    a.wait_until(
        "the root NOT_DEPLOYED with ssh's reason",
        Duration::from_secs(60),
        failed,
    );
    assert!(
        !root.join("remote").exists()
            || std::fs::read_dir(root.join("remote")).map_or(0, |d| d.count()) == 0
    );
}

/// `mesh voters`: asked of a member that does not lead, it names the leader; on the
/// leader, removing a voter keeps the wanted count (a live member replaces it), adding
/// one raises it.
#[test]
fn an_operator_replaces_and_adds_voters_on_the_leader() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let mut agents = three(root, &[]);
    let d = start(root, "d", &[]);
    d.join(&agents[0]);
    agents.push(d);
    let leads = |a: &Agent| stats(a)["coordinator_leader"] == 1;
    let voters = |a: &Agent| -> Vec<String> {
        let mut v: Vec<String> = coordinator(a)["voters"]
            .as_array()
            .map(|l| {
                l.iter()
                    .map(|x| x["name"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let l = agents.iter().position(leads).expect("a leader");
    let follower = (0..3).find(|&k| k != l).expect("a follower voter");
    let o = agents[follower].cli(&["mesh", "voters", "add", "d"]);
    let text =
        String::from_utf8_lossy(&o.stderr).into_owned() + &String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success() && text.contains("ask"), "{text}");
    // Remove a follower voter: `d` takes its place.
    let name = ["a", "b", "c"][follower];
    let o = agents[l].cli(&["mesh", "voters", "remove", name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[l].wait_until(
        "d replaces the removed voter",
        Duration::from_secs(30),
        |a| {
            let v = voters(a);
            v.len() == 3 && v.contains(&"d".to_string()) && !v.contains(&name.to_string())
        },
    );
    // Add it back: four voters.
    let o = agents[l].cli(&["mesh", "voters", "add", name]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    agents[l].wait_until("four voters", Duration::from_secs(30), |a| {
        voters(a).len() == 4
    });
}

/// A machine whose agent dies: its root shows PROBLEM with the reason; deploying the
/// root again replaces the machine (a new generation) and what ran there runs again.
#[test]
fn a_dead_machine_is_a_problem_and_deploying_again_replaces_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (app, machines) = local_app(root, &[]);
    let agents = three(root, &[]);
    let a = &agents[0];
    let o = a.cli(&["app", "add", &app.display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = a.cli(&["instance", "start", "shop", "/vm-db"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let machine = |a: &Agent| -> serde_json::Value {
        a.status("shop")["instances"]
            .as_array()
            .and_then(|l| l.iter().find(|i| i["path"] == "/vm-db"))
            .cloned()
            .unwrap_or_default()
    };
    a.wait_until(
        "the database started on its machine",
        Duration::from_secs(60),
        |a| {
            a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED"
                && machine(a)["machine"]["state"] == "running"
        },
    );
    // Its agent dies.
    let pids = machines.alive();
    assert_eq!(pids.len(), 1);
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", pids[0])])
        .status();
    a.wait_until(
        "the root in PROBLEM, its agent dead",
        Duration::from_secs(60),
        |a| {
            let m = machine(a);
            m["state"] == "PROBLEM" && m["last_error"].as_str().is_some_and(|e| e.contains("dead"))
        },
    );
    // Deployed again: a new generation replaces it.
    let o = a.cli(&["instance", "start", "shop", "/vm-db"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until(
        "a second generation running",
        Duration::from_secs(90),
        |a| {
            let m = machine(a);
            m["machine"]["generation"] == 2
                && m["machine"]["state"] == "running"
                && a.state("shop", "/vm-db/db") == "DEPLOYED_STARTED"
        },
    );
    assert_eq!(
        machines.alive().len(),
        1,
        "the dead machine's folder is gone, one runs"
    );
    assert_eq!(machines.count(), 1);
}

/// `mesh init --max-machines 1`: of two roots deployed, one gets a machine; the limit is
/// the leader's, counted from the replicated state.
#[test]
fn the_machine_limit_holds() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let (app, machines) = local_app(root, &[]);
    let a = start(root, "a", &[]);
    let o = a.cli(&["mesh", "init", "--voters", "1", "--max-machines", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = a.cli(&["app", "add", &app.display().to_string(), "--start"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    a.wait_until("one machine", Duration::from_secs(60), |_| {
        machines.alive().len() == 1
    });
    // A negative check over a window (not a synchronisation): a few leader rounds.
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end {
        assert!(machines.count() <= 1, "the limit of one machine was passed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let o = a.cli(&["app", "undeploy", "shop"]);
    assert!(o.status.success());
    a.wait_until("no machine", Duration::from_secs(60), |_| {
        machines.count() == 0
    });
}
