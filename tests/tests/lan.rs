//! mDNS on a LAN (two hosts, Linux network namespaces on one bridge): two members that
//! both restart on new ports — so the addresses each kept of the other are stale, and
//! neither has a `--peer` — find each other again by mDNS and are alive to each other.
//! Runs when the tests run as root (CI does); otherwise it says so and passes.

use roboconf_tests::{netns, Agent};
use std::time::Duration;

fn state_of(a: &Agent, name: &str) -> String {
    let o = a.cli(&["members", "--json"]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
        .unwrap_or_default()
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["state"].as_str().map(String::from))
        .unwrap_or_default()
}

#[test]
fn members_find_each_other_again_by_mdns() {
    if !netns::available() {
        eprintln!("skipped: network namespaces need root and `ip` (CI runs this as root)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let lan = netns::Lan::new(2);
    let start = |k: usize| {
        let listen = format!("/ip4/{}/tcp/0", lan.addr(k));
        let name = format!("n{k}");
        let args = ["--listen", listen.as_str(), "--node", &name, "--mdns"];
        Agent::start_in(Some(lan.ns(k)), &tmp.path().join(&name), &args, &[])
    };
    let (mut a, mut b) = (start(0), start(1));
    a.init_mesh();
    b.join(&a);
    a.wait_until("n1 alive", Duration::from_secs(30), |a| {
        state_of(a, "n1") == "alive"
    });
    let old_a = a.address();
    a.kill9();
    b.kill9();
    let (a, b) = (start(0), start(1));
    assert_ne!(a.address(), old_a, "a new port");
    a.wait_until("n1 alive again", Duration::from_secs(60), |a| {
        state_of(a, "n1") == "alive"
    });
    b.wait_until("n0 alive again", Duration::from_secs(60), |b| {
        state_of(b, "n0") == "alive"
    });
}
