//! Bounds on names and paths (`roboconf_model::limits`): instance names (as written and
//! as `count:` grows them), instance paths, component, facet, variable and application
//! names longer than the bounds are errors at the block or line that declares them, and
//! the messages quote only the start of a long name.

use roboconf_model::app::load_application;
use roboconf_model::diag::{Code, Diagnostic};
use roboconf_model::dsl::Limits;
use roboconf_model::limits::{MAX_NAME_BYTES, MAX_PATH_BYTES};
use roboconf_model::validate::validate_path;
use std::fs;
use std::path::{Path, PathBuf};

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
    p
}

/// Components `C1` (a target) … `C9`, each the parent of the next.
fn chain_graph() -> String {
    let mut g = String::new();
    for i in 1..=9 {
        let installer = if i == 1 { "target" } else { "script" };
        g.push_str(&format!("C{i} {{\n\tinstaller: {installer};\n"));
        if i < 9 {
            g.push_str(&format!("\tchildren: C{};\n", i + 1));
        }
        g.push_str("}\n");
    }
    g
}

/// An application with `graph` and `instances`, named `name`.
fn app(tmp: &Path, name: &str, graph: &str, instances: &str) -> PathBuf {
    let dir = tmp.join("app");
    write(
        &dir,
        "descriptor/application.properties",
        &format!("application-name = {name}\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n"),
    );
    write(&dir, "graph/main.graph", graph);
    write(&dir, "instances/main.instances", instances);
    dir
}

/// `instance of C1 { name: n1; instance of C2 { ... } }` down to `names.len()` levels,
/// the last one with `last_extra` (e.g. `count: 10;`).
fn nested(names: &[String], last_extra: &str) -> String {
    let mut text = String::new();
    for (i, n) in names.iter().enumerate() {
        let tabs = "\t".repeat(i);
        text.push_str(&format!(
            "{tabs}instance of C{} {{\n{tabs}\tname: {n};\n",
            i + 1
        ));
    }
    let tabs = "\t".repeat(names.len());
    text.push_str(&format!("{tabs}{last_extra}\n"));
    for i in (0..names.len()).rev() {
        text.push_str(&format!("{}}}\n", "\t".repeat(i)));
    }
    text
}

fn errors(d: &[Diagnostic]) -> Vec<(Code, usize)> {
    d.iter()
        .filter(|x| x.is_error())
        .map(|x| (x.code, x.line))
        .collect()
}

/// The errors of the application in `dir`, in order.
fn load(dir: &Path) -> Vec<Diagnostic> {
    let (_, d) = load_application(dir, Limits::default());
    for x in d.iter().filter(|x| x.code.as_str().starts_with("X_")) {
        assert!(x.message.len() < 200, "a message quotes a whole name: {x}");
    }
    d.into_iter().filter(|x| x.is_error()).collect()
}

#[test]
fn a_ten_thousand_byte_instance_name_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let long = "a".repeat(10_000);
    let dir = app(
        tmp.path(),
        "app",
        &chain_graph(),
        &format!("instance of C1 {{\n\tname: vm;\n}}\n\ninstance of C1 {{\n\tname: {long};\n}}\n"),
    );
    let d = load(&dir);
    assert_eq!(errors(&d), vec![(Code::X_NAME_TOO_LONG, 5)]);
    assert!(
        d[0].message
            .contains("is 10000 bytes long; names are at most 128 bytes"),
        "{}",
        d[0]
    );
    // At the bound, it is fine.
    let dir = app(
        tmp.path(),
        "app",
        &chain_graph(),
        &format!(
            "instance of C1 {{\n\tname: {};\n}}\n",
            "a".repeat(MAX_NAME_BYTES)
        ),
    );
    assert!(errors(&load(&dir)).is_empty());
}

