//! The instructions of the commands language one by one, resolved against a small
//! LAMP-like model: `VM` roots (machines, targets `t1`, `t2`) holding `Tomcat` and
//! `MySQL`, and `Tomcat` holding `War`.

use super::*;
use roboconf_model::commands::{parse, Context as ParseContext};
use std::path::Path;

struct Lamp {
    insts: BTreeMap<String, (String, Desired)>,
}

impl Lamp {
    fn new() -> Lamp {
        let mut insts = BTreeMap::new();
        for (p, c) in [
            ("/tomcat-vm", "VM"),
            ("/tomcat-vm/tomcat", "Tomcat"),
            ("/tomcat-vm/tomcat/war", "War"),
            ("/mysql-vm", "VM"),
            ("/mysql-vm/mysql", "MySQL"),
            ("/vm 1", "VM"),
            ("/vm 2", "VM"),
            ("/vm 7", "VM"),
        ] {
            insts.insert(p.to_string(), (c.to_string(), Desired::Started));
        }
        Lamp { insts }
    }
}

fn parent_ok(parent: Option<&str>, child: &str) -> bool {
    matches!(
        (parent, child),
        (None, "VM") | (Some("VM"), "Tomcat" | "MySQL") | (Some("Tomcat"), "War")
    )
}

impl Model for Lamp {
    fn instances(&self) -> BTreeMap<String, (String, Desired)> {
        self.insts.clone()
    }
    fn component_exists(&self, c: &str) -> bool {
        ["VM", "Tomcat", "MySQL", "War"].contains(&c)
    }
    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
        parent_ok(parent, child)
    }
    fn is_machine(&self, c: &str) -> bool {
        c == "VM"
    }
    fn has_target(&self, c: &str, t: &str) -> bool {
        c == "VM" && (t == "t1" || t == "t2")
    }
    fn machine_target(&self, root: &str) -> Option<String> {
        (root == "/tomcat-vm").then(|| "t2".to_string())
    }
}

impl ParseContext for Lamp {
    fn component_exists(&self, name: &str) -> bool {
        Model::component_exists(self, name)
    }
    fn instance_component(&self, path: &str) -> Option<String> {
        self.insts.get(path).map(|(c, _)| c.clone())
    }
    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
        parent_ok(parent, child)
    }
    fn is_root_component(&self, c: &str) -> bool {
        c == "VM"
    }
    fn instance_paths(&self) -> Vec<String> {
        self.insts.keys().cloned().collect()
    }
}

/// Parses files (name, text) and resolves the first.
fn resolve_with(lamp: &Lamp, files: &[(&str, &str)], max: usize) -> Result<Plan, String> {
    let commands: Vec<(String, Commands)> = files
        .iter()
        .map(|(n, t)| {
            let path = format!("commands/{n}.commands");
            let (c, diags) = parse(t, Path::new(&path), lamp);
            assert!(diags.is_empty(), "{n}: {diags:?}");
            (n.to_string(), c)
        })
        .collect();
    let mut n = 0u128;
    let mut random = || {
        n += 1;
        n * 0x0123_4567_89ab_cdef
    };
    let mut ctx = Context {
        model: lamp,
        commands: &commands,
        now_ms: 1_700_000_000_123,
        random: &mut random,
        machines: 0,
        max_machines: max,
    };
    plan(&mut ctx, files[0].0)
}

fn resolve(text: &str) -> Result<Plan, String> {
    resolve_with(&Lamp::new(), &[("main", text)], 100)
}

fn create(path: &str, component: &str) -> Step {
    Step::Create {
        path: path.into(),
        component: component.into(),
    }
}

fn set(path: &str, target: Desired) -> Step {
    Step::Set {
        path: path.into(),
        target,
    }
}

#[test]
fn smart_index_takes_the_first_free_index_and_replicate_copies_the_tree_and_its_target() {
    let p = resolve(
        "define NAME = vm $(SMART_INDEX)\nreplicate /tomcat-vm as $(NAME)\ndeploy and start all /$(NAME)",
    )
    .unwrap();
    assert_eq!(
        p.steps,
        vec![
            create("/vm 3", "VM"),
            create("/vm 3/tomcat", "Tomcat"),
            create("/vm 3/tomcat/war", "War"),
            Step::Target {
                root: "/vm 3".into(),
                target: "t2".into()
            },
            set("/vm 3", Desired::Started),
            set("/vm 3/tomcat", Desired::Started),
            set("/vm 3/tomcat/war", Desired::Started),
        ]
    );
    assert!(!p.skipped);
}

#[test]
fn existing_index_picks_the_bounded_min_or_max_and_an_empty_query_skips_what_uses_it() {
    let p = resolve(
        "define LAST = vm $(EXISTING_INDEX MAX)\nstop all /$(LAST)\ndefine FIRST = vm $(EXISTING_INDEX MIN > 1)\nundeploy all /$(FIRST)",
    )
    .unwrap();
    assert_eq!(
        p.steps,
        vec![
            set("/vm 7", Desired::Deployed),
            set("/vm 2", Desired::NotDeployed)
        ]
    );
    let p = resolve(
        "define OLD = vm $(EXISTING_INDEX MAX < 1)\ndefine COPY = $(OLD) copy\nstop all /$(OLD)\ncreate VM as $(COPY)\nchange status of /vm 1 to NOT_DEPLOYED",
    )
    .unwrap();
    assert!(
        p.skipped,
        "the instructions using OLD, even through COPY, are skipped"
    );
    assert_eq!(p.steps, vec![set("/vm 1", Desired::NotDeployed)]);
}

