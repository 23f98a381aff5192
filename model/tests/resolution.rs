//! Resolution into the runtime model: inherited exports under every prefix, placement
//! through facets and extension, `count:` expansion, overrides, the final exports of an
//! instance, and the matching of imports to the exporters that are up.

use roboconf_model::diag::{Code, Diagnostic};
use roboconf_model::dsl::{self, Limits};
use roboconf_model::graph::rules::{validate_graph, Scope};
use roboconf_model::graph::{build_graph_from_defs, Graph};
use roboconf_model::instances::rules::validate_instances;
use roboconf_model::instances::{build_instances_from_defs, InstanceSet};
use roboconf_model::resolve::{instance_exports, match_imports, Exporter, Resolved};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const GRAPH: &str = "
facet deployable {
	exports: team = platform;
}
facet http {
	extends: deployable;
	exports: ip, port = 80;
}
VM {
	installer: target;
	exports: ip;
	children: deployable;
}
Tomcat {
	installer: script;
	facets: http;
	exports: ajp = 8009, random[port] admin;
	imports: Db.ip, Db.port, Cache.* (optional);
	children: War;
}
FastTomcat {
	extends: Tomcat;
	exports: port = 8081;
}
War {
	installer: script;
	exports: context = /$(ROBOCONF_INSTANCE_NAME), path = $(ROBOCONF_CLEAN_INSTANCE_PATH);
}
Db {
	installer: script;
	facets: deployable;
	exports: ip, port = 5432;
}
Cache {
	installer: script;
	facets: deployable;
	exports: ip, port = 6379;
}
";

fn graph(text: &str) -> (Graph, Vec<Diagnostic>) {
    let p = PathBuf::from("t.graph");
    let b = build_graph_from_defs(&p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, text, Limits::default()))
    });
    assert!(b.complete, "{:?}", b.diagnostics);
    let mut d = b.diagnostics;
    d.extend(validate_graph(
        &b.graph,
        Scope {
            whole_application: true,
        },
    ));
    (b.graph, d)
}

fn instances(g: &Graph, text: &str) -> (InstanceSet, Vec<Diagnostic>) {
    let p = PathBuf::from("t.instances");
    let b = build_instances_from_defs(g, &p, Path::new("."), &mut |x| {
        (x == p).then(|| dsl::parse_str(x, text, Limits::default()))
    });
    (b.set, b.diagnostics)
}

fn codes(d: &[Diagnostic]) -> Vec<Code> {
    d.iter().map(|x| x.code).collect()
}

#[test]
fn exports_are_inherited_under_every_prefix() {
    let (g, d) = graph(GRAPH);
    assert!(d.is_empty(), "{d:?}");
    let tomcat = g.component("Tomcat").expect("Tomcat");
    let e = g.component_exports(tomcat);
    let get = |k: &str| e.get(k).cloned().flatten();
    assert_eq!(get("http.port").as_deref(), Some("80"));
    assert_eq!(get("Tomcat.port").as_deref(), Some("80"));
    assert_eq!(get("deployable.team").as_deref(), Some("platform"));
    assert_eq!(get("Tomcat.team").as_deref(), Some("platform"));
    assert_eq!(get("Tomcat.ajp").as_deref(), Some("8009"));
    assert!(e.contains_key("Tomcat.admin") && e.contains_key("http.ip"));
    // Extension: the sub-component overrides `port` under every name it inherited.
    let fast = g.component("FastTomcat").expect("FastTomcat");
    let e = g.component_exports(fast);
    for k in ["FastTomcat.port", "Tomcat.port", "http.port"] {
        assert_eq!(e.get(k).cloned().flatten().as_deref(), Some("8081"), "{k}");
    }
    assert_eq!(g.installer(fast), Some("script"));
    assert_eq!(g.all_imports(fast).len(), 3);
}

#[test]
fn placement_goes_through_facets_and_extension() {
    let (g, _) = graph(GRAPH);
    let names = |set: std::collections::BTreeSet<usize>| {
        set.into_iter()
            .map(|c| g.components[c].name.clone())
            .collect::<Vec<_>>()
    };
    let vm = g.component("VM").expect("VM");
    assert_eq!(
        names(g.all_children(vm)),
        vec!["Tomcat", "FastTomcat", "Db", "Cache"]
    );
    let fast = g.component("FastTomcat").expect("FastTomcat");
    assert_eq!(names(g.all_ancestors(fast)), vec!["VM"]);
    assert!(g.is_root(vm) && !g.is_root(fast));
}

#[test]
fn graph_rules() {
    let (_, d) = graph("A {\n\tinstaller: script;\n\texports: x;\n\timports: A.x, B.y, b.z;\n}\nB {\n\tinstaller: target;\n\texports: y;\n\tchildren: A;\n}\nC {\n\tinstaller: target;\n\tchildren: D;\n}\nD {\n\tinstaller: script;\n\tchildren: C;\n}\n");
    let c = codes(&d);
    assert!(c.contains(&Code::RM_COMPONENT_IMPORTS_EXPORTS), "{c:?}");
    assert!(
        c.contains(&Code::RM_UNRESOLVABLE_VARIABLE),
        "case-sensitive `b.z`: {c:?}"
    );
    assert_eq!(
        c.iter()
            .filter(|x| **x == Code::RM_CYCLE_IN_COMPONENTS)
            .count(),
        2,
        "{c:?}"
    );
}

