//! What the benchmarks of the machine targets (`local`, `netns`, `docker`) share: an
//! application whose `VM` root is launched by the target file given and holds a `Db`
//! whose deploy script does nothing, a mesh of agents with its voters, and the timing of
//! one root's deploy (`instance start` of a new root → its machine's agent joined and
//! the `Db` under it DEPLOYED_STARTED), the machine retired before the next.

use crate::{wait, Agent};
use std::path::Path;
use std::time::{Duration, Instant};

/// Writes the application `bench` in `dir`, its `VM` root launched as `target` (the
/// text of `graph/VM/target.properties`) says.
pub fn write_app(dir: &Path, target: &str) {
    let put = |rel: &str, text: &str| {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    };
    put(
        "descriptor/application.properties",
        "application-name = bench\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\n\
         graph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    );
    put(
        "graph/main.graph",
        "VM {\n\tinstaller: target;\n\tchildren: Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\n",
    );
    // One root declared, never deployed: the rounds create theirs.
    put(
        "instances/main.instances",
        "instance of VM {\n\tname: seed;\n}\n",
    );
    put("graph/Db/scripts/deploy.sh", "#!/bin/sh\ntrue\n");
    put("graph/VM/target.properties", target);
}

/// `n` agents `a0`… in `root`, listening on `listen`, in one mesh wanting `voters`
/// voters; returned once they all are voters.
pub fn mesh(root: &Path, n: usize, voters: usize, listen: &str) -> Vec<Agent> {
    let start = |k: usize| {
        let name = format!("a{k}");
        Agent::start(
            &root.join(&name),
            &["--listen", listen, "--node", &name],
            &[],
        )
    };
    let first = start(0);
    let v = voters.to_string();
    let o = first.cli(&["mesh", "init", "--voters", &v]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut agents = vec![first];
    for k in 1..n {
        let a = start(k);
        a.join(&agents[0]);
        agents.push(a);
    }
    wait("the voters", Duration::from_secs(60), || {
        agents[0].json(&["coordinator", "--json"])["voters"]
            .as_array()
            .is_some_and(|l| l.len() == voters)
    });
    agents
}

/// Deploys the new root `/vm<k>` of `bench` from `a` and times it (ms, until the `Db`
/// under it is DEPLOYED_STARTED, within `limit`); then undeploys it and waits until
/// `retired` says its machine is gone.
pub fn deploy_root(a: &Agent, k: usize, limit: Duration, retired: impl FnMut() -> bool) -> f64 {
    let ok = |args: &[&str]| {
        let o = a.cli(args);
        assert!(
            o.status.success(),
            "roboconf {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let (vm, db) = (format!("/vm{k}"), format!("/vm{k}/db"));
    ok(&["instance", "create", "bench", &vm, "--component", "VM"]);
    ok(&["instance", "create", "bench", &db, "--component", "Db"]);
    let t = Instant::now();
    ok(&["instance", "start", "bench", &vm]);
    wait("the root's machine and its instance", limit, || {
        a.state("bench", &db) == "DEPLOYED_STARTED"
    });
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    ok(&["instance", "undeploy", "bench", &vm]);
    wait("the machine retired", Duration::from_secs(60), retired);
    ms
}

/// The `p` quantile (nearest rank) of `v`, sorted in place.
pub fn quantile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}
