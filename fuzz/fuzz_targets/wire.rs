//! Fuzzes the wire decoder and what a replica does with whatever decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use roboconf_core::mesh::replica::Replica;
use roboconf_core::mesh::wire::{decode, Body};
use roboconf_core::mesh::NodeId;

fuzz_target!(|data: &[u8]| {
    let Ok(env) = decode(data, "m") else { return };
    let mut r = Replica::new(NodeId::new("me"), 1);
    match env.body {
        Body::Entries(list) => {
            for e in list {
                let _ = r.apply(e, 1_000);
            }
        }
        Body::Delta(d) => {
            let _ = r.apply_delta(d, 1_000);
        }
        Body::Digest { mask, digest } => {
            let _ = r.delta_in(&digest, 100, mask);
        }
        Body::Buckets(b) => {
            let _ = r.differing(&b);
        }
        _ => {}
    }
    let _ = r.digest();
});
