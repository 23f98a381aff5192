//! Puppet recipes (`installer: puppet`), checked as Roboconf's `RecipesValidator` does,
//! then for what Puppet 7 and the plug-in (`crate::puppet`) need.
//!
//! Roboconf's checks: wildcard imports are disliked (warning); the recipe folder holds
//! exactly one `roboconf_*` module (errors); in that module, the class of every
//! `manifests/*.pp` declares `$runningState` (error), the class of `update.pp` (of
//! `init.pp` when there is no `update.pp`) declares `$importDiff` (error), and every
//! class declares `$<prefix>` for each import prefix (warning). Roboconf reads the
//! parameters with a regular expression (`class [^(]+\(([^)]+)\)`, split on `,`); here
//! they are read with a lexer ([`crate::puppet::class_definitions`]), so types and
//! defaults with commas or parentheses do not fool it. A file without a class with a
//! parameter list is not checked, as in Roboconf. `puppet parser validate` is never run.
//!
//! This project's checks, all warnings since Roboconf accepts these applications
//! (except `modules.properties`, where deploying would fail for sure): the module
//! folder's name, a module without any manifest, names that are not Puppet parameter
//! names, names passed twice, and `modules.properties` (beside the module, where the
//! plug-in reads it).

use crate::diag::{Code, Diagnostic};
use crate::graph::{Graph, ImportDecl, Loc};
use crate::props;
use crate::puppet::{self as pp, NameIssue};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The actions that apply `<module>::<action>` when `manifests/<action>.pp` exists.
const ACTIONS: [&str; 5] = ["deploy", "start", "stop", "update", "undeploy"];

/// The largest manifest or `modules.properties` read (manifests are a few kilobytes;
/// larger ones are not checked).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Checks the Puppet recipe of component `c`, whose recipe folder is `rdir`.
pub(super) fn check_component(g: &Graph, c: usize, rdir: &Path, out: &mut Vec<Diagnostic>) {
    let comp = &g.components[c];
    let at = &comp.loc;
    let imports = g.all_imports(c);
    if imports.values().any(ImportDecl::is_wildcard) {
        out.push(Diagnostic::new(
            Code::REC_PUPPET_DISLIKES_WILDCARD_IMPORTS,
            &at.file,
            at.line,
            at.col,
            format!(
                "Puppet recipes cannot use wildcard imports (`{}`)",
                comp.name
            ),
        ));
    }
    let modules = pp::module_folders(rdir);
    if modules.is_empty() {
        out.push(Diagnostic::new(
            Code::REC_PUPPET_HAS_NO_RBCF_MODULE,
            &at.file,
            at.line,
            at.col,
            format!(
                "the Puppet recipe of `{}` has no `roboconf_*` module",
                comp.name
            ),
        ));
    } else if modules.len() > 1 {
        out.push(Diagnostic::new(
            Code::REC_PUPPET_HAS_TOO_MANY_RBCF_MODULES,
            &at.file,
            at.line,
            at.col,
            format!(
                "the Puppet recipe of `{}` has several `roboconf_*` modules",
                comp.name
            ),
        ));
    }
    // Import prefix → the parameter it is passed as (`None`: not passed).
    let prefixes: BTreeMap<&str, Option<String>> = imports
        .values()
        .map(|i| (i.prefix(), pp::param_name(i.prefix()).0))
        .collect();
    // Exported variables passed as parameters (Puppet name → one full name), but not
    // those whose name an import prefix takes.
    let taken: BTreeSet<&str> = prefixes.values().flatten().map(String::as_str).collect();
    let mut exported: BTreeMap<String, String> = BTreeMap::new();
    for full in g.component_exports(c).keys() {
        if let (Some(param), _) = pp::param_name(full) {
            if !taken.contains(param.as_str()) {
                exported.entry(param).or_insert_with(|| full.clone());
            }
        }
    }
    if let [module] = modules.as_slice() {
        check_module(module, &prefixes, &exported, out);
    }
    for module in &modules {
        let inner = module.join("modules.properties");
        if is_file(&inner) {
            out.push(Diagnostic::new(
                Code::X_PUPPET_IGNORED_MODULES_FILE,
                &inner,
                0,
                0,
                "the plug-in reads `modules.properties` beside the `roboconf_*` module, \
                 not inside it: this file installs nothing",
            ));
        }
    }
    check_names(g, c, &imports, out);
    check_modules_file(&rdir.join("modules.properties"), out);
}

