//! The `netns` target (root only): a machine is an agent process in its own Linux
//! network namespace, with its own address on a bridge of this host — several "hosts"
//! on one machine, for realistic multi-host tests. The bridge (`netns.bridge`, default
//! `rbc0`) holds the subnet's first address (`netns.subnet`, default `10.213.0.0/24`);
//! it is created when missing and left in place (an operator may make it beforehand).
//! Per machine: a namespace `rbn-<hash>` and a veth pair, `rbv<hash>` on the bridge and
//! `eth0` inside, named from the hash of the machine's folder (unique on the host, and
//! short: Linux allows 15 characters); an address (`netns.address`, or one picked from
//! the key's hash, skipping those other machines of the folder `netns.dir` recorded),
//! loopback up and a default route via the bridge. The folder, identity, user data, log
//! and PID record are `local`'s (its process handling is shared), plus `netns.json`
//! naming the namespace, the veth and the address, written before anything is made so
//! that terminate and a re-create find them. The agent runs `ip netns exec <ns> setsid
//! <binary> … agent --listen /ip4/<address>/tcp/0 --ip <address>`. Terminate: leave,
//! kill its session and whatever else runs in the namespace, delete the namespace and
//! the veth, remove the folder.

use super::local::{self, Launch};
use super::{machine_name, Created, Failure, Target, UserData};
use roboconf_core::coord::MachineKey;
use roboconf_core::mesh::fnv1a;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const NEEDS_ROOT: &str = "the netns target needs root (CAP_NET_ADMIN)";
/// The machine's end of its veth pair, inside its namespace.
const IFACE: &str = "eth0";

/// Address allocation and bridge set-up of this process, one at a time (a file lock on
/// the machines' folder keeps other processes out).
static ALLOCATION: Mutex<()> = Mutex::new(());

pub struct Netns {
    base: PathBuf,
    binary: PathBuf,
    /// The subnet's network address and prefix length.
    net: u32,
    prefix: u8,
    bridge: String,
    fixed: Option<Ipv4Addr>,
}

/// What `netns.json` records of a machine's network.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Net {
    ns: String,
    veth: String,
    address: Ipv4Addr,
}

impl Netns {
    pub fn new(props: &BTreeMap<String, String>, data_dir: &Path) -> Result<Netns, String> {
        let base = match props.get("netns.dir") {
            Some(d) => PathBuf::from(d),
            None => data_dir.parent().map_or_else(
                || data_dir.join("machines"),
                |p| p.join("roboconf-machines"),
            ),
        };
        let binary = match props.get("netns.binary") {
            Some(b) => PathBuf::from(b),
            None => std::env::current_exe().map_err(|e| format!("the agent's binary: {e}"))?,
        };
        let subnet = props
            .get("netns.subnet")
            .map_or("10.213.0.0/24", |s| s.trim());
        let (net, prefix) = parse_subnet(subnet)?;
        let fixed = match props.get("netns.address") {
            Some(a) => Some(
                a.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|e| format!("netns target: `netns.address` {a}: {e}"))?,
            ),
            None => None,
        };
        let bridge = props
            .get("netns.bridge")
            .map_or("rbc0", |b| b.trim())
            .to_string();
        Ok(Netns {
            base,
            binary,
            net,
            prefix,
            bridge,
            fixed,
        })
    }

    fn dir(&self, key: &MachineKey) -> PathBuf {
        self.base.join(machine_name(key))
    }

    /// The bridge's address: the subnet's first.
    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.net + 1)
    }

    /// The bridge, with its address, up: made when missing, left as it is otherwise.
    fn bridge(&self) -> Result<(), String> {
        let br = self.bridge.as_str();
        if !link_exists(br) {
            if let Err(e) = ip(&["link", "add", br, "type", "bridge"]) {
                if !link_exists(br) {
                    return Err(e);
                }
            }
        }
        let cidr = format!("{}/{}", self.gateway(), self.prefix);
        let shown = output(&["-o", "-4", "addr", "show", "dev", br]);
        if !shown.contains(&format!("inet {cidr} ")) {
            ip(&["addr", "add", &cidr, "dev", br])?;
        }
        ip(&["link", "set", br, "up"])
    }

    /// The address of the machine in `dir`: `netns.address`, else the first free one
    /// from the hash of its name on, skipping the subnet's first (the bridge) and last
    /// (broadcast) and those the other machines' folders record.
    fn allocate(&self, dir: &Path) -> Result<Ipv4Addr, String> {
        let used = self.used(dir);
        if let Some(a) = self.fixed {
            if (u32::from(a) & mask(self.prefix)) != self.net {
                return Err(format!(
                    "netns target: `netns.address` {a} is not in the subnet {}/{}",
                    Ipv4Addr::from(self.net),
                    self.prefix
                ));
            }
            return match used.iter().find(|(u, _)| *u == a) {
                Some((_, other)) => Err(format!(
                    "netns target: the address {a} is in use by the machine {}",
                    other.display()
                )),
                None => Ok(a),
            };
        }
        let hosts = (1u64 << (32 - self.prefix)) - 3;
        let name = dir.file_name().map(|n| n.as_bytes()).unwrap_or_default();
        let first = fnv1a(name) % hosts;
        (0..hosts)
            .map(|i| Ipv4Addr::from(self.net + 2 + ((first + i) % hosts) as u32))
            .find(|a| used.iter().all(|(u, _)| u != a))
            .ok_or_else(|| {
                format!(
                    "netns target: no free address left in {}/{}",
                    Ipv4Addr::from(self.net),
                    self.prefix
                )
            })
    }

    /// The addresses the machines' folders other than `dir` record.
    fn used(&self, dir: &Path) -> Vec<(Ipv4Addr, PathBuf)> {
        std::fs::read_dir(&self.base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p != dir)
            .filter_map(|p| Some((read_net(&p)?.address, p)))
            .collect()
    }

    /// The bridge made, an address reserved for `dir` (its record written) — under the
    /// locks, so that two creations never take the same address.
    fn reserve(&self, dir: &Path) -> Result<Net, String> {
        let _one = ALLOCATION.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(&self.base)
            .map_err(|e| format!("netns target: cannot create {}: {e}", self.base.display()))?;
        let lock = std::fs::File::open(&self.base)
            .and_then(|f| f.lock().map(|()| f))
            .map_err(|e| format!("netns target: cannot lock {}: {e}", self.base.display()))?;
        self.bridge()?;
        let (ns, veth) = names(dir);
        let address = match read_net(dir) {
            Some(n) => n.address,
            None => self.allocate(dir)?,
        };
        let net = Net { ns, veth, address };
        std::fs::create_dir_all(dir)
            .and_then(|()| write_net(dir, &net))
            .map_err(|e| format!("netns target: cannot record in {}: {e}", dir.display()))?;
        drop(lock);
        Ok(net)
    }

    /// The namespace and its link: loopback, the veth on the bridge, the address, the
    /// default route.
    fn plumb(&self, net: &Net) -> Result<(), String> {
        let (ns, veth) = (net.ns.as_str(), net.veth.as_str());
        let cidr = format!("{}/{}", net.address, self.prefix);
        let gw = self.gateway().to_string();
        ip(&["netns", "add", ns])?;
        ip(&[
            "link", "add", veth, "type", "veth", "peer", "name", IFACE, "netns", ns,
        ])?;
        ip(&["link", "set", veth, "master", &self.bridge])?;
        ip(&["link", "set", veth, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "addr", "add", &cidr, "dev", IFACE])?;
        ip(&["-n", ns, "link", "set", IFACE, "up"])?;
        ip(&["-n", ns, "route", "add", "default", "via", &gw])
    }
}

