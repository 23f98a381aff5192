//! The Puppet plug-in against the real `puppet apply` (Debian's `puppet` package): each
//! action of a module with `init.pp` and of one with per-action manifests, `update` with
//! an added and a removed import, values that need escaping, Puppet's exit codes,
//! `importDiff`'s component both ways, and bad input. `modules.properties`:
//! `puppet_modules.rs`.

mod common;

use common::{db, have_puppet, plugin, recipe, recording_class, recording_recipe, refused};
use roboconf_plugins::puppet::Puppet;
use roboconf_plugins::{Action, ChangedImport, Error, Plugin};
use std::time::{Duration, Instant};

#[test]
fn a_module_with_init_pp_runs_every_action() {
    if !have_puppet() {
        return;
    }
    let r = recording_recipe();
    let p = plugin();
    for (action, state) in [
        (Action::Deploy, Some("stopped")),
        (Action::Start, Some("running")),
        (Action::Update, None),
        (Action::Stop, Some("stopped")),
        (Action::Undeploy, None),
    ] {
        let out = p
            .run(action, &r.inv(&[("App.port", "8080")]))
            .unwrap_or_else(|e| panic!("{action:?}: {e}"));
        assert!(out.ran, "{action:?}");
        assert_eq!(out.code, Some(2), "{action:?}: {}", out.output);
        let v = r.json("last.json");
        assert_eq!(v["class"], "roboconf_app_module");
        assert_eq!(v["runningState"].as_str(), state, "{action:?}");
        assert_eq!(v["port"], "8080");
        // No exporter of Db: `db => undef`; no change: no importDiff.
        assert!(v["db"].is_null() && v["importDiff"].is_null(), "{v}");
        std::fs::remove_file(r.out.join("last.json")).expect("rm");
    }
    // `initialize` installs listed modules only; there are none.
    let init = p.run(Action::Initialize, &r.inv(&[])).expect("initialize");
    assert!(!init.ran);
}

