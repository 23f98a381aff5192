//! A small LAN of Linux network namespaces for tests: one "switch" namespace holding two
//! bridges, and hosts each joined to it by a veth pair. A host can be moved to the second
//! bridge (a partition between two groups) and back (the heal). Needs root and `ip`;
//! every name is unique to the process, and everything is deleted on drop.

use std::process::Command;

/// Whether this process can make namespaces (root, with `ip` installed).
pub fn available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    root && Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ip(args: &[&str]) {
    let o = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        o.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The LAN; dropping it deletes the namespaces (and with them their links).
pub struct Lan {
    tag: String,
    switch: String,
    hosts: Vec<String>,
    subnet: u8,
}

impl Lan {
    /// `n` hosts on one bridge, with addresses `10.<subnet>.0.<k+1>/24`.
    pub fn new(n: usize) -> Lan {
        let pid = std::process::id();
        let tag = format!("rc{}", pid % 100_000);
        let subnet = 100 + (pid % 100) as u8;
        let switch = format!("{tag}sw");
        ip(&["netns", "add", &switch]);
        let mut lan = Lan {
            tag: tag.clone(),
            switch: switch.clone(),
            hosts: Vec::new(),
            subnet,
        };
        for br in ["br0", "br1"] {
            ip(&["-n", &switch, "link", "add", br, "type", "bridge"]);
            ip(&["-n", &switch, "link", "set", br, "up"]);
        }
        for k in 0..n {
            let host = format!("{tag}h{k}");
            ip(&["netns", "add", &host]);
            lan.hosts.push(host.clone());
            let (h_end, s_end) = (format!("{tag}a{k}"), format!("{tag}b{k}"));
            ip(&[
                "link", "add", &h_end, "type", "veth", "peer", "name", &s_end,
            ]);
            ip(&["link", "set", &h_end, "netns", &host]);
            ip(&["link", "set", &s_end, "netns", &switch]);
            ip(&["-n", &switch, "link", "set", &s_end, "master", "br0"]);
            ip(&["-n", &switch, "link", "set", &s_end, "up"]);
            let addr = format!("{}/24", lan.addr(k));
            ip(&["-n", &host, "addr", "add", &addr, "dev", &h_end]);
            ip(&["-n", &host, "link", "set", "lo", "up"]);
            ip(&["-n", &host, "link", "set", &h_end, "up"]);
        }
        lan
    }

    /// Host `k`'s address.
    pub fn addr(&self, k: usize) -> String {
        format!("10.{}.0.{}", self.subnet, k + 1)
    }

    /// Host `k`'s namespace (for `ip netns exec`).
    pub fn ns(&self, k: usize) -> &str {
        &self.hosts[k]
    }

    /// Moves the hosts `group` to the other bridge: they reach each other, not the rest.
    pub fn split(&self, group: &[usize]) {
        for k in group {
            let s_end = format!("{}b{k}", self.tag);
            ip(&["-n", &self.switch, "link", "set", &s_end, "master", "br1"]);
        }
    }

    /// Puts every host back on one bridge.
    pub fn heal(&self) {
        for k in 0..self.hosts.len() {
            let s_end = format!("{}b{k}", self.tag);
            ip(&["-n", &self.switch, "link", "set", &s_end, "master", "br0"]);
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