/// A regular file (a link is not followed: it is not part of the application).
fn is_file(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

/// The checks of the one `roboconf_*` module: its name, its manifests, their classes.
fn check_module(
    module: &Path,
    prefixes: &BTreeMap<&str, Option<String>>,
    exported: &BTreeMap<String, String>,
    out: &mut Vec<Diagnostic>,
) {
    let name = module
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !pp::is_module_folder_name(&name) {
        out.push(Diagnostic::new(
            Code::X_PUPPET_INVALID_MODULE_NAME,
            module,
            0,
            0,
            format!(
                "Puppet 7 ignores a module folder not named `[a-z][a-z0-9_]*`, such as \
                 `{name}`: every action of this recipe would fail"
            ),
        ));
    }
    let manifests = module.join("manifests");
    let real = std::fs::symlink_metadata(&manifests).is_ok_and(|m| m.is_dir());
    let has = |file: &str| real && is_file(&manifests.join(file));
    if !has("init.pp") && !ACTIONS.iter().any(|a| has(&format!("{a}.pp"))) {
        out.push(Diagnostic::new(
            Code::X_PUPPET_NO_MANIFEST,
            module,
            0,
            0,
            format!(
                "the module `{name}` has neither `manifests/init.pp` nor a manifest per action \
                 ({}): every action does nothing",
                ACTIONS.map(|a| format!("`{a}.pp`")).join(", ")
            ),
        ));
    }
    // As Roboconf: `update.pp` gets `$importDiff`, else `init.pp`.
    let with_update = if has("update.pp") {
        "update.pp"
    } else {
        "init.pp"
    };
    let mut files: Vec<PathBuf> = if real {
        std::fs::read_dir(&manifests)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .to_lowercase()
                            .ends_with(".pp")
                    })
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    files.sort();
    for f in files {
        let file_name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Only the classes the plug-in applies get the exported variables.
        let applied =
            file_name == "init.pp" || ACTIONS.iter().any(|a| file_name == format!("{a}.pp"));
        let exported = if applied { Some(exported) } else { None };
        check_manifest(&f, &name, file_name == with_update, prefixes, exported, out);
    }
}

