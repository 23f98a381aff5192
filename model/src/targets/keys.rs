//! The keys of each handler this mesh launches machines with, and the checks of their
//! values: `local` and `embedded`, `docker` with Roboconf's keys (its endpoint, image,
//! image folder, `docker.option.run.*` options and `docker.option.env.*` variables) and
//! `netns`, this mesh's own (a subnet, a bridge, an address inside the subnet). Each
//! check answers with the message of what is wrong, or nothing.

use crate::props::Entry;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The keys of one handler.
pub(super) struct Keys {
    /// Exact names.
    pub exact: &'static [&'static str],
    /// Prefixes of keys with a non-empty rest (`hostkey.<host>`).
    pub prefixes: &'static [&'static str],
    /// The handler's own prefixes: a key under them that the handler does not have is an
    /// error (a typo would otherwise be ignored).
    pub owned: &'static [&'static str],
}

/// The keys of `handler` (none for a handler this mesh cannot launch with).
pub(super) fn keys(handler: &str) -> Keys {
    let (exact, prefixes, owned): (&[&str], &[&str], &[&str]) = match handler {
        "local" => (
            &["local.binary", "local.dir", "local.join.timeout"],
            &[],
            &["local."],
        ),
        "embedded" => (
            &[
                "embedded.ip",
                "embedded.port",
                "embedded.binary",
                "embedded.remote.dir",
                "scp.user",
                "scp.keyfile",
                "scp.known.hosts.file",
                "scp.disable.host.validation",
                "scp.agent.configdir",
            ],
            &["hostkey."],
            &["embedded.", "scp."],
        ),
        "docker" => (
            &[
                "docker.endpoint",
                "docker.image",
                "docker.generate.image.from",
                "docker.agent.listen",
            ],
            &["docker.option.run.", "docker.option.env."],
            &["docker."],
        ),
        "netns" => (
            &[
                "netns.subnet",
                "netns.bridge",
                "netns.address",
                "netns.binary",
                "netns.dir",
                "netns.join.timeout",
            ],
            &[],
            &["netns."],
        ),
        _ => (&[], &[], &[]),
    };
    Keys {
        exact,
        prefixes,
        owned,
    }
}

const CREDENTIALS: &str = "registry credentials are not used: this mesh never pulls images";
const LEGACY_IMAGE: &str =
    "Roboconf's older image generation is not done here: give `docker.image` or `docker.generate.image.from`";

/// Keys of Roboconf's that `handler` reads nothing from: a warning with the reason.
pub(super) fn ignored(handler: &str, key: &str) -> Option<&'static str> {
    if handler != "docker" {
        return None;
    }
    Some(match key {
        "docker.user" | "docker.password" | "docker.email" => CREDENTIALS,
        "docker.version" => "the Docker API version is not chosen by the target file",
        "docker.run.exec" => "the container always runs the agent",
        // Roboconf's image generation before `docker.generate.image.from`: its own
        // examples still use `docker.generate.image`, and Roboconf accepts them.
        "docker.generate.image"
        | "docker.base.image"
        | "docker.download.base-image"
        | "docker.image.registry"
        | "docker.agent.package"
        | "docker.agent.package.url"
        | "docker.agent.jre-packages"
        | "docker.additional.packages"
        | "docker.additional.deploy" => LEGACY_IMAGE,
        _ => return None,
    })
}

/// Checks the value of the key `k` of a target file `f`; `entries` are the file's
/// entries (`netns.address` is checked against `netns.subnet`).
pub(super) fn check_value(k: &str, v: &str, f: &Path, entries: &[Entry]) -> Option<String> {
    match k {
        "agent.sha256" => (v.len() != 64
            || !v.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| {
            format!("`agent.sha256` must be a SHA-256 in lower-case hex (see `roboconf members`), not `{v}`")
        }),
        "embedded.ip" => v
            .split(',')
            .map(str::trim)
            .find(|a| a.parse::<IpAddr>().is_err())
            .map(|a| format!("`{a}` in `embedded.ip` is not an IP address")),
        "embedded.port" => (port(v).is_none())
            .then(|| format!("`embedded.port` must be a port number, not `{v}`")),
        "scp.disable.host.validation" => (!matches!(v, "true" | "false"))
            .then(|| format!("`{k}` must be `true` or `false`, not `{v}`")),
        "local.join.timeout" | "netns.join.timeout" => (v.trim_end_matches('s').parse::<u64>())
            .is_err()
            .then(|| format!("`{k}` must be seconds, not `{v}`")),
        "docker.endpoint" => (!endpoint(v)).then(|| {
            format!("`docker.endpoint` must be `unix:///path`, `/path`, `tcp://host:port` or `http://host:port`, not `{v}`")
        }),
        "docker.image" => (v.is_empty() || v.contains(char::is_whitespace))
            .then(|| format!("`docker.image` must be an image name without spaces, not `{v}`")),
        "docker.generate.image.from" => image_folder(v, f),
        "docker.agent.listen" => (!multiaddr(v)).then(|| {
            format!("`docker.agent.listen` must be an address like `/ip4/0.0.0.0/tcp/4001` or `/ip6/::/tcp/4001`, not `{v}`")
        }),
        "netns.subnet" => subnet(v)
            .is_none()
            .then(|| format!("`netns.subnet` must be an IPv4 subnet `a.b.c.d/N` with N from 8 to 30, not `{v}`")),
        "netns.bridge" => (!interface(v)).then(|| {
            format!("`netns.bridge` must be an interface name (1 to 15 letters, digits, `_`, `.` or `-`), not `{v}`")
        }),
        "netns.address" => netns_address(v, entries),
        _ => {
            if let Some(opt) = k.strip_prefix("docker.option.run.") {
                run_option(opt, v)
            } else if let Some(var) = k.strip_prefix("docker.option.env.") {
                env_option(var, v)
            } else {
                None
            }
        }
    }
}

