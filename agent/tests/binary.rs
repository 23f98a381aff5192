//! The `roboconf` binary answers for itself: version, help listing the commands, and
//! usage errors with exit code 2. (Integration tests here also make cargo build the
//! binary that the workspace's end-to-end tests run.)

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_roboconf"))
        .args(args)
        .output()
        .expect("run roboconf")
}

#[test]
fn version_and_help() {
    let v = run(&["--version"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("roboconf "));
    let h = run(&["--help"]);
    assert!(h.status.success());
    assert!(String::from_utf8_lossy(&h.stdout).contains("validate"));
}

#[test]
fn usage_errors() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(
        run(&["validate", "--no-such-flag", "x"]).status.code(),
        Some(2)
    );
}