/// The checks of one manifest's class: the parameters the plug-in passes.
fn check_manifest(
    pp_file: &Path,
    module: &str,
    with_update: bool,
    prefixes: &BTreeMap<&str, Option<String>>,
    exported: Option<&BTreeMap<String, String>>,
    out: &mut Vec<Diagnostic>,
) {
    // As Roboconf, an unreadable manifest is not checked.
    let Ok(meta) = std::fs::metadata(pp_file) else {
        return;
    };
    if meta.len() > MAX_FILE_BYTES {
        return;
    }
    let Ok(bytes) = std::fs::read(pp_file) else {
        return;
    };
    let classes = pp::class_definitions(&String::from_utf8_lossy(&bytes));
    // The class Puppet autoloads from this file (`<module>::<stem>`, `<module>` for
    // init.pp) when it is there, else the first one (Roboconf reads the first).
    let stem = pp_file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let expected = if stem == "init" {
        module.to_string()
    } else {
        format!("{module}::{stem}")
    };
    let Some(class) = classes
        .iter()
        .find(|c| {
            c.name
                .trim_start_matches("::")
                .eq_ignore_ascii_case(&expected)
        })
        .or(classes.first())
    else {
        return;
    };
    let Some(params) = &class.params else {
        return;
    };
    let declared: BTreeSet<&str> = params.iter().map(String::as_str).collect();
    let report = |code: Code, message: String| {
        Diagnostic::new(code, pp_file, class.line, class.col, message)
    };
    if with_update && !declared.contains(pp::IMPORT_DIFF) {
        out.push(report(
            Code::REC_PUPPET_MISSING_PARAM_IMPORT_DIFF,
            format!(
                "the class `{}` has no parameter `${}`: the plug-in passes it on `update` \
                 when an import changes",
                class.name,
                pp::IMPORT_DIFF
            ),
        ));
    }
    if !declared.contains(pp::RUNNING_STATE) {
        out.push(report(
            Code::REC_PUPPET_MISSING_PARAM_RUNNING_STATE,
            format!(
                "the class `{}` has no parameter `${}`: the plug-in always passes it",
                class.name,
                pp::RUNNING_STATE
            ),
        ));
    }
    // Every exported variable is passed (as in Roboconf): a class that does not declare
    // it makes Puppet refuse the catalog ("has no parameter named").
    for (param, full) in exported.into_iter().flatten() {
        if !declared.contains(param.as_str()) {
            out.push(report(
                Code::X_PUPPET_UNDECLARED_PARAMETER,
                format!(
                    "the class `{}` has no parameter `${param}`, which the plug-in passes \
                     (the exported variable `{full}`): Puppet would refuse to apply it",
                    class.name
                ),
            ));
        }
    }
    // Roboconf expects `$<prefix lower-cased>`; the plug-in passes a repaired name, and
    // none for a name it cannot pass (reported by `check_names`).
    for (prefix, param) in prefixes {
        if let Some(param) = param.as_deref().filter(|p| !declared.contains(p)) {
            out.push(report(
                Code::REC_PUPPET_MISSING_PARAM_FROM_IMPORT,
                format!(
                    "the class `{}` has no parameter `${param}` for the imports of `{prefix}`",
                    class.name
                ),
            ));
        }
    }
}

/// One thing passed to the class under a Puppet name.
struct Passed {
    /// How messages name it (`Db.port = 3306`, `the imports of MySQL`).
    label: String,
    /// Equal for what is the same variable (see [`check_names`]).
    identity: (bool, String, Option<String>),
    /// What the plug-in keeps when a name is given twice: import prefixes first (the
    /// first by name), then exported variables (the first by full name).
    rank: (bool, String),
}

/// Names on the Puppet side: those not passed as they are, those passed twice.
///
/// `Graph::component_exports` lists every exported variable under each name it can be
/// imported by: `Tomcat.port` inherited from `Server.port` is there as both, with one
/// value. Both become `port`, but they are one variable: Roboconf would pass `port`
/// twice (Puppet 7 refuses that), the plug-in once, with the same value either way.
/// So exported variables with the same name after the prefix (exactly, case included)
/// and the same default value are one variable here; a collision is two or more
/// different variables (or import prefixes) passed under one name, such as `F.port`
/// and `G.port` from two facets with different values, or `portAJP` and `portajp`, or
/// an export and an import prefix (the plug-in then passes the imports).
fn check_names(
    g: &Graph,
    c: usize,
    imports: &BTreeMap<String, ImportDecl>,
    out: &mut Vec<Diagnostic>,
) {
    let comp = &g.components[c];
    let mut by_param: BTreeMap<String, Vec<Passed>> = BTreeMap::new();
    // Roboconf name → the full names (one finding per name not passed as is).
    let mut renamed: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let exports = g.component_exports(c);
    for (full, value) in &exports {
        let (param, issue) = pp::param_name(full);
        if issue.is_some() {
            renamed
                .entry(pp::roboconf_name(full))
                .or_default()
                .push(full);
        }
        if let Some(param) = param {
            let local = crate::graph::split_var(full).1.to_string();
            let label = match value {
                Some(v) => format!("`{full} = {v}`"),
                None => format!("`{full}`"),
            };
            by_param.entry(param).or_default().push(Passed {
                label,
                identity: (false, local, value.clone()),
                rank: (true, full.clone()),
            });
        }
    }
    for (rname, fulls) in &renamed {
        let (param, issue) = pp::param_name(fulls[0]);
        let what = format!(
            "the exported variable{} {} {}",
            if fulls.len() > 1 { "s" } else { "" },
            fulls
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if fulls.len() > 1 { "are" } else { "is" }
        );
        let at = export_place(g, c, rname);
        out.push(name_finding(&at, &what, rname, param, issue));
    }
    let mut seen = BTreeSet::new();
    for i in imports.values() {
        let prefix = i.prefix();
        if !seen.insert(prefix) {
            continue;
        }
        let (param, issue) = pp::param_name(prefix);
        if issue.is_some() {
            let what = format!("the imports of `{prefix}` are");
            out.push(name_finding(
                &i.loc,
                &what,
                &prefix.to_lowercase(),
                param.clone(),
                issue,
            ));
        }
        if let Some(param) = param {
            by_param.entry(param).or_default().push(Passed {
                label: format!("the imports of `{prefix}`"),
                identity: (true, prefix.to_string(), None),
                rank: (false, prefix.to_string()),
            });
        }
    }
    let at = &comp.loc;
    for (param, passed) in &by_param {
        let distinct: BTreeSet<&(bool, String, Option<String>)> =
            passed.iter().map(|p| &p.identity).collect();
        if distinct.len() < 2 {
            continue;
        }
        let labels: Vec<&str> = passed.iter().map(|p| p.label.as_str()).collect();
        let kept = passed
            .iter()
            .min_by(|a, b| a.rank.cmp(&b.rank))
            .map(|p| format!("; the plug-in passes only {}", p.label))
            .unwrap_or_default();
        out.push(Diagnostic::new(
            Code::X_PUPPET_DUPLICATE_PARAMETER,
            &at.file,
            at.line,
            at.col,
            format!(
                "{} are all passed to the class of `{}` as `{param}`: Roboconf would pass it \
                 {} times, which Puppet 7 refuses{kept}",
                labels.join(", "),
                comp.name,
                labels.len()
            ),
        ));
    }
}