#[test]
fn names_grown_by_count_are_bounded_too() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = "v".repeat(MAX_NAME_BYTES - 2);
    // `count: 100` adds three digits: 129 bytes.
    let dir = app(
        tmp.path(),
        "app",
        &chain_graph(),
        &format!("instance of C1 {{\n\tname: {base};\n\tcount: 100;\n}}\n"),
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![(Code::X_NAME_TOO_LONG, 1)],
        "one finding per block"
    );
    // Two digits: 128 bytes, fine.
    let dir = app(
        tmp.path(),
        "app",
        &chain_graph(),
        &format!("instance of C1 {{\n\tname: {base};\n\tcount: 10;\n}}\n"),
    );
    assert!(errors(&load(&dir)).is_empty());
}

#[test]
fn instance_paths_are_bounded_before_and_after_count() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Nine levels of 120 bytes: 9 × 121 = 1089 bytes; the ninth level is too long.
    let names = vec!["n".repeat(120); 9];
    let dir = app(tmp.path(), "app", &chain_graph(), &nested(&names, ""));
    let d = load(&dir);
    assert_eq!(errors(&d), vec![(Code::X_INSTANCE_PATH_TOO_LONG, 17)]);
    assert!(d[0].message.contains("1089 bytes long"), "{}", d[0]);
    // 8 × 121 + 1 + 54 = 1023 bytes: fine; `count: 10` makes it 1025.
    let mut names = vec!["n".repeat(120); 8];
    names.push("m".repeat(54));
    let dir = app(tmp.path(), "app", &chain_graph(), &nested(&names, ""));
    assert!(errors(&load(&dir)).is_empty());
    const { assert!(8 * 121 + 1 + 54 <= MAX_PATH_BYTES) };
    let dir = app(
        tmp.path(),
        "app",
        &chain_graph(),
        &nested(&names, "count: 10;"),
    );
    let d = load(&dir);
    assert_eq!(errors(&d), vec![(Code::X_INSTANCE_PATH_TOO_LONG, 17)]);
    assert!(d[0].message.contains("1025 bytes long"), "{}", d[0]);
}

#[test]
fn component_facet_variable_and_application_names_are_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let long = "L".repeat(MAX_NAME_BYTES + 1);
    let graph = format!("VM {{\n\tinstaller: target;\n\tchildren: {long};\n}}\n{long} {{\n\tinstaller: script;\n\tfacets: f{long};\n\texports: {long}x = 1, ok;\n\timports: VM.{long} (optional);\n}}\nfacet f{long} {{\n}}\n");
    let dir = app(tmp.path(), "app", &graph, "");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            (Code::X_NAME_TOO_LONG, 5),
            (Code::X_NAME_TOO_LONG, 8),
            (Code::X_NAME_TOO_LONG, 9),
            (Code::X_NAME_TOO_LONG, 11),
        ]
    );
    assert!(
        d[0].message.starts_with("the component name `LLL"),
        "{}",
        d[0]
    );
    assert!(d[3].message.starts_with("the facet name `fLLL"), "{}", d[3]);
    // A graph file alone gets the same checks.
    let r = validate_path(&dir.join("graph/main.graph"), Limits::default()).expect("report");
    assert_eq!(errors(&r.diagnostics).len(), 4, "{:?}", r.diagnostics);

    // The application's name.
    let dir = app(
        tmp.path(),
        &format!("app {}", "x".repeat(200)),
        "VM {\n\tinstaller: target;\n}\n",
        "",
    );
    let d = load(&dir);
    assert_eq!(errors(&d), vec![(Code::X_NAME_TOO_LONG, 1)]);
    assert!(d[0].message.starts_with("the application name"), "{}", d[0]);
}

#[test]
fn an_instances_file_alone_gets_the_name_checks() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = write(
        tmp.path(),
        "one.instances",
        &format!(
            "instance of VM {{\n\tname: {};\n\t{}: 1;\n}}\n",
            "i".repeat(MAX_NAME_BYTES + 1),
            "v".repeat(MAX_NAME_BYTES + 1)
        ),
    );
    let r = validate_path(&f, Limits::default()).expect("report");
    assert_eq!(
        errors(&r.diagnostics),
        vec![(Code::X_NAME_TOO_LONG, 1), (Code::X_NAME_TOO_LONG, 3)]
    );
}
