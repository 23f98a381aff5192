//! The agent binary as a content-addressed artefact: this agent's own executable, named
//! by the SHA-256 of its bytes (computed once, on a worker), with its architecture; and a
//! store of binaries under `<data-dir>/binaries/<sha256>` that the coordinator's targets
//! fill from the mesh when a new machine needs a binary this agent does not run (another
//! architecture, or the version the operator pinned). Every binary taken from a peer is
//! checked against its hash before it is kept, so an air-gapped site needs nothing but
//! the mesh to launch machines.

use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a member publishes of the binary it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    /// SHA-256 of the executable, hex.
    pub sha256: String,
    pub size: u64,
    /// `std::env::consts::ARCH` (`x86_64`, `aarch64`).
    pub arch: String,
    pub os: String,
}

/// An agent binary on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub path: PathBuf,
    pub info: Info,
}

/// Largest binary accepted from a peer.
pub const MAX_BINARY: u64 = 1 << 30;

/// The part of a binary one request carries.
pub const CHUNK: usize = 1024 * 1024;

/// The SHA-256 of a file, hex, and its size.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex(&h.finalize()), size))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` can name a binary (a SHA-256 in lower-case hex): nothing else from a
/// peer ever names a file.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// This agent's own executable, hashed on first use (blocking: call it on a worker).
pub fn own() -> Result<&'static Local, String> {
    static OWN: OnceLock<Result<Local, String>> = OnceLock::new();
    OWN.get_or_init(|| {
        let path = std::env::current_exe().map_err(|e| format!("the agent's binary: {e}"))?;
        let (sha256, size) =
            hash_file(&path).map_err(|e| format!("the agent's binary {}: {e}", path.display()))?;
        Ok(Local {
            path,
            info: Info {
                sha256,
                size,
                arch: std::env::consts::ARCH.to_string(),
                os: std::env::consts::OS.to_string(),
            },
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Where a stored binary lives.
pub fn stored(data_dir: &Path, hash: &str) -> Option<PathBuf> {
    is_hash(hash).then(|| data_dir.join("binaries").join(hash))
}

/// The file holding the binary `hash` on this host, if any: this agent's own, or one in
/// the store.
pub fn find(data_dir: &Path, hash: &str) -> Option<PathBuf> {
    if let Ok(own) = own() {
        if own.info.sha256 == hash {
            return Some(own.path.clone());
        }
    }
    stored(data_dir, hash).filter(|p| p.is_file())
}

/// Reads the chunk at `offset` of the binary `hash` (empty when it is not here or the
/// offset is past its end).
pub fn chunk(data_dir: &Path, hash: &str, offset: u64) -> (u64, Vec<u8>) {
    use std::io::Seek;
    let Some(path) = find(data_dir, hash) else {
        return (0, Vec::new());
    };
    let Ok(mut f) = std::fs::File::open(&path) else {
        return (0, Vec::new());
    };
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    if offset >= total || f.seek(std::io::SeekFrom::Start(offset)).is_err() {
        return (total, Vec::new());
    }
    let want = CHUNK.min((total - offset) as usize);
    let mut buf = vec![0u8; want];
    match f.read_exact(&mut buf) {
        Ok(()) => (total, buf),
        Err(_) => (total, Vec::new()),
    }
}

/// A binary arriving in parts: written to a temporary file of the store and hashed as
/// it comes; kept (executable, renamed to its hash) only if the hash matches.
pub struct Incoming {
    hash: String,
    tmp: PathBuf,
    path: PathBuf,
    file: std::fs::File,
    hasher: Sha256,
    size: u64,
}

impl Incoming {
    pub fn new(data_dir: &Path, hash: &str) -> Result<Incoming, String> {
        let path = stored(data_dir, hash).ok_or_else(|| format!("`{hash}` is not a SHA-256"))?;
        let dir = path.parent().unwrap_or(data_dir).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = dir.join(format!(".{hash}.part"));
        let file = std::fs::File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        Ok(Incoming {
            hash: hash.to_string(),
            tmp,
            path,
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<(), String> {
        use std::io::Write;
        self.size += bytes.len() as u64;
        if self.size > MAX_BINARY {
            return Err(format!("the binary is larger than {MAX_BINARY} bytes"));
        }
        self.hasher.update(bytes);
        self.file
            .write_all(bytes)
            .map_err(|e| format!("{}: {e}", self.tmp.display()))
    }

    pub fn received(&self) -> u64 {
        self.size
    }

    /// Checks the hash and keeps the binary; its path.
    pub fn finish(mut self) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        let got = hex(&std::mem::take(&mut self.hasher).finalize());
        if got != self.hash {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(format!(
                "the binary received does not match its hash (expected {}, got {got})",
                self.hash
            ));
        }
        self.file
            .sync_all()
            .and_then(|()| {
                std::fs::set_permissions(&self.tmp, std::fs::Permissions::from_mode(0o755))
            })
            .and_then(|()| std::fs::rename(&self.tmp, &self.path))
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        Ok(std::mem::take(&mut self.path))
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        // Unfinished (or refused): the part goes.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Keeps `bytes` as the binary `hash` if they match it.
pub fn keep(data_dir: &Path, hash: &str, bytes: &[u8]) -> Result<PathBuf, String> {
    let mut i = Incoming::new(data_dir, hash)?;
    i.push(bytes)?;
    i.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_kept_only_when_it_matches_its_hash_and_read_back_in_chunks() {
        let d = tempfile::tempdir().expect("tempdir");
        let bytes: Vec<u8> = (0..(CHUNK + 10)).map(|i| (i % 251) as u8).collect();
        let hash = hex(&Sha256::digest(&bytes));
        assert!(keep(d.path(), &"0".repeat(64), &bytes).is_err());
        assert!(keep(d.path(), "../x", &bytes).is_err());
        let p = keep(d.path(), &hash, &bytes).expect("kept");
        assert_eq!(
            hash_file(&p).expect("hash"),
            (hash.clone(), bytes.len() as u64)
        );
        let (total, first) = chunk(d.path(), &hash, 0);
        let (_, second) = chunk(d.path(), &hash, CHUNK as u64);
        assert_eq!(total, bytes.len() as u64);
        assert_eq!([first, second].concat(), bytes);
        assert!(chunk(d.path(), &hash, total).1.is_empty());
        assert!(chunk(d.path(), &"1".repeat(64), 0).1.is_empty());
    }
}
