//! Tests of the probe files: Roboconf's examples, each handler's forms and refusals, the
//! lines and columns of findings, and probes as an application loads them.

use super::*;
use crate::app::load_application;
use crate::dsl::Limits;

fn read(text: &str) -> (Vec<Probe>, Vec<Diagnostic>) {
    parse(text, None, Path::new("probes/C.measures"))
}

/// Each finding as (code, line, column).
fn found(d: &[Diagnostic]) -> Vec<(Code, usize, usize)> {
    d.iter().map(|d| (d.code, d.line, d.col)).collect()
}

fn only(text: &str) -> Check {
    let (p, d) = read(text);
    assert!(d.is_empty(), "{d:?}");
    match p.as_slice() {
        [probe] => probe.check.clone(),
        _ => panic!("expected one probe: {p:?}"),
    }
}

#[test]
fn roboconf_s_mixed_example_with_templating() {
    let text = "[EVENT nagios myRuleName-nagios]\nGET hosts\nColumns: host_name accept_passive_checks acknowledged\nFilter: accept_passive_checks = {{ accept_passive_checks }}\n\n[EVENT file myRuleName-for-file]\nNotify if not exists /tmp/{{ a-directory-to-not-delete }}\n";
    let props = "accept_passive_checks=1\na-directory-to-not-delete=roboconf\n";
    let (p, d) = parse(text, Some(props), Path::new("probes/C.measures"));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(p.len(), 2);
    let Check::Nagios(n) = &p[0].check else {
        panic!("{p:?}")
    };
    assert_eq!((n.host.as_str(), n.port), ("localhost", 50_000));
    assert_eq!(
        n.query,
        "GET hosts\nColumns: host_name accept_passive_checks acknowledged\nFilter: accept_passive_checks = 1"
    );
    assert_eq!(
        n.event_info("a;1;0"),
        "host_name;accept_passive_checks;acknowledged\na;1;0"
    );
    assert_eq!(p[0].event, "myRuleName-nagios");
    assert_eq!(
        p[1].check,
        Check::File(FileCheck::NotifyIfNotExists("/tmp/roboconf".into()))
    );
    assert_eq!((p[1].event.as_str(), p[1].line), ("myRuleName-for-file", 6));
}

#[test]
fn templates_and_java_properties() {
    let props = "# c\n! c\na = 1\nb: two\nc three\nd=multi\\\n   line\nspaced = x y\n";
    let text = "[EVENT file e]\n/{{a}}/{{ b }}/{{  c  }}/{{d}}/{{ spaced }}/{{ a b }}/{{}}/{{ open";
    let (p, d) = parse(text, Some(props), Path::new("p.measures"));
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        p[0].check,
        Check::File(FileCheck::NotifyIfExists(
            "/1/two/three/multiline/x y/{{ a b }}/{{}}/{{ open".into()
        ))
    );
    // An unknown key is left as is, and reported where it is.
    let (p, d) = read("[EVENT file e]\n\t  /tmp/{{ nope }}/{{ nope2}}");
    assert_eq!(
        p[0].check,
        Check::File(FileCheck::NotifyIfExists(
            "/tmp/{{ nope }}/{{ nope2}}".into()
        ))
    );
    assert_eq!(
        found(&d),
        [
            (Code::PROBE_UNKNOWN_PROPERTY, 2, 9),
            (Code::PROBE_UNKNOWN_PROPERTY, 2, 20)
        ]
    );
    assert!(d.iter().all(|d| !d.is_error()));
    assert!(d[0].message.contains("`{{ nope }}`"), "{}", d[0].message);
}

#[test]
fn file_probes() {
    assert_eq!(
        only("[EVENT file e]\nDelete if exists %TMP%/rbcf-test/ta-daaaaa"),
        Check::File(FileCheck::DeleteIfExists(
            "%TMP%/rbcf-test/ta-daaaaa".into()
        ))
    );
    assert_eq!(
        only("[event FILE e]\n  DELETE   IF exists\t/a b  "),
        Check::File(FileCheck::DeleteIfExists("/a b".into()))
    );
    assert_eq!(
        only("[EVENT file e]\nnotify if NOT exists /x"),
        Check::File(FileCheck::NotifyIfNotExists("/x".into()))
    );
    assert_eq!(
        only("[EVENT file e]\n/var/run/x.pid"),
        Check::File(FileCheck::NotifyIfExists("/var/run/x.pid".into()))
    );
    for bad in [
        "[EVENT file e]\nDelete if exists",
        "[EVENT file e]\nNotify if not exists   ",
        "[EVENT file e]\n/a\n/b",
        "[EVENT file e]",
    ] {
        let (p, d) = read(bad);
        assert!(p.is_empty(), "{bad}: {p:?}");
        assert_eq!(found(&d), [(Code::PROBE_INVALID_SYNTAX, 1, 1)], "{bad}");
    }
}

