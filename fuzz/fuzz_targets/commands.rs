//! Fuzzes the commands parser, with a context that knows a few components and instances.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roboconf_model::commands::{self, Context};
use std::path::Path;

struct Ctx;

impl Context for Ctx {
    fn component_exists(&self, name: &str) -> bool {
        matches!(name, "VM" | "Tomcat" | "WAR")
    }
    fn instance_component(&self, path: &str) -> Option<String> {
        match path {
            "/vm" | "/vm 2" => Some("VM".into()),
            "/vm/tomcat" => Some("Tomcat".into()),
            _ => None,
        }
    }
    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
        matches!((parent, child), (None, "VM") | (Some("VM"), "Tomcat") | (Some("Tomcat"), "WAR"))
    }
    fn is_root_component(&self, component: &str) -> bool {
        component == "VM"
    }
    fn instance_paths(&self) -> Vec<String> {
        vec!["/vm".into(), "/vm 2".into(), "/vm/tomcat".into()]
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let file = Path::new("fuzz.commands");
    let (cmds, _) = commands::parse(&text, file, &Ctx);
    let _ = commands::check_executions([(file, &cmds)]);
});
