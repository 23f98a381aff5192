//! Fuzzes the instances path against a fixed graph: parse, block checks, instance build
//! (nesting, `count:` expansion, unique paths) and instance validation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roboconf_model::dsl::{self, Limits};
use roboconf_model::graph::{build_graph_from_defs, Graph};
use roboconf_model::instances::build_instances_from_defs;
use roboconf_model::instances::rules::validate_instances;
use roboconf_model::resolve::Resolved;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const GRAPH: &str = "VM {\n\tinstaller: target;\n\tchildren: Tomcat, db;\n}\nTomcat {\n\tinstaller: script;\n\texports: ip, port = 8080, random[port] ajp;\n\tfacets: web;\n\tchildren: WAR;\n}\nWAR {\n\tinstaller: script;\n\timports: Tomcat.*;\n}\ndb {\n\textends: Tomcat;\n}\nfacet web {\n\texports: url;\n}\n";

fn graph() -> &'static (Graph, Resolved) {
    static G: OnceLock<(Graph, Resolved)> = OnceLock::new();
    G.get_or_init(|| {
        let p = PathBuf::from("g.graph");
        let b = build_graph_from_defs(&p, Path::new("."), &mut |x| (x == p).then(|| dsl::parse_str(x, GRAPH, Limits::default())));
        let r = Resolved::new(&b.graph);
        (b.graph, r)
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (g, r) = graph();
    let path = PathBuf::from("fuzz.instances");
    // Fewer instances than in production, so one input stays fast.
    let limits = Limits { max_bytes: 1 << 20, max_depth: 64 };
    let build = build_instances_from_defs(g, &path, Path::new("."), &mut |p| (p == path).then(|| dsl::parse_str(p, &text, limits)));
    if build.diagnostics.iter().all(|d| !d.is_error()) && build.set.instances.len() < 20_000 {
        let _ = validate_instances(g, r, &build.set);
    }
});
