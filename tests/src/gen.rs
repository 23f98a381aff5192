//! Generators of large, valid applications. `Shape` says how big; `application` returns
//! the project's files (path → text) and `write` puts them in a folder. The graph has
//! machine (root) components, facet hierarchies, component extension, mandatory,
//! optional and wildcard imports, default values and random ports; the instances use
//! nesting, overrides and `count:`.

use roboconf_core::rng::Rng;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// How big an application to make.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Components, root ones included.
    pub components: usize,
    /// Root (machine) components among them.
    pub roots: usize,
    pub facets: usize,
    /// Instances in all, roots included (approximately: rounded to whole machines).
    pub instances: usize,
}

impl Shape {
    /// The figure of the model benchmark: 200 components, 10,000 instances.
    pub const BENCH: Shape = Shape {
        components: 200,
        roots: 10,
        facets: 20,
        instances: 10_000,
    };
}

/// The project files of a generated application, by relative path.
pub fn application(seed: u64, shape: Shape) -> BTreeMap<String, String> {
    let mut rng = Rng::new(seed);
    let roots = shape.roots.clamp(1, shape.components.max(1));
    let services = shape.components.saturating_sub(roots).max(1);
    let mut files = BTreeMap::new();
    let mut graph = String::from("# Generated application: machines, facets and services.\n\n");
    // Facets: a forest where each facet may extend an earlier one.
    for f in 0..shape.facets {
        let _ = writeln!(graph, "facet f{f} {{");
        if f > 0 && rng.chance(0.5) {
            let _ = writeln!(graph, "\textends: f{};", rng.below(f));
        }
        let _ = writeln!(graph, "\texports: f{f}_v = {f};\n}}\n");
    }
    // Roots: machines that may host any service.
    let all_services: Vec<String> = (0..services).map(|s| format!("S{s}")).collect();
    for r in 0..roots {
        let _ = writeln!(
            graph,
            "VM{r} {{\n\tinstaller: target;\n\texports: ip, zone = z{r};\n\tchildren: {};\n}}\n",
            all_services.join(", ")
        );
    }
    // Services: each exports a port and a value, may extend an earlier service, may have
    // facets, and imports from earlier services (mandatory, optional or wildcard).
    for s in 0..services {
        let _ = writeln!(graph, "S{s} {{");
        let extends = s > 0 && rng.chance(0.1);
        if extends {
            let _ = writeln!(graph, "\textends: S{};", rng.below(s));
        } else {
            let _ = writeln!(graph, "\tinstaller: script;");
        }
        if shape.facets > 0 && rng.chance(0.4) {
            let _ = writeln!(graph, "\tfacets: f{};", rng.below(shape.facets));
        }
        if rng.chance(0.2) {
            let _ = writeln!(
                graph,
                "\texports: ip, random[port] port, name = \"s {s}; v1\";"
            );
        } else {
            let _ = writeln!(graph, "\texports: ip, port = {}, name = s{s};", 10_000 + s);
        }
        if s > 0 {
            let target = rng.below(s);
            match rng.below(3) {
                0 => {
                    let _ = writeln!(graph, "\timports: S{target}.ip, S{target}.port;");
                }
                1 => {
                    let _ = writeln!(graph, "\timports: S{target}.* (optional);");
                }
                _ => {
                    let _ = writeln!(
                        graph,
                        "\timports: S{target}.name (optional), S{target}.port (optional);"
                    );
                }
            }
        }
        let _ = writeln!(graph, "}}\n");
    }
    files.insert("graph/main.graph".to_string(), graph);
    // Instances: machines with services under them; some machines use `count:`.
    let per_machine = (shape.instances / 1000).clamp(1, 50);
    let machines = shape.instances.div_ceil(per_machine + 1).max(1);
    let mut inst = String::from("# Generated instances.\n\n");
    let mut m = 0;
    while m < machines {
        let root = rng.below(roots);
        let count = if machines - m >= 10 && rng.chance(0.05) {
            10
        } else {
            1
        };
        let _ = writeln!(inst, "instance of VM{root} {{\n\tname: vm {m}-;");
        if count > 1 {
            let _ = writeln!(inst, "\tcount: {count};");
        }
        for k in 0..per_machine {
            let s = rng.below(services);
            let _ = writeln!(inst, "\tinstance of S{s} {{\n\t\tname: s{k};");
            if rng.chance(0.1) {
                let _ = writeln!(inst, "\t\tS{s}.port: {};", 20_000 + k);
            }
            let _ = writeln!(inst, "\t}}");
        }
        let _ = writeln!(inst, "}}\n");
        m += count;
    }
    files.insert("instances/main.instances".to_string(), inst);
    files.insert(
        "descriptor/application.properties".to_string(),
        format!("application-name = generated-{seed}\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n"),
    );
    // One recipe folder per component, so the project is complete.
    for r in 0..roots {
        files.insert(
            format!("graph/VM{r}/local.target.properties"),
            "id = by-hand\nhandler = embedded\nname = machines started by hand\n".to_string(),
        );
    }
    for s in 0..services {
        files.insert(
            format!("graph/S{s}/scripts/start.sh"),
            "#!/bin/bash\nexit 0\n".to_string(),
        );
    }
    files
}