#[test]
fn rest_probes_and_their_answers() {
    let Check::Rest(r) = only("[EVENT rest high]\nCheck http://127.0.0.1:8080/load THAT load > 20")
    else {
        panic!()
    };
    assert_eq!(
        (r.url.as_str(), r.key.as_str(), r.op, r.value.as_str()),
        ("http://127.0.0.1:8080/load", "load", Op::Gt, "20")
    );
    assert!(r.holds("{\n\"load\": 25.5,\n\"x\": 1\n}"));
    assert!(r.holds("{\"x\": 1, \"load\": 21}"));
    assert!(r.holds("load:1e3"));
    assert!(!r.holds("{\"load\": 20}"));
    assert!(!r.holds("{\"load\": \"high\"}"));
    assert!(!r.holds("nothing"));
    assert!(!r.holds(""));
    assert!(!r.holds("{\"loads\": 99}"));
    let ops = [
        ("=", "5", true),
        ("==", "5.0", true),
        (">=", "5", true),
        (">", "5", false),
        ("<=", "5", true),
        ("<", "6", true),
        ("<", "5", false),
    ];
    for (op, value, holds) in ops {
        let Check::Rest(r) = only(&format!(
            "[EVENT rest e]\ncheck http://x THAT n {op} {value}"
        )) else {
            panic!()
        };
        assert_eq!(r.holds("{'n': '5'}"), holds, "n {op} {value}");
    }
    // Text compares only for equality.
    let Check::Rest(r) = only("[EVENT rest up]\ncheck http://x/s that status == OK") else {
        panic!()
    };
    assert!(r.holds("status: 'OK'"));
    assert!(!r.holds("status: KO"));
    let Check::Rest(r) = only("[EVENT rest up]\ncheck http://x/s that status >= OK") else {
        panic!()
    };
    assert!(!r.holds("status: OK"));
    for bad in [
        "check http://x that n => 5",
        "check http://x than n > 5",
        "check http://x that n.m > 5",
        "check http://x that n > 5 extra",
        "http://x that n > 5",
    ] {
        let (p, d) = read(&format!("[EVENT rest e]\n{bad}"));
        assert!(p.is_empty(), "{bad}");
        assert_eq!(found(&d), [(Code::PROBE_INVALID_SYNTAX, 1, 1)], "{bad}");
    }
}

#[test]
fn nagios_probes() {
    let Check::Nagios(n) =
        only("[EVENT nagios e]\nNagios configuration at http://192.168.15.4:50001\nGET hosts")
    else {
        panic!()
    };
    assert_eq!(
        (
            n.host.as_str(),
            n.port,
            n.query.as_str(),
            n.columns.as_deref()
        ),
        ("192.168.15.4", 50_001, "GET hosts", None)
    );
    assert_eq!(n.event_info("x"), "x");
    let Check::Nagios(n) = only(
        "[EVENT nagios e]\nnagios  CONFIGURATION at HTTP://[::1]/live\nGET services\ncolumns:   a  b\tc",
    ) else {
        panic!()
    };
    assert_eq!((n.host.as_str(), n.port), ("::1", 50_000));
    assert_eq!(n.event_info("1;2;3"), "a;b;c\n1;2;3");
    let Check::Nagios(n) = only("[EVENT nagios e]\nGET hosts\nColumns:") else {
        panic!()
    };
    assert_eq!(n.columns, None);
    for bad in [
        "Nagios configuration at http://h:1",
        "Nagios configuration at ftp://h\nGET hosts",
        "Nagios configuration at http://h:0\nGET hosts",
        "Nagios configuration at http://h:70000\nGET hosts",
        "Nagios configuration at http://:80\nGET hosts",
        "Nagios configuration at http://[::1\nGET hosts",
        "Nagios configuration at\nGET hosts",
    ] {
        let (p, d) = read(&format!("[EVENT nagios e]\n{bad}"));
        assert!(p.is_empty(), "{bad}");
        assert_eq!(found(&d), [(Code::PROBE_INVALID_SYNTAX, 1, 1)], "{bad}");
    }
    let (_, d) = read("[EVENT nagios e]");
    assert!(d[0].message.contains("LiveStatus query"), "{d:?}");
}

