//! Fuzzes the autonomic rules parser.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = roboconf_model::rules::parse(&text, Path::new("fuzz.drl"));
});
