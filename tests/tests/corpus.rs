//! Compatibility with Roboconf: every file of `shared/roboconf-corpus` under
//! `configurations/` and `applications/` gets the verdict Roboconf gives it
//! (`EXPECTED.tsv`), checked at the level the corpus notes say Roboconf's own tests
//! assert (parsing only, graph build, runtime-model validation, instances, whole
//! application), with the same error codes and, where a line is named, the same line.
//! The warnings of `EXACT_COUNTS` are compared with their counts. Deliberate differences
//! are listed in docs/COMPATIBILITY.md.

use roboconf_model::app::load_application;
use roboconf_model::descriptor::Descriptor;
use roboconf_model::diag::{has_errors, Code, Diagnostic, Severity};
use roboconf_model::dsl::{self, checks, writer, Limits};
use roboconf_model::graph::rules::{validate_graph, Scope};
use roboconf_model::graph::{build_graph, build_graph_from_defs, Graph};
use roboconf_model::instances::build_instances;
use roboconf_model::instances::rules::validate_instances;
use roboconf_model::resolve::Resolved;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Warnings whose count must be Roboconf's exactly (none where `EXPECTED.tsv` lists none),
/// each of our findings counted as many times as Roboconf reports it ([`roboconf_copies`]).
const EXACT_COUNTS: &[Code] = &[
    Code::RM_AMBIGUOUS_OVERRIDING,
    Code::RM_ORPHAN_FACET,
    Code::RM_ORPHAN_FACET_WITH_CHILDREN,
];

#[derive(Debug)]
struct Row {
    file: String,
    kind: String,
    verdict: String,
    paired_with: String,
    codes: Vec<String>,
    /// Code → how many times Roboconf reports it (`CODE x6`, or a code listed twice).
    counts: BTreeMap<String, usize>,
    lines: Vec<usize>,
    notes: String,
}

