//! The Puppet plug-in's own cost per action, beyond `puppet apply` itself: the plug-in is
//! run with `/bin/true` as its `puppet` program (so Puppet's own work is nil) and compared,
//! in the same run, with starting `/bin/true` bare with the same arguments; the
//! difference is what the plug-in adds (finding the module and class, building the
//! code, `modules.properties` for deploy, the bounded runner's pipes and threads). A few
//! real `puppet apply` runs of the same module give the scale. Run with
//! `cargo bench -p roboconf-plugins --bench puppet` (`PUPPET_ROUNDS`, default 300).

use roboconf_plugins::puppet::{Forge, Puppet};
use roboconf_plugins::{Action, ImportedInstance, Invocation, Plugin};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let rounds: usize = std::env::var("PUPPET_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(300);
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    let app = tmp.path().join("app");
    let module = work.join("roboconf_app_module/manifests");
    std::fs::create_dir_all(&module).expect("mkdir");
    std::fs::write(
        module.join("init.pp"),
        "class roboconf_app_module($runningState = undef, $importDiff = undef, $db = undef, \
         $cache = undef, $ip = undef, $port = undef, $path = undef, $user = undef, \
         $threads = undef) {\n  notice(\"${runningState}\")\n}\n",
    )
    .expect("init.pp");
    std::fs::write(work.join("modules.properties"), "roboconf-helper = 1.0.0\n").expect("mp");
    let helper = app.join("puppet-modules/helper");
    std::fs::create_dir_all(helper.join("manifests")).expect("mkdir");
    std::fs::write(
        helper.join("metadata.json"),
        r#"{"name": "roboconf-helper", "version": "1.0.0", "author": "roboconf",
            "license": "Apache-2.0", "summary": "bench", "source": "none", "dependencies": []}"#,
    )
    .expect("metadata");
    std::fs::write(helper.join("manifests/init.pp"), "class helper {}\n").expect("helper");
    let vars = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut inv = Invocation {
        application: "bench".into(),
        instance_name: "app".into(),
        instance_path: "/vm/app".into(),
        component: "App".into(),
        recipe_dir: work.clone(),
        application_dir: app.clone(),
        exports: vars(&[
            ("App.ip", "10.0.0.3"),
            ("App.port", "8080"),
            ("App.path", "/srv/it's here"),
            ("App.user", "web"),
            ("App.threads", "16"),
        ]),
        import_prefixes: vec!["Db".into(), "Cache".into()],
        ..Invocation::default()
    };
    inv.imports.insert(
        "Db".into(),
        (0..3)
            .map(|i| ImportedInstance {
                path: format!("/vm{i}/db"),
                component: "Db".into(),
                variables: vars(&[("Db.ip", "10.0.0.9"), ("Db.port", "5432")]),
            })
            .collect(),
    );
    let fake = Puppet {
        program: "/bin/true".into(),
        module_dirs: Vec::new(),
        forge: Forge {
            allowed: false,
            ..Forge::default()
        },
        ..Puppet::default()
    };
    let (mut plugin_start, mut plugin_deploy, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let (cmd, _) = fake
        .command(Action::Start, &inv)
        .expect("command")
        .expect("a manifest");
    let args: Vec<std::ffi::OsString> = cmd.get_args().map(|a| a.to_os_string()).collect();
    for round in 0..rounds + 20 {
        let t = Instant::now();
        fake.run(Action::Start, &inv).expect("start");
        let start = t.elapsed();
        let _ = std::fs::remove_file(work.join("helper"));
        let t = Instant::now();
        fake.run(Action::Deploy, &inv).expect("deploy");
        let deploy = t.elapsed();
        let t = Instant::now();
        let o = Command::new("/bin/true")
            .args(&args)
            .current_dir(&work)
            .stdin(Stdio::null())
            .output()
            .expect("bare");
        assert!(o.status.success());
        let b = t.elapsed();
        if round >= 20 {
            plugin_start.push(start);
            plugin_deploy.push(deploy);
            bare.push(b);
        }
    }
    let (s, d, b) = (
        median(plugin_start.clone()),
        median(plugin_deploy.clone()),
        median(bare.clone()),
    );
    println!("rounds: {rounds} (after 20 warm-up), medians");
    println!(
        "  bare /bin/true with the same argv:  {:.3} ms (p99 {:.3})",
        ms(b),
        ms(p99(bare))
    );
    println!(
        "  plug-in start (fake puppet):        {:.3} ms (p99 {:.3})  overhead {:.3} ms",
        ms(s),
        ms(p99(plugin_start)),
        ms(s.saturating_sub(b))
    );
    println!(
        "  plug-in deploy (+ modules.properties): {:.3} ms (p99 {:.3})  overhead {:.3} ms",
        ms(d),
        ms(p99(plugin_deploy)),
        ms(d.saturating_sub(b))
    );
    let real = Puppet {
        program: "puppet".into(),
        ..fake
    };
    if Command::new("puppet")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let runs: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                real.run(Action::Start, &inv).expect("real puppet apply");
                t.elapsed()
            })
            .collect();
        let r = median(runs);
        println!(
            "  real puppet apply through the plug-in: {:.0} ms (median of 5); the plug-in's \
             share {:.3} %",
            ms(r),
            100.0 * s.saturating_sub(b).as_secs_f64() / r.as_secs_f64()
        );
    } else {
        println!("  (puppet not installed: no real run)");
    }
}
