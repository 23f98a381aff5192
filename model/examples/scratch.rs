use roboconf_model::dsl::{self, checks, writer};
fn main() {
    for arg in std::env::args().skip(1) {
        let p = std::path::Path::new(&arg);
        let d = dsl::parse_file(p, Default::default());
        let diags = checks::validate_file(&d);
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let rt = writer::write_file(&d) == text;
        println!("{} kind={:?} rt={} {:?}", p.display(), d.kind, rt, diags.iter().map(|d| format!("{}@{}", d.code, d.line)).collect::<Vec<_>>());
    }
}
