//! Folder names in the data directory: each instance's working copy lives in
//! `<data-dir>/instances/<app>/<instance_folder(path)>` and each application's bundle in
//! `<data-dir>/apps/<app_folder(name)>`. The names are injective — two different paths
//! never share a folder — unlike Roboconf's "clean" path (`/vm-lb/a b`, `/vm-lb/a-b` and
//! `/vm-lb/a_b` all clean to `vm_lb_a_b`), which stays what scripts see in
//! `ROBOCONF_CLEAN_INSTANCE_PATH`. Letters, digits, `_`, `-` and `.` are kept, `/` between
//! segments becomes `+`, every other byte is `%XX`; a name that would exceed
//! `MAX_FOLDER_BYTES` keeps its readable start and ends with `~` and 16 hex digits of
//! the path's SHA-256 (filesystems allow 255 bytes per name).

use sha2::{Digest, Sha256};
use std::fmt::Write as _;

/// Longest folder name made (well under the 255 bytes a file name may have).
pub const MAX_FOLDER_BYTES: usize = 200;

fn escape(text: &str, out: &mut String) {
    for (i, b) in text.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else if b == b'/' && i > 0 {
            out.push('+');
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn bounded(mut name: String, source: &str) -> String {
    if name.len() <= MAX_FOLDER_BYTES {
        return name;
    }
    // The escaped text is ASCII: any byte index is a character boundary.
    name.truncate(MAX_FOLDER_BYTES - 17);
    let digest = Sha256::digest(source.as_bytes());
    name.push('~');
    for b in &digest[..8] {
        let _ = write!(name, "{b:02x}");
    }
    name
}

/// The working folder's name of the instance at `path` (`/vm-lb/a b` → `vm-lb+a%20b`).
pub fn instance_folder(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    escape(path.strip_prefix('/').unwrap_or(path), &mut out);
    bounded(out, path)
}

/// The folder name of an application's bundle (`my app` → `my%20app`).
pub fn app_folder(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    escape(name, &mut out);
    bounded(out, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn paths_that_clean_alike_get_folders_of_their_own() {
        let paths = [
            "/vm-lb/a b",
            "/vm-lb/a-b",
            "/vm-lb/a_b",
            "/vm-lb/a.b",
            "/a-b/c",
            "/a/b-c",
            "/a/b/c",
            "/a+b/c",
            "/a%2Fb/c",
            "/a/b+c",
        ];
        let folders: BTreeSet<String> = paths.iter().map(|p| instance_folder(p)).collect();
        assert_eq!(folders.len(), paths.len(), "{folders:?}");
        assert_eq!(instance_folder("/vm-lb/a b"), "vm-lb+a%20b");
        assert_eq!(instance_folder("/vm 1/app"), "vm%201+app");
        for f in &folders {
            assert!(!f.contains('/') && f != "." && f != "..", "{f}");
        }
        assert_ne!(app_folder("my app"), app_folder("my_app"));
    }

    #[test]
    fn names_never_start_with_a_dot_nor_exceed_the_bound() {
        assert_eq!(instance_folder("/.."), "%2E.");
        assert_eq!(app_folder("."), "%2E");
        let long = format!("/{}", "x".repeat(120)).repeat(8);
        let other = format!("{long}y");
        let (a, b) = (instance_folder(&long), instance_folder(&other));
        assert!(a.len() <= MAX_FOLDER_BYTES && b.len() <= MAX_FOLDER_BYTES);
        assert_ne!(a, b);
        assert!(a.starts_with("xxxx"));
        // Non-ASCII names are escaped byte by byte.
        assert_eq!(instance_folder("/é"), "%C3%A9");
    }
}