/// The finding about a name not passed as it is.
fn name_finding(
    at: &Loc,
    what: &str,
    rname: &str,
    param: Option<String>,
    issue: Option<NameIssue>,
) -> Diagnostic {
    let why = match (param, issue) {
        (Some(p), _) => {
            format!("passed to Puppet as `{p}` (`{rname}` is not a Puppet parameter name)")
        }
        (None, Some(NameIssue::Reserved)) => {
            format!("not passed to Puppet: `{rname}` is a metaparameter or a built-in name")
        }
        (None, _) => {
            format!("not passed to Puppet: `{rname}` is not a parameter name (`[a-z][a-z0-9_]*`)")
        }
    };
    Diagnostic::new(
        Code::X_PUPPET_PARAMETER_NAME,
        &at.file,
        at.line,
        at.col,
        format!("{what} {why}"),
    )
}

/// Where the exported variable whose Roboconf name is `rname` is declared: in the
/// component or what it extends, else in one of its facets, else the component.
fn export_place(g: &Graph, c: usize, rname: &str) -> Loc {
    let chain = g.extended_chain(c).into_iter().map(|x| {
        let x = &g.components[x];
        (&x.loc, &x.exports)
    });
    let facets = g.all_facets(c).into_iter().map(|f| {
        let f = &g.facets[f];
        (&f.loc, &f.exports)
    });
    chain
        .chain(facets)
        .find_map(|(loc, exports)| {
            exports
                .iter()
                .find(|d| pp::roboconf_name(&d.name) == rname)
                .map(|d| loc.at(d.span))
        })
        .unwrap_or_else(|| g.components[c].loc.clone())
}

