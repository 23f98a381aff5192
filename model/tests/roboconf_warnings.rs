//! Issue 14, item 17: the warnings Roboconf gives about ambiguous overrides and orphan
//! facets, each reported once. `RM_AMBIGUOUS_OVERRIDING`: an instance sets a variable by
//! its bare name and that name stands for several full names of its component (inherited
//! under several prefixes included); the override still sets them all. `RM_ORPHAN_FACET`
//! (`_WITH_CHILDREN` when it has children): no component lists the facet in `facets:`.

use roboconf_model::app::load_application;
use roboconf_model::diag::{Code, Diagnostic, Severity};
use roboconf_model::dsl::{self, Limits};
use roboconf_model::graph::rules::{validate_graph, Scope};
use roboconf_model::graph::{build_graph_from_defs, Graph};
use roboconf_model::instances::build_instances_from_defs;
use roboconf_model::instances::rules::validate_instances;
use roboconf_model::resolve::{instance_exports, Resolved};
use std::path::{Path, PathBuf};

/// The graph of Roboconf's `component-extensions` application, plus a facet.
const GRAPH: &str = "VM {
	installer: target;
	children: PetalsJBIComponent, Web;
}
PetalsJBIComponent {
	installer: script;
	exports: componentId = my-component-id;
}
PetalsSL {
	extends: PetalsJBIComponent;
	exports: componentType = SL;
}
PetalsSLPostgreSQL {
	extends: PetalsSL;
	exports: present = true;
}
facet http {
	exports: port = 80;
}
Web {
	installer: script;
	facets: http;
	exports: name = web;
}
";

fn graph(text: &str) -> (Graph, Vec<Diagnostic>) {
    let p = PathBuf::from("t.graph");
    let b = build_graph_from_defs(&p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, text, Limits::default()))
    });
    assert!(
        b.complete && b.diagnostics.is_empty(),
        "{:?}",
        b.diagnostics
    );
    let d = validate_graph(
        &b.graph,
        Scope {
            whole_application: true,
        },
    );
    (b.graph, d)
}

/// The instance findings of `instances` (written under a `VM` named `vm`).
fn instance_findings(g: &Graph, instances: &str) -> (Vec<Diagnostic>, Vec<String>) {
    let text = format!("instance of VM {{\n\tname: vm;\n{instances}}}\n");
    let p = PathBuf::from("t.instances");
    let b = build_instances_from_defs(g, &p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, &text, Limits::default()))
    });
    assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
    let d = validate_instances(g, &Resolved::new(g), &b.set);
    let lines = d.iter().map(|x| format!("{}@{}", x.code, x.line)).collect();
    (d, lines)
}

fn count(d: &[Diagnostic], code: Code) -> usize {
    d.iter().filter(|x| x.code == code).count()
}

#[test]
fn a_bare_name_inherited_under_several_prefixes_is_ambiguous_as_in_roboconf() {
    let (g, _) = graph(GRAPH);
    // As Roboconf's component-extensions: `componentId` stands for three names in
    // PetalsSLPostgreSQL and two in PetalsSL; with full names, nothing is ambiguous.
    let (d, lines) = instance_findings(
        &g,
        "\tinstance of PetalsSLPostgreSQL {\n\t\tname: ambiguous;\n\t\tcomponentId: x;\n\t}\n\
         \tinstance of PetalsSLPostgreSQL {\n\t\tname: specific;\n\t\tPetalsSL.componentId: sl;\n\t\tPetalsSLPostgreSQL.componentId: last;\n\t}\n\
         \tinstance of PetalsSL {\n\t\tname: superInstance;\n\t\tcomponentId: my-sl;\n\t}\n\
         \tinstance of PetalsJBIComponent {\n\t\tname: plain;\n\t\tcomponentId: one-name;\n\t}\n",
    );
    assert_eq!(
        lines,
        vec!["RM_AMBIGUOUS_OVERRIDING@3", "RM_AMBIGUOUS_OVERRIDING@12"],
        "{d:?}"
    );
    assert!(d.iter().all(|x| x.severity == Severity::Warning));
    assert!(
        d[0].message.contains("PetalsJBIComponent.componentId")
            && d[0].message.contains("PetalsSL.componentId")
            && d[0].message.contains("PetalsSLPostgreSQL.componentId"),
        "{}",
        d[0].message
    );
}

#[test]
fn a_bare_name_from_a_facet_is_ambiguous_and_still_sets_every_name() {
    let (g, _) = graph(GRAPH);
    let text = "instance of VM {\n\tname: vm;\n\tinstance of Web {\n\t\tname: w;\n\t\tport: 8080;\n\t}\n}\n";
    let p = PathBuf::from("t.instances");
    let b = build_instances_from_defs(&g, &p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, text, Limits::default()))
    });
    assert!(b.diagnostics.is_empty(), "{:?}", b.diagnostics);
    let r = Resolved::new(&g);
    let d = validate_instances(&g, &r, &b.set);
    assert_eq!(count(&d, Code::RM_AMBIGUOUS_OVERRIDING), 1, "{d:?}");
    assert!(d[0].message.contains("Web.port") && d[0].message.contains("http.port"));
    let w = b.set.find("/vm/w").expect("w");
    let e = instance_exports(&g, &r, &b.set, w, None);
    for k in ["Web.port", "http.port"] {
        assert_eq!(e.get(k).cloned().flatten().as_deref(), Some("8080"), "{k}");
    }
}

