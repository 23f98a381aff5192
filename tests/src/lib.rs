//! Shared helpers of the end-to-end tests: where the Roboconf corpus and the example
//! applications are, and how to run the real `roboconf` binary built by this workspace.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `../shared/roboconf-corpus` beside the checkout (or `$ROBOCONF_CORPUS`), if present.
/// When it is absent: `None` with a message, or a panic when `CI=true`, since CI always
/// has it.
pub fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("ROBOCONF_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/roboconf-corpus"));
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "the Roboconf corpus is missing at {} (CI must have it)",
            dir.display()
        );
    }
    eprintln!("SKIPPED: the Roboconf corpus is not at {}", dir.display());
    None
}

/// The `roboconf` binary of this build (`target/<profile>/roboconf`).
pub fn roboconf_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bin = profile_dir.join("roboconf");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p roboconf-agent` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// Runs `roboconf ARGS...` from the workspace root and returns its output.
pub fn roboconf(args: &[&str]) -> Output {
    Command::new(roboconf_bin())
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot run roboconf: {e}"))
}
