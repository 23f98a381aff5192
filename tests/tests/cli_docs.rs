//! The command line documents itself: shell completions and manual pages generated from
//! the clap definitions, so they always match `--help`.

use roboconf_tests::roboconf;

#[test]
fn completions_and_man_pages_come_from_the_command_definitions() {
    for (shell, mark) in [
        ("bash", "_roboconf()"),
        ("zsh", "#compdef roboconf"),
        ("fish", "complete -c roboconf"),
    ] {
        let o = roboconf(&["completions", shell]);
        assert!(
            o.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(
            text.contains(mark),
            "{shell}: {}",
            &text[..text.len().min(200)]
        );
        // Every subcommand is completed.
        for sub in ["validate", "agent", "exec", "history", "amqp"] {
            assert!(text.contains(sub), "{shell} lacks {sub}");
        }
    }
    let o = roboconf(&["completions", "tcsh"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let o = roboconf(&["man"]);
    assert!(o.status.success());
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(
        page.contains(".TH roboconf 1") && page.contains("validate"),
        "{page}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let o = roboconf(&["man", "--out", &dir.path().display().to_string()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for page in [
        "roboconf.1",
        "roboconf-agent.1",
        "roboconf-mesh-init.1",
        "roboconf-job-add.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(text.contains(".TH"), "{page} missing or empty");
    }
}
