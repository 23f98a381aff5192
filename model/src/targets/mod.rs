//! Target files as the coordinator reads them (DESIGN §8): every
//! `graph/<Root>/*.target.properties` of a `target` component, with Roboconf's common
//! keys (`id`, `handler`, `name`, `description`) and the handler's own. The handlers this
//! mesh launches machines with (`local`, `embedded`, `docker`, `netns`) have their keys
//! checked here, each error with its file and line: a key under the handler's prefix
//! that it does not have, and values it cannot use (addresses, ports, timeouts; for
//! `docker` its endpoint, image, the Dockerfile folder of `docker.generate.image.from`,
//! the `docker.option.run.*` options and `docker.option.env.*` variables; for `netns` its
//! subnet, bridge and an address inside the subnet). Roboconf's `docker` keys this mesh
//! reads nothing from (registry credentials, `docker.run.exec`, the older image
//! generation) are a warning. Roboconf's other handlers are accepted with a warning (a
//! root using one cannot be deployed by this mesh), and so is a handler nobody knows.

mod keys;

/// The run options of the `docker` handler (`docker.option.run.<opt>`), dashed.
pub use keys::RUN_OPTIONS;

use crate::diag::{Code, Diagnostic};
use crate::graph::Graph;
use crate::props;
use std::collections::BTreeMap;
use std::path::Path;

/// One target file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDef {
    /// The component whose recipe folder holds it.
    pub component: String,
    /// Its path inside the application (`graph/VM/local.target.properties`).
    pub file: String,
    pub id: String,
    pub name: String,
    pub handler: String,
    /// Every key, common ones included.
    pub properties: BTreeMap<String, String>,
}

/// Handlers this mesh launches machines with.
pub const LAUNCHABLE: &[&str] = &["local", "embedded", "docker", "netns"];

/// Handlers Roboconf knows that cannot launch here.
const OTHERS: &[&str] = &[
    "in-memory",
    "iaas-ec2",
    "iaas-openstack",
    "iaas-azure",
    "iaas-vmware",
    "iaas-occi",
    "jclouds",
];

/// Keys every handler has; `agent.sha256` pins the agent build new machines run (the
/// mesh carries it from a member that runs it).
const COMMON: &[&str] = &["id", "handler", "name", "description", "agent.sha256"];

/// Reads the target files of every `target` component of `g` in the project `dir`.
pub fn load_targets(g: &Graph, dir: &Path) -> (Vec<TargetDef>, Vec<Diagnostic>) {
    let mut defs = Vec::new();
    let mut out = Vec::new();
    for (c, comp) in g.components.iter().enumerate() {
        let installer = comp.installer.as_deref().unwrap_or("");
        if !installer.eq_ignore_ascii_case("target") {
            continue;
        }
        let Some(rdir) = crate::recipes::recipe_dir(g, c, dir) else {
            continue;
        };
        for f in crate::recipes::properties_files(&rdir) {
            let Ok(bytes) = std::fs::read(&f) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            let entries = props::parse(&text);
            if let Some(def) = check(&comp.name, &f, dir, &entries, &mut out) {
                defs.push(def);
            }
        }
    }
    (defs, out)
}