fn rows(corpus: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(corpus.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| f.get(i).copied().unwrap_or("").to_string();
            let mut counts = BTreeMap::new();
            for item in get(4).split(',') {
                let mut words = item.split_whitespace();
                let Some(code) = words.next() else { continue };
                let times = words
                    .next()
                    .and_then(|w| w.strip_prefix('x'))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                *counts.entry(code.to_string()).or_default() += times;
            }
            Row {
                file: get(0),
                kind: get(1),
                verdict: get(2),
                paired_with: get(3),
                codes: get(4)
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
                    .collect(),
                counts,
                lines: get(5)
                    .split(',')
                    .filter_map(|s| s.trim().parse().ok())
                    .collect(),
                notes: get(6),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Parse,
    GraphBuild,
    GraphRuntime,
    InstancesBuild,
    InstancesRuntime,
    Application,
    InApplication,
    Descriptor,
}

fn level(row: &Row) -> Level {
    let asserted = row.notes.split("[O]").next().unwrap_or("");
    if row.kind == "application" {
        Level::Application
    } else if row.file.ends_with(".properties") && !row.paired_with.starts_with("application") {
        Level::Descriptor
    } else if row.paired_with.starts_with("application") {
        Level::InApplication
    } else if row.kind == "instances" && asserted.contains("RuntimeModelValidator") {
        Level::InstancesRuntime
    } else if asserted.contains("RuntimeModelValidator") {
        Level::GraphRuntime
    } else if row.kind == "instances" && asserted.contains("FromInstanceDefinitionTest") {
        Level::InstancesBuild
    } else if asserted.contains("FromGraphDefinitionTest")
        || asserted.contains("testLoadGraph")
        || asserted.contains("graph build")
        || asserted.contains("IncompleteFilesParsingTest")
    {
        Level::GraphBuild
    } else if asserted.contains("FileDefinitionParserTest")
        || asserted.contains("ParsingModelIoTest")
    {
        Level::Parse
    } else {
        Level::Descriptor
    }
}

/// The graphs that Roboconf's tests build in code, as DSL.
fn in_test_graph(desc: &str) -> &'static str {
    if desc.contains("WAR") {
        "VM {\n\tinstaller: target;\n\tchildren: Tomcat;\n}\nTomcat {\n\tinstaller: puppet;\n\texports: Tomcat.ip, Tomcat.port = 8080;\n\tchildren: WAR;\n}\nWAR {\n\tinstaller: script;\n}\n"
    } else if desc.contains("tomcat.ip") {
        "VM {\n\tinstaller: target;\n\tchildren: Tomcat;\n}\nTomcat {\n\tinstaller: puppet;\n\texports: tomcat.ip, tomcat.port = 8080;\n}\n"
    } else if desc.contains("Tomcat.ip") {
        "VM {\n\tinstaller: target;\n\tchildren: Tomcat;\n}\nTomcat {\n\tinstaller: puppet;\n\texports: Tomcat.ip, Tomcat.port = 8080;\n}\n"
    } else if desc.contains("> A") {
        "VM {\n\tinstaller: target;\n\tchildren: A;\n}\nA {\n\tinstaller: whatever;\n}\n"
    } else if desc.contains("single root component vm") {
        "vm {\n\tinstaller: target;\n}\n"
    } else {
        "VM {\n\tinstaller: target;\n}\n"
    }
}

fn graph_from_text(text: &str) -> Graph {
    let p = PathBuf::from("in-test.graph");
    let b = build_graph_from_defs(&p, Path::new("."), &mut |path| {
        (path == p).then(|| dsl::parse_str(path, text, Limits::default()))
    });
    assert!(
        b.diagnostics.is_empty() && b.complete,
        "in-test graph: {:?}",
        b.diagnostics
    );
    b.graph
}

/// One application as we load it: the findings, and where its root instances are.
struct Loaded {
    diagnostics: Vec<Diagnostic>,
    root_instances: BTreeSet<(PathBuf, usize)>,
}

struct Ctx {
    apps: BTreeMap<PathBuf, Loaded>,
}

impl Ctx {
    fn loaded(&mut self, dir: &Path) -> &Loaded {
        self.apps.entry(dir.to_path_buf()).or_insert_with(|| {
            let (app, diagnostics) = load_application(dir, Limits::default());
            let root_instances = app
                .instances
                .roots
                .iter()
                .map(|&r| {
                    let at = &app.instances.instances[r].loc;
                    (at.file.clone(), at.line)
                })
                .collect();
            Loaded {
                diagnostics,
                root_instances,
            }
        })
    }

    fn app(&mut self, dir: &Path) -> &Vec<Diagnostic> {
        &self.loaded(dir).diagnostics
    }
}

/// How many times Roboconf reports one of our findings of a row. We report each finding
/// once; Roboconf, loading a whole application without a severe error, runs the graph's
/// RM checks twice (when it loads the graph, then when it validates the application) and
/// the instances' RM checks twice for root instances (loading the instances validates the
/// roots, validating the application every instance).
fn roboconf_copies(ctx: &mut Ctx, corpus: &Path, row: &Row, d: &Diagnostic) -> usize {
    if level(row) != Level::Application || !d.code.as_str().starts_with("RM_") {
        return 1;
    }
    let dir = corpus.join(&row.file);
    let loaded = ctx.loaded(&dir);
    if has_errors(&loaded.diagnostics) {
        return 1;
    }
    let from_graph = d.file.starts_with(dir.join("graph"));
    let on_root_instance = loaded.root_instances.contains(&(d.file.clone(), d.line));
    if from_graph || on_root_instance {
        2
    } else {
        1
    }
}

/// Our diagnostics for a row, at its level.
fn diagnose(ctx: &mut Ctx, corpus: &Path, row: &Row) -> Vec<Diagnostic> {
    let path = corpus.join(&row.file);
    let limits = Limits::default();
    match level(row) {
        Level::Parse => {
            let def = dsl::parse_file(&path, limits);
            let mut d = def.errors.clone();
            let asserted = row.notes.split("[O]").next().unwrap_or("");
            let round_trip = asserted.contains("round-trip")
                && !row.notes.contains("Excluded from the round-trip");
            if round_trip && def.errors.is_empty() {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                assert_eq!(
                    writer::write_file(&def),
                    text,
                    "{}: the canonical writer must give the file back byte for byte",
                    row.file
                );
            }
            if asserted.contains("recognize") {
                // Roboconf's test reads only the first block: later whole-file warnings do not count.
                d.retain(|x| x.code != Code::P_EMPTY_FILE);
            }
            d
        }
        Level::GraphBuild => {
            build_graph(&path, path.parent().unwrap_or(Path::new(".")), limits).diagnostics
        }
        Level::GraphRuntime => {
            let b = build_graph(&path, path.parent().unwrap_or(Path::new(".")), limits);
            assert!(
                b.diagnostics.is_empty(),
                "{}: graph build must be clean: {:?}",
                row.file,
                b.diagnostics
            );
            let mut d = validate_graph(
                &b.graph,
                Scope {
                    whole_application: true,
                },
            );
            if row.notes.contains("filterErrorsForRecipes") {
                d.retain(|x| {
                    !matches!(
                        x.code,
                        Code::RM_ORPHAN_FACET
                            | Code::RM_ORPHAN_FACET_WITH_CHILDREN
                            | Code::RM_UNREACHABLE_COMPONENT
                            | Code::RM_ROOT_INSTALLER_MUST_BE_TARGET
                            | Code::RM_UNRESOLVABLE_FACET_VARIABLE
                    )
                });
            }
            d
        }
        Level::InstancesBuild | Level::InstancesRuntime => {
            let graph = graph_from_text(in_test_graph(&row.paired_with));
            let b = build_instances(
                &graph,
                &path,
                path.parent().unwrap_or(Path::new(".")),
                limits,
            );
            if level(row) == Level::InstancesBuild {
                return b.diagnostics;
            }
            assert!(
                b.diagnostics.is_empty(),
                "{}: {:?}",
                row.file,
                b.diagnostics
            );
            validate_instances(&graph, &Resolved::new(&graph), &b.set)
        }
        Level::Application => ctx.app(&path).clone(),
        Level::InApplication => {
            let dir = corpus.join(row.paired_with.split_whitespace().nth(1).unwrap_or(""));
            // Project-level findings (PROJ_) are Roboconf's application rows' business.
            ctx.app(&dir)
                .iter()
                .filter(|d| d.file == path && !d.code.as_str().starts_with("PROJ_"))
                .cloned()
                .collect()
        }
        Level::Descriptor => {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if row.file.ends_with(".properties") {
                // Roboconf's test loads it and checks line numbers (below), not its values.
                let (_, invalid) = Descriptor::read(&path, &text);
                assert!(invalid.is_empty(), "{invalid:?}");
                Vec::new()
            } else {
                let def = dsl::parse_file(&path, limits);
                checks::validate_file(&def)
            }
        }
    }
}

fn verdict(d: &[Diagnostic]) -> &'static str {
    if d.iter().any(|x| x.severity == Severity::Error) {
        "invalid"
    } else if d.is_empty() {
        "valid"
    } else {
        "valid-with-warnings"
    }
}

