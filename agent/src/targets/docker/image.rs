//! Images for the `docker` target, made without a registry. The minimal image
//! (`roboconf-agent:<first 16 hex of the binary's SHA-256>`) is imported from a root
//! file system this module writes as a tarball (`docker import`, the engine's
//! `POST /images/create?fromSrc=-`): the agent binary at `/usr/local/bin/roboconf`, a
//! shell and the programs Roboconf's bash recipes commonly use, `python3` with its
//! standard library when the host has Debian's, and every shared library they load (the
//! ELF closure `ldd` reports), taken from this host. A `docker.generate.image.from`
//! folder is sent as a build context; its Dockerfile gets the build argument
//! `ROBOCONF_AGENT_IMAGE` (the minimal image, made first), so `FROM
//! ${ROBOCONF_AGENT_IMAGE}` extends it with no registry either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The label of an image holding the agent binary with this SHA-256 (inherited by
/// images built `FROM` it).
pub const BINARY_LABEL: &str = "net.roboconf.agent.sha256";

/// Where the agent binary is in every container.
pub const AGENT_PATH: &str = "/usr/local/bin/roboconf";

/// Programs copied into the minimal image when the host has them.
const PROGRAMS: &[&str] = &[
    "sh",
    "bash",
    "env",
    "cat",
    "ls",
    "mkdir",
    "rm",
    "rmdir",
    "cp",
    "mv",
    "ln",
    "sleep",
    "kill",
    "echo",
    "printf",
    "touch",
    "chmod",
    "chown",
    "sed",
    "grep",
    "awk",
    "head",
    "tail",
    "tr",
    "cut",
    "sort",
    "uniq",
    "date",
    "id",
    "hostname",
    "basename",
    "dirname",
    "sha256sum",
    "wc",
    "tee",
    "test",
    "true",
    "false",
    "seq",
    "readlink",
    "realpath",
    "mktemp",
    "stat",
    "find",
    "xargs",
    "ps",
    "pgrep",
    "pkill",
    "setsid",
    "timeout",
    "nohup",
    "nice",
    "which",
    "uname",
    "whoami",
    "expr",
    "tar",
    "gzip",
    "du",
    "df",
    "base64",
    "md5sum",
    "diff",
    "cmp",
    "od",
    "paste",
    "tac",
    "flock",
    "curl",
    "wget",
    "python3",
];

/// The tag of the minimal image for a binary.
pub fn minimal_tag(sha256: &str) -> String {
    format!("roboconf-agent:{}", &sha256[..16.min(sha256.len())])
}

/// The first program of that name on the usual paths.
fn which(name: &str) -> Option<PathBuf> {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The shared libraries an ELF file loads, as `ldd` prints them.
fn libraries(file: &Path) -> Vec<PathBuf> {
    let Ok(o) = Command::new("ldd").arg(file).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let p = match l.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => l,
            };
            let p = p.split_whitespace().next()?;
            p.starts_with('/').then(|| PathBuf::from(p))
        })
        .collect()
}

/// The path a host file takes in the image: its folder resolved (Debian's `/lib` is
/// `/usr/lib`), its own name kept (a library is loaded by that name).
fn image_path(p: &Path) -> PathBuf {
    let dir = p
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .unwrap_or_else(|| p.parent().unwrap_or(Path::new("/")).to_path_buf());
    dir.join(p.file_name().unwrap_or_default())
}

