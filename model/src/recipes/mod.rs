//! Recipe folders under `graph/`: one per component, named like it (an extending
//! component may use the one of what it extends). A missing folder is a warning (the component then does nothing on this agent); a `target` component's
//! `*.target.properties` must have an id, a handler and (preferably) a name, with ids
//! unique; a `script` component with files must have a `scripts/` folder; Puppet
//! recipes are checked in `recipes/puppet.rs`.

use crate::diag::{Code, Diagnostic};
use crate::dsl::text::is_blank;
use crate::graph::Graph;
use crate::props;
use std::collections::BTreeSet;
use std::path::Path;

mod puppet;

/// The recipe folder of component `c`: its own, else the first one along `extends`.
pub fn recipe_dir(g: &Graph, c: usize, dir: &Path) -> Option<std::path::PathBuf> {
    g.extended_chain(c)
        .into_iter()
        .map(|x| dir.join("graph").join(&g.components[x].name))
        // A link is never followed: it could lead out of the application.
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
}

/// Checks the recipe folder of every component of `g` in the project `dir`.
pub fn validate_recipes(g: &Graph, dir: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (c, comp) in g.components.iter().enumerate() {
        // An extending component may use the recipe of what it extends (as in Roboconf).
        let rdir = recipe_dir(g, c, dir);
        let at = &comp.loc;
        let Some(rdir) = rdir else {
            out.push(Diagnostic::new(
                Code::PROJ_NO_RESOURCE_DIRECTORY,
                &at.file,
                at.line,
                at.col,
                format!(
                    "the component `{}` has no recipe folder `graph/{}/`",
                    comp.name, comp.name
                ),
            ));
            continue;
        };
        let installer = comp.installer.as_deref().unwrap_or("");
        if installer.eq_ignore_ascii_case("target") {
            check_targets(&rdir, &mut out);
        } else if installer.eq_ignore_ascii_case("script") {
            if !crate::app::list_files(&rdir).is_empty()
                && !std::fs::symlink_metadata(rdir.join("scripts")).is_ok_and(|m| m.is_dir())
            {
                out.push(Diagnostic::new(
                    Code::REC_SCRIPT_NO_SCRIPTS_DIR,
                    &at.file,
                    at.line,
                    at.col,
                    format!(
                        "the recipe of `{}` has files but no `scripts/` folder",
                        comp.name
                    ),
                ));
            }
        } else if installer.eq_ignore_ascii_case("puppet") {
            puppet::check_component(g, c, &rdir, &mut out);
        }
    }
    out
}