#[test]
fn docker_probes_and_container_names() {
    assert_eq!(
        only("[EVENT docker e]"),
        Check::Docker {
            container: "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH".into()
        }
    );
    assert_eq!(
        only("[EVENT docker e]\nweb-ROBOCONF_INSTANCE_NAME"),
        Check::Docker {
            container: "web-ROBOCONF_INSTANCE_NAME".into()
        }
    );
    let (p, d) = read("[EVENT docker e]\na\nb");
    assert!(p.is_empty());
    assert_eq!(found(&d), [(Code::PROBE_INVALID_SYNTAX, 1, 1)]);
    let name = |t: &str, n: &str, p: &str| docker_container_name(t, n, p);
    assert_eq!(
        name(
            "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH",
            "server",
            "/vm/server"
        ),
        "server_vm"
    );
    assert_eq!(
        name(
            "ROBOCONF_CLEAN_REVERSED_INSTANCE_PATH",
            "server",
            "/vm 1/server"
        ),
        "server_vm_1"
    );
    assert_eq!(
        name(
            "c-ROBOCONF_CLEAN_INSTANCE_PATH-ROBOCONF_INSTANCE_NAME",
            "s",
            "/vm 1/s"
        ),
        "c-vm_1_s-s"
    );
    assert_eq!(name("ROBOCONF_INSTANCE_PATH", "s", "/vm/s"), "/vm/s");
    // Values are not read again; unknown variables stay.
    assert_eq!(
        name(
            "ROBOCONF_INSTANCE_NAME.ROBOCONF_OTHER.ROBOCONF_",
            "ROBOCONF_INSTANCE_PATH",
            "/p"
        ),
        "ROBOCONF_INSTANCE_PATH.ROBOCONF_OTHER.ROBOCONF_"
    );
    assert_eq!(name("fixed", "s", "/s"), "fixed");
}

#[test]
fn findings_carry_their_line_and_column() {
    let text = "# comment\nstray\nmore stray\n[EVENT snmp e1]\nx\n  [EVENT file e2]\na\nb\n[EVENT rest e3]\nGET /\n[EVENT docker e4]\n   [EVENT broken]\nbody of broken\n[event file e5]\n/tmp/x\n[EVENTfile e6]\n[EVENT file e7] trailing\n";
    let (p, d) = read(text);
    assert_eq!(
        found(&d),
        [
            (Code::PROBE_INVALID_SYNTAX, 2, 1),
            (Code::PROBE_INVALID_SYNTAX, 12, 4),
            (Code::PROBE_INVALID_SYNTAX, 16, 1),
            (Code::PROBE_INVALID_SYNTAX, 17, 1),
            (Code::PROBE_UNKNOWN_HANDLER, 4, 1),
            (Code::PROBE_INVALID_SYNTAX, 6, 3),
            (Code::PROBE_INVALID_SYNTAX, 9, 1),
        ]
    );
    assert!(!d[4].is_error() && d[0].is_error());
    let events: Vec<(&str, usize)> = p.iter().map(|p| (p.event.as_str(), p.line)).collect();
    assert_eq!(events, [("e4", 11), ("e5", 14)]);
    // CRLF line ends, blank lines, and sections of the same event.
    let (p, d) = read("\r\n[EVENT file e]\r\n/a\r\n\r\n[EVENT file e]\r\n/b\r\n");
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(p.len(), 2);
    assert_eq!(
        p[1].check,
        Check::File(FileCheck::NotifyIfExists("/b".into()))
    );
    assert_eq!(read("").0, []);
    assert_eq!(read("# only comments\n\n").1, []);
}

#[test]
fn arbitrary_text_never_panics() {
    let pieces = [
        "[",
        "]",
        "EVENT",
        "event",
        " ",
        "\n",
        "\t",
        "file",
        "rest",
        "nagios",
        "docker",
        "{{",
        "}}",
        "k",
        "é",
        "check",
        "that",
        ">",
        "=",
        "Nagios configuration at",
        "http://",
        "[::1]",
        ":",
        "0",
        "Columns:",
        "Delete if exists",
        "#",
        "\r\n",
        "ROBOCONF_",
    ];
    let mut seed = 3u64;
    let mut next = |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize % n
    };
    for _ in 0..5_000 {
        let text: String = (0..next(60))
            .filter_map(|_| pieces.get(next(pieces.len())).copied())
            .collect();
        let props: String = (0..next(12))
            .filter_map(|_| pieces.get(next(pieces.len())).copied())
            .collect();
        let (probes, diags) = parse(&text, Some(&props), Path::new("p.measures"));
        assert!(diags.iter().all(|d| d.line >= 1 && d.col >= 1), "{text:?}");
        for p in probes {
            if let Check::Rest(r) = &p.check {
                let _ = r.holds(&text);
            }
            if let Check::Nagios(n) = &p.check {
                let _ = n.event_info(&text);
            }
        }
        let _ = docker_container_name(&text, &props, &text);
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, text).expect("write");
}