fn check(
    component: &str,
    f: &Path,
    dir: &Path,
    entries: &[props::Entry],
    out: &mut Vec<Diagnostic>,
) -> Option<TargetDef> {
    let get = |k: &str| props::get(entries, k).map(|e| e.value.trim().to_string());
    let handler = get("handler").filter(|h| !h.is_empty())?;
    let id = get("id").filter(|i| !i.is_empty())?;
    let line_of = |k: &str| props::get(entries, k).map_or(1, |e| e.line);
    let mut err = |code: Code, line: usize, msg: String| {
        out.push(Diagnostic::new(code, f, line, 1, msg));
    };
    if !LAUNCHABLE.contains(&handler.as_str()) {
        if OTHERS.contains(&handler.as_str()) {
            err(
                Code::X_TARGET_HANDLER_NOT_SUPPORTED,
                line_of("handler"),
                format!(
                    "this mesh cannot launch machines with the `{handler}` handler (it can with {}): a root using this target cannot be deployed",
                    LAUNCHABLE.join(", ")
                ),
            );
        } else {
            err(
                Code::X_TARGET_UNKNOWN_HANDLER,
                line_of("handler"),
                format!(
                    "unknown target handler `{handler}` (known: {}, {})",
                    LAUNCHABLE.join(", "),
                    OTHERS.join(", ")
                ),
            );
            return None;
        }
    }
    let keys = keys::keys(&handler);
    for e in entries {
        let k = e.key.as_str();
        let v = e.value.trim();
        if let Some(why) = keys::ignored(&handler, k) {
            err(
                Code::X_TARGET_IGNORED_PROPERTY,
                e.line,
                format!("`{k}` is ignored by this mesh's `{handler}` handler: {why}"),
            );
            continue;
        }
        let owned = keys.owned.iter().any(|p| k.starts_with(p));
        let known = COMMON.contains(&k)
            || keys.exact.contains(&k)
            || keys
                .prefixes
                .iter()
                .any(|p| k.starts_with(p) && k.len() > p.len());
        if owned && !known {
            err(
                Code::X_TARGET_INVALID_PROPERTY,
                e.line,
                format!("the `{handler}` handler has no property `{k}`"),
            );
        } else if known {
            if let Some(m) = keys::check_value(k, v, f, entries) {
                err(Code::X_TARGET_INVALID_PROPERTY, e.line, m);
            }
        }
    }
    let file = f
        .strip_prefix(dir)
        .unwrap_or(f)
        .to_string_lossy()
        .into_owned();
    Some(TargetDef {
        component: component.to_string(),
        file,
        name: get("name").unwrap_or_default(),
        id,
        handler,
        properties: entries
            .iter()
            .map(|e| (e.key.clone(), e.value.trim().to_string()))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::load_application;
    use crate::dsl::Limits;

    /// Loads an application whose root `VM` has the target file `target`
    /// (`graph/VM/x.target.properties`), after writing `files` (path from the application
    /// folder, text).
    fn app_with_files(target: &str, files: &[(&str, &str)]) -> (Vec<TargetDef>, Vec<Diagnostic>) {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        std::fs::create_dir_all(root.join("descriptor")).expect("mkdir");
        std::fs::create_dir_all(root.join("graph/VM")).expect("mkdir");
        std::fs::write(
            root.join("descriptor/application.properties"),
            "application-name = t\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\n",
        )
        .expect("write");
        std::fs::write(
            root.join("graph/main.graph"),
            "VM {\n\tinstaller: target;\n}\n",
        )
        .expect("write");
        std::fs::write(root.join("graph/VM/x.target.properties"), target).expect("write");
        for (path, text) in files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let (app, diags) = load_application(root, Limits::default());
        (app.targets, diags)
    }

    fn app_with(target: &str) -> (Vec<TargetDef>, Vec<Diagnostic>) {
        app_with_files(target, &[])
    }

    fn errors(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect()
    }

    /// The one error of a target file whose line 3 is `key = value`.
    fn one_error(handler: &str, key: &str, value: &str) -> String {
        let (_, diags) = app_with(&format!(
            "id = t\nhandler = {handler}\n{key} = {value}\nname = T\n"
        ));
        let errors = errors(&diags);
        assert_eq!(errors.len(), 1, "{key} = {value}: {errors:?}");
        assert!(
            errors[0].contains("x.target.properties:3:1: error[X_TARGET_INVALID_PROPERTY]"),
            "{key} = {value}: {errors:?}"
        );
        errors[0].clone()
    }

    #[test]
    fn launchable_handlers_have_their_keys_checked_with_file_and_line() {
        let (defs, diags) = app_with("id = a\nname = A\nhandler = local\n");
        assert_eq!(defs.len(), 1, "{diags:?}");
        assert_eq!(
            (defs[0].handler.as_str(), defs[0].id.as_str()),
            ("local", "a")
        );
        assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");

        let text = "id = e\nname = E\nhandler = embedded\nembedded.ip = 127.0.0.2, nope\nscp.usr = x\nembedded.port = 0\nhostkey.127.0.0.2 = SHA256:x\n";
        let (_, diags) = app_with(text);
        let errors = errors(&diags);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("x.target.properties:4:1: error[X_TARGET_INVALID_PROPERTY]"));
        assert!(errors
            .iter()
            .any(|e| e.contains(":5:1:") && e.contains("scp.usr")));
        assert!(errors.iter().any(|e| e.contains(":6:1:")));

        // Roboconf's other handlers, and unknown ones, load with a warning (as in Roboconf).
        for h in ["iaas-ec2", "in-memory", "jclouds", "test"] {
            let (_, diags) = app_with(&format!("id = a\nname = A\nhandler = {h}\n"));
            assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
            assert!(
                diags.iter().any(|d| d.to_string().contains("X_TARGET_")),
                "{diags:?}"
            );
        }
        assert!(LAUNCHABLE.contains(&"docker") && LAUNCHABLE.contains(&"netns"));
        assert!(!OTHERS.contains(&"docker") && !OTHERS.contains(&"netns"));
    }

    #[test]
    fn a_docker_target_with_good_keys_validates() {
        let text = "id = d\nname = D\nhandler = docker\n\
            docker.endpoint = unix:///var/run/docker.sock\n\
            docker.image = roboconf/agent:1.0\n\
            docker.generate.image.from = ./img\n\
            docker.agent.listen = /ip4/0.0.0.0/tcp/4001\n\
            docker.option.run.hostname = vm1\n\
            docker.option.run.network-mode = container:other\n\
            docker.option.run.memory = 512m\n\
            docker.option.run.memory_swap = -1\n\
            docker.option.run.cpuShares = 512\n\
            docker.option.run.cpus = 1.5\n\
            docker.option.run.cpuset-cpus = 0-3,5\n\
            docker.option.run.binds = /srv:/data:ro, cache:/cache\n\
            docker.option.run.volumes = /a:/b\n\
            docker.option.run.restart-policy = on-failure:3\n\
            docker.option.run.cap-add = SYS_PTRACE, NET_ADMIN\n\
            docker.option.run.capdrop = MKNOD\n\
            docker.option.run.privileged = false\n\
            docker.option.run.user = 1000:1000\n\
            docker.option.run.dns = 10.0.0.2, ::1\n\
            docker.option.run.extra-hosts = db:10.0.0.3, v6:fe80::1\n\
            docker.option.env.APP = <application-name>\n\
            docker.option.env.WHERE = <scoped-instance-path> over <scoped-messaging_type> <B>\n";
        let (defs, diags) = app_with_files(text, &[("graph/VM/img/Dockerfile", "FROM x\n")]);
        assert_eq!(defs.len(), 1, "{diags:?}");
        assert!(diags.is_empty(), "{diags:?}");

        for (k, v) in [
            ("docker.endpoint", "/var/run/docker.sock"),
            ("docker.endpoint", "tcp://localhost:2375"),
            ("docker.endpoint", "http://localhost:4243"),
            ("docker.option.run.network-mode", "host"),
            ("docker.option.run.memory", "1G"),
            ("docker.option.run.memory", "1048576"),
            ("docker.option.run.restart-policy", "unless-stopped"),
            ("docker.option.run.cpus", ".5"),
            ("docker.agent.listen", "/ip6/::/tcp/4001"),
        ] {
            let (_, diags) = app_with(&format!("id = t\nhandler = docker\n{k} = {v}\nname = T\n"));
            assert!(diags.is_empty(), "{k} = {v}: {diags:?}");
        }
    }

    #[test]
    fn each_bad_docker_key_is_an_error_at_its_line() {
        let text = "id = d\nhandler = docker\n\
            docker.endpoint = ftp://host:21\n\
            docker.image = a b\n\
            docker.imag = x\n\
            docker.option.run.cpu-shares = 1\n\
            docker.option.run.mem = 1g\n\
            docker.option.env.1X = y\n\
            docker.agent.listen = 0.0.0.0:4001\n\
            docker.option.run. = x\nname = D\n";
        let (_, diags) = app_with(text);
        let errors = errors(&diags);
        assert_eq!(errors.len(), 8, "{errors:?}");
        for (i, e) in errors.iter().enumerate() {
            assert!(
                e.contains(&format!(
                    "x.target.properties:{}:1: error[X_TARGET_INVALID_PROPERTY]",
                    i + 3
                )),
                "{errors:?}"
            );
        }
        assert!(errors[2].contains("the `docker` handler has no property `docker.imag`"));
        assert!(errors[4].contains("network-mode") && errors[4].contains("extra-hosts"));

        for (k, v) in [
            ("docker.endpoint", "tcp://localhost:0"),
            ("docker.endpoint", "tcp://localhost"),
            ("docker.endpoint", "http://:80"),
            ("docker.endpoint", "unix://relative"),
            ("docker.endpoint", "docker.sock"),
            ("docker.image", ""),
            ("docker.option.run.hostname", ""),
            ("docker.option.run.network-mode", "container:"),
            ("docker.option.run.memory", "12q"),
            ("docker.option.run.memory", "-1"),
            ("docker.option.run.memory-swap", "1gb"),
            ("docker.option.run.cpu-shares", "x"),
            ("docker.option.run.cpus", "0"),
            ("docker.option.run.cpus", "inf"),
            ("docker.option.run.cpuset-cpus", "3-1"),
            ("docker.option.run.binds", "/a"),
            ("docker.option.run.binds", "/a:b"),
            ("docker.option.run.volumes", "/a:/b:rx"),
            ("docker.option.run.restart-policy", "sometimes"),
            ("docker.option.run.cap-add", "SYS PTRACE"),
            ("docker.option.run.cap-drop", "A,,B"),
            ("docker.option.run.privileged", "yes"),
            ("docker.option.run.dns", "8.8.8.8, dns.local"),
            ("docker.option.run.extra-hosts", "db=10.0.0.3"),
            ("docker.option.env.A-B", "x"),
            ("docker.agent.listen", "/ip4/::/tcp/1"),
            ("docker.agent.listen", "/dns4/x/tcp/1"),
        ] {
            one_error("docker", k, v);
        }
        let e = one_error(
            "docker",
            "docker.option.env.X",
            "<application-name>/<instance-name>",
        );
        assert!(e.contains("`<instance-name>`") && e.contains("<scoped-messaging_type>"));
    }

    #[test]
    fn docker_keys_this_mesh_ignores_are_warnings() {
        let text = "id = d\nhandler = docker\ndocker.user = u\ndocker.password = p\n\
            docker.email = e@x\ndocker.version = 1.24\ndocker.run.exec = [\"/bin/sh\"]\n\
            docker.generate.image = true\nname = D\n";
        let (_, diags) = app_with(text);
        assert_eq!(diags.len(), 6, "{diags:?}");
        for (i, d) in diags.iter().enumerate() {
            assert!(
                d.to_string().contains(&format!(
                    "x.target.properties:{}:1: warning[X_TARGET_IGNORED_PROPERTY]",
                    i + 3
                )),
                "{diags:?}"
            );
        }
        assert!(diags[0].message.contains("never pulls images"));
        assert!(diags[4].message.contains("always runs the agent"));
    }

    #[test]
    fn docker_generate_image_from_needs_a_folder_with_a_dockerfile() {
        let text = "id = d\nhandler = docker\ndocker.generate.image.from = img\nname = D\n";
        let (_, diags) = app_with(text);
        let e = errors(&diags);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(":3:1: error[X_TARGET_INVALID_PROPERTY]")
                && e[0].contains("no folder")
                && e[0].contains("graph/VM/img"),
            "{e:?}"
        );

        let (_, diags) = app_with_files(text, &[("graph/VM/img/README", "x")]);
        let e = errors(&diags);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(":3:1: error[X_TARGET_INVALID_PROPERTY]")
                && e[0].contains("graph/VM/img/Dockerfile"),
            "{e:?}"
        );

        let (_, diags) = app_with_files(text, &[("graph/VM/img/Dockerfile", "FROM x\n")]);
        assert!(diags.is_empty(), "{diags:?}");

        let abs = tempfile::tempdir().expect("tempdir");
        std::fs::write(abs.path().join("Dockerfile"), "FROM x\n").expect("write");
        let text = format!(
            "id = d\nhandler = docker\ndocker.generate.image.from = {}\nname = D\n",
            abs.path().display()
        );
        let (_, diags) = app_with(&text);
        assert!(diags.is_empty(), "{diags:?}");
    }

    #[test]
    fn netns_targets_have_their_keys_checked() {
        let text = "id = n\nname = N\nhandler = netns\nnetns.subnet = 10.42.0.0/24\n\
            netns.bridge = rbc-br0\nnetns.address = 10.42.0.7\nnetns.binary = /usr/bin/roboconf\n\
            netns.dir = /tmp/n\nnetns.join.timeout = 30s\n";
        let (defs, diags) = app_with(text);
        assert_eq!(defs.len(), 1, "{diags:?}");
        assert!(diags.is_empty(), "{diags:?}");
        let (_, diags) =
            app_with("id = n\nhandler = netns\nnetns.address = 192.168.1.2\nname = N\n");
        assert!(diags.is_empty(), "{diags:?}");

        let text = "id = n\nhandler = netns\nnetns.subnet = 10.42.0.0/24\n\
            netns.bridge = a-bridge-name-too-long\nnetns.address = 10.43.0.7\n\
            netns.join.timeout = soon\nnetns.ip = 10.42.0.8\nname = N\n";
        let (_, diags) = app_with(text);
        let errors = errors(&diags);
        assert_eq!(errors.len(), 4, "{errors:?}");
        for (i, e) in errors.iter().enumerate() {
            assert!(
                e.contains(&format!(
                    "x.target.properties:{}:1: error[X_TARGET_INVALID_PROPERTY]",
                    i + 4
                )),
                "{errors:?}"
            );
        }
        assert!(errors[1].contains("not inside"));
        assert!(errors[3].contains("no property `netns.ip`"));

        for (k, v) in [
            ("netns.subnet", "10.0.0.0/31"),
            ("netns.subnet", "10.0.0.0/7"),
            ("netns.subnet", "10.0.0.0"),
            ("netns.subnet", "fd00::/64"),
            ("netns.bridge", ""),
            ("netns.bridge", "br 0"),
            ("netns.address", "fd00::1"),
        ] {
            one_error("netns", k, v);
        }
    }
}
