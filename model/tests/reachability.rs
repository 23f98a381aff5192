//! Which files are reached and which are missing: a single `.graph` or `.instances` file
//! that imports a file that does not exist is invalid (`CO_UNREACHABLE_FILE`, as
//! Roboconf's graph and instances builders say) and its summary counts what it defines;
//! when an application's graph cannot be built, the files its instances entry point
//! reaches are not called unreachable.

use roboconf_model::app::load_application;
use roboconf_model::diag::{Code, Diagnostic};
use roboconf_model::dsl::Limits;
use roboconf_model::validate::{validate_path, Target};
use std::fs;
use std::path::{Path, PathBuf};

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
    p
}

fn codes_at(d: &[Diagnostic]) -> Vec<(Code, String, usize)> {
    d.iter()
        .map(|x| {
            let file = x.file.file_name().unwrap_or_default().to_string_lossy();
            (x.code, file.into_owned(), x.line)
        })
        .collect()
}

fn at(code: Code, file: &str, line: usize) -> (Code, String, usize) {
    (code, file.to_string(), line)
}

#[test]
fn a_graph_file_alone_that_imports_a_missing_file_is_invalid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = write(
        tmp.path(),
        "one.graph",
        "import facets.graph;\nimport missing.graph;\n\nVM {\n\tinstaller: target;\n\tchildren: App;\n}\nApp {\n\tinstaller: script;\n}\nfacet f {\n}\n",
    );
    write(tmp.path(), "facets.graph", "facet g {\n}\n");
    let r = validate_path(&f, Limits::default()).expect("report");
    assert_eq!(r.target, Target::Graph);
    assert!(!r.valid);
    assert_eq!(
        codes_at(&r.diagnostics),
        vec![at(Code::CO_UNREACHABLE_FILE, "one.graph", 2)]
    );
    assert!(
        r.diagnostics[0]
            .message
            .contains("missing.graph` does not exist"),
        "{}",
        r.diagnostics[0]
    );
    // What the file itself defines.
    assert_eq!((r.summary.components, r.summary.facets), (2, 1));

    // With the import there, the file is valid (references are left to the folder).
    write(tmp.path(), "missing.graph", "");
    let r = validate_path(&f, Limits::default()).expect("report");
    assert!(r.valid, "{:?}", r.diagnostics);
    assert_eq!((r.summary.components, r.summary.facets), (2, 1));

    // Imported files are parsed and checked too.
    write(
        tmp.path(),
        "missing.graph",
        "Broken {\n\tinstaller: script\n}\n",
    );
    let r = validate_path(&f, Limits::default()).expect("report");
    assert_eq!(
        codes_at(&r.diagnostics),
        vec![at(
            Code::P_PROPERTY_ENDS_WITH_SEMI_COLON,
            "missing.graph",
            2
        )]
    );
}

#[test]
fn roboconfs_graph_with_invalid_import_is_invalid_alone() {
    let Some(corpus) = corpus() else { return };
    let f = corpus.join("configurations/invalid/graph-with-invalid-import.graph");
    let r = validate_path(&f, Limits::default()).expect("report");
    assert!(!r.valid);
    let codes: Vec<Code> = r.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, vec![Code::CO_UNREACHABLE_FILE]);
    assert!(r.summary.components > 0, "{:?}", r.summary);
}

#[test]
fn an_instances_file_alone_that_imports_a_missing_file_is_invalid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = write(
        tmp.path(),
        "one.instances",
        "instance of VM {\n\tname: vm;\n}\n\nimport it-does-not-exist;\n",
    );
    let r = validate_path(&f, Limits::default()).expect("report");
    assert!(!r.valid);
    assert_eq!(
        codes_at(&r.diagnostics),
        vec![at(Code::CO_UNREACHABLE_FILE, "one.instances", 5)]
    );
    assert_eq!(r.summary.instances, 1);
}

/// Roboconf's corpus, where `roboconf_tests::corpus` finds it (the model cannot depend
/// on that crate).
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("ROBOCONF_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/roboconf-corpus")
        });
    if dir.join("EXPECTED.tsv").is_file() {
        return Some(dir);
    }
    eprintln!("SKIPPED: the Roboconf corpus is not at {}", dir.display());
    None
}

/// An application whose graph has a syntax error; its instances entry point imports
/// `other.instances`, and `orphan.instances` is imported by nothing.
fn broken_graph_app(tmp: &Path) -> PathBuf {
    let dir = tmp.join("app");
    write(
        &dir,
        "descriptor/application.properties",
        "application-name = app\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    );
    write(&dir, "graph/main.graph", "VM {\n\tinstaller: target\n}\n");
    write(
        &dir,
        "instances/main.instances",
        "import other.instances;\ninstance of VM {\n\tname: vm;\n}\n",
    );
    write(
        &dir,
        "instances/other.instances",
        "instance of VM {\n\tname: vm2;\n}\n",
    );
    write(&dir, "instances/orphan.instances", "");
    dir
}

#[test]
fn without_a_graph_the_instances_entry_point_is_not_called_unreachable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = broken_graph_app(tmp.path());
    let (_, d) = load_application(&dir, Limits::default());
    assert_eq!(
        codes_at(&d),
        vec![
            at(Code::P_PROPERTY_ENDS_WITH_SEMI_COLON, "main.graph", 2),
            at(Code::PROJ_UNREACHABLE_FILE, "orphan.instances", 1),
        ]
    );

    // No graph entry point at all: the same.
    fs::remove_file(dir.join("graph/main.graph")).expect("rm");
    let (_, d) = load_application(&dir, Limits::default());
    assert_eq!(
        codes_at(&d),
        vec![
            at(Code::PROJ_MISSING_GRAPH_EP, "application.properties", 4),
            at(Code::CO_GRAPH_COULD_NOT_BE_BUILT, "instances", 0),
            at(Code::PROJ_UNREACHABLE_FILE, "orphan.instances", 1),
        ]
    );
}
