//! What the Puppet plug-in's tests share: a working copy and an application folder in a
//! temporary folder, the invocation of an action there, classes that record what they
//! get, and a check that Puppet is installed (skipped with a message where it is not,
//! except under CI, where that is a failure).
#![allow(dead_code)] // each test binary uses a part

use roboconf_plugins::puppet::{Forge, Puppet};
use roboconf_plugins::{Error, ImportedInstance, Invocation, Outcome};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn have_puppet() -> bool {
    let ok = std::process::Command::new("puppet")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "puppet is not installed (Debian's `puppet` package): .ci/run installs it"
        );
        eprintln!("SKIPPED: `puppet --version` fails; install Debian's `puppet` package");
    }
    ok
}

/// A working copy holding `files` (relative path → content), and an application folder.
pub struct Recipe {
    _tmp: tempfile::TempDir,
    pub work: PathBuf,
    pub app: PathBuf,
    pub out: PathBuf,
}

pub fn recipe(files: &[(&str, &str)]) -> Recipe {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    let app = tmp.path().join("app");
    let out = tmp.path().join("out");
    for d in [&work, &app, &out] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    write_files(&work, files);
    Recipe {
        _tmp: tmp,
        work,
        app,
        out,
    }
}

pub fn write_files(base: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = base.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

pub fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Recipe {
    pub fn inv(&self, exports: &[(&str, &str)]) -> Invocation {
        let mut e = vars(exports);
        e.insert("App.out".into(), self.out.display().to_string());
        Invocation {
            application: "test".into(),
            instance_name: "app".into(),
            instance_path: "/vm/app".into(),
            component: "App".into(),
            recipe_dir: self.work.clone(),
            application_dir: self.app.clone(),
            exports: e,
            // Every module here declares `$db`: Roboconf passes `db => undef` when the
            // component imports Db and no one exports it.
            import_prefixes: vec!["Db".into()],
            ..Invocation::default()
        }
    }

    pub fn json(&self, name: &str) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}: {text}"))
    }
}

pub fn plugin() -> Puppet {
    Puppet {
        timeout: Duration::from_secs(120),
        module_dirs: Vec::new(),
        forge: Forge {
            allowed: false,
            ..Forge::default()
        },
        ..Puppet::default()
    }
}

/// A class that writes every parameter it got, as JSON, to `$out/<file>`.
pub fn recording_class(class: &str, file: &str) -> String {
    format!(
        "class {class}($runningState = undef, $importDiff = undef, $db = undef, \
         $out = undef, $note = undef, $port = undef) {{\n\
         \x20 $matched = $importDiff ? {{ undef => undef, default => $importDiff['component'] == 'db' }}\n\
         \x20 $all = {{ 'class' => '{class}', 'runningState' => $runningState, 'importDiff' => $importDiff, \
         'db' => $db, 'note' => $note, 'port' => $port, 'matched' => $matched }}\n\
         \x20 file {{ \"${{out}}/{file}\": content => inline_template(\"<%= require 'json'; JSON.generate(@all) %>\") }}\n\
         }}\n"
    )
}

/// The message of a refused action (panics on anything else), checked to hold `needles`.
pub fn refused(result: Result<Outcome, Error>, needles: &[&str]) {
    match result {
        Err(Error::Refused { message, .. }) => {
            for n in needles {
                assert!(message.contains(n), "`{n}` not in: {message}");
            }
        }
        other => panic!("expected a refusal with {needles:?}: {other:?}"),
    }
}

/// A working copy whose module records what each action gets in `$out/last.json`.
pub fn recording_recipe() -> Recipe {
    recipe(&[(
        "roboconf_app_module/manifests/init.pp",
        &recording_class("roboconf_app_module", "last.json"),
    )])
}

pub fn db(path: &str, ip: &str) -> ImportedInstance {
    ImportedInstance {
        path: path.into(),
        component: "Db".into(),
        variables: vars(&[("Db.ip", ip), ("Db.port", "5432")]),
    }
}
