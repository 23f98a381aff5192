//! Fuzzes the properties reader and the application descriptor checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roboconf_model::descriptor::Descriptor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Descriptor::parse(Path::new("application.properties"), &text);
});
