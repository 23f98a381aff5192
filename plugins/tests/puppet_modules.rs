//! `modules.properties` with the real Puppet: modules from the application's
//! `puppet-modules/` and the agent's module folders (with a `metadata.json` dependency)
//! linked into the working copy, versions matched, and the Forge used only when allowed
//! and reachable — every failure naming the module and where it was looked for.

mod common;

use common::{have_puppet, plugin, recipe, refused, write_files};
use roboconf_plugins::puppet::{Forge, Puppet};
use roboconf_plugins::{Action, Plugin};
use std::path::Path;
use std::time::Duration;

/// A module folder with `metadata.json` (and a class `<name>` writing `$out/<name>`).
fn module(base: &Path, name: &str, version: &str, deps: &[&str], body: &str) {
    let deps: Vec<String> = deps
        .iter()
        .map(|d| format!("{{\"name\": \"{d}\", \"version_requirement\": \">= 1.0.0\"}}"))
        .collect();
    write_files(
        &base.join(name),
        &[
            (
                "metadata.json",
                &format!(
                    "{{\"name\": \"roboconf-{name}\", \"version\": \"{version}\", \
                     \"author\": \"roboconf\", \"license\": \"Apache-2.0\", \
                     \"summary\": \"test\", \"source\": \"none\", \
                     \"dependencies\": [{}]}}",
                    deps.join(", ")
                ),
            ),
            (
                "manifests/init.pp",
                &format!("class {name}($out) {{\n{body}\n}}\n"),
            ),
        ],
    );
}

#[test]
fn listed_modules_come_from_the_application_and_the_agent_without_the_forge() {
    if !have_puppet() {
        return;
    }
    let r = recipe(&[
        (
            "modules.properties",
            "# shipped with the application\nroboconf-helper = 1.0.0\n",
        ),
        (
            "roboconf_app_module/manifests/init.pp",
            "class roboconf_app_module($runningState = undef, $out = undef, $db = undef) {\n\
             class { 'helper': out => $out }\n}\n",
        ),
    ]);
    module(
        &r.app.join("puppet-modules"),
        "helper",
        "1.0.0",
        &["roboconf/dep"],
        "class { 'dep': out => $out }\nfile { \"${out}/helper\": content => 'h' }",
    );
    let agent_dir = r.app.parent().expect("tmp").join("agent-modules");
    module(
        &agent_dir,
        "dep",
        "1.2.0",
        &[],
        "file { \"${out}/dep\": content => 'd' }",
    );
    let p = Puppet {
        module_dirs: vec![agent_dir.clone()],
        ..plugin()
    };
    let out = p.run(Action::Deploy, &r.inv(&[])).expect("deploy");
    assert!(
        r.out.join("helper").exists() && r.out.join("dep").exists(),
        "{}",
        out.output
    );
    assert!(
        out.output.contains("module roboconf-helper 1.0.0"),
        "{}",
        out.output
    );
    assert_eq!(
        std::fs::read_link(r.work.join("dep")).expect("dep linked"),
        agent_dir.join("dep")
    );

    // A version nobody has: named with every place looked in; the Forge is off.
    let r2 = recipe(&[
        ("modules.properties", "roboconf-helper = 2.0.0\n"),
        (
            "roboconf_app_module/manifests/init.pp",
            "class roboconf_app_module {}",
        ),
    ]);
    module(&r2.app.join("puppet-modules"), "helper", "1.0.0", &[], "");
    refused(
        p.run(Action::Deploy, &r2.inv(&[])),
        &[
            "roboconf-helper 2.0.0",
            "modules.properties",
            "(version 1.0.0, not 2.0.0)",
            &agent_dir.join("helper").display().to_string(),
            "forge = false",
        ],
    );
    // Not a Forge name.
    let r3 = recipe(&[
        ("modules.properties", "stdlib = \n"),
        (
            "roboconf_app_module/manifests/init.pp",
            "class roboconf_app_module {}",
        ),
    ]);
    refused(
        p.run(Action::Deploy, &r3.inv(&[])),
        &["not a Forge module name"],
    );
}

#[test]
fn the_forge_is_used_only_when_allowed_and_reachable() {
    if !have_puppet() {
        return;
    }
    let r = recipe(&[
        ("modules.properties", "thias-sysctl = 0.3.0\n"),
        (
            "roboconf_app_module/manifests/init.pp",
            "class roboconf_app_module {}",
        ),
    ]);
    // Out of reach: said at once, without running `puppet module install`.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let p = Puppet {
        forge: Forge {
            allowed: true,
            url: Some(format!("http://127.0.0.1:{port}")),
            probe_timeout: Duration::from_secs(2),
        },
        ..plugin()
    };
    refused(
        p.run(Action::Deploy, &r.inv(&[])),
        &["thias-sysctl 0.3.0", "cannot be reached"],
    );
    // Reachable but not a Forge: `puppet module install` runs and its failure is named.
    let fake = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", fake.local_addr().expect("addr"));
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in fake.incoming().flatten().take(64) {
            let mut s = s;
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let p = Puppet {
        forge: Forge {
            url: Some(url.clone()),
            ..p.forge.clone()
        },
        ..p
    };
    refused(
        p.run(Action::Deploy, &r.inv(&[])),
        &["could not be installed from the Forge", &url],
    );
}