#[test]
fn unknown_and_single_names_are_not_ambiguous() {
    let (g, _) = graph(GRAPH);
    let (_, lines) = instance_findings(
        &g,
        "\tinstance of Web {\n\t\tname: w;\n\t\thttp.port: 1;\n\t\tWeb.name: x;\n\t\tnope: 2;\n\t}\n",
    );
    assert_eq!(lines, vec!["RM_MAGIC_INSTANCE_VARIABLE@3"]);
}

#[test]
fn every_instance_made_by_count_gets_its_own_warning() {
    let (g, _) = graph(GRAPH);
    let (_, lines) = instance_findings(
        &g,
        "\tinstance of PetalsSL {\n\t\tname: sl-;\n\t\tcount: 3;\n\t\tcomponentId: c;\n\t}\n",
    );
    assert_eq!(lines, vec!["RM_AMBIGUOUS_OVERRIDING@3"; 3]);
}

#[test]
fn each_orphan_facet_is_reported_once() {
    let text = "VM {\n\tinstaller: target;\n\tchildren: App;\n\tfacets: used;\n}\nApp {\n\tinstaller: script;\n}\n\
                facet used {\n\textends: only_extended;\n}\nfacet only_extended {\n}\nfacet alone {\n\texports: x = 1;\n}\n\
                facet parent {\n\tchildren: App, Lost, alone;\n}\nLost {\n\tinstaller: script;\n}\n";
    let (g, d) = graph(text);
    let orphans: Vec<String> = d
        .iter()
        .filter(|x| {
            matches!(
                x.code,
                Code::RM_ORPHAN_FACET
                    | Code::RM_ORPHAN_FACET_WITH_CHILDREN
                    | Code::RM_UNREACHABLE_COMPONENT
            )
        })
        .map(|x| format!("{}@{}", x.code, x.line))
        .collect();
    // A facet that only another facet extends is an orphan too (Roboconf counts the
    // components that list it); the children of an orphan facet that are components
    // cannot be reached.
    assert_eq!(
        orphans,
        vec![
            "RM_ORPHAN_FACET@12",
            "RM_ORPHAN_FACET@14",
            "RM_ORPHAN_FACET_WITH_CHILDREN@17",
            "RM_UNREACHABLE_COMPONENT@6",
            "RM_UNREACHABLE_COMPONENT@20",
        ],
        "{d:?}"
    );
    assert_eq!(g.facets.len(), 4);
    assert!(d
        .iter()
        .filter(|x| x.code.as_str().starts_with("RM_ORPHAN"))
        .all(|x| x.severity == Severity::Warning));
}

#[test]
fn a_whole_application_reports_each_warning_once() {
    // Roboconf's loader validates the graph twice and root instances twice (its
    // app-for-templates gives 6 RM_ORPHAN_FACET for 3 facets); we report each once.
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in ["descriptor", "graph/VM", "instances"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::write(
        root.join("descriptor/application.properties"),
        "application-name = w\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    )
    .expect("descriptor");
    std::fs::write(
        root.join("graph/VM/t.target.properties"),
        "id = local\nhandler = local\nname = local\n",
    )
    .expect("target");
    std::fs::write(
        root.join("graph/main.graph"),
        "VM {\n\tinstaller: target;\n\tchildren: PetalsJBIComponent;\n\texports: componentId = vm;\n}\nPetalsJBIComponent {\n\tinstaller: script;\n\texports: componentId = x;\n}\nPetalsSL {\n\textends: PetalsJBIComponent;\n}\nfacet f1 {\n}\nfacet f2 {\n\tchildren: f1;\n}\n",
    )
    .expect("graph");
    std::fs::write(
        root.join("instances/main.instances"),
        "instance of VM {\n\tname: vm;\n\tinstance of PetalsSL {\n\t\tname: sl;\n\t\tcomponentId: c;\n\t}\n}\n",
    )
    .expect("instances");
    let (_, d) = load_application(root, Limits::default());
    let shown: Vec<String> = d.iter().map(ToString::to_string).collect();
    assert!(!d.iter().any(Diagnostic::is_error), "{shown:#?}");
    assert_eq!(count(&d, Code::RM_ORPHAN_FACET), 1, "{shown:#?}");
    assert_eq!(
        count(&d, Code::RM_ORPHAN_FACET_WITH_CHILDREN),
        1,
        "{shown:#?}"
    );
    assert_eq!(count(&d, Code::RM_AMBIGUOUS_OVERRIDING), 1, "{shown:#?}");
}
