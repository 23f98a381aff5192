//! Target files as the coordinator reads them (DESIGN §8): every
//! `graph/<Root>/*.target.properties` of a `target` component, with Roboconf's common
//! keys (`id`, `handler`, `name`, `description`) and the handler's own. The handlers this
//! mesh launches machines with (`local`, `embedded`) have their keys checked here, each
//! error with its file and line; Roboconf's other handlers are accepted with a warning
//! (a root using one cannot be deployed by this mesh), and a handler nobody knows is an
//! error.

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
pub const LAUNCHABLE: &[&str] = &["local", "embedded"];

/// Handlers Roboconf knows (or this mesh will) that cannot launch here yet.
const OTHERS: &[&str] = &[
    "docker",
    "netns",
    "in-memory",
    "iaas-ec2",
    "iaas-openstack",
    "iaas-azure",
    "iaas-vmware",
    "iaas-occi",
    "jclouds",
];

const COMMON: &[&str] = &["id", "handler", "name", "description"];

/// Keys of a launchable handler: exact names, and prefixes (`hostkey.<host>`).
fn handler_keys(handler: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match handler {
        "local" => (&["local.binary", "local.dir", "local.join.timeout"], &[]),
        "embedded" => (
            &[
                "embedded.ip",
                "embedded.port",
                "embedded.binary",
                "embedded.remote.dir",
                "scp.user",
                "scp.keyfile",
                "scp.known.hosts.file",
                "scp.disable.host.validation",
                "scp.agent.configdir",
            ],
            &["hostkey."],
        ),
        _ => (&[], &[]),
    }
}

/// The handler's own key prefixes: a key under them that the handler does not have is
/// an error (a typo would otherwise be ignored).
fn owned_prefixes(handler: &str) -> &'static [&'static str] {
    match handler {
        "local" => &["local."],
        "embedded" => &["embedded.", "scp."],
        _ => &[],
    }
}

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
    let (exact, prefixes) = handler_keys(&handler);
    for e in entries {
        let k = e.key.as_str();
        let owned = owned_prefixes(&handler).iter().any(|p| k.starts_with(p));
        let known = COMMON.contains(&k)
            || exact.contains(&k)
            || prefixes
                .iter()
                .any(|p| k.starts_with(p) && k.len() > p.len());
        if owned && !known {
            err(
                Code::X_TARGET_INVALID_PROPERTY,
                e.line,
                format!("the `{handler}` handler has no property `{k}`"),
            );
        }
        let v = e.value.trim();
        let bad = match k {
            "embedded.ip" => v
                .split(',')
                .map(str::trim)
                .find(|a| a.is_empty() || a.parse::<std::net::IpAddr>().is_err())
                .map(|a| format!("`{a}` in `embedded.ip` is not an IP address")),
            "embedded.port" => v
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .is_none()
                .then(|| format!("`embedded.port` must be a port number, not `{v}`")),
            "scp.disable.host.validation" => (!matches!(v, "true" | "false"))
                .then(|| format!("`{k}` must be `true` or `false`, not `{v}`")),
            "local.join.timeout" => v
                .trim_end_matches('s')
                .parse::<u64>()
                .is_err()
                .then(|| format!("`local.join.timeout` must be seconds, not `{v}`")),
            _ => None,
        };
        if let Some(m) = bad {
            err(Code::X_TARGET_INVALID_PROPERTY, e.line, m);
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

    fn app_with(target: &str) -> (Vec<TargetDef>, Vec<Diagnostic>) {
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
        let (app, diags) = load_application(root, Limits::default());
        (app.targets, diags)
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
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.to_string())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].contains("x.target.properties:4:1: error[X_TARGET_INVALID_PROPERTY]"));
        assert!(errors
            .iter()
            .any(|e| e.contains(":5:1:") && e.contains("scp.usr")));
        assert!(errors.iter().any(|e| e.contains(":6:1:")));

        // Roboconf's other handlers, and unknown ones, load with a warning (as in Roboconf).
        for h in ["iaas-ec2", "test"] {
            let (_, diags) = app_with(&format!("id = a\nname = A\nhandler = {h}\n"));
            assert!(!diags.iter().any(|d| d.is_error()), "{diags:?}");
            assert!(
                diags.iter().any(|d| d.to_string().contains("X_TARGET_")),
                "{diags:?}"
            );
        }
    }
}
