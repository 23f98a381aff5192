//! The DSL reader on its own: where errors point (line and column), Roboconf's quirks that
//! applications rely on (untrimmed instance values, quoted values with `;`), and hostile
//! input (deep nesting, huge files, pathological lines) answered with errors, not crashes.

use roboconf_model::diag::Code;
use roboconf_model::dsl::{self, checks, Block, FileKind, Limits};
use std::path::Path;
use std::time::{Duration, Instant};

fn parse(text: &str) -> dsl::FileDef {
    dsl::parse_str(Path::new("t.graph"), text, Limits::default())
}

fn codes_at(text: &str) -> Vec<(Code, usize, usize)> {
    checks::validate_file(&parse(text))
        .into_iter()
        .map(|d| (d.code, d.line, d.col))
        .collect()
}

#[test]
fn errors_carry_line_and_column() {
    let text = "VM {\n\tinstaller: target;\n\tchildren: App;\n}\n\nApp {\n\tinstaller: script;\n\texports: ip port;\n}\n";
    assert_eq!(
        codes_at(text),
        vec![(Code::PM_INVALID_EXPORTED_VAR_NAME, 8, 11)]
    );
    let text = "VM {\n  installer target;\n}\n";
    assert_eq!(
        codes_at(text),
        vec![
            (Code::P_INVALID_PROPERTY, 2, 3),
            (Code::PM_INVALID_BLOCK_TYPE, 0, 0)
        ]
    );
    let text = "facet F {\n\texports: x;\n";
    assert_eq!(codes_at(text), vec![(Code::P_C_C_BRACKET_MISSING, 3, 1)]);
    let text = "  instance of VM {\n\tname: a;\n}";
    let def = dsl::parse_str(Path::new("t.instances"), text, Limits::default());
    let Some(Block::Holder(h)) = def.blocks.first() else {
        panic!("{def:?}")
    };
    assert_eq!((h.span.line, h.span.col, h.name.as_str()), (1, 15, "VM"));
}

#[test]
fn comments_anywhere_and_quoted_values() {
    let text = "# head\nC { # after brace\n\t# inside\n\texports: a = \"x; y # not a comment\", b = \"\";\n\tinstaller: script; # trailing\n} # after close\n";
    let def = parse(text);
    // `#` always starts a comment, even inside quotes (as in Roboconf).
    let diags = checks::validate_file(&def);
    assert_eq!(
        diags.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec![
            Code::P_PROPERTY_ENDS_WITH_SEMI_COLON,
            Code::P_ONE_BLOCK_PER_LINE,
            Code::PM_INVALID_EXPORT_COMPLEX_VALUE
        ]
    );
    let ok = parse("C {\n\texports: a = \"x; y, z\", b = \"\";\n\tinstaller: script;\n}\n");
    assert!(checks::validate_file(&ok).is_empty());
    assert_eq!(ok.kind, FileKind::Graph);
}

#[test]
fn instance_values_are_not_trimmed() {
    let def = dsl::parse_str(
        Path::new("t.instances"),
        "instance of VM {\n\tname: vm 1 ;\n\tport:  80 ;\n}\n",
        Limits::default(),
    );
    let Some(Block::Holder(h)) = def.blocks.first() else {
        panic!()
    };
    assert_eq!(h.property("name").map(|p| p.value.as_str()), Some("vm 1 "));
    assert_eq!(h.property("port").map(|p| p.value.as_str()), Some("80 "));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let mut text = String::new();
    for i in 0..depth {
        text.push_str(&format!("instance of VM {{\nname: n{i};\n"));
    }
    for _ in 0..depth {
        text.push_str("}\n");
    }
    let def = dsl::parse_str(Path::new("deep.instances"), &text, Limits::default());
    assert!(
        def.errors
            .iter()
            .any(|d| d.code == Code::X_NESTING_TOO_DEEP),
        "{:?}",
        def.errors.first()
    );
}

#[test]
fn huge_input_is_refused() {
    let limits = Limits {
        max_bytes: 1024,
        ..Limits::default()
    };
    let def = dsl::parse_str(Path::new("big.graph"), &"# filler\n".repeat(200), limits);
    assert_eq!(
        def.errors.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec![Code::X_INPUT_TOO_LARGE]
    );
}

#[test]
fn pathological_lines_stay_linear() {
    // One 4 MB line inside a block, made of name-like runs with no colon.
    let line = "ab ".repeat(1 << 20);
    let text = format!("C {{\n{line}\n}}\n");
    let t = Instant::now();
    let def = parse(&text);
    assert!(def
        .errors
        .iter()
        .any(|d| d.code == Code::P_INVALID_PROPERTY));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn file_kinds() {
    assert_eq!(parse("import a.graph;\n").kind, FileKind::Aggregator);
    assert_eq!(parse("# only\n\n").kind, FileKind::Empty);
    assert_eq!(parse("facet F {\n}\n").kind, FileKind::Graph);
    let mixed = parse("C {\n}\ninstance of C {\n\tname: c;\n}\n");
    assert_eq!(mixed.kind, FileKind::Undetermined);
    assert!(mixed
        .errors
        .iter()
        .any(|d| d.code == Code::P_INVALID_FILE_TYPE));
}

#[test]
fn long_inheritance_chains_do_not_exhaust_the_stack() {
    use roboconf_model::graph::build_graph_from_defs;
    use roboconf_model::graph::rules::{validate_graph, Scope};
    let n = 2_000;
    // Beyond the supported depth: a clear error, quickly.
    let mut text = String::from("C0 {\n\tinstaller: target;\n\texports: x = 1;\n\tfacets: F0;\n}\nfacet F0 {\n\texports: y = 2;\n}\n");
    for i in 1..n {
        text.push_str(&format!(
            "C{i} {{\n\textends: C{};\n}}\nfacet F{i} {{\n\textends: F{};\n}}\n",
            i - 1,
            i - 1
        ));
    }
    let p = std::path::PathBuf::from("chain.graph");
    let t = Instant::now();
    let b = build_graph_from_defs(&p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, &text, Limits::default()))
    });
    assert!(!b.complete);
    assert_eq!(
        b.diagnostics.iter().map(|d| d.code).collect::<Vec<_>>(),
        vec![Code::X_NESTING_TOO_DEEP]
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    // Within the supported depth, the deepest component inherits everything.
    let n = roboconf_model::graph::build::MAX_INHERITANCE;
    let mut text = String::from("C0 {\n\tinstaller: target;\n\texports: x = 1;\n}\n");
    for i in 1..n {
        text.push_str(&format!("C{i} {{\n\textends: C{};\n}}\n", i - 1));
    }
    let b = build_graph_from_defs(&p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, &text, Limits::default()))
    });
    assert!(b.complete, "{:?}", b.diagnostics.first());
    let last = b.graph.component(&format!("C{}", n - 1)).expect("last");
    assert_eq!(
        b.graph
            .component_exports(last)
            .get("C0.x")
            .cloned()
            .flatten()
            .as_deref(),
        Some("1")
    );
    assert!(validate_graph(
        &b.graph,
        Scope {
            whole_application: true
        }
    )
    .is_empty());
}
