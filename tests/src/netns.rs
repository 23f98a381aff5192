//! A small LAN of Linux network namespaces for tests: one "switch" namespace holding two
//! bridges, and hosts each joined to it by a veth pair. A host can be moved to the second
//! bridge (a partition between two groups) and back (the heal). Needs root and `ip`;
//! every name is unique to the process, and everything is deleted on drop. `Bridge`: a
//! bridge in the test's own namespace for the `netns` target's machines, and what they
//! left deleted on drop.

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

/// A bridge in this process's namespace for the `netns` target's machines, its name
/// and subnet unique to the process (`rbt<n>`, `10.<a>.<b>.0/24`). Dropping it (also
/// when the test panics) ends what the machines under `machines` left: their agents,
/// every process in the namespaces their `netns.json` names, those namespaces, every
/// link on the bridge, then the bridge.
pub struct Bridge {
    pub name: String,
    /// `10.<a>.<b>.0/24`.
    pub subnet: String,
    /// The bridge's address, the subnet's first (`10.<a>.<b>.1`).
    pub gateway: String,
    machines: std::path::PathBuf,
}

/// One machine of the `netns` target, as its folder's `netns.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsMachine {
    /// Its folder's name (`<app>-<root>-g<generation>`).
    pub folder: String,
    pub ns: String,
    pub veth: String,
    pub address: String,
}

impl Bridge {
    /// Makes the bridge, with its address, up.
    pub fn new(machines: &std::path::Path) -> Bridge {
        let pid = std::process::id();
        let b = Bridge {
            name: format!("rbt{}", pid % 1_000_000),
            subnet: format!("10.{}.{}.0/24", 210 + (pid / 256) % 40, pid % 256),
            gateway: format!("10.{}.{}.1", 210 + (pid / 256) % 40, pid % 256),
            machines: machines.to_path_buf(),
        };
        let _ = Command::new("ip").args(["link", "del", &b.name]).output();
        ip(&["link", "add", &b.name, "type", "bridge"]);
        ip(&["addr", "add", &format!("{}/24", b.gateway), "dev", &b.name]);
        ip(&["link", "set", &b.name, "up"]);
        b
    }

    /// The machines whose folder records their network.
    pub fn machines(&self) -> Vec<NetnsMachine> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.machines)
            .into_iter()
            .flatten()
            .flatten()
        {
            let text = std::fs::read_to_string(e.path().join("netns.json")).unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            if !s("ns").is_empty() {
                out.push(NetnsMachine {
                    folder: e.file_name().to_string_lossy().into_owned(),
                    ns: s("ns"),
                    veth: s("veth"),
                    address: s("address"),
                });
            }
        }
        out.sort_by(|a, b| a.folder.cmp(&b.folder));
        out
    }

    /// The links attached to the bridge (the machines' host ends of their veths).
    pub fn ports(&self) -> Vec<String> {
        let o = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        o.lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// Whether the bridge exists.
    pub fn exists(&self) -> bool {
        link_exists(&self.name)
    }

    /// Deletes what the machines left, and the bridge.
    pub fn delete(&self) {
        crate::kill_machines(&self.machines);
        for m in self.machines() {
            let o = Command::new("ip").args(["netns", "pids", &m.ns]).output();
            let pids = o
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).output();
            }
            let _ = Command::new("ip").args(["netns", "del", &m.ns]).output();
        }
        crate::kill_processes_under(&self.machines);
        for port in self.ports() {
            let _ = Command::new("ip").args(["link", "del", &port]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .output();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.delete();
    }
}

/// The names `ip netns list` shows.
pub fn namespaces() -> Vec<String> {
    let o = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    o.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

/// Whether a link of that name exists in this namespace.
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}