#[test]
fn count_expands_with_padded_names_and_conflicts_are_found() {
    let (g, _) = graph(GRAPH);
    let (set, d) = instances(
        &g,
        "instance of VM {\n\tname: vm-;\n\tcount: 12;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n",
    );
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(set.roots.len(), 12);
    assert_eq!(set.instances.len(), 24);
    assert!(set.find("/vm-01/db").is_some() && set.find("/vm-12/db").is_some());
    let (_, d) = instances(
        &g,
        "instance of VM {\n\tname: vm-2;\n}\ninstance of VM {\n\tname: vm-;\n\tcount: 3;\n}\n",
    );
    assert_eq!(codes(&d), vec![Code::CO_CONFLICTING_INFERRED_INSTANCE]);
    assert_eq!(d[0].line, 4, "reported at the block with `count:`");
    let (_, d) = instances(&g, "instance of VM {\n\tname: a;\n\tinstance of Db {\n\t\tname: x;\n\t}\n\tinstance of Db {\n\t\tname: x;\n\t}\n}\n");
    assert_eq!(codes(&d), vec![Code::CO_ALREADY_DEFINED_INSTANCE; 2]);
}

#[test]
fn instance_rules() {
    let (g, _) = graph(GRAPH);
    let r = Resolved::new(&g);
    let text = "instance of Tomcat {\n\tname: orphan;\n}\ninstance of VM {\n\tname: vm;\n\tinstance of War {\n\t\tname: misplaced;\n\t}\n\tinstance of Tomcat {\n\t\tname: t;\n\t\tnope: 1;\n\t}\n}\n";
    let (set, d) = instances(&g, text);
    assert!(d.is_empty(), "{d:?}");
    let v = validate_instances(&g, &r, &set);
    assert_eq!(
        codes(&v),
        vec![
            Code::RM_MISSING_INSTANCE_PARENT,
            Code::RM_INVALID_INSTANCE_PARENT,
            Code::RM_MAGIC_INSTANCE_VARIABLE
        ]
    );
    assert_eq!(v.iter().map(|x| x.line).collect::<Vec<_>>(), vec![1, 6, 9]);
}

#[test]
fn final_exports_of_an_instance() {
    let (g, _) = graph(GRAPH);
    let r = Resolved::new(&g);
    let (set, d) = instances(&g, "instance of VM {\n\tname: vm 1;\n\tinstance of Tomcat {\n\t\tname: tomcat;\n\t\tport: 8080;\n\t\tTomcat.ajp: 9009;\n\t\tinstance of War {\n\t\t\tname: shop;\n\t\t}\n\t}\n}\n");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        codes(&validate_instances(&g, &r, &set)),
        vec![Code::RM_AMBIGUOUS_OVERRIDING],
        "a bare `port` stands for Tomcat.port and http.port"
    );
    let t = set.find("/vm 1/tomcat").expect("tomcat");
    let e = instance_exports(&g, &r, &set, t, Some("10.1.2.3"));
    let get = |k: &str| e.get(k).cloned().flatten();
    assert_eq!(
        get("Tomcat.port").as_deref(),
        Some("8080"),
        "a bare override sets every name"
    );
    assert_eq!(get("http.port").as_deref(), Some("8080"));
    assert_eq!(get("Tomcat.ajp").as_deref(), Some("9009"));
    assert_eq!(get("http.ip").as_deref(), Some("10.1.2.3"));
    let w = set.find("/vm 1/tomcat/shop").expect("war");
    let e = instance_exports(&g, &r, &set, w, None);
    assert_eq!(
        e.get("War.context").cloned().flatten().as_deref(),
        Some("/shop")
    );
    assert_eq!(
        e.get("War.path").cloned().flatten().as_deref(),
        Some("vm_1_tomcat_shop")
    );
}

#[test]
fn imports_match_the_exporters_that_are_up() {
    let (g, _) = graph(GRAPH);
    let r = Resolved::new(&g);
    let view = &r.views[g.component("Tomcat").expect("Tomcat")];
    let exporter = |path: &str, comp: &str, vars: &[(&str, &str)]| Exporter {
        path: path.into(),
        component: comp.into(),
        exports: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    let none = match_imports(view, "/vm/t", &[]);
    assert!(!none.satisfied());
    assert_eq!(none.missing, vec!["Db"]);
    let db = exporter(
        "/vm/db",
        "Db",
        &[
            ("Db.ip", "10.0.0.1"),
            ("Db.port", "5432"),
            ("deployable.team", "x"),
        ],
    );
    let cache = exporter(
        "/vm/cache",
        "Cache",
        &[("Cache.ip", "10.0.0.2"), ("Cache.port", "6379")],
    );
    let me = exporter("/vm/t", "Tomcat", &[("Tomcat.port", "80")]);
    let m = match_imports(view, "/vm/t", &[db, cache, me]);
    assert!(m.satisfied());
    let dbs = &m.by_prefix["Db"];
    assert_eq!(dbs.len(), 1);
    assert_eq!(
        dbs[0].variables.len(),
        2,
        "only the imported variables: {:?}",
        dbs[0].variables
    );
    assert_eq!(
        m.by_prefix["Cache"][0].variables.len(),
        2,
        "a wildcard takes every variable of the prefix"
    );
    assert!(!m.by_prefix.contains_key("Tomcat"));
}