impl Target for Netns {
    fn create(&self, key: &MachineKey, user: &UserData) -> Result<Created, Failure> {
        let dir = self.dir(key);
        let created = |node: String, address: Ipv4Addr| Created {
            machine_id: machine_name(key),
            address: address.to_string(),
            node,
        };
        if let Some(net) = read_net(&dir) {
            if let Some(node) = local::running(&dir, user) {
                return Ok(created(node, net.address));
            }
        }
        if !privileged() {
            return Err(Failure::clean(NEEDS_ROOT));
        }
        // What an earlier attempt for this key left (its agent is dead) goes first; its
        // folder, identity and address are kept.
        if dir.exists() {
            clear(&dir, &self.binary).map_err(|reason| Failure {
                reason,
                left_behind: true,
            })?;
        }
        let net = self.reserve(&dir).map_err(Failure::clean)?;
        if let Err(e) = self.plumb(&net) {
            return Err(undo(&dir, &self.binary, e));
        }
        let addr = net.address.to_string();
        let prefix = [
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            net.ns.clone(),
        ];
        let how = Launch {
            target: "netns",
            prefix: &prefix,
            listen: format!("/ip4/{addr}/tcp/0"),
            extra: &["--ip".to_string(), addr.clone()],
        };
        match local::start(&dir, &self.binary, &how, user) {
            Ok(node) => Ok(created(node, net.address)),
            // Its agent runs on: terminate ends it and removes the rest.
            Err(f) if f.left_behind => Err(f),
            Err(f) => {
                // `start` removed the folder; the record is written again for `undo`.
                let _ = std::fs::create_dir_all(&dir).and_then(|()| write_net(&dir, &net));
                Err(undo(&dir, &self.binary, f.reason))
            }
        }
    }

    fn terminate(&self, key: &MachineKey, machine_id: &str) -> Result<(), String> {
        let dir = match machine_id.is_empty() {
            true => self.dir(key),
            false => self.base.join(machine_id),
        };
        clear(&dir, &self.binary)?;
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!(
                "netns target: cannot remove {}: {e}",
                dir.display()
            )),
            _ => Ok(()),
        }
    }

    fn is_running(&self, key: &MachineKey) -> bool {
        local::alive_in(&self.dir(key))
    }
}

