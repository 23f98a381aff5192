//! A private `sshd` for the `embedded` target's tests: its own host key, one client key
//! authorised, key authentication only, on 127.0.0.1 at a port the OS gave (taken from a
//! socket bound to port 0, then handed to sshd), killed when dropped. Needs Debian's
//! `openssh-server` (`.ci/run` installs it) and root (its privilege separation).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Whether this machine can run one (sshd installed, tests running as root).
pub fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    root && Path::new(SSHD).exists()
}

pub struct Sshd {
    pub port: u16,
    /// The client's private key and the known-hosts file that trusts this server.
    pub key: PathBuf,
    pub known_hosts: PathBuf,
    child: Child,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ssh-keygen {}", path.display());
}

impl Sshd {
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).expect("sshd dir");
        let _ = std::fs::create_dir_all("/run/sshd");
        let (host, key) = (dir.join("host_key"), dir.join("client_key"));
        keygen(&host);
        keygen(&key);
        let auth = dir.join("authorized_keys");
        std::fs::copy(key.with_extension("pub"), &auth).expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\nPidFile {}\n",
                host.display(),
                auth.display(),
                dir.join("sshd.pid").display()
            ),
        )
        .expect("sshd_config");
        let host_pub = std::fs::read_to_string(host.with_extension("pub")).expect("host key");
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {host_pub}"))
            .expect("known_hosts");
        let log = std::fs::File::create(dir.join("sshd.log")).expect("sshd log");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sshd");
        let end = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Sshd {
            port,
            key,
            known_hosts,
            child,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