/// The `*.properties` files of a recipe folder (a target component's target files),
/// sorted.
pub(crate) fn properties_files(rdir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(rdir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "properties"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn check_targets(rdir: &Path, out: &mut Vec<Diagnostic>) {
    let files = properties_files(rdir);
    if files.is_empty() {
        return;
    }
    let mut ids = BTreeSet::new();
    for f in files {
        let text = match std::fs::read(&f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => {
                out.push(Diagnostic::new(
                    Code::REC_TARGET_INVALID_FILE_OR_CONTENT,
                    &f,
                    0,
                    0,
                    format!("cannot read the target file: {e}"),
                ));
                continue;
            }
        };
        let entries = props::parse(&text);
        let value = |k: &str| {
            props::get(&entries, k)
                .map(|e| e.value.clone())
                .filter(|v| !is_blank(v))
        };
        let id = value("id");
        if id.is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_ID,
                &f,
                1,
                1,
                "the target has no `id`",
            ));
        }
        if value("handler").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_HANDLER,
                &f,
                1,
                1,
                "the target has no `handler`",
            ));
        }
        if value("name").is_none() {
            out.push(Diagnostic::new(
                Code::REC_TARGET_NO_NAME,
                &f,
                1,
                1,
                "the target has no `name`",
            ));
        }
        if !ids.insert(id.clone().unwrap_or_default()) {
            out.push(Diagnostic::new(
                Code::REC_TARGET_CONFLICTING_ID,
                &f,
                1,
                1,
                format!("the target id `{}` is used twice", id.unwrap_or_default()),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Severity;
    use crate::dsl::Limits;
    use crate::graph::build_graph;

    /// Validates the recipes of the graph `graph` (`graph/main.graph`) after writing
    /// `files` (path from the application folder, text); a path ending in `/` is a
    /// folder. Returns `CODE@file-name:line` and the diagnostics.
    fn check(graph: &str, files: &[(&str, &str)]) -> (Vec<String>, Vec<Diagnostic>) {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        std::fs::create_dir_all(root.join("graph")).expect("mkdir");
        std::fs::write(root.join("graph/main.graph"), graph).expect("write");
        for (path, text) in files {
            let path = root.join(path);
            if path.to_string_lossy().ends_with('/') {
                std::fs::create_dir_all(&path).expect("mkdir");
                continue;
            }
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let build = build_graph(
            &root.join("graph/main.graph"),
            &root.join("graph"),
            Limits::default(),
        );
        assert!(build.diagnostics.is_empty(), "{:?}", build.diagnostics);
        let diags = validate_recipes(&build.graph, root);
        let short = diags
            .iter()
            .map(|x| {
                let name = x.file.file_name().map(|n| n.to_string_lossy().into_owned());
                format!("{}@{}:{}", x.code, name.unwrap_or_default(), x.line)
            })
            .collect();
        (short, diags)
    }

    const APACHE: &str = "Apache {\n\tinstaller: puppet;\n\timports: Tomcat.ip, Tomcat.portAJP, MySQL.port;\n}\nTomcat {\n\tinstaller: puppet;\n\texports: ip, portAJP = 8009;\n}\nMySQL {\n\tinstaller: puppet;\n\texports: port = 3306;\n}\n";
    const TOMCAT_PP: &str =
        "class roboconf_tomcat($runningState = undef, $importDiff = undef, $ip, $portajp) {}\n";
    const MYSQL_PP: &str =
        "class roboconf_mysql($runningState = undef, $importDiff = undef, $port) {}\n";

    fn with_others<'a>(files: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = vec![
            ("graph/Tomcat/roboconf_tomcat/manifests/init.pp", TOMCAT_PP),
            ("graph/MySQL/roboconf_mysql/manifests/init.pp", MYSQL_PP),
        ];
        all.extend_from_slice(files);
        all
    }

    #[test]
    fn puppet_class_parameters_as_roboconf_checks_them() {
        // init.pp: Puppet 4 types, defaults with commas; no `$importDiff`, no `$mysql`.
        let init = "# class looks_like(\n\nclass roboconf_apache (\n  Optional[String] $runningState = undef,\n  Hash[String, Hash] $tomcat = { 'a' => f(1, 2) },\n) {\n}\n";
        let start = "class roboconf_apache::start($tomcat, $mysql, $importDiff) {}\n";
        let (got, diags) = check(
            APACHE,
            &with_others(&[
                ("graph/Apache/roboconf_apache/manifests/init.pp", init),
                ("graph/Apache/roboconf_apache/manifests/start.pp", start),
                (
                    "graph/Apache/roboconf_apache/manifests/helper.pp",
                    "define helper($a) {}\n",
                ),
                (
                    "graph/Apache/roboconf_apache/manifests/params.pp",
                    "class roboconf_apache::params {\n  $x = f($y)\n}\n",
                ),
            ]),
        );
        assert_eq!(
            got,
            vec![
                "REC_PUPPET_MISSING_PARAM_IMPORT_DIFF@init.pp:3",
                "REC_PUPPET_MISSING_PARAM_FROM_IMPORT@init.pp:3",
                "REC_PUPPET_MISSING_PARAM_RUNNING_STATE@start.pp:1",
            ],
            "{diags:#?}"
        );
        assert!(diags[1]
            .message
            .contains("`$mysql` for the imports of `MySQL`"));
        assert_eq!(diags[1].severity, Severity::Warning);
        assert_eq!(diags[0].col, 1);

        // With update.pp, `$importDiff` is expected there and not in init.pp.
        let (got, _) = check(
            APACHE,
            &with_others(&[
                (
                    "graph/Apache/roboconf_apache/manifests/init.pp",
                    "class roboconf_apache($runningState, $tomcat, $mysql) {}\n",
                ),
                (
                    "graph/Apache/roboconf_apache/manifests/update.pp",
                    "class roboconf_apache::update($runningState, $tomcat, $mysql) {}\n",
                ),
            ]),
        );
        assert_eq!(
            got,
            vec!["REC_PUPPET_MISSING_PARAM_IMPORT_DIFF@update.pp:1"]
        );
    }

    #[test]
    fn puppet_module_folder_and_manifests() {
        let graph = "Web {\n\tinstaller: puppet;\n}\n";
        let (got, diags) = check(graph, &[("graph/Web/Roboconf_Web/files/", "")]);
        assert_eq!(
            got,
            vec![
                "X_PUPPET_INVALID_MODULE_NAME@Roboconf_Web:0",
                "X_PUPPET_NO_MANIFEST@Roboconf_Web:0"
            ]
        );
        assert!(!crate::diag::has_errors(&diags));
        // One per-action manifest is enough; Roboconf's module count errors stay.
        let (got, _) = check(
            graph,
            &[(
                "graph/Web/roboconf_web/manifests/start.pp",
                "class roboconf_web::start($runningState) {}",
            )],
        );
        assert!(got.is_empty(), "{got:?}");
        let (got, _) = check(
            graph,
            &[("graph/Web/roboconf_a/", ""), ("graph/Web/roboconf_b/", "")],
        );
        assert_eq!(
            got,
            vec!["REC_PUPPET_HAS_TOO_MANY_RBCF_MODULES@main.graph:1"]
        );
        let (got, _) = check(graph, &[("graph/Web/other/", "")]);
        assert_eq!(got, vec!["REC_PUPPET_HAS_NO_RBCF_MODULE@main.graph:1"]);
    }

    #[test]
    fn puppet_parameter_names_renamed_dropped_and_duplicate() {
        let graph = "facet F {\n\texports: shared = 1;\n}\nfacet G {\n\texports: shared = 2;\n}\nServer {\n\tinstaller: puppet;\n\texports: port = 80;\n}\nWeb {\n\tinstaller: puppet;\n\textends: Server;\n\tfacets: F, G;\n\texports: port-ajp = 1, name = x, _lives = 3, portAJP = 1, portajp = 2, other = 5;\n\timports: My-App.x, Other.y;\n}\nMy-App {\n\tinstaller: puppet;\n\texports: x;\n}\nOther {\n\tinstaller: puppet;\n\texports: y;\n}\n";
        let pp = "class roboconf_web($runningState, $importDiff, $my_app, $other) {}\n";
        let (got, diags) = check(graph, &[("graph/Web/roboconf_web/manifests/init.pp", pp)]);
        let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
        let find = |code: &str, text: &str| {
            assert!(
                diags
                    .iter()
                    .any(|d| d.code.as_str() == code && d.message.contains(text)),
                "{code} {text}: {messages:#?}"
            )
        };
        find("X_PUPPET_PARAMETER_NAME", "passed to Puppet as `port_ajp`");
        find(
            "X_PUPPET_PARAMETER_NAME",
            "`Web.name` is not passed to Puppet: `name` is a metaparameter",
        );
        find("X_PUPPET_PARAMETER_NAME", "`Web._lives` is not passed");
        find(
            "X_PUPPET_PARAMETER_NAME",
            "the imports of `My-App` are passed to Puppet as `my_app`",
        );
        find(
            "X_PUPPET_DUPLICATE_PARAMETER",
            "`Web.portAJP = 1`, `Web.portajp = 2`",
        );
        find(
            "X_PUPPET_DUPLICATE_PARAMETER",
            "the plug-in passes only `F.shared = 1`",
        );
        find(
            "X_PUPPET_DUPLICATE_PARAMETER",
            "`Web.other = 5`, the imports of `Other` are all passed to the class of `Web` as \
             `other`: Roboconf would pass it 2 times, which Puppet 7 refuses; the plug-in \
             passes only the imports of `Other`",
        );
        // `port`, inherited from Server (Server.port, Web.port), is one variable.
        assert!(
            !messages.iter().any(|m| m.contains("as `port`:")),
            "{messages:#?}"
        );
        // The renamed export points at its declaration.
        let at = diags
            .iter()
            .find(|d| {
                d.code.as_str() == "X_PUPPET_PARAMETER_NAME" && d.message.contains("port_ajp")
            })
            .expect("port_ajp");
        assert_eq!((at.line, at.col), (15, 11));
        // The class declares none of the exported variables the plug-in passes.
        find(
            "X_PUPPET_UNDECLARED_PARAMETER",
            "has no parameter `$port_ajp`, which the plug-in passes (the exported variable `Web.port-ajp`)",
        );
        find("X_PUPPET_UNDECLARED_PARAMETER", "`$port`");
        assert!(
            !messages.iter().any(|m| m.contains("`$other`, which")),
            "an import prefix takes `other`: {messages:#?}"
        );
        assert!(!crate::diag::has_errors(&diags), "{got:?}");
        assert_eq!(
            got.iter()
                .filter(|g| g.starts_with("X_PUPPET_PARAMETER_NAME"))
                .count(),
            4
        );
        assert_eq!(
            got.iter()
                .filter(|g| g.starts_with("X_PUPPET_DUPLICATE_PARAMETER"))
                .count(),
            3
        );
    }

    #[test]
    fn puppet_modules_file() {
        let graph = "Web {\n\tinstaller: puppet;\n}\n";
        let pp = "class roboconf_web($runningState, $importDiff) {}\n";
        let modules = "# comment\nthias-sysctl = 0.3.0\npuppetlabs/stdlib =\nfsalum-redis = >= 1.0.0 < 2.0.0\nstdlib = 1.0\nother-sysctl = 1.x\nbad-version = latest\n--force = \nbad-Name = 1\n";
        let (got, diags) = check(
            graph,
            &[
                ("graph/Web/roboconf_web/manifests/init.pp", pp),
                ("graph/Web/modules.properties", modules),
                ("graph/Web/roboconf_web/modules.properties", "a-b=\n"),
            ],
        );
        assert_eq!(
            got,
            vec![
                "X_PUPPET_IGNORED_MODULES_FILE@modules.properties:0",
                "X_PUPPET_INVALID_MODULES_FILE@modules.properties:5",
                "X_PUPPET_INVALID_MODULES_FILE@modules.properties:6",
                "X_PUPPET_INVALID_MODULES_FILE@modules.properties:7",
                "X_PUPPET_INVALID_MODULES_FILE@modules.properties:8",
                "X_PUPPET_INVALID_MODULES_FILE@modules.properties:9",
            ],
            "{diags:#?}"
        );
        assert!(diags[2]
            .message
            .contains("both install into the folder `sysctl`"));
        assert!(diags[3].message.contains("`latest` is neither empty"));
    }

    #[test]
    fn puppet_version_ranges() {
        use super::puppet::is_version_range as ok;
        for v in [
            "1.2.3",
            "1",
            "1.2",
            "1.x",
            "1.2.X",
            "*",
            ">= 1.0.0 < 2.0.0",
            ">=1.0.0 <2.0.0",
            "~> 1.2",
            "~1.2.3",
            "^2",
            "1.0.0 - 1.3.9",
            "1.2.3-rc.1+b5",
            "< 2.0.0 || >= 3.0.0",
            "=1.x",
            ">=v1.0.0",
            "1.2.3 ",
        ] {
            assert!(ok(v), "{v}");
        }
        for v in [
            "latest",
            "v1.0.0",
            "01.2",
            "1.2.3.4",
            ">1.x",
            "1.2-rc",
            "1.0 - 2.x",
            "--force",
            "1.2.3-",
            ">",
            "|| 1.0",
            "> v1.0.0",
        ] {
            assert!(!ok(v), "{v}");
        }
    }
}