/// Ends the machine of `dir` (leave, then its session), every process left in its
/// namespace, the namespace and the host's veth; the folder stays. Ok when there is
/// nothing (left) of them.
fn clear(dir: &Path, binary: &Path) -> Result<(), String> {
    let net = read_net(dir);
    let (ns, veth) = net.map_or_else(|| names(dir), |n| (n.ns, n.veth));
    local::stop(dir, binary, "netns")?;
    if Path::new("/run/netns").join(&ns).exists() {
        // The scripts' daemons run in their own sessions, but in this namespace.
        let pids = || {
            output(&["netns", "pids", &ns])
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let left = pids();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= end {
                return Err(format!(
                    "netns target: processes {} in the namespace {ns} do not die",
                    left.join(" ")
                ));
            }
            let _ = Command::new("kill").arg("-KILL").args(&left).output();
            std::thread::sleep(Duration::from_millis(20));
        }
        ip(&["netns", "del", &ns])?;
    }
    if link_exists(&veth) {
        ip(&["link", "del", &veth])?;
    }
    Ok(())
}

/// After a failure to create: everything of the machine removed; the failure, which
/// says whether something is left.
fn undo(dir: &Path, binary: &Path, reason: String) -> Failure {
    let cleared = clear(dir, binary).and_then(|()| {
        std::fs::remove_dir_all(dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| format!("cannot remove {}: {e}", dir.display()))
    });
    match cleared {
        Ok(()) => Failure::clean(reason),
        Err(e) => Failure {
            reason: format!("{reason}; and not cleaned up: {e}"),
            left_behind: true,
        },
    }
}

/// The namespace and host veth names of the machine in `dir`.
fn names(dir: &Path) -> (String, String) {
    let h = fnv1a(dir.as_os_str().as_bytes()) as u32;
    (format!("rbn-{h:08x}"), format!("rbv{h:08x}"))
}

fn read_net(dir: &Path) -> Option<Net> {
    let text = std::fs::read_to_string(dir.join("netns.json")).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_net(dir: &Path, net: &Net) -> std::io::Result<()> {
    let tmp = dir.join("netns.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(net).unwrap_or_default())?;
    std::fs::rename(&tmp, dir.join("netns.json"))
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// `a.b.c.d/n` → the network address and `n` (8 to 30).
fn parse_subnet(s: &str) -> Result<(u32, u8), String> {
    let bad = |why: &str| format!("netns target: `netns.subnet` {s}: {why}");
    let (a, n) = s.split_once('/').ok_or_else(|| bad("not a.b.c.d/n"))?;
    let a: Ipv4Addr = a.parse().map_err(|e| bad(&format!("{e}")))?;
    let n: u8 = n.parse().map_err(|e| bad(&format!("{e}")))?;
    if !(8..=30).contains(&n) {
        return Err(bad("the prefix length must be 8 to 30"));
    }
    Ok((u32::from(a) & mask(n), n))
}

/// Whether this process may make namespaces and links (CAP_NET_ADMIN, and
/// CAP_SYS_ADMIN for `ip netns`).
fn privileged() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let caps = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let needed = (1u64 << 12) | (1u64 << 21);
    caps & needed == needed
}

fn ip(args: &[&str]) -> Result<(), String> {
    match Command::new("ip").args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "netns target: ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("netns target: cannot run ip: {e}")),
    }
}

/// What `ip ARGS` prints (nothing when it fails).
fn output(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["-o", "link", "show", "dev", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_masks_and_names() {
        assert_eq!(parse_subnet("10.213.0.7/24"), Ok((0x0ad5_0000, 24)));
        assert!(parse_subnet("10.213.0.0").is_err());
        assert!(parse_subnet("10.213.0.0/31").is_err());
        assert_eq!(mask(24), 0xffff_ff00);
        let (ns, veth) = names(Path::new("/tmp/m/lamp-vm-db-g1"));
        assert!(ns.starts_with("rbn-") && ns.len() == 12);
        assert!(veth.starts_with("rbv") && veth.len() <= 15);
        assert_eq!(names(Path::new("/tmp/m/lamp-vm-db-g1")).0, ns);
    }

    #[test]
    fn addresses_skip_the_bridge_broadcast_and_those_in_use() {
        let tmp = tempfile::tempdir().expect("tmp");
        let props: BTreeMap<String, String> = [
            ("netns.subnet".to_string(), "10.9.9.0/30".to_string()),
            ("netns.dir".to_string(), tmp.path().display().to_string()),
        ]
        .into();
        let t = Netns::new(&props, tmp.path()).expect("target");
        // A /30 has one address for a machine: .2.
        let a = tmp.path().join("a");
        assert_eq!(t.allocate(&a), Ok(Ipv4Addr::new(10, 9, 9, 2)));
        let (ns, veth) = names(&a);
        std::fs::create_dir_all(&a).expect("dir");
        write_net(
            &a,
            &Net {
                ns,
                veth,
                address: Ipv4Addr::new(10, 9, 9, 2),
            },
        )
        .expect("record");
        assert_eq!(t.allocate(&a), Ok(Ipv4Addr::new(10, 9, 9, 2)));
        assert!(t.allocate(&tmp.path().join("b")).is_err());
    }
}
