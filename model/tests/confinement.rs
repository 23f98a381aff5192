//! An application keeps to its folder: entry points and imports that climb out of it, that
//! are absolute, or that go through a symbolic link are refused at the line that names
//! them, the file outside is never read (no finding quotes it), and the symbolic links
//! the folder holds are reported as left out of the application.

use roboconf_model::app::{list_files, list_tree, load_application};
use roboconf_model::diag::{Code, Diagnostic, Severity};
use roboconf_model::dsl::Limits;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// A recognisable line that must never show up in a finding.
const SECRET: &str = "TOP-SECRET-4f2a9c";

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(&p, text).expect("write");
    p
}

/// Files outside the application that a hostile one might name: a passwd-like file
/// (parsing it would quote its lines), a graph and an instances file.
fn secrets(outside: &Path) {
    let passwd = format!("root:x:0:0:{SECRET}:/root:/bin/bash\n");
    write(outside, "secret.txt", &passwd);
    write(outside, "secret.graph", &passwd);
    write(outside, "secret.instances", &passwd);
    write(
        outside,
        "outside.graph",
        &format!("Extra {{\n\tinstaller: script;\n\t{SECRET}: 1;\n}}\n"),
    );
}

const GRAPH: &str =
    "VM {\n\tinstaller: target;\n\tchildren: App;\n}\nApp {\n\tinstaller: script;\n}\n";
const INSTANCES: &str =
    "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n";

/// A valid application in `<tmp>/apps/app`, with `<tmp>` holding the secrets. The
/// descriptor names `gep` and `iep` at lines 4 and 5.
fn app(tmp: &Path, gep: &str, iep: &str) -> PathBuf {
    secrets(tmp);
    let dir = tmp.join("apps/app");
    write(
        &dir,
        "descriptor/application.properties",
        &format!("application-name = app\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = {gep}\ninstance-entry-point = {iep}\n"),
    );
    write(&dir, "graph/main.graph", GRAPH);
    write(
        &dir,
        "graph/VM/target.properties",
        "id = vm\nhandler = local\nname = vm\n",
    );
    write(&dir, "graph/App/scripts/deploy.sh", "#!/bin/bash\n");
    write(&dir, "instances/main.instances", INSTANCES);
    dir
}

fn load(dir: &Path) -> Vec<Diagnostic> {
    let (_, d) = load_application(dir, Limits::default());
    for x in &d {
        let shown = x.to_string();
        assert!(
            !shown.contains(SECRET),
            "a finding quotes a file outside: {shown}"
        );
    }
    d
}

fn errors(d: &[Diagnostic]) -> Vec<(Code, String, usize)> {
    d.iter()
        .filter(|x| x.severity == Severity::Error)
        .map(|x| {
            let file = x.file.file_name().unwrap_or_default().to_string_lossy();
            (x.code, file.into_owned(), x.line)
        })
        .collect()
}

fn err(code: Code, file: &str, line: usize) -> (Code, String, usize) {
    (code, file.to_string(), line)
}

#[test]
fn the_reference_application_is_valid() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    let d = load(&dir);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn entry_points_that_climb_out_are_refused_unread() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "../../../secret.txt", "main.instances");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            err(Code::X_FILE_OUTSIDE_FOLDER, "application.properties", 4),
            err(Code::CO_GRAPH_COULD_NOT_BE_BUILT, "instances", 0),
        ]
    );
    assert!(
        d[0].message.contains("outside the `graph/` folder"),
        "{}",
        d[0]
    );

    // Far more `..` than there are folders: still refused by name, nothing is looked up.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(
        tmp.path(),
        "main.graph",
        "../../../../../../../../../../../etc/shadow",
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(
            Code::X_FILE_OUTSIDE_FOLDER,
            "application.properties",
            5
        )]
    );

    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "../../../secret.instances");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(
            Code::X_FILE_OUTSIDE_FOLDER,
            "application.properties",
            5
        )]
    );
}

#[test]
fn absolute_paths_are_read_inside_the_folder_as_roboconf_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    let outside = tmp.path().join("secret.graph");
    write(
        &dir,
        "graph/main.graph",
        &format!("import {};\n{GRAPH}", outside.display()),
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(Code::CO_UNREACHABLE_FILE, "main.graph", 1)]
    );
    let looked_for = dir
        .join("graph")
        .join(outside.strip_prefix("/").expect("absolute"));
    assert!(
        d[0].message.contains(&looked_for.display().to_string()),
        "{}",
        d[0]
    );

    // An absolute entry point likewise.
    let tmp = tempfile::tempdir().expect("tempdir");
    let outside = tmp.path().join("secret.txt");
    let dir = app(tmp.path(), &outside.display().to_string(), "main.instances");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            err(Code::PROJ_MISSING_GRAPH_EP, "application.properties", 4),
            err(Code::CO_GRAPH_COULD_NOT_BE_BUILT, "instances", 0),
        ]
    );
}

#[test]
fn imports_that_climb_out_are_refused_at_the_import() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    // The outside file defines a component the instances use: it must not count.
    write(
        &dir,
        "graph/main.graph",
        &format!("# comment\nimport ../../outside.graph;\n{GRAPH}"),
    );
    write(
        &dir,
        "instances/main.instances",
        &format!("{INSTANCES}instance of Extra {{\n\tname: x;\n}}\n"),
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(Code::X_FILE_OUTSIDE_FOLDER, "main.graph", 2)]
    );
    let first = &d[0];
    assert_eq!(first.col, 1);
    assert!(
        first
            .message
            .contains("`../../outside.graph` is outside the `graph/` folder"),
        "{first}"
    );

    // Instances imports are confined to `instances/` the same way.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    write(
        &dir,
        "instances/main.instances",
        &format!("import ../../../secret.instances;\n{INSTANCES}"),
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(Code::X_FILE_OUTSIDE_FOLDER, "main.instances", 1)]
    );
    // Climbing out and back in stays inside: resolved by name.
    write(
        &dir,
        "instances/main.instances",
        &format!("import ../instances/other.instances;\n{INSTANCES}"),
    );
    write(&dir, "instances/other.instances", "");
    let d = load(&dir);
    assert!(errors(&d).is_empty(), "{d:?}");
}