/// A valid application with the components `VM` and `App`.
fn application(root: &Path) -> std::path::PathBuf {
    let dir = root.join("app");
    write(
        &dir,
        "descriptor/application.properties",
        "application-name = app\napplication-version = 1.0\napplication-dsl-id = roboconf-1.0\ngraph-entry-point = main.graph\ninstance-entry-point = main.instances\n",
    );
    write(
        &dir,
        "graph/main.graph",
        "VM {\n\tinstaller: target;\n\tchildren: App;\n}\nApp {\n\tinstaller: script;\n}\n",
    );
    write(
        &dir,
        "graph/VM/target.properties",
        "id = vm\nhandler = local\nname = vm\n",
    );
    write(&dir, "graph/App/scripts/deploy.sh", "#!/bin/bash\n");
    write(
        &dir,
        "instances/main.instances",
        "instance of VM {\n\tname: vm;\n\tinstance of App {\n\t\tname: app;\n\t}\n}\n",
    );
    dir
}

#[test]
fn an_application_loads_its_probes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = application(tmp.path());
    let (app, d) = load_application(&dir, Limits::default());
    assert!(d.is_empty(), "{d:?}");
    assert!(app.probes.is_empty());
    write(
        &dir,
        "probes/App.measures",
        "[EVENT file gone]\n{{ pid }}\n",
    );
    write(
        &dir,
        "probes/App.measures.properties",
        "pid = /run/app.pid\n",
    );
    write(&dir, "probes/VM.measures", "[EVENT snmp x]\n");
    write(&dir, "probes/Ghost.measures", "[EVENT file g]\n/x\n");
    write(&dir, "probes/Orphan.measures.properties", "a = 1\n");
    write(&dir, "probes/notes.txt", "");
    write(&dir, "probes/sub/App.measures", "[EVENT file x]\n/x\n");
    let (app, d) = load_application(&dir, Limits::default());
    let mut codes: Vec<(String, Code)> = d
        .iter()
        .map(|d| {
            let rel = d.file.strip_prefix(&dir).unwrap_or(&d.file);
            (rel.display().to_string(), d.code)
        })
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            (
                "probes/Ghost.measures".into(),
                Code::PROBE_UNKNOWN_COMPONENT
            ),
            (
                "probes/Orphan.measures.properties".into(),
                Code::PROBE_UNKNOWN_COMPONENT
            ),
            ("probes/VM.measures".into(), Code::PROBE_UNKNOWN_HANDLER),
            ("probes/notes.txt".into(), Code::PROBE_UNKNOWN_COMPONENT),
            (
                "probes/sub/App.measures".into(),
                Code::PROBE_UNKNOWN_COMPONENT
            ),
        ]
    );
    assert!(!crate::diag::has_errors(&d), "{d:?}");
    assert_eq!(app.probes.len(), 1);
    let (component, probes) = &app.probes[0];
    assert_eq!(component, "App");
    assert_eq!(
        probes[0].check,
        Check::File(FileCheck::NotifyIfExists("/run/app.pid".into()))
    );
    // A broken probe file makes the application invalid, with its line.
    write(&dir, "probes/App.measures", "[EVENT file gone]\n/a\n/b\n");
    let (_, d) = load_application(&dir, Limits::default());
    let broken: Vec<_> = d.iter().filter(|d| d.is_error()).collect();
    assert_eq!(broken.len(), 1, "{d:?}");
    assert_eq!(
        (broken[0].code, broken[0].line),
        (Code::PROBE_INVALID_SYNTAX, 1)
    );
}

#[test]
fn linked_and_oversized_probe_files_are_not_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = application(tmp.path());
    write(tmp.path(), "secret.properties", "pid = TOP-SECRET\n");
    write(
        &dir,
        "probes/App.measures",
        "[EVENT file gone]\n{{ pid }}\n",
    );
    std::os::unix::fs::symlink(
        tmp.path().join("secret.properties"),
        dir.join("probes/App.measures.properties"),
    )
    .expect("link");
    let (app, d) = load_application(&dir, Limits::default());
    assert!(
        app.probes[0].1[0].check == Check::File(FileCheck::NotifyIfExists("{{ pid }}".into())),
        "{:?}",
        app.probes
    );
    assert!(d.iter().any(|d| d.code == Code::X_SYMLINK_IGNORED));
    assert!(d.iter().any(|d| d.code == Code::PROBE_UNKNOWN_PROPERTY));
    assert!(!d.iter().any(|d| d.message.contains("TOP-SECRET")));
    let small = Limits {
        max_bytes: 4096,
        ..Limits::default()
    };
    let big = format!("[EVENT file big]\n/{}\n", "a".repeat(5000));
    write(&dir, "probes/VM.measures", &big);
    let (_, d) = load_application(&dir, small);
    assert!(
        d.iter()
            .any(|d| d.code == Code::P_IO_ERROR && d.file.ends_with("VM.measures")),
        "{d:?}"
    );
}