fn port(v: &str) -> Option<u16> {
    v.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `host:port`, the host without spaces or slashes.
fn host_port(v: &str) -> bool {
    v.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.contains(|c: char| c == '/' || c.is_whitespace()) && port(p).is_some()
    })
}

fn absolute(p: &str) -> bool {
    p.len() > 1 && p.starts_with('/') && !p.contains(char::is_whitespace)
}

fn endpoint(v: &str) -> bool {
    if let Some(p) = v.strip_prefix("unix://") {
        absolute(p)
    } else if let Some(hp) = v
        .strip_prefix("tcp://")
        .or_else(|| v.strip_prefix("http://"))
    {
        host_port(hp)
    } else {
        absolute(v)
    }
}

/// The folder of a Dockerfile, relative to the target file's folder.
fn image_folder(v: &str, f: &Path) -> Option<String> {
    if v.is_empty() {
        return Some("`docker.generate.image.from` must name a folder".into());
    }
    let dir = f.parent().unwrap_or(Path::new("")).join(v);
    let docker_file = dir.join("Dockerfile");
    if !dir.is_dir() {
        Some(format!(
            "`docker.generate.image.from`: no folder `{}`",
            dir.display()
        ))
    } else if !docker_file.is_file() {
        Some(format!(
            "`docker.generate.image.from`: no `{}`",
            docker_file.display()
        ))
    } else {
        None
    }
}

fn multiaddr(v: &str) -> bool {
    let (rest, v6) = match (v.strip_prefix("/ip4/"), v.strip_prefix("/ip6/")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return false,
    };
    let mut parts = rest.split('/');
    let ip = parts.next().unwrap_or("").parse::<IpAddr>();
    let family = matches!(ip, Ok(a) if a.is_ipv6() == v6);
    family && parts.all(|p| !p.is_empty() && !p.contains(char::is_whitespace))
}

/// An IPv4 subnet: its address and prefix length.
fn subnet(v: &str) -> Option<(Ipv4Addr, u32)> {
    let (a, n) = v.split_once('/')?;
    let n = n.parse::<u32>().ok().filter(|n| (8..=30).contains(n))?;
    Some((a.parse().ok()?, n))
}

