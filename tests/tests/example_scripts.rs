//! The `lamp` example's scripts, run for real with the Roboconf environment built by
//! `roboconf-plugins` (DESIGN §6): a database, two app servers and a load balancer start
//! on free loopback ports; the balancer's `lb.conf` is generated from its `App_*` imports
//! and serves both apps; `update.sh` regenerates it when an app leaves; everything stops
//! and undeploys cleanly. Needs only bash and python3.

use roboconf_plugins::env::script_environment;
use roboconf_plugins::{Action, ChangedImport, ImportedInstance, Invocation};
use roboconf_tests::workspace;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// One instance: its working copy of the recipe and what it exports.
struct Inst {
    dir: PathBuf,
    inv: Invocation,
}

impl Inst {
    fn new(root: &Path, component: &str, path: &str, exports: &[(&str, String)]) -> Inst {
        let dir = root.join(path.trim_start_matches('/').replace('/', "_"));
        copy_dir(
            &workspace().join("examples/lamp/graph").join(component),
            &dir,
        );
        let inv = Invocation {
            application: "lamp".into(),
            instance_name: path.rsplit('/').next().unwrap_or_default().into(),
            instance_path: path.into(),
            component: component.into(),
            recipe_dir: dir.clone(),
            exports: exports
                .iter()
                .map(|(k, v)| (format!("{component}.{k}"), v.clone()))
                .collect(),
            ..Invocation::default()
        };
        Inst { dir, inv }
    }

    fn as_import(&self) -> ImportedInstance {
        ImportedInstance {
            path: self.inv.instance_path.clone(),
            component: self.inv.component.clone(),
            variables: self.inv.exports.clone(),
        }
    }

    fn run(&self, action: Action) -> String {
        let script = self
            .dir
            .join("scripts")
            .join(format!("{}.sh", action.as_str()));
        let out = Command::new("bash")
            .arg(&script)
            .current_dir(&self.dir)
            .envs(script_environment(action, &self.inv))
            .output()
            .expect("run bash");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{} {} failed:\n{text}",
            self.inv.instance_path,
            action.as_str()
        );
        text
    }
}

/// Stops whatever is still running when the test ends, even on failure.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for dir in &self.0 {
            for pid_file in ["db.pid", "app.pid", "lb.pid"] {
                if let Ok(pid) = std::fs::read_to_string(dir.join(pid_file)) {
                    let _ = Command::new("kill").arg("-9").arg(pid.trim()).status();
                }
            }
        }
    }
}

fn http_get(port: u16) -> String {
    // Generous: on a loaded machine (beside a cold build) 10 s was once not enough.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut body = String::new();
            s.read_to_string(&mut body)?;
            Ok(body)
        })();
        match attempt {
            Ok(body) if body.contains("Hello from") => return body,
            _ if Instant::now() > deadline => panic!("no answer through port {port}: {attempt:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn servers(lb: &Inst) -> usize {
    std::fs::read_to_string(lb.dir.join("lb.conf"))
        .expect("lb.conf")
        .lines()
        .filter(|l| l.starts_with("server "))
        .count()
}

#[test]
fn lamp_scripts_deploy_reconfigure_and_stop() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let ip = "127.0.0.1".to_string();
    let [db_port, app_1, app_2, lb_port] = roboconf_tests::free_ports::<4>();
    let db = Inst::new(
        root,
        "Db",
        "/vm-db/db",
        &[("ip", ip.clone()), ("port", db_port.to_string())],
    );
    let mut apps: Vec<Inst> = [app_1, app_2]
        .into_iter()
        .enumerate()
        .map(|(i, port)| {
            let i = i + 1;
            Inst::new(
                root,
                "App",
                &format!("/vm-app-{i}/app-{i}"),
                &[("ip", ip.clone()), ("port", port.to_string())],
            )
        })
        .collect();
    let mut lb = Inst::new(
        root,
        "LB",
        "/vm-lb/lb",
        &[("ip", ip.clone()), ("port", lb_port.to_string())],
    );
    let _cleanup = Cleanup(vec![
        db.dir.clone(),
        apps[0].dir.clone(),
        apps[1].dir.clone(),
        lb.dir.clone(),
    ]);

    db.run(Action::Deploy);
    db.run(Action::Start);
    for app in apps.iter_mut() {
        app.inv.imports = BTreeMap::from([("Db".to_string(), vec![db.as_import()])]);
        app.run(Action::Deploy);
        app.run(Action::Start);
        app.run(Action::Start); // idempotent
    }
    lb.inv.imports = BTreeMap::from([(
        "App".to_string(),
        apps.iter().map(Inst::as_import).collect(),
    )]);
    lb.run(Action::Deploy);
    lb.run(Action::Start);
    assert_eq!(servers(&lb), 2);

    // Round robin: both apps answer through the balancer, and they use the database.
    let answers: Vec<String> = (0..4).map(|_| http_get(lb_port)).collect();
    for i in 1..=2 {
        assert!(
            answers.iter().any(|a| a.contains(&format!("app-{i}"))),
            "app-{i} never answered: {answers:?}"
        );
    }
    assert!(
        answers.iter().any(|a| a.contains("counts visit #")),
        "{answers:?}"
    );

    // app-2 stops: the balancer's update.sh regenerates lb.conf from the imports left.
    apps[1].run(Action::Stop);
    lb.inv.imports = BTreeMap::from([("App".to_string(), vec![apps[0].as_import()])]);
    lb.inv.changed = Some(ChangedImport {
        status: "DEPLOYED_STOPPED".into(),
        import: apps[1].as_import(),
    });
    let out = lb.run(Action::Update);
    assert!(out.contains("/vm-app-2/app-2"), "{out}");
    assert_eq!(servers(&lb), 1);
    for _ in 0..3 {
        assert!(http_get(lb_port).contains("app-1"));
    }

    // Undeploy reverses deploy: nothing keeps running.
    for inst in [&lb, &apps[0], &apps[1], &db] {
        inst.run(Action::Stop);
        inst.run(Action::Stop); // stopping a stopped instance succeeds
        inst.run(Action::Undeploy);
    }
    for dir in &_cleanup.0 {
        for pid_file in ["db.pid", "app.pid", "lb.pid"] {
            assert!(
                !dir.join(pid_file).exists(),
                "{} still has {pid_file}",
                dir.display()
            );
        }
    }
    assert!(
        TcpStream::connect(("127.0.0.1", lb_port)).is_err(),
        "the balancer still listens"
    );
}
