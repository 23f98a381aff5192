//! Issue 14, item 14: a finding about one property of a component or facet points at that
//! property's item (line and column), not at the block's first line: an import nobody
//! exports, an unknown child, facet or extended component, a bad `random[...]` kind, a
//! random variable with a value, a component importing its own export, a cycle through
//! `extends`. Findings about the whole type stay at its block. The printed form stays
//! `path:line:col: error[CODE]: message`.

use roboconf_model::diag::{Code, Diagnostic};
use roboconf_model::dsl::{self, Limits};
use roboconf_model::graph::build_graph_from_defs;
use roboconf_model::graph::rules::{validate_graph, Scope};
use roboconf_model::validate::validate_path;
use std::path::{Path, PathBuf};

/// Every finding of the graph stages (build, then RM rules when the build is clean).
fn findings(text: &str) -> Vec<Diagnostic> {
    let p = PathBuf::from("t.graph");
    let b = build_graph_from_defs(&p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, text, Limits::default()))
    });
    let mut d = b.diagnostics;
    if b.complete {
        d.extend(validate_graph(
            &b.graph,
            Scope {
                whole_application: true,
            },
        ));
    }
    d
}

/// (line, column) of the `nth` occurrence of `needle` in `text`, 1-based, in characters.
fn at(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let mut seen = 0;
    for (i, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(k) = line[from..].find(needle) {
            if seen == nth {
                return (i + 1, line[..from + k].chars().count() + 1);
            }
            seen += 1;
            from += k + needle.len();
        }
    }
    panic!("`{needle}` #{nth} is not in the text");
}

/// Where the findings with `code` are, sorted.
fn positions(d: &[Diagnostic], code: Code) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = d
        .iter()
        .filter(|x| x.code == code)
        .map(|x| (x.line, x.col))
        .collect();
    out.sort();
    out
}

#[test]
fn an_import_nobody_exports_is_reported_at_the_import() {
    let g = "VM {\n\tinstaller: target;\n\tchildren: App, Db;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 3306;\n}\nApp {\n\tinstaller: script;\n\timports: Db.ip, Db.portx;\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::RM_UNRESOLVABLE_VARIABLE),
        vec![at(g, "Db.portx", 0)],
        "{d:?}"
    );
    assert_eq!(at(g, "Db.portx", 0), (11, 18));
}

#[test]
fn an_inherited_import_is_reported_where_it_is_written() {
    // Sub inherits Base's import: both are reported, at Base's `imports:` item; a facet
    // variable no component carries is reported at its import too.
    let g = "VM {\n\tinstaller: target;\n\tchildren: Base, Sub;\n}\nBase {\n\tinstaller: script;\n\timports: Ghost.port, lonely.x;\n}\nSub {\n\textends: Base;\n}\nfacet lonely {\n\texports: x = 1;\n}\n";
    let d = findings(g);
    let ghost = at(g, "Ghost.port", 0);
    assert_eq!(
        positions(&d, Code::RM_UNRESOLVABLE_VARIABLE),
        vec![ghost, ghost],
        "{d:?}"
    );
    let lonely = at(g, "lonely.x", 0);
    assert_eq!(
        positions(&d, Code::RM_UNRESOLVABLE_FACET_VARIABLE),
        vec![lonely, lonely],
        "{d:?}"
    );
    // The orphan facet is about the facet as a whole: at its block.
    assert_eq!(
        positions(&d, Code::RM_ORPHAN_FACET),
        vec![at(g, "lonely {", 0)]
    );
}

#[test]
fn unknown_children_facets_and_extended_components_are_reported_at_their_names() {
    let g = "VM {\n\tinstaller: target;\n\tchildren: A, B,  C;\n}\nA {\n\tinstaller: puppet;\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::CO_INEXISTING_CHILD),
        vec![(3, 15), (3, 19)],
        "{d:?}"
    );
    assert!(
        d[0].message.contains("`B`") && d[1].message.contains("`C`"),
        "{d:?}"
    );

    let g = "VM {\n\tinstaller: target;\n\tchildren: App;\n\tfacets: Ghost;\n}\nApp {\n\textends: Nothing;\n\tinstaller: script;\n}\nfacet f {\n\tchildren: App, Nobody;\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::CO_INEXISTING_FACET),
        vec![at(g, "Ghost", 0)]
    );
    assert_eq!(
        positions(&d, Code::CO_INEXISTING_COMPONENT),
        vec![at(g, "Nothing", 0)]
    );

    // Children of facets are checked once components resolve.
    let g = "VM {\n\tinstaller: target;\n\tfacets: f;\n}\nfacet f {\n\textends: g, missing;\n\tchildren: Nobody;\n}\nfacet g {\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::CO_INEXISTING_FACET),
        vec![at(g, "missing", 0)]
    );
    assert_eq!(
        positions(&d, Code::CO_INEXISTING_CHILD),
        vec![at(g, "Nobody", 0)]
    );
}

