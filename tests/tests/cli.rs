//! `roboconf validate` as an operator runs it: the real binary, its exit codes (0 valid,
//! 1 invalid, 2 usage), `path:line:col: error[CODE]: message` lines with the right lines,
//! errors before warnings, every finding reported, and the `--json` shape.

use roboconf_tests::{roboconf, workspace};
use std::fs;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_examples_validate_clean() {
    for app in ["examples/lamp", "examples/iot"] {
        let o = roboconf(&["validate", app]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(0), "{out}");
        assert!(
            out.contains(": valid application") && out.contains("0 errors, 0 warnings"),
            "{out}"
        );
        assert_eq!(out.lines().count(), 1, "no finding expected:\n{out}");
    }
    // `facets` shows bare overrides of variables inherited under several prefixes, which
    // Roboconf (and we) warn about: each sets every full name it matches.
    let o = roboconf(&["validate", "examples/facets"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("0 errors, 4 warnings"), "{out}");
    let warned: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("warning[RM_AMBIGUOUS_OVERRIDING]"))
        .collect();
    assert_eq!(warned.len(), 4, "{out}");
    for at in [
        "facets.instances:7:",
        "web.instances:7:",
        "web.instances:12:",
        "web.instances:18:",
    ] {
        assert!(warned.iter().any(|l| l.contains(at)), "{at}: {out}");
    }
}

#[test]
fn an_invalid_application_lists_every_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fs::create_dir_all(root.join("descriptor")).unwrap();
    fs::create_dir_all(root.join("graph/VM")).unwrap();
    fs::create_dir_all(root.join("instances")).unwrap();
    fs::write(
        root.join("descriptor/application.properties"),
        "application-name = broken\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    )
    .unwrap();
    fs::write(
        root.join("graph/VM/t.target.properties"),
        "id = local\nhandler = local\nname = local\n",
    )
    .unwrap();
    fs::write(
        root.join("graph/main.graph"),
        "VM {\n\tinstaller: target;\n\tchildren: App;\n}\n\nApp {\n\tinstaller: script;\n\timports: Db.port;\n}\n\nOther {\n\tinstaller: script;\n\texports: port = 1;\n}\n",
    )
    .unwrap();
    fs::write(
        root.join("instances/main.instances"),
        "instance of VM {\n\tname: vm;\n}\n",
    )
    .unwrap();
    let o = roboconf(&["validate", root.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let graph = root.join("graph/main.graph");
    let g = graph.display();
    // App imports a variable nobody exports; Other is a root that is not a target;
    // App and Other have no recipe folder (warnings, after the errors).
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{g}:8:11: error[RM_UNRESOLVABLE_VARIABLE]")),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{g}:11:1: error[RM_ROOT_INSTALLER_MUST_BE_TARGET]"
        )),
        "{out}"
    );
    assert!(
        lines[2].starts_with(&format!("{g}:6:1: warning[PROJ_NO_RESOURCE_DIRECTORY]")),
        "{out}"
    );
    assert!(
        lines[3].starts_with(&format!("{g}:11:1: warning[PROJ_NO_RESOURCE_DIRECTORY]")),
        "{out}"
    );
    assert!(
        lines[4].contains("INVALID application `broken`")
            && lines[4].ends_with("2 errors, 2 warnings"),
        "{out}"
    );
}

#[test]
fn a_single_graph_file_gets_syntax_and_reference_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("one.graph");
    fs::write(&f, "VM {\n\tinstaller: target;\n\tchildren: App, Ghost;\n}\nApp {\n\tinstaller: script;\n\texports: ip port;\n}\n").unwrap();
    let o = roboconf(&["validate", f.to_str().unwrap()]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(":7:11: error[PM_INVALID_EXPORTED_VAR_NAME]"),
        "{out}"
    );
    // Syntax errors stop the later stages, as in Roboconf: fix them, then the reference appears.
    fs::write(&f, "VM {\n\tinstaller: target;\n\tchildren: App, Ghost;\n}\nApp {\n\tinstaller: script;\n\texports: ip, port;\n}\n").unwrap();
    let out = text(&roboconf(&["validate", f.to_str().unwrap()]));
    assert!(
        out.contains(":3:17: error[CO_INEXISTING_CHILD]: the child `Ghost`"),
        "{out}"
    );
    // An instances file alone is only parsed.
    let i = dir.path().join("one.instances");
    fs::write(&i, "instance of Nothing {\n\tname: x;\n}\n").unwrap();
    let o = roboconf(&["validate", i.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("note: an instances file alone is only parsed"));
}

#[test]
fn json_output() {
    let o = roboconf(&["validate", "examples/lamp", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["valid"], true);
    assert_eq!(v["target"], "application");
    assert_eq!(v["errors"], 0);
    assert_eq!(v["summary"]["components"], 4);
    assert_eq!(v["summary"]["instances"], 8);
    assert_eq!(v["path"], "examples/lamp");
    assert!(v["diagnostics"].as_array().is_some_and(|d| d.is_empty()));

    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.graph");
    fs::write(&f, "VM {\n\tinstaller: target\n}\n").unwrap();
    let o = roboconf(&["validate", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let d = &v["diagnostics"][0];
    assert_eq!(d["code"], "P_PROPERTY_ENDS_WITH_SEMI_COLON");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["line"], 2);
    assert_eq!(d["col"], 2);
}

#[test]
fn usage_errors_exit_with_2() {
    assert_eq!(roboconf(&["validate"]).status.code(), Some(2));
    assert_eq!(
        roboconf(&["validate", "no/such/app"]).status.code(),
        Some(2)
    );
    assert_eq!(roboconf(&["validate", "README.md"]).status.code(), Some(2));
    assert_eq!(roboconf(&["frobnicate"]).status.code(), Some(2));
    assert!(workspace().join("README.md").is_file());
}
