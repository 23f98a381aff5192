//! Applications as content-addressed bundles: a project folder packed into one byte
//! string (every regular file with its relative path and mode, sorted), named by the
//! SHA-256 of those bytes. A node that must run part of an application fetches the
//! bundle from a peer and checks the hash before anything from it is unpacked or run.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};

/// Largest bundle accepted (it travels in one message).
pub const MAX_BUNDLE: usize = 3 * 1024 * 1024;

#[derive(Debug, Serialize, Deserialize)]
struct Packed {
    files: Vec<(String, u32, Vec<u8>)>,
}

/// Why a bundle cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the bundle is larger than {MAX_BUNDLE} bytes")]
    TooLarge,
    #[error("the bundle does not match its hash")]
    Hash,
    #[error("malformed bundle: {0}")]
    Malformed(String),
}

/// Whether `text` can be a bundle's name: 64 hexadecimal digits (ASCII, so any slice of
/// it is safe).
pub fn is_hash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Where the application `name` unpacked from the bundle `hash` lives under `apps/`: a
/// folder of its own per bundle (`<escaped name>@<first 12 hex digits>`), so that an
/// `app add` and a fetch of the same name never write the same folder; `@` is escaped
/// in application folders, so no other application's folder looks like it.
pub fn app_dir(apps: &Path, name: &str, hash: &str) -> std::path::PathBuf {
    let short = hash.get(..12).unwrap_or(hash);
    apps.join(format!(
        "{}@{short}",
        crate::core::folders::app_folder(name)
    ))
}

/// Where the bundle file `hash` is kept (what peers are sent), if `hash` can name one.
pub fn stored(data_dir: &Path, hash: &str) -> Option<std::path::PathBuf> {
    is_hash(hash).then(|| data_dir.join("bundles").join(hash))
}

/// The hex SHA-256 of bytes.
pub fn hash(bytes: &[u8]) -> String {
    roboconf_core::admission::hex(&Sha256::digest(bytes))
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        let p = e.path();
        if t.is_dir() {
            walk(root, &p, out)?;
        } else if t.is_file() {
            let rel = p
                .strip_prefix(root)
                .map_err(std::io::Error::other)?
                .to_string_lossy()
                .into_owned();
            let mode = e.metadata()?.permissions().mode() & 0o777;
            out.push((rel, mode, std::fs::read(&p)?));
        }
    }
    Ok(())
}

/// Packs a folder; returns the bytes and their hash.
pub fn pack(dir: &Path) -> Result<(Vec<u8>, String), Error> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let bytes = bincode::serde::encode_to_vec(&Packed { files }, bincode::config::standard())
        .map_err(|e| Error::Malformed(e.to_string()))?;
    if bytes.len() > MAX_BUNDLE {
        return Err(Error::TooLarge);
    }
    let h = hash(&bytes);
    Ok((bytes, h))
}

/// Checks `bytes` against `expected` and unpacks them into `dir` (made anew). Paths that
/// would leave `dir` are refused.
pub fn unpack(bytes: &[u8], expected: &str, dir: &Path) -> Result<(), Error> {
    if bytes.len() > MAX_BUNDLE {
        return Err(Error::TooLarge);
    }
    if hash(bytes) != expected {
        return Err(Error::Hash);
    }
    let cfg = bincode::config::standard().with_limit::<MAX_BUNDLE>();
    let (packed, _): (Packed, usize) = bincode::serde::decode_from_slice(bytes, cfg)
        .map_err(|e| Error::Malformed(e.to_string()))?;
    for (rel, _, _) in &packed.files {
        let p = Path::new(rel);
        if p.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(Error::Malformed(format!("path `{rel}` leaves the bundle")));
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    for (rel, mode, data) in packed.files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, data)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o755))?;
    }
    Ok(())
}

/// Unique names for staging folders within one process.
static STAGING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A new staging folder's path in `apps` (`.staging-<pid>-<n>`; what a crash leaves of
/// them is deleted at the next start).
pub fn staging_dir(apps: &Path) -> std::path::PathBuf {
    apps.join(format!(
        ".staging-{}-{}",
        std::process::id(),
        STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ))
}

/// Moves an unpacked bundle from its staging folder to `dir`, its place. When `dir` is
/// there already it holds this very bundle (it is named by the bundle's hash), put
/// there by another `app add` or a fetch: it is kept — it may be in use — and the
/// staging folder goes.
pub fn settle(staging: &Path, dir: &Path) -> std::io::Result<()> {
    if std::fs::rename(staging, dir).is_err() && dir.is_dir() {
        return std::fs::remove_dir_all(staging);
    }
    if staging.exists() {
        std::fs::rename(staging, dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settled_bundle_never_replaces_one_in_place() {
        let d = tempfile::tempdir().expect("tmp");
        let (a, b, dir) = (d.path().join("a"), d.path().join("b"), d.path().join("x@1"));
        for s in [&a, &b] {
            std::fs::create_dir_all(s).unwrap();
        }
        std::fs::write(a.join("f"), "first").unwrap();
        std::fs::write(b.join("f"), "second").unwrap();
        settle(&a, &dir).expect("first");
        settle(&b, &dir).expect("second");
        assert_eq!(std::fs::read_to_string(dir.join("f")).unwrap(), "first");
        assert!(!a.exists() && !b.exists());
    }

    #[test]
    fn pack_unpack_and_verify() {
        let src = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(src.path().join("graph/App/scripts")).unwrap();
        std::fs::write(
            src.path().join("graph/App/scripts/start.sh"),
            "#!/bin/sh\nexit 0\n",
        )
        .unwrap();
        std::fs::set_permissions(
            src.path().join("graph/App/scripts/start.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(src.path().join("a.txt"), "x").unwrap();
        let (bytes, h) = pack(src.path()).expect("pack");
        assert_eq!(pack(src.path()).unwrap().1, h, "same content, same hash");
        let dst = tempfile::tempdir().expect("tmp");
        let out = dst.path().join("app");
        unpack(&bytes, &h, &out).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(out.join("graph/App/scripts/start.sh")).unwrap(),
            "#!/bin/sh\nexit 0\n"
        );
        assert_eq!(
            std::fs::metadata(out.join("graph/App/scripts/start.sh"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o755
        );
        let mut bad = bytes.clone();
        bad[bytes.len() / 2] ^= 1;
        assert!(matches!(unpack(&bad, &h, &out), Err(Error::Hash)));
        let evil = bincode::serde::encode_to_vec(
            &Packed {
                files: vec![("../escape".into(), 0o644, vec![])],
            },
            bincode::config::standard(),
        )
        .unwrap();
        assert!(matches!(
            unpack(&evil, &hash(&evil), &out),
            Err(Error::Malformed(_))
        ));
    }
}