#[test]
fn a_bad_random_kind_and_a_random_with_a_value_are_reported_at_the_variable() {
    let g = "comp2 {\n\tinstaller: target;\n\texports: ip, random[port] httpPort, random[string] ajpPort;\n\texports: random[port] admin = 8080;\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::RM_INVALID_RANDOM_KIND),
        vec![at(g, "random[string]", 0)],
        "{d:?}"
    );
    assert_eq!(
        positions(&d, Code::RM_NO_VALUE_FOR_RANDOM),
        vec![at(g, "random[port] admin", 0)],
        "{d:?}"
    );
}

#[test]
fn a_component_importing_its_own_exports_is_reported_at_each_import() {
    let g = "A {\n\tinstaller: target;\n\texports: port = 8081, ip;\n\timports: A.port,   A.ip, A.other (optional);\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::RM_COMPONENT_IMPORTS_EXPORTS),
        vec![at(g, "A.port", 0), at(g, "A.ip", 0)],
        "{d:?}"
    );
}

#[test]
fn inheritance_cycles_are_reported_at_extends() {
    let g = "VM {\n\tinstaller: target;\n\tchildren: A;\n}\nA {\n\tinstaller: script;\n\textends: B;\n}\nB {\n\textends: A;\n}\nfacet F1 {\n\textends: Other, F2;\n}\nfacet F2 {\n\textends: F1;\n}\nfacet Other {\n}\nC {\n\tinstaller: script;\n\tfacets: F1, F2;\n}\n";
    let d = findings(g);
    // Where `item` is inside the (unique) text `written`.
    let value = |written: &str, item: &str| {
        let (line, col) = at(g, written, 0);
        (line, col + written.find(item).expect("item"))
    };
    assert_eq!(
        positions(&d, Code::RM_CYCLE_IN_COMPONENTS_INHERITANCE),
        vec![value("extends: B;", "B"), value("extends: A;", "A")],
        "{d:?}"
    );
    assert_eq!(value("extends: B;", "B"), (7, 11));
    // F1 at `F2` (not at `Other`, which leads nowhere), F2 at `F1`.
    assert_eq!(
        positions(&d, Code::RM_CYCLE_IN_FACETS_INHERITANCE),
        vec![
            value("extends: Other, F2;", "F2"),
            value("extends: F1;", "F1")
        ],
        "{d:?}"
    );
}

#[test]
fn findings_about_the_whole_component_stay_at_its_block() {
    let g = "VM {\n\tinstaller: target;\n\tchildren: App;\n}\nApp {\n\tinstaller: script;\n}\nOther {\n\tinstaller: script;\n}\n";
    let d = findings(g);
    assert_eq!(
        positions(&d, Code::RM_ROOT_INSTALLER_MUST_BE_TARGET),
        vec![(8, 1)]
    );
}

#[test]
fn the_printed_form_is_path_line_col_severity_code_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("one.graph");
    let g =
        "VM {\n\tinstaller: target;\n\tchildren: App, Ghost;\n}\nApp {\n\tinstaller: script;\n}\n";
    std::fs::write(&f, g).expect("write");
    let report = validate_path(&f, Limits::default()).expect("a graph file");
    let lines: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        lines,
        vec![format!(
            "{}:3:17: error[CO_INEXISTING_CHILD]: the child `Ghost` is neither a component nor a facet",
            f.display()
        )]
    );

    let g = "VM {\n\tinstaller: target;\n\tchildren: App;\n}\nApp {\n\tinstaller: script;\n\texports: ip;\n\timports: Db.ip, App.ip;\n}\n";
    std::fs::write(&f, g).expect("write");
    let report = validate_path(&f, Limits::default()).expect("a graph file");
    let lines: Vec<String> = report.diagnostics.iter().map(|d| d.to_string()).collect();
    let path = f.display();
    assert_eq!(
        lines,
        vec![
            format!("{path}:8:11: error[RM_UNRESOLVABLE_VARIABLE]: `App` imports `Db.ip`, which no component or facet exports (names are case-sensitive)"),
            format!("{path}:8:18: error[RM_COMPONENT_IMPORTS_EXPORTS]: `App` imports `App.ip`, which it exports itself: mark the import `(optional)`"),
        ]
    );
}