#[test]
fn symbolic_links_the_model_would_read_are_refused() {
    // The entry point is a link to a file outside.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    symlink(
        tmp.path().join("secret.graph"),
        dir.join("graph/linked.graph"),
    )
    .expect("link");
    write(
        &dir,
        "descriptor/application.properties",
        "application-name = app\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = linked.graph\ninstance-entry-point = main.instances\n",
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            err(Code::X_SYMLINK_REFUSED, "application.properties", 4),
            err(Code::CO_GRAPH_COULD_NOT_BE_BUILT, "instances", 0),
        ]
    );

    // An imported file is a link (even one to a file inside: other nodes would lack it).
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    write(&dir, "graph/real.graph", "");
    symlink(dir.join("graph/real.graph"), dir.join("graph/inside.graph")).expect("link");
    symlink(tmp.path().join("secret.graph"), dir.join("graph/out.graph")).expect("link");
    write(
        &dir,
        "graph/main.graph",
        &format!("import real.graph;\nimport inside.graph;\nimport out.graph;\n{GRAPH}"),
    );
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            err(Code::X_SYMLINK_REFUSED, "main.graph", 2),
            err(Code::X_SYMLINK_REFUSED, "main.graph", 3),
        ]
    );

    // A linked folder on the way is refused too.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "sub/main.instances");
    write(tmp.path(), "elsewhere/main.instances", INSTANCES);
    symlink(tmp.path().join("elsewhere"), dir.join("instances/sub")).expect("link");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![err(Code::X_SYMLINK_REFUSED, "application.properties", 5)]
    );

    // The descriptor itself, and the `graph/` folder.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    let desc = dir.join("descriptor/application.properties");
    fs::remove_file(&desc).expect("rm");
    symlink(tmp.path().join("secret.txt"), &desc).expect("link");
    fs::rename(dir.join("graph"), tmp.path().join("graph")).expect("mv");
    symlink(tmp.path().join("graph"), dir.join("graph")).expect("link");
    let d = load(&dir);
    assert_eq!(
        errors(&d),
        vec![
            err(Code::X_SYMLINK_REFUSED, "application.properties", 0),
            err(Code::X_SYMLINK_REFUSED, "graph", 0),
        ]
    );
}

#[test]
fn symbolic_links_are_reported_as_left_out_of_the_application() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    symlink(
        tmp.path().join("secret.txt"),
        dir.join("graph/App/scripts/start.sh"),
    )
    .expect("link");
    symlink(tmp.path(), dir.join("graph/App/files")).expect("link");
    // A linked `commands/` folder is not read either.
    write(tmp.path(), "cmds/x.commands", &format!("{SECRET}\n"));
    symlink(tmp.path().join("cmds"), dir.join("commands")).expect("link");
    let (app, d) = load_application(&dir, Limits::default());
    assert!(errors(&d).is_empty(), "{d:?}");
    assert!(app.commands.is_empty());
    for x in &d {
        assert!(!x.to_string().contains(SECRET), "{x}");
    }
    let links: Vec<(Code, Severity, PathBuf)> = d
        .iter()
        .map(|x| (x.code, x.severity, x.file.clone()))
        .collect();
    assert_eq!(
        links,
        vec![
            (
                Code::X_SYMLINK_IGNORED,
                Severity::Warning,
                dir.join("commands")
            ),
            (
                Code::X_SYMLINK_IGNORED,
                Severity::Warning,
                dir.join("graph/App/files")
            ),
            (
                Code::X_SYMLINK_IGNORED,
                Severity::Warning,
                dir.join("graph/App/scripts/start.sh")
            ),
        ]
    );
    assert!(
        d[0].message.contains("not carried to other nodes"),
        "{}",
        d[0]
    );
    // The listings do not follow links out of the folder.
    let files = list_files(&dir);
    assert!(files.iter().all(|f| f.starts_with(&dir)), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with("start.sh")));
    assert_eq!(list_tree(&dir).links.len(), 3);
}

/// A recipe folder that is a link to a folder outside: its target properties are not
/// read (a conflicting `id` would quote them), the link is only reported.
#[test]
fn a_linked_recipe_folder_is_not_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = app(tmp.path(), "main.graph", "main.instances");
    write(
        tmp.path(),
        "recipe/a.target.properties",
        &format!("id = {SECRET}\nhandler = local\n"),
    );
    write(
        tmp.path(),
        "recipe/b.target.properties",
        &format!("id = {SECRET}\nhandler = local\n"),
    );
    fs::remove_dir_all(dir.join("graph/VM")).expect("rm");
    symlink(tmp.path().join("recipe"), dir.join("graph/VM")).expect("link");
    let d = load(&dir);
    assert!(
        d.iter().all(|x| x.code != Code::REC_TARGET_CONFLICTING_ID),
        "{d:?}"
    );
    assert!(
        d.iter()
            .any(|x| x.code == Code::X_SYMLINK_IGNORED && x.file == dir.join("graph/VM")),
        "{d:?}"
    );
}