#[test]
fn a_module_with_per_action_manifests_runs_each_class() {
    if !have_puppet() {
        return;
    }
    let actions = [
        Action::Deploy,
        Action::Start,
        Action::Update,
        Action::Stop,
        Action::Undeploy,
    ];
    let files: Vec<(String, String)> = actions
        .iter()
        .map(|a| {
            let class = format!("roboconf_ops_module::{}", a.as_str());
            (
                format!("roboconf_ops_module/manifests/{}.pp", a.as_str()),
                recording_class(&class, &format!("{}.json", a.as_str())),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = recipe(&refs);
    let p = plugin();
    for a in actions {
        p.run(a, &r.inv(&[]))
            .unwrap_or_else(|e| panic!("{a:?}: {e}"));
        let v = r.json(&format!("{}.json", a.as_str()));
        assert_eq!(
            v["class"].as_str(),
            Some(format!("roboconf_ops_module::{}", a.as_str()).as_str())
        );
    }
    // A module without a manifest for an action: nothing done, as Roboconf.
    let r = recipe(&[("roboconf_empty/manifests/.keep", "")]);
    let none = plugin()
        .run(Action::Start, &r.inv(&[]))
        .expect("no manifest");
    assert!(!none.ran && none.output.contains("no manifest for start"));
}

#[test]
fn update_is_told_of_an_added_and_of_a_removed_import() {
    if !have_puppet() {
        return;
    }
    let r = recording_recipe();
    let p = plugin();
    let mut inv = r.inv(&[]);
    inv.imports.insert(
        "Db".into(),
        vec![db("/vm1/db", "10.0.0.1"), db("/vm2/db", "10.0.0.2")],
    );
    inv.changed = Some(ChangedImport {
        status: "DEPLOYED_STARTED".into(),
        import: db("/vm2/db", "10.0.0.2"),
    });
    p.run(Action::Update, &inv).expect("added");
    let v = r.json("last.json");
    assert_eq!(
        v["importDiff"],
        serde_json::json!({"added": {"/vm2/db": {"ip": "10.0.0.2", "port": "5432"}},
                           "removed": null, "component": "Db"})
    );
    // The component name is a string; Puppet compares it without regard to case, so a
    // manifest written for Roboconf's bare lower-case word still matches.
    assert_eq!(v["matched"], true);
    assert_eq!(
        v["db"],
        serde_json::json!({"/vm1/db": {"ip": "10.0.0.1", "port": "5432"},
                           "/vm2/db": {"ip": "10.0.0.2", "port": "5432"}})
    );
    inv.imports
        .insert("Db".into(), vec![db("/vm1/db", "10.0.0.1")]);
    inv.changed = Some(ChangedImport {
        status: "DEPLOYED_STOPPED".into(),
        import: db("/vm2/db", "10.0.0.2"),
    });
    p.run(Action::Update, &inv).expect("removed");
    let v = r.json("last.json");
    assert_eq!(
        v["importDiff"],
        serde_json::json!({"removed": {"/vm2/db": {"ip": "10.0.0.2", "port": "5432"}},
                           "added": null, "component": "Db"})
    );
    assert_eq!(
        v["db"],
        serde_json::json!({"/vm1/db": {"ip": "10.0.0.1", "port": "5432"}})
    );
}

#[test]
fn values_with_quotes_spaces_and_backslashes_arrive_unchanged() {
    if !have_puppet() {
        return;
    }
    let r = recording_recipe();
    let nasty = r#"it's "quoted" with  spaces, C:\dir\ and a \' too\"#;
    let mut inv = r.inv(&[("App.note", nasty)]);
    let mut exporter = db("/vm 1/my db's", nasty);
    exporter.path = r"/vm 1/db\'s".into();
    inv.imports.insert("Db".into(), vec![exporter]);
    plugin().run(Action::Start, &inv).expect("start");
    let v = r.json("last.json");
    assert_eq!(v["note"], nasty);
    assert_eq!(
        v["db"],
        serde_json::json!({r"/vm 1/db\'s": {"ip": nasty, "port": "5432"}})
    );
}

#[test]
fn exit_codes_0_2_4_and_6() {
    if !have_puppet() {
        return;
    }
    let r = recipe(&[(
        "roboconf_app_module/manifests/init.pp",
        "class roboconf_app_module($runningState = undef, $importDiff = undef, $db = undef, \
         $out = undef, $mode = undef) {\n\
         if $mode in ['change', 'both'] { file { \"${out}/changed-${runningState}\": content => 'x' } }\n\
         if $mode in ['fail', 'both'] { exec { 'refused': command => '/bin/false' } }\n\
         }\n",
    )]);
    let p = plugin();
    let run = |action, mode: &str| p.run(action, &r.inv(&[("App.mode", mode)]));
    let none = run(Action::Start, "none").expect("0");
    assert_eq!((none.code, none.warning.is_none()), (Some(0), true));
    let changed = run(Action::Start, "change").expect("2");
    assert_eq!((changed.code, changed.warning.is_none()), (Some(2), true));
    match run(Action::Start, "fail") {
        Err(Error::Failed {
            code: 4, detail, ..
        }) => {
            let d = detail.expect("detail");
            assert!(d.contains("refused") || d.contains("/bin/false"), "{d}");
        }
        other => panic!("exit 4 must fail: {other:?}"),
    }
    let both = run(Action::Stop, "both").expect("6 succeeds");
    assert_eq!(both.code, Some(6));
    let w = both.warning.expect("a warning");
    assert!(w.contains("exit code 6"), "{w}");
}

#[test]
fn bad_input_fails_with_the_file_or_the_cause() {
    if !have_puppet() {
        return;
    }
    let p = plugin();
    // No module folder.
    let r = recipe(&[("README", "")]);
    refused(p.run(Action::Deploy, &r.inv(&[])), &["no Puppet module"]);
    // Two of them.
    let r = recipe(&[
        ("roboconf_a/manifests/init.pp", "class roboconf_a {}"),
        ("roboconf_b/manifests/init.pp", "class roboconf_b {}"),
    ]);
    refused(
        p.run(Action::Deploy, &r.inv(&[])),
        &["roboconf_a, roboconf_b"],
    );
    // A syntax error: Puppet's message, with the manifest, its line and column.
    let r = recipe(&[(
        "roboconf_app_module/manifests/init.pp",
        "class roboconf_app_module($runningState = undef, $out = undef) {\n  file { 'x':\n}\n",
    )]);
    match p.run(Action::Start, &r.inv(&[])) {
        Err(Error::Failed {
            code: 1, detail, ..
        }) => {
            let d = detail.expect("detail");
            assert!(
                d.contains("roboconf_app_module/manifests/init.pp") && d.contains("Syntax error"),
                "{d}"
            );
        }
        other => panic!("{other:?}"),
    }
    // No puppet program.
    let missing = Puppet {
        program: "/nonexistent/bin/puppet".into(),
        ..plugin()
    };
    refused(
        missing.run(Action::Start, &r.inv(&[])),
        &["/nonexistent/bin/puppet", "not on this agent"],
    );
}

#[test]
fn a_hanging_run_is_killed_at_its_timeout() {
    if !have_puppet() {
        return;
    }
    let marker = format!("rbcf-puppet-hang-{}", std::process::id());
    let r = recipe(&[(
        "roboconf_app_module/manifests/init.pp",
        &format!(
            "class roboconf_app_module($runningState = undef, $out = undef, $db = undef) {{\n\
             exec {{ 'hang': command => '/bin/bash -c \"exec -a {marker} sleep 600\"', timeout => 0 }}\n}}\n"
        ),
    )]);
    let p = Puppet {
        timeout: Duration::from_secs(8),
        ..plugin()
    };
    let t = Instant::now();
    match p.run(Action::Start, &r.inv(&[])) {
        Err(Error::TimedOut { seconds: 8, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // Puppet and what it started went with its process group.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = std::process::Command::new("pgrep")
            .args(["-f", &marker])
            .output()
            .expect("pgrep");
        if !left.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "the hanging exec survived");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `importDiff`'s `component`, both ways: Roboconf writes it as a bare word, which Puppet
/// 7 reads as a string only for a lower-case name (`db`) and as a type reference for a
/// capitalized one (`Db`: the catalog fails). The plug-in quotes it: the lower-case name
/// arrives exactly as Roboconf's bare word did, the capitalized one works, and a
/// manifest written for Roboconf comparing it with `'db'` matches either.
#[test]
fn the_import_diff_component_roboconf_bare_word_and_quoted() {
    if !have_puppet() {
        return;
    }
    let r = recording_recipe();
    let apply = |component: &str| {
        let code = format!(
            "class{{'roboconf_app_module': runningState => undef, out => '{}', \
             importDiff => {{added => {{'/vm/db' => {{ ip => '1' }}}}, removed => undef, \
             component => {component}}}}}",
            r.out.display()
        );
        let _ = std::fs::remove_file(r.out.join("last.json"));
        let status = std::process::Command::new("puppet")
            .args([
                "apply",
                "--detailed-exitcodes",
                "--color=false",
                "--modulepath",
            ])
            .arg(&r.work)
            .arg("--execute")
            .arg(code)
            .output()
            .expect("puppet");
        let v = r
            .out
            .join("last.json")
            .exists()
            .then(|| r.json("last.json"));
        (status.status.code(), v)
    };
    // Roboconf's bare words.
    let (code, bare_lower) = apply("db");
    assert_eq!(code, Some(2));
    let bare_lower = bare_lower.expect("applied");
    let (code, bare_capital) = apply("Db");
    assert_eq!(code, Some(1), "a bare capitalized name fails on Puppet 7");
    assert!(bare_capital.is_none());
    // The plug-in's quoted names.
    let (_, quoted_lower) = apply("'db'");
    assert_eq!(quoted_lower.expect("applied"), bare_lower);
    let (code, quoted_capital) = apply("'Db'");
    assert_eq!(code, Some(2));
    let quoted_capital = quoted_capital.expect("applied");
    assert_eq!(quoted_capital["importDiff"]["component"], "Db");
    assert_eq!(quoted_capital["matched"], true);
    assert_eq!(bare_lower["matched"], true);
}
