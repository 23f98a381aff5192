//! Fuzzes the graph path: parse, block checks, graph build, graph validation, and the
//! writer (printing a file that has no error at all, then parsing and printing again,
//! must give the same text).
#![no_main]
use libfuzzer_sys::fuzz_target;
use roboconf_model::dsl::{self, checks, writer, Limits};
use roboconf_model::graph::build_graph_from_defs;
use roboconf_model::graph::rules::{validate_graph, Scope};
use std::path::{Path, PathBuf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = PathBuf::from("fuzz.graph");
    let def = dsl::parse_str(&path, &text, Limits::default());
    let findings = checks::validate_file(&def);
    if findings.iter().all(|d| !d.is_error()) {
        let printed = writer::write_file(&def);
        let again = dsl::parse_str(&path, &printed, Limits::default());
        assert_eq!(writer::write_file(&again), printed, "printing is not stable");
    }
    let build = build_graph_from_defs(&path, Path::new("."), &mut |p| (p == path).then(|| def.clone()));
    if build.complete {
        let _ = validate_graph(&build.graph, Scope { whole_application: true });
    }
});
