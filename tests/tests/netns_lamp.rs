//! `examples/lamp` on 3 voters whose every VM root is launched with the `netns` target:
//! each machine's agent in its own network namespace with its own address on a bridge of
//! the test (the voters listen on the bridge's address). Five machines (lamp's four
//! roots and a replica), each in its namespace and a member with its own address; one
//! app machine's link made slow and lossy (netem, or random loss with nftables where the
//! kernel has no netem) while its app server is stopped and started again: the balancer
//! is re-configured and every agent converges; another machine cut off (its host veth
//! down): its root goes PROBLEM on the voters while it keeps running, nothing is
//! launched in its place, and back up its agent is alive again, its app server started
//! and in the balancer, its root DEPLOYED_STARTED again (the coordinator takes a live
//! `problem` machine back as running, never replaces it); undeploy: every
//! namespace, veth and machine process gone, then the bridge. Names and the subnet
//! are unique to the test process; everything is deleted on drop, also on a panic. Runs
//! as root with `ip` (CI does); otherwise it says so and passes.

use roboconf_tests::{netns, Agent};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn json(data_dir: &Path, args: &[&str]) -> serde_json::Value {
    let dir = data_dir.display().to_string();
    let o = roboconf_tests::roboconf(&[&["--data-dir", dir.as_str()][..], args].concat());
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// Every instance's (path, state) as the agent of `data_dir` sees them.
fn states(data_dir: &Path) -> Vec<(String, String)> {
    let s = json(data_dir, &["status", "lamp", "--json"]);
    let mut v: Vec<(String, String)> = s["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let f = |k: &str| i[k].as_str().unwrap_or("").to_string();
            (f("path"), f("state"))
        })
        .collect();
    v.sort();
    v
}

/// The machines' members (named after their key, `lamp-…`): (name, state, address).
fn machine_members(a: &Agent) -> Vec<(String, String, String)> {
    let v = json(&a.data_dir, &["members", "--json"]);
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with("lamp-")))
        .map(|m| {
            let addr = m["addresses"]
                .as_array()
                .and_then(|l| l.iter().find_map(|a| a.as_str()?.strip_prefix("/ip4/")))
                .and_then(|a| a.split('/').next())
                .unwrap_or("");
            let f = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (f("name"), f("state"), addr.to_string())
        })
        .collect()
}

/// The command lines of the processes that name `dir` (the machines' agents and what
/// their scripts started).
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .map(|e| std::fs::read(e.path().join("cmdline")).unwrap_or_default())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&needle))
        .collect()
}

