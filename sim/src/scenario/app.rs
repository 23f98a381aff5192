//! The application every scenario runs: exporters on their own machines, a balancer
//! importing them all and a web front that needs one, and optionally roots whose
//! machines the coordinator launches — written to a temporary folder and loaded with
//! the real model.

use roboconf_core::engine::LoadedApp;

/// The application's name.
pub const APP: &str = "sim";

/// The application: `exporters` machines each with an exporter, one more with a balancer
/// importing them all (optional import) and a web front that needs one (mandatory
/// import); other nodes host nothing but follow it all.
pub fn application(exporters: usize) -> LoadedApp {
    application_with(exporters, 0)
}

/// `application`, with `boxes` more roots of a `Box` component whose target is `local`:
/// the coordinator launches their machines.
pub fn application_with(exporters: usize, boxes: usize) -> LoadedApp {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "roboconf-sim-app-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let w = |rel: &str, text: &str| {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(p, text);
    };
    w(
        "descriptor/application.properties",
        "application-name = sim\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    );
    w(
        "graph/main.graph",
        "VM {\n\tinstaller: target;\n\tchildren: Src, Lb, Web;\n}\nBox {\n\tinstaller: target;\n\tchildren: Src;\n}\nSrc {\n\tinstaller: script;\n\texports: v = 1;\n}\nLb {\n\tinstaller: script;\n\timports: Src.v (optional);\n}\nWeb {\n\tinstaller: script;\n\timports: Src.v;\n}\n",
    );
    w(
        "graph/Box/box.target.properties",
        "id = box\nhandler = local\nname = simulated machine\n",
    );
    w(
        "graph/VM/t.target.properties",
        "id = l\nhandler = l\nname = l\n",
    );
    if boxes > 0 {
        // Autonomic: grow and shrink the boxes on load, a tick file written on demand.
        for (rule, event, sleep) in crate::cluster::RULES {
            w(
                &format!("rules.autonomic/{rule}.drl"),
                &format!("rule \"{rule}\"\nsleep period is {sleep}s\nwhen\n\t{event}\nthen\n\t{rule}\nend\n"),
            );
        }
        w(
            "commands/grow.commands",
            "define N = extra $(SMART_INDEX)\ncreate Box as $(N)\nchange status of /$(N) to DEPLOYED_STARTED\n",
        );
        w(
            "commands/shrink.commands",
            "define L = extra $(EXISTING_INDEX MAX)\nundeploy all /$(L)\ndelete /$(L)\n",
        );
        w(
            "commands/tick.commands",
            "define T = $(MILLI_TIME)\nappend tick $(T) into %TMP%/ticks\n",
        );
    }
    let mut inst = String::new();
    for k in 0..exporters {
        inst.push_str(&format!(
            "instance of VM {{\n\tname: vm{k};\n\tinstance of Src {{\n\t\tname: src;\n\t}}\n}}\n"
        ));
    }
    inst.push_str(&format!(
        "instance of VM {{\n\tname: vm{exporters};\n\tinstance of Lb {{\n\t\tname: lb;\n\t}}\n\tinstance of Web {{\n\t\tname: web;\n\t}}\n}}\n"
    ));
    for k in 0..boxes {
        // Not deployed until the scenario says so.
        inst.push_str(&format!(
            "instance of Box {{\n\tname: box{k};\n\tinstance of Src {{\n\t\tname: src;\n\t}}\n}}\n"
        ));
    }
    w("instances/main.instances", &inst);
    let mut app = crate::engine::load(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    // Shared with the mesh only with a bundle hash (the nodes "fetch" it from the model).
    // A bundle's name is a SHA-256 in hex (peers fetch nothing else).
    app.hash = format!("{exporters:064x}");
    app
}