/// What the minimal image holds: image path → host file.
fn contents(binary: &Path) -> BTreeMap<PathBuf, PathBuf> {
    let mut files = BTreeMap::new();
    let mut elves: Vec<PathBuf> = vec![binary.to_path_buf()];
    files.insert(PathBuf::from(AGENT_PATH), binary.to_path_buf());
    for name in PROGRAMS {
        if let Some(p) = which(name) {
            files.insert(PathBuf::from("/usr/bin").join(name), p.clone());
            elves.push(p);
        }
    }
    // Debian's python3 and its standard library (without its tests).
    if let Some(py) = which("python3") {
        if let Ok(real) = std::fs::canonicalize(&py) {
            let name = real.file_name().unwrap_or_default().to_string_lossy();
            let lib = Path::new("/usr/lib").join(name.as_ref());
            if lib.is_dir() {
                let mut stack = vec![lib];
                while let Some(d) = stack.pop() {
                    for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                        let p = e.path();
                        let n = e.file_name();
                        if matches!(
                            n.to_str(),
                            Some(
                                "test"
                                    | "tests"
                                    | "idlelib"
                                    | "tkinter"
                                    | "turtledemo"
                                    | "ensurepip"
                            )
                        ) {
                            continue;
                        }
                        match e.file_type() {
                            Ok(t) if t.is_dir() => stack.push(p),
                            Ok(t) if t.is_file() => {
                                if p.extension().is_some_and(|x| x == "so") {
                                    elves.push(p.clone());
                                }
                                files.insert(p.clone(), p);
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
    let mut seen = BTreeSet::new();
    for elf in elves {
        for lib in libraries(&elf) {
            if seen.insert(lib.clone()) {
                files.insert(image_path(&lib), lib);
            }
        }
    }
    files
}

/// Writes the minimal image's root file system as a tarball to `out`.
pub fn write_rootfs(binary: &Path, out: &Path) -> Result<(), String> {
    let f = std::fs::File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut t = tar::Builder::new(std::io::BufWriter::new(f));
    t.follow_symlinks(true);
    // The engine refuses GNU sparse entries.
    t.sparse(false);
    let err = |e: std::io::Error| format!("writing the image's root file system: {e}");
    let dir = |t: &mut tar::Builder<_>, path: &str, mode: u32| -> Result<(), String> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(0);
        t.append_data(&mut h, path, std::io::empty()).map_err(err)
    };
    for (d, m) in [
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/lib", 0o755),
        ("usr/lib64", 0o755),
        ("usr/local", 0o755),
        ("usr/local/bin", 0o755),
        ("etc", 0o755),
        ("tmp", 0o1777),
        ("var", 0o755),
        ("var/lib", 0o755),
        ("var/lib/roboconf", 0o700),
        ("etc/roboconf-agent", 0o755),
        ("root", 0o700),
        ("proc", 0o755),
        ("sys", 0o755),
        ("dev", 0o755),
    ] {
        dir(&mut t, d, m)?;
    }
    for (link, to) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/bin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        t.append_link(&mut h, link, to).map_err(err)?;
    }
    for (name, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/group", "root:x:0:\n"),
        (
            "etc/nsswitch.conf",
            "passwd: files\ngroup: files\nhosts: files dns\n",
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        t.append_data(&mut h, name, text.as_bytes()).map_err(err)?;
    }
    let mut made = BTreeSet::new();
    for (inside, host) in contents(binary) {
        let rel = inside.strip_prefix("/").unwrap_or(&inside).to_path_buf();
        // Every folder on the way (python's tree, the libraries' folders).
        let mut parents: Vec<PathBuf> = rel.ancestors().skip(1).map(Path::to_path_buf).collect();
        parents.reverse();
        for p in parents {
            if p.as_os_str().is_empty() || !made.insert(p.clone()) {
                continue;
            }
            let s = p.to_string_lossy().into_owned();
            if [
                "usr",
                "usr/bin",
                "usr/lib",
                "usr/lib64",
                "usr/local",
                "usr/local/bin",
                "etc",
            ]
            .contains(&s.as_str())
            {
                continue;
            }
            dir(&mut t, &s, 0o755)?;
        }
        t.append_path_with_name(&host, &rel)
            .map_err(|e| format!("adding {} to the image: {e}", host.display()))?;
    }
    t.into_inner()
        .and_then(|mut w| std::io::Write::flush(&mut w))
        .map_err(err)
}

/// A build context: the folder as a tarball.
pub fn context_tar(dir: &Path) -> Result<Vec<u8>, String> {
    let mut t = tar::Builder::new(Vec::new());
    t.follow_symlinks(true);
    t.sparse(false);
    t.append_dir_all(".", dir)
        .and_then(|()| t.into_inner())
        .map_err(|e| format!("the build context {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_rootfs_holds_the_agent_a_shell_and_their_libraries() {
        let d = tempfile::tempdir().expect("tempdir");
        let out = d.path().join("rootfs.tar");
        // Any ELF file stands for the agent here.
        let bash = which("bash").expect("bash");
        write_rootfs(&bash, &out).expect("rootfs");
        let f = std::fs::File::open(&out).expect("open");
        let names: Vec<String> = tar::Archive::new(f)
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect();
        for want in ["usr/local/bin/roboconf", "usr/bin/bash", "bin", "tmp"] {
            assert!(
                names.iter().any(|n| n.trim_end_matches('/') == want),
                "{want}: {names:?}"
            );
        }
        assert!(names.iter().any(|n| n.contains("libc.so")), "{names:?}");
        assert_eq!(
            minimal_tag(&"ab".repeat(32)),
            "roboconf-agent:abababababababab"
        );
    }
}