fn interface(v: &str) -> bool {
    (1..=15).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn netns_address(v: &str, entries: &[Entry]) -> Option<String> {
    let Ok(a) = v.parse::<Ipv4Addr>() else {
        return Some(format!(
            "`netns.address` must be an IPv4 address, not `{v}`"
        ));
    };
    let s = crate::props::get(entries, "netns.subnet").map(|e| e.value.trim())?;
    let (net, n) = subnet(s)?;
    let mask = u32::MAX << (32 - n);
    (u32::from(a) & mask != u32::from(net) & mask)
        .then(|| format!("`netns.address` {a} is not inside `netns.subnet` {s}"))
}

/// The run options of `docker.option.run.*`, in their dashed form.
pub const RUN_OPTIONS: &[&str] = &[
    "hostname",
    "network-mode",
    "memory",
    "memory-swap",
    "cpu-shares",
    "cpus",
    "cpuset-cpus",
    "binds",
    "volumes",
    "restart-policy",
    "cap-add",
    "cap-drop",
    "privileged",
    "user",
    "dns",
    "extra-hosts",
];

/// Checks `docker.option.run.<opt>`; the option's name is read as Roboconf reads it,
/// without case, `-` or `_` (`cpu-shares`, `cpuShares`, `cpushares`).
fn run_option(opt: &str, v: &str) -> Option<String> {
    let name: String = opt
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    let what = match name.as_str() {
        "hostname" | "user" => (!v.is_empty()).then_some(()).ok_or("a value"),
        "networkmode" => network_mode(v).then_some(()).ok_or(
            "`host`, `none`, `bridge`, `container:<name>` or a network name",
        ),
        "memory" => bytes(v)
            .then_some(())
            .ok_or("a size: digits and an optional unit b, k, m or g"),
        "memoryswap" => (v == "-1" || bytes(v))
            .then_some(())
            .ok_or("a size: digits and an optional unit b, k, m or g, or -1"),
        "cpushares" => (v.parse::<u64>().is_ok_and(|n| n >= 2))
            .then_some(())
            .ok_or("an integer of at least 2"),
        "cpus" => decimal(v)
            .then_some(())
            .ok_or("a decimal number above 0"),
        "cpusetcpus" => cpu_set(v)
            .then_some(())
            .ok_or("a list of CPUs like `0-3,5`"),
        "binds" | "volumes" => list(v, mount).then_some(()).ok_or(
            "a comma list of `host:container` or `host:container:ro|rw` (absolute paths, or a volume name for host)",
        ),
        "restartpolicy" => restart_policy(v).then_some(()).ok_or(
            "`no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N`",
        ),
        "capadd" | "capdrop" => list(v, |c| {
            c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .then_some(())
        .ok_or("a comma list of capability names"),
        "privileged" => matches!(v, "true" | "false")
            .then_some(())
            .ok_or("`true` or `false`"),
        "dns" => list(v, |a| a.parse::<IpAddr>().is_ok())
            .then_some(())
            .ok_or("a comma list of IP addresses"),
        "extrahosts" => list(v, |e| {
            e.split_once(':').is_some_and(|(n, ip)| {
                !n.is_empty() && !n.contains(char::is_whitespace) && ip.parse::<IpAddr>().is_ok()
            })
        })
        .then_some(())
        .ok_or("a comma list of `name:ip`"),
        _ => {
            return Some(format!(
                "the `docker` handler has no run option `{opt}` (it has {})",
                RUN_OPTIONS.join(", ")
            ))
        }
    };
    what.err()
        .map(|w| format!("`docker.option.run.{opt}` must be {w}, not `{v}`"))
}

fn network_mode(v: &str) -> bool {
    match v.strip_prefix("container:") {
        Some(c) => !c.is_empty() && !c.contains(char::is_whitespace),
        None => !v.is_empty() && !v.contains(char::is_whitespace),
    }
}

fn bytes(v: &str) -> bool {
    let digits = v.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
    v.len() - digits.len() <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn decimal(v: &str) -> bool {
    let (i, d) = v.split_once('.').unwrap_or((v, ""));
    !(i.is_empty() && d.is_empty())
        && i.bytes().chain(d.bytes()).all(|b| b.is_ascii_digit())
        && v.parse::<f64>().is_ok_and(|x| x > 0.0)
}

fn cpu_set(v: &str) -> bool {
    list(v, |r| {
        let (a, b) = r.split_once('-').unwrap_or((r, r));
        matches!((a.parse::<u32>(), b.parse::<u32>()), (Ok(a), Ok(b)) if a <= b)
    })
}

/// `host:container[:ro|rw]`: absolute paths, or a volume name for the host part.
fn mount(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    let volume = |h: &str| {
        h.starts_with(|c: char| c.is_ascii_alphanumeric())
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    let mode_ok = match parts.len() {
        2 => true,
        3 => matches!(parts[2], "ro" | "rw"),
        _ => false,
    };
    mode_ok && (absolute(parts[0]) || volume(parts[0])) && absolute(parts[1])
}

fn restart_policy(v: &str) -> bool {
    match v.strip_prefix("on-failure:") {
        Some(n) => n.parse::<u32>().is_ok(),
        None => matches!(v, "no" | "always" | "unless-stopped" | "on-failure"),
    }
}

/// A comma list whose items (trimmed) are all non-empty and `ok`.
fn list(v: &str, ok: impl Fn(&str) -> bool) -> bool {
    v.split(',').map(str::trim).all(|i| !i.is_empty() && ok(i))
}

/// Roboconf's placeholders in `docker.option.env.*` values.
const ENV_PLACEHOLDERS: &[&str] = &[
    "<application-name>",
    "<scoped-instance-path>",
    "<scoped-messaging_type>",
];

/// Checks `docker.option.env.<var>`: the variable's name, and the placeholders of its
/// value (anything like `<lower-case_name>` must be one of Roboconf's).
fn env_option(var: &str, v: &str) -> Option<String> {
    let name_ok = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !name_ok {
        return Some(format!(
            "`docker.option.env.{var}`: `{var}` is not an environment variable name"
        ));
    }
    let mut rest = v;
    while let Some(i) = rest.find('<') {
        rest = &rest[i..];
        // The length of the name after `<`, then the token with its `<` and `>`.
        let n = rest[1..]
            .find(|c: char| !(c.is_ascii_lowercase() || matches!(c, '_' | '-')))
            .unwrap_or(rest.len() - 1);
        let closed = n > 0 && rest[1 + n..].starts_with('>');
        let token = &rest[..(n + 2).min(rest.len())];
        if closed && !ENV_PLACEHOLDERS.contains(&token) {
            return Some(format!(
                "`docker.option.env.{var}`: unknown placeholder `{token}` (known: {})",
                ENV_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[1..];
    }
    None
}