/// Writes the files under `dir`.
pub fn write(dir: &Path, files: &BTreeMap<String, String>) -> std::io::Result<()> {
    for (rel, text) in files {
        let p = dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, text)?;
    }
    Ok(())
}

/// A three-tier application for life-cycle benchmarks: one database on `vm0`, and on
/// each of `machines` VMs an app server importing it with `webs_per_app` web apps under
/// it — `1 + machines * (1 + webs_per_app)` instances below the roots. With
/// `with_scripts`, every component's scripts are `exit 0`.
pub fn tiers(machines: usize, webs_per_app: usize, with_scripts: bool) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(
        "graph/main.graph".to_string(),
        "VM {\n\tinstaller: target;\n\texports: ip;\n\tchildren: Db, App;\n}\nDb {\n\tinstaller: script;\n\texports: ip, port = 5432;\n}\nApp {\n\tinstaller: script;\n\texports: ip, random[port] port;\n\timports: Db.ip, Db.port;\n\tchildren: Web;\n}\nWeb {\n\tinstaller: script;\n\texports: context = /$(ROBOCONF_INSTANCE_NAME);\n}\n"
            .to_string(),
    );
    let mut inst =
        String::from("instance of VM {\n\tname: vm0;\n\tinstance of Db {\n\t\tname: db;\n\t}\n}\n");
    for m in 1..=machines {
        let _ = writeln!(
            inst,
            "instance of VM {{\n\tname: vm{m};\n\tinstance of App {{\n\t\tname: app;"
        );
        for w in 0..webs_per_app {
            let _ = writeln!(inst, "\t\tinstance of Web {{\n\t\t\tname: web{w};\n\t\t}}");
        }
        let _ = writeln!(inst, "\t}}\n}}");
    }
    files.insert("instances/main.instances".to_string(), inst);
    files.insert(
        "descriptor/application.properties".to_string(),
        "application-name = tiers\napplication-version = 1.0.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n".to_string(),
    );
    files.insert(
        "graph/VM/local.target.properties".to_string(),
        "id = by-hand\nhandler = embedded\nname = machines started by hand\n".to_string(),
    );
    for c in ["Db", "App", "Web"] {
        if with_scripts {
            for a in ["deploy", "start", "stop", "update", "undeploy"] {
                files.insert(
                    format!("graph/{c}/scripts/{a}.sh"),
                    "#!/bin/sh\nexit 0\n".to_string(),
                );
            }
        } else {
            files.insert(
                format!("graph/{c}/scripts/README"),
                "no scripts: every action is a no-op\n".to_string(),
            );
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;
    use roboconf_model::dsl::Limits;
    use roboconf_model::validate::validate_path;

    #[test]
    fn generated_applications_are_valid_and_deterministic() {
        let shape = Shape {
            components: 40,
            roots: 3,
            facets: 6,
            instances: 600,
        };
        let a = application(3, shape);
        assert_eq!(a, application(3, shape));
        assert_ne!(a, application(4, shape));
        let dir = std::env::temp_dir().join(format!("roboconf-sim-gen-{}", std::process::id()));
        write(&dir, &a).expect("write");
        let report = validate_path(&dir, Limits::default()).expect("validate");
        let _ = std::fs::remove_dir_all(&dir);
        let errors: Vec<String> = report
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        assert_eq!(report.summary.components, 40);
        assert!(
            report.summary.instances >= 500,
            "{}",
            report.summary.instances
        );
    }
}