#[test]
fn every_corpus_file_gets_roboconfs_verdict() {
    let Some(corpus) = corpus_dir() else { return };
    let mut ctx = Ctx {
        apps: BTreeMap::new(),
    };
    let mut failures = Vec::new();
    let (mut total, mut same_verdicts, mut same_codes) = (0, 0, 0);
    let (mut lines_checked, mut same_lines, mut same_counts) = (0, 0, 0);
    let mut by_level: BTreeMap<String, usize> = BTreeMap::new();
    for row in rows(&corpus) {
        total += 1;
        *by_level.entry(format!("{:?}", level(&row))).or_default() += 1;
        let mut d = diagnose(&mut ctx, &corpus, &row);
        // What this mesh can launch is its own advice, not part of Roboconf's verdict
        // (Roboconf loads any handler): it is left out of the comparison.
        d.retain(|x| {
            !matches!(
                x.code,
                Code::X_TARGET_HANDLER_NOT_SUPPORTED | Code::X_TARGET_UNKNOWN_HANDLER
            )
        });
        let ours = verdict(&d);
        let show = || {
            d.iter()
                .map(|x| format!("{}@{}", x.code, x.line))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if ours != row.verdict {
            failures.push(format!(
                "{} [{:?}]: Roboconf says {}, we say {} ({})",
                row.file,
                level(&row),
                row.verdict,
                ours,
                show()
            ));
            continue;
        }
        same_verdicts += 1;
        let expected: BTreeSet<&str> = row.codes.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = d.iter().map(|x| x.code.as_str()).collect();
        let got_errors: BTreeSet<&str> = d
            .iter()
            .filter(|x| x.is_error())
            .map(|x| x.code.as_str())
            .collect();
        // Every code Roboconf gives, and no error it does not give.
        let codes_ok = expected.is_subset(&got) && got_errors.is_subset(&expected);
        if codes_ok {
            same_codes += 1;
        } else {
            failures.push(format!(
                "{} [{:?}]: Roboconf's codes {:?}, ours {}",
                row.file,
                level(&row),
                row.codes,
                show()
            ));
            continue;
        }
        let mut counts_ok = true;
        for code in EXACT_COUNTS {
            let theirs = row.counts.get(code.as_str()).copied().unwrap_or(0);
            let ours: usize = d
                .iter()
                .filter(|x| x.code == *code)
                .map(|x| roboconf_copies(&mut ctx, &corpus, &row, x))
                .sum();
            if ours != theirs {
                counts_ok = false;
                failures.push(format!(
                    "{} [{:?}]: Roboconf reports {code} {theirs} time(s), we would {ours} ({})",
                    row.file,
                    level(&row),
                    show()
                ));
            }
        }
        if counts_ok {
            same_counts += 1;
        }
        if !row.lines.is_empty() {
            lines_checked += 1;
            let mut lines_ok = true;
            for (code, line) in row.codes.iter().zip(&row.lines) {
                if !d.iter().any(|x| x.code.as_str() == code && x.line == *line) {
                    lines_ok = false;
                    failures.push(format!(
                        "{}: expected {code} at line {line}, ours {}",
                        row.file,
                        show()
                    ));
                }
            }
            if lines_ok {
                same_lines += 1;
            }
        }
    }
    println!(
        "corpus: {total} files; verdicts equal: {same_verdicts}; code sets equal: {same_codes}; \
         counts of {} equal: {same_counts}; lines equal: {same_lines}/{lines_checked}; by level: {by_level:?}",
        EXACT_COUNTS.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
    );
    assert!(
        failures.is_empty(),
        "{} corpus file(s) differ from Roboconf:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_corpus_example_validates() {
    let Some(corpus) = corpus_dir() else { return };
    let mut failures = Vec::new();
    let mut n = 0;
    for e in std::fs::read_dir(corpus.join("examples")).expect("examples") {
        let dir = e.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        n += 1;
        let (_, d) = load_application(&dir, Limits::default());
        let errors: Vec<String> = d
            .iter()
            .filter(|x| x.is_error())
            .map(|x| x.to_string())
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{}:\n  {}", dir.display(), errors.join("\n  ")));
        }
    }
    println!(
        "corpus examples: {n} validated, {} with errors",
        failures.len()
    );
    assert!(n > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn corpus_dir() -> Option<PathBuf> {
    roboconf_tests::corpus()
}

#[test]
fn descriptor_lines_are_those_roboconf_resolves() {
    let Some(corpus) = corpus_dir() else { return };
    let path = corpus.join("configurations/valid/app-template-descriptor.properties");
    let text = std::fs::read_to_string(&path).expect("descriptor");
    let (d, invalid) = Descriptor::read(&path, &text);
    assert!(invalid.is_empty(), "{invalid:?}");
    assert_eq!(
        d.external_exports
            .get("HAProxy.httpPort")
            .map(String::as_str),
        Some("lb-port")
    );
    let lines: Vec<usize> = [
        "name",
        "version",
        "description",
        "dsl-id",
        "graph-entry-point",
        "instance-entry-point",
        "exports-prefix",
        "exports",
        "tags",
    ]
    .iter()
    .map(|k| d.line_of(k))
    .collect();
    assert_eq!(lines, vec![2, 3, 5, 12, 14, 15, 19, 25, 29]);
}