/// The last lines of a machine agent's log, for a failure's message.
fn machine_log(machines: &Path, folder: &str) -> String {
    let log = std::fs::read_to_string(machines.join(folder).join("agent.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("{folder} agent log (last lines):\n{}", tail.join("\n"))
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

fn must(program: &str, args: &[&str]) {
    let o = run(program, args);
    assert!(
        o.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A slow and lossy link: netem on the host veth, or, on a kernel without netem, 5 %
/// loss both ways with nftables (no delay); removed on drop.
struct Impaired {
    veth: String,
    nft_table: Option<String>,
}

impl Impaired {
    fn new(veth: &str) -> Impaired {
        let netem = [
            "qdisc", "add", "dev", veth, "root", "netem", "delay", "50ms", "10ms", "loss", "5%",
        ];
        if run("tc", &netem).status.success() {
            return Impaired {
                veth: veth.into(),
                nft_table: None,
            };
        }
        eprintln!(
            "this kernel has no netem: 5% loss both ways on {veth} with nftables instead, no delay"
        );
        let table = format!("rbt{}", std::process::id());
        must("nft", &["add", "table", "netdev", &table]);
        for (chain, hook) in [("in", "ingress"), ("out", "egress")] {
            let spec = format!("{{ type filter hook {hook} device \"{veth}\" priority 0; }}");
            must("nft", &["add", "chain", "netdev", &table, chain, &spec]);
            must(
                "nft",
                &[
                    "add", "rule", "netdev", &table, chain, "numgen", "random", "mod", "100", "<",
                    "5", "drop",
                ],
            );
        }
        Impaired {
            veth: veth.into(),
            nft_table: Some(table),
        }
    }
}

impl Drop for Impaired {
    fn drop(&mut self) {
        match &self.nft_table {
            Some(t) => drop(run("nft", &["delete", "table", "netdev", t])),
            None => drop(run("tc", &["qdisc", "del", "dev", &self.veth, "root"])),
        }
    }
}

fn start(root: &Path, name: &str, gateway: &str) -> Agent {
    let listen = format!("/ip4/{gateway}/tcp/0");
    Agent::start(
        &root.join(name),
        &["--listen", &listen, "--node", name],
        &[],
    )
}

#[test]
fn lamp_on_machines_in_network_namespaces() {
    if !netns::available() {
        eprintln!("skipped: the netns target needs root and `ip` (CI runs this as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // The target file has no `netns.dir`: machines go beside the agents' data dirs.
    let machines = root.join("roboconf-machines");
    let bridge = netns::Bridge::new(&machines);
    let app = roboconf_tests::lamp_copy(root);
    std::fs::remove_file(app.join("graph/VM/local.target.properties")).expect("local target");
    let target = format!(
        "id = netns\nhandler = netns\nname = a network namespace per machine\nnetns.subnet = {}\nnetns.bridge = {}\n",
        bridge.subnet, bridge.name
    );
    std::fs::write(app.join("graph/VM/netns.target.properties"), target).expect("target");

    let mut agents = vec![start(root, "a", &bridge.gateway)];
    agents[0].init_mesh();
    for n in ["b", "c"] {
        let x = start(root, n, &bridge.gateway);
        x.join(&agents[0]);
        agents.push(x);
    }
    agents[0].wait_until("three voters", Duration::from_secs(30), |a| {
        json(&a.data_dir, &["coordinator", "--json"])["voters"]
            .as_array()
            .is_some_and(|l| l.len() == 3)
    });
    let cli = |args: &[&str]| {
        let o = agents[1].cli(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    cli(&["app", "add", &app.display().to_string()]);
    cli(&["instance", "replicate", "lamp", "/vm-app-1", "vm-app-3"]);
    cli(&["app", "start", "lamp"]);

    // Five machines, each in its namespace, every instance started, three app servers.
    let roots = ["/vm-app-1", "/vm-app-2", "/vm-app-3", "/vm-db", "/vm-lb"];
    let all_started = |a: &Agent| {
        let s = states(&a.data_dir);
        s.len() == 10 && s.iter().all(|(_, st)| st == "DEPLOYED_STARTED")
    };
    agents[0].wait_until(
        "five machines, every instance started",
        Duration::from_secs(60),
        |_| {
            roboconf_tests::live_machines(&machines).len() == 5
                && agents.iter().all(all_started)
                && roboconf_tests::lamp_servers(&machines).len() == 3
        },
    );
    let ms = bridge.machines();
    assert_eq!(ms.len(), 5, "{ms:?}");
    let listed = netns::namespaces();
    for m in &ms {
        assert!(
            listed.contains(&m.ns),
            "{} not in `ip netns list`: {listed:?}",
            m.ns
        );
        assert!(netns::link_exists(&m.veth), "{m:?}");
    }
    let mut ports = bridge.ports();
    ports.sort();
    let mut veths: Vec<String> = ms.iter().map(|m| m.veth.clone()).collect();
    veths.sort();
    assert_eq!(ports, veths, "the machines' veths on the bridge");
    let net_prefix = bridge.gateway.trim_end_matches(".1").to_string() + ".";
    agents[0].wait_until(
        "five machine members, each with its address",
        Duration::from_secs(30),
        |a| {
            let mut members = machine_members(a);
            members.sort();
            let mut addrs: Vec<String> = members.iter().map(|m| m.2.clone()).collect();
            addrs.sort();
            addrs.dedup();
            let mut recorded: Vec<String> = ms.iter().map(|m| m.address.clone()).collect();
            recorded.sort();
            members.len() == 5
                && members
                    .iter()
                    .all(|m| m.1 == "alive" && m.2.starts_with(&net_prefix))
                && addrs == recorded
        },
    );
    let machine = |root: &str| -> netns::NetnsMachine {
        let prefix = format!("lamp-{}-g", root.trim_start_matches('/'));
        bridge
            .machines()
            .into_iter()
            .find(|m| m.folder.starts_with(&prefix))
            .unwrap_or_else(|| panic!("the machine of {root}"))
    };
    // The balancer reaches each app server at its machine's address
    // (`server /vm-app-1/app-1 <address>:<port>`).
    for s in roboconf_tests::lamp_servers(&machines) {
        let root = s
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split('/').nth(1));
        let address = machine(&format!("/{}", root.unwrap_or_default())).address;
        assert!(s.contains(&format!(" {address}:")), "{s}");
    }
    let agent_dirs = || -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = agents.iter().map(|a| a.data_dir.clone()).collect();
        v.extend(
            bridge
                .machines()
                .iter()
                .map(|m| machines.join(&m.folder).join("agent")),
        );
        v
    };

    // A slow, lossy link to one app machine while its server is stopped and started.
    {
        let _slow = Impaired::new(&machine("/vm-app-1").veth);
        cli(&["instance", "stop", "lamp", "/vm-app-1/app-1"]);
        agents[0].wait_until(
            "the balancer without app-1",
            Duration::from_secs(30),
            |_| {
                let s = roboconf_tests::lamp_servers(&machines);
                s.len() == 2 && !s.iter().any(|l| l.contains("/vm-app-1/app-1"))
            },
        );
        cli(&["instance", "start", "lamp", "/vm-app-1/app-1"]);
        agents[0].wait_until(
            "the balancer with app-1 again",
            Duration::from_secs(30),
            |_| roboconf_tests::lamp_servers(&machines).len() == 3,
        );
        agents[0].wait_until(
            "every agent with the same states",
            Duration::from_secs(30),
            |a| {
                let reference = states(&a.data_dir);
                all_started(a) && agent_dirs().iter().all(|d| states(d) == reference)
            },
        );
    }

    // A partition: one machine cut off from the bridge.
    let cut = machine("/vm-app-2");
    let cut_dir = machines.join(&cut.folder);
    let pid = |dir: &Path| {
        let rec = std::fs::read_to_string(dir.join("machine.json")).unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&rec).unwrap_or_default()["pid"].as_u64()
    };
    let cut_pid = pid(&cut_dir).expect("the cut machine's pid");
    // (live machines, machine folders), each time they are counted.
    let counts = std::cell::RefCell::new(Vec::new());
    let count = || {
        let n = (
            roboconf_tests::live_machines(&machines).len(),
            bridge.machines().len(),
        );
        counts.borrow_mut().push(n);
        n
    };
    must("ip", &["link", "set", &cut.veth, "down"]);
    for a in &agents {
        a.wait_until(
            "the cut machine's root PROBLEM",
            Duration::from_secs(30),
            |a| {
                count();
                a.state("lamp", "/vm-app-2") == "PROBLEM"
            },
        );
    }
    assert!(
        roboconf_tests::live_machines(&machines).contains(&(cut_pid as u32)),
        "the cut machine keeps running"
    );
    roboconf_tests::wait(
        "the machine count unchanged",
        Duration::from_secs(5),
        || count() == (5, 5),
    );
    must("ip", &["link", "set", &cut.veth, "up"]);
    for a in &agents {
        a.wait_until(
            "the cut machine alive again, its app server started",
            Duration::from_secs(45),
            |a| {
                count();
                a.state("lamp", "/vm-app-2/app-2") == "DEPLOYED_STARTED"
                    && machine_members(a)
                        .iter()
                        .any(|m| m.0 == cut.folder && m.1 == "alive")
            },
        );
    }
    roboconf_tests::wait_or_tell(
        "the balancer with app-2 again",
        Duration::from_secs(30),
        || {
            count();
            roboconf_tests::lamp_servers(&machines).len() == 3
        },
        || {
            format!(
                "{:?}\n{}\n{}",
                roboconf_tests::lamp_servers(&machines),
                machine_log(&machines, &machine("/vm-lb").folder),
                machine_log(&machines, &cut.folder),
            )
        },
    );
    for a in &agents {
        let root_view = |a: &Agent| {
            let s = a.status("lamp");
            let i = s["instances"]
                .as_array()
                .and_then(|l| l.iter().find(|i| i["path"] == "/vm-app-2"))
                .cloned()
                .unwrap_or_default();
            let f = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
            (f(&i["state"]), f(&i["machine"]["state"]))
        };
        a.wait_until(
            "the cut machine's root started again",
            Duration::from_secs(30),
            |a| {
                count();
                root_view(a) == ("DEPLOYED_STARTED".into(), "running".into())
            },
        );
    }
    roboconf_tests::wait(
        "the machine count unchanged",
        Duration::from_secs(5),
        || count() == (5, 5),
    );
    let counts = counts.into_inner();
    assert!(
        counts.iter().all(|n| *n == (5, 5)),
        "a machine launched in its place: {counts:?}"
    );
    assert_eq!(pid(&cut_dir), Some(cut_pid), "the same machine");

    // Undeploy: every machine, namespace and veth gone; then the bridge.
    for r in roots {
        cli(&["instance", "undeploy", "lamp", r]);
    }
    agents[0].wait_until("every machine terminated", Duration::from_secs(60), |_| {
        roboconf_tests::live_machines(&machines).is_empty() && bridge.machines().is_empty()
    });
    let listed = netns::namespaces();
    for m in &ms {
        assert!(!listed.contains(&m.ns), "{} left: {listed:?}", m.ns);
        assert!(!netns::link_exists(&m.veth), "{} left", m.veth);
    }
    assert!(bridge.ports().is_empty(), "{:?}", bridge.ports());
    let left = processes_under(&machines);
    assert!(left.is_empty(), "processes of the machines left: {left:?}");
    bridge.delete();
    assert!(!bridge.exists(), "the bridge is deleted");
}