#[test]
fn create_under_a_parent_associate_rename_and_delete() {
    let p = resolve(
        "create VM as web\ncreate Tomcat as tc under /web\nassociate /web with t1\nchange status of /web/tc to DEPLOYED and STARTED\nrename /vm 1 as old\ndelete /vm 2",
    );
    // `/vm 1` is started: it cannot be renamed.
    assert!(p
        .unwrap_err()
        .contains("must be undeployed before it is renamed"));
    let mut lamp = Lamp::new();
    lamp.insts.get_mut("/vm 1").unwrap().1 = Desired::NotDeployed;
    let p = resolve_with(
        &lamp,
        &[(
            "main",
            "create VM as web\ncreate Tomcat as tc under /web\nassociate /web with t1\nchange status of /web/tc to DEPLOYED and STARTED\nrename /vm 1 as old\ndelete /vm 2",
        )],
        100,
    )
    .unwrap();
    assert_eq!(
        p.steps,
        vec![
            create("/web", "VM"),
            create("/web/tc", "Tomcat"),
            Step::Target {
                root: "/web".into(),
                target: "t1".into()
            },
            set("/web/tc", Desired::Started),
            create("/old", "VM"),
            Step::Delete {
                path: "/vm 1".into()
            },
            Step::Delete {
                path: "/vm 2".into()
            },
        ]
    );
}

#[test]
fn bulk_verbs_by_component_and_the_stop_of_started_instances_only() {
    let mut lamp = Lamp::new();
    lamp.insts.get_mut("/mysql-vm/mysql").unwrap().1 = Desired::NotDeployed;
    let p = resolve_with(
        &lamp,
        &[(
            "main",
            "stop all instances of MySQL\nundeploy all instances of Tomcat",
        )],
        100,
    )
    .unwrap();
    assert_eq!(
        p.steps,
        vec![
            set("/tomcat-vm/tomcat/war", Desired::NotDeployed),
            set("/tomcat-vm/tomcat", Desired::NotDeployed),
        ]
    );
}

#[test]
fn generators_write_append_and_email() {
    let p = resolve(
        "define T = $(FORMATTED_TIME yyyy)\ndefine M = $(MILLI_TIME)\ndefine U = $(UUID)\nwrite $(T) $(M) into %TMP%/out.txt\nappend $(U) into %TMP%/out.txt\nemail a@x.org, b@x.org with Subject: Alert!\\nScaled up.",
    )
    .unwrap();
    let Step::Write { content, file, .. } = &p.steps[0] else {
        panic!("{:?}", p.steps[0]);
    };
    assert_eq!(file, "%TMP%/out.txt");
    assert!(content.ends_with(" 1700000000123"), "{content}");
    let Step::Write {
        content, append, ..
    } = &p.steps[1]
    else {
        panic!()
    };
    assert!(*append);
    assert_eq!(content.len(), 36);
    assert_eq!(&content[14..15], "4", "a version-4 UUID: {content}");
    assert_eq!(
        p.steps[2],
        Step::Email {
            to: vec!["a@x.org".into(), "b@x.org".into()],
            subject: "Alert!".into(),
            body: "Scaled up.".into()
        }
    );
}

#[test]
fn execute_nests_with_its_own_variables_and_a_depth_limit() {
    let lamp = Lamp::new();
    let p = resolve_with(
        &lamp,
        &[
            ("main", "execute inner\ncreate VM as after"),
            ("inner", "define N = vm $(SMART_INDEX)\ncreate VM as $(N)"),
        ],
        100,
    )
    .unwrap();
    assert_eq!(p.nested, ["inner"]);
    assert_eq!(p.steps, vec![create("/vm 3", "VM"), create("/after", "VM")]);
    // A chain deeper than the limit fails with the file and line.
    let files: Vec<(String, String)> = (0..=MAX_DEPTH)
        .map(|i| (format!("c{i}"), format!("execute c{}", i + 1)))
        .chain(std::iter::once((
            format!("c{}", MAX_DEPTH + 1),
            "create VM as deep".to_string(),
        )))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let e = resolve_with(&lamp, &refs, 100).unwrap_err();
    assert!(e.contains("nests deeper than 8"), "{e}");
    assert!(e.starts_with("commands/c0.commands:1:"), "{e}");
}

#[test]
fn the_machine_limit_fails_the_whole_file_before_anything_is_applied() {
    let e = resolve_with(
        &Lamp::new(),
        &[("main", "create VM as a\ncreate VM as b")],
        1,
    )
    .unwrap_err();
    assert!(e.contains("main.commands:2:"), "{e}");
    assert!(e.contains("machine limit (1)"), "{e}");
}

#[test]
fn what_no_longer_fits_the_live_model_is_an_error_with_its_line() {
    let mut lamp = Lamp::new();
    lamp.insts.retain(|p, _| !p.starts_with("/tomcat-vm"));
    let text = "replicate /tomcat-vm as copy";
    let (c, _) = parse(text, Path::new("commands/main.commands"), &Lamp::new());
    let commands = vec![("main".to_string(), c)];
    let mut random = || 0u128;
    let mut ctx = Context {
        model: &lamp,
        commands: &commands,
        now_ms: 0,
        random: &mut random,
        machines: 0,
        max_machines: 10,
    };
    let e = plan(&mut ctx, "main").unwrap_err();
    assert_eq!(e, "commands/main.commands:1: no instance `/tomcat-vm`");
    // Created since the file was validated.
    let mut lamp = Lamp::new();
    lamp.insts
        .insert("/copy".into(), ("VM".into(), Desired::NotDeployed));
    let mut ctx = Context {
        model: &lamp,
        commands: &commands,
        now_ms: 0,
        random: &mut random,
        machines: 0,
        max_machines: 10,
    };
    let e = plan(&mut ctx, "main").unwrap_err();
    assert_eq!(
        e,
        "commands/main.commands:1: instance `/copy` already exists"
    );
}