/// `modules.properties` beside the module: Forge module names and versions.
fn check_modules_file(path: &Path, out: &mut Vec<Diagnostic>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    if meta.len() > MAX_FILE_BYTES {
        out.push(Diagnostic::new(
            Code::X_PUPPET_INVALID_MODULES_FILE,
            path,
            0,
            0,
            format!("the file is larger than {MAX_FILE_BYTES} bytes: it is not read"),
        ));
        return;
    }
    let text = match std::fs::read(path) {
        // Java reads properties files as ISO-8859-1.
        Ok(b) => b.iter().map(|&b| b as char).collect::<String>(),
        Err(e) => {
            out.push(Diagnostic::new(
                Code::X_PUPPET_INVALID_MODULES_FILE,
                path,
                0,
                0,
                format!("cannot read the file: {e}"),
            ));
            return;
        }
    };
    let mut folders: BTreeMap<String, String> = BTreeMap::new();
    for e in props::parse(&text) {
        let bad = |message: String| {
            Diagnostic::new(
                Code::X_PUPPET_INVALID_MODULES_FILE,
                path,
                e.line,
                1,
                message,
            )
        };
        match pp::forge_module_folder(&e.key) {
            None => out.push(bad(format!(
                "`{}` is not a Forge module name (`author-name` or `author/name`, the name \
                 being `[a-z][a-z0-9_]*`): `puppet module install` fails",
                e.key
            ))),
            Some(folder) => {
                if let Some(first) = folders.get(folder) {
                    out.push(bad(format!(
                        "`{}` and `{first}` both install into the folder `{folder}`: \
                         Roboconf's second `puppet module install` fails (this mesh's \
                         plug-in installs only `{}`)",
                        e.key,
                        first.min(&e.key)
                    )));
                } else {
                    folders.insert(folder.to_string(), e.key.clone());
                }
            }
        }
        let version = e.value.trim();
        if !version.is_empty() && !is_version_range(version) {
            out.push(bad(format!(
                "`{version}` is neither empty (the latest version) nor a version or a version \
                 range (`1.2.3`, `>= 1.0.0 < 2.0.0`, `1.x`): `puppet module install \
                 --version` refuses it"
            )));
        }
    }
}

/// Whether `puppet module install --version` accepts this (SemanticPuppet's
/// `VersionRange.parse`): `1.2.3`, `1.x`, `>=1.0.0 <2.0.0`, `~> 1.2`, `^2`,
/// `1.0.0 - 1.3.9`, alternatives joined with `||`.
pub(crate) fn is_version_range(s: &str) -> bool {
    // Whitespace after an operator is dropped, or else a `v` right after it.
    let mut norm = String::new();
    let mut chars = s.trim().chars().peekable();
    while let Some(c) = chars.next() {
        norm.push(c);
        if "><=~^".contains(c) {
            if chars.peek().is_some_and(|c| c.is_whitespace()) {
                while chars.next_if(|c| c.is_whitespace()).is_some() {}
            } else {
                chars.next_if_eq(&'v');
            }
        }
    }
    let mut ranges: Vec<&str> = norm.split("||").map(str::trim).collect();
    while ranges.last() == Some(&"") {
        ranges.pop();
    }
    ranges.iter().all(|range| {
        let simples: Vec<&str> = range.split_whitespace().collect();
        if let [low, "-", high] = simples.as_slice() {
            return version_form(low, false) && version_form(high, false);
        }
        !simples.is_empty()
            && simples.iter().all(|simple| {
                let op = ["<=", ">=", "~>", "~=", "<", ">", "=", "~", "^"]
                    .into_iter()
                    .find(|op| simple.starts_with(op));
                let operand = &simple[op.map_or(0, str::len)..];
                version_form(operand, matches!(op, None | Some("=")))
            })
    })
}

/// `1`, `1.2`, `1.2.3`, `1.2.3-rc.1+b5`; with `x`, `X` or `*` for a part when `partial`.
fn version_form(s: &str, partial: bool) -> bool {
    let (core, qualifier) = match s.find(['-', '+']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let number = |p: &str| {
        p == "0" || (!p.is_empty() && !p.starts_with('0') && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if parts.len() > 3
        || !parts
            .iter()
            .all(|p| number(p) || (partial && matches!(*p, "x" | "X" | "*")))
    {
        return false;
    }
    if qualifier.is_empty() {
        return true;
    }
    let idents = |q: &str| {
        q.split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    };
    let (pre, build) = match qualifier.find('+') {
        Some(i) => (&qualifier[..i], Some(&qualifier[i + 1..])),
        None => (qualifier, None),
    };
    parts.len() == 3
        && (pre.is_empty() || pre.strip_prefix('-').is_some_and(idents))
        && build.is_none_or(idents)
}
