//! The unit tests of the commands language: every instruction kind, every error code with
//! its line, columns and messages, computed values, the simulation cap, `execute` links
//! across files, a corpus file, and a never-panics property.

use super::*;
use std::path::PathBuf;

/// vm (root) > tomcat > war, vm > mysql.
struct App;
const COMPONENTS: [(&str, &str); 4] = [
    ("vm", ""),
    ("tomcat", "vm"),
    ("war", "tomcat"),
    ("mysql", "vm"),
];
const INSTANCES: [(&str, &str); 6] = [
    ("/tomcat-vm", "vm"),
    ("/tomcat-vm/tomcat-server", "tomcat"),
    ("/tomcat-vm/tomcat-server/hello-world", "war"),
    ("/mysql-vm", "vm"),
    ("/mysql-vm/mysql-server", "mysql"),
    ("/MySQL VM", "vm"),
];

impl Context for App {
    fn component_exists(&self, name: &str) -> bool {
        COMPONENTS.iter().any(|c| c.0 == name)
    }
    fn instance_component(&self, path: &str) -> Option<String> {
        INSTANCES
            .iter()
            .find(|i| i.0 == path)
            .map(|i| i.1.to_string())
    }
    fn can_be_child(&self, parent: Option<&str>, child: &str) -> bool {
        COMPONENTS.contains(&(child, parent.unwrap_or_default()))
    }
    fn is_root_component(&self, component: &str) -> bool {
        self.can_be_child(None, component)
    }
    fn instance_paths(&self) -> Vec<String> {
        INSTANCES.iter().map(|i| i.0.to_string()).collect()
    }
}

fn run(text: &str) -> (Commands, Vec<(Code, usize)>) {
    let (c, d) = parse(text, Path::new("commands/self.commands"), &App);
    (c, d.iter().map(|d| (d.code, d.line)).collect())
}

#[test]
fn every_instruction_kind() {
    let text = r"# every kind of instruction
define VAR = vm
define cpt = $(SMART_INDEX)
Create vm as $(VAR) $(cpt)
deploy and start all /$(VAR) $(cpt)
STOP ALL /tomcat-vm
undeploy all instances of tomcat
replicate /tomcat-vm as copy
rename /copy as copy 2
create war as app under /copy 2/tomcat-server
change status of /copy 2/tomcat-server/app to deployed and started
associate /copy 2 with 42
write some text into %TMP%/out.txt   # a comment
append more into /tmp/out.txt
execute other.commands
email a@b.c, d@e.f with Subject: alert\
	\n\
	Body.
delete /copy 2
delete all instances of vm
create vm as $(VAR) $(cpt)
";
    let expected = [
        r#"Define { line: 2, name: "VAR", value: "vm", under: None }"#,
        r#"Define { line: 3, name: "cpt", value: "$(SMART_INDEX)", under: None }"#,
        r#"Create { line: 4, component: "vm", name: "vm $(cpt)", parent: None }"#,
        r#"Bulk { line: 5, action: DeployAndStartAll, target: Instance("/vm $(cpt)") }"#,
        r#"Bulk { line: 6, action: StopAll, target: Instance("/tomcat-vm") }"#,
        r#"Bulk { line: 7, action: UndeployAll, target: Component("tomcat") }"#,
        r#"Replicate { line: 8, path: "/tomcat-vm", new_name: "copy" }"#,
        r#"Rename { line: 9, path: "/copy", new_name: "copy 2" }"#,
        r#"Create { line: 10, component: "war", name: "app", parent: Some("/copy 2/tomcat-server") }"#,
        r#"ChangeStatus { line: 11, path: "/copy 2/tomcat-server/app", status: DeployedStarted }"#,
        r#"Associate { line: 12, path: "/copy 2", target_id: "42" }"#,
        r#"Write { line: 13, content: "some text", file: "%TMP%/out.txt" }"#,
        r#"Append { line: 14, content: "more", file: "/tmp/out.txt" }"#,
        r#"Execute { line: 15, command: "other" }"#,
        r#"Email { line: 16, to: ["a@b.c", "d@e.f"], message: "Subject: alert\nBody." }"#,
        r#"Bulk { line: 19, action: Delete, target: Instance("/copy 2") }"#,
        r#"Bulk { line: 20, action: Delete, target: Component("vm") }"#,
        r#"Create { line: 21, component: "vm", name: "vm $(cpt)", parent: None }"#,
    ];
    let (c, diags) = run(text);
    assert_eq!(diags, []);
    assert_eq!(c.name, "self");
    let got: Vec<String> = c.instructions.iter().map(|i| format!("{i:?}")).collect();
    assert_eq!(got, expected);
    assert_eq!(c.instructions.last().map(Instruction::line), Some(21));
}

/// Each line: the expected `CODE@line`s, `|`, the file (`\n` for a line break).
const ERROR_CASES: &str = r"
CMD_NO_INSTRUCTION@1 |
CMD_NO_INSTRUCTION@1 | # only a comment\n\n
CMD_UNRECOGNIZED_INSTRUCTION@2 | \ndefin VAR = vm
CMD_UNRECOGNIZED_INSTRUCTION@1 | stop all
CMD_INVALID_SYNTAX@1 | replicate /tomcat-vm
CMD_INVALID_SYNTAX@1 | createvm as x
CMD_INVALID_SYNTAX@1 | change status of /tomcat-vm\\n  DEPLOYED
CMD_UNRESOLVED_VARIABLE@1 | create vm \\n as $(x)
CMD_UNRESOLVED_VARIABLE@1 CMD_UNRESOLVED_VARIABLE@2 | define a = $(b)\nstop all /$(a)
CMD_UNRESOLVED_VARIABLE@1 | create vm as $(UUID)
CMD_NO_MATCHING_INSTANCE@3 | create vm \\n as a\nstop all /b
CMD_NO_MATCHING_INSTANCE@2 | rename /tomcat-vm as t2\nundeploy all /tomcat-vm
CMD_NO_MATCHING_INSTANCE@2 | delete /tomcat-vm\nstop all /tomcat-vm/tomcat-server
CMD_NO_MATCHING_INSTANCE@2 | delete instances of vm\nrename /mysql-vm as m
CMD_NO_MATCHING_INSTANCE@1 | change status of /nope to NOT_DEPLOYED
CMD_NO_MATCHING_INSTANCE@1 | create tomcat as t under /nope
CMD_NO_MATCHING_INSTANCE@1 | define i = x under /nope
CMD_NOT_A_ROOT_INSTANCE@1 | replicate /tomcat-vm/tomcat-server as t
CMD_NOT_A_SCOPED_INSTANCE@1 | associate /tomcat-vm/tomcat-server with 1
CMD_INVALID_TARGET_ID@1 | associate /tomcat-vm with
CMD_CONFLICTING_INSTANCE_NAME@1 | rename /tomcat-vm as mysql-vm
CMD_CONFLICTING_INSTANCE_NAME@1 | replicate /tomcat-vm as mysql-vm
CMD_CONFLICTING_INSTANCE_NAME@2 | create vm as v\ncreate vm as v
CMD_MISSING_INSTANCE_NAME@1 | replicate /tomcat-vm as
CMD_INVALID_INSTANCE_NAME@1 | create vm as 1vm
CMD_INVALID_INSTANCE_NAME@1 | rename /tomcat-vm as a/b
CMD_INVALID_INSTANCE_NAME@1 | create vm as vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv
CMD_MISSING_COMPONENT_NAME@1 | create as x
CMD_MISSING_COMPONENT_NAME@1 | stop all instances of
CMD_INEXISTING_COMPONENT@1 | create oops as x
CMD_INEXISTING_COMPONENT@1 | stop all instances of oops
CMD_MISSING_PARENT_INSTANCE@1 | create tomcat as t
CMD_NOT_AN_ACCEPTABLE_PARENT@1 | create war as w under /tomcat-vm
CMD_CANNOT_HAVE_ANY_PARENT@1 | create vm as v under /tomcat-vm
CMD_INVALID_INSTANCE_STATUS@1 | change status of /tomcat-vm to started
CMD_INVALID_INSTANCE_STATUS@1 | change status of /tomcat-vm to
CMD_INSTABLE_INSTANCE_STATUS@1 | change status of /tomcat-vm to DEPLOYING
CMD_EMAIL_NO_MESSAGE@1 | email a@b.c with
CMD_EMPTY_VARIABLE_NAME@1 | define = 1
CMD_NO_MIX_FOR_PATTERNS@1 | define t = at $(FORMATTED_TIME HH:mm )
CMD_NO_MIX_FOR_PATTERNS@1 | define t = $(FORMATTED_TIME HH ) $(UUID)
CMD_INVALID_DATE_PATTERN@1 | define t = $(FORMATTED_TIME invalid pattern )
CMD_INVALID_DATE_PATTERN@1 | define t = $(FORMATTED_TIME 'open )
CMD_INVALID_INDEX_PATTERN@1 | define i = $(EXISTING_INDEX MAXIMUM)
CMD_INVALID_INDEX_PATTERN@1 | define i = $(EXISTING_INDEX MIN <)
CMD_MISSING_TARGET_FILE@1 | write x into
CMD_MISSING_COMMAND_NAME@1 | execute
CMD_LOOPING_COMMAND@3 | \n\nexecute self.commands
";

#[test]
fn every_error_code_with_its_line() {
    for case in ERROR_CASES.lines().skip(1) {
        let (expected, text) = case.split_once(" |").unwrap_or_default();
        let text = text
            .trim_start()
            .replace("\\\\n", "\\\n")
            .replace("\\n", "\n");
        let parse_one = |e: &str| {
            let (code, line) = e.split_once('@').unwrap_or_default();
            (Code::from_name(code), line.parse().ok())
        };
        let expected: Vec<_> = expected.split(' ').map(parse_one).collect();
        let got: Vec<_> = run(&text)
            .1
            .into_iter()
            .map(|(c, l)| (Some(c), Some(l)))
            .collect();
        assert_eq!(got, expected, "{case}");
    }
}

#[test]
fn columns_and_messages() {
    let (_, d) = parse("  stop all /nope", Path::new("a.commands"), &App);
    assert_eq!(
        (d[0].line, d[0].col, d[0].message.as_str()),
        (1, 12, "no instance `/nope`")
    );
    let (_, d) = parse("\tfoo bar", Path::new("a.commands"), &App);
    assert_eq!(
        (d[0].col, d[0].message.as_str()),
        (2, "unrecognized instruction `foo bar`")
    );
    assert_eq!(d[0].severity, crate::diag::Severity::Error);
    let (_, d) = parse("\n", Path::new("a.commands"), &App);
    assert_eq!(d[0].severity, crate::diag::Severity::Warning);
}

#[test]
fn computed_values_are_kept_for_the_caller() {
    let text = "define VAR = vm $(SMART_INDEX)\nreplicate /tomcat-vm as $(VAR)
define VAR = vm $(SMART_INDEX)\nreplicate /tomcat-vm as $(VAR)
create tomcat as t under /vm 2\ncreate vm as vm 3
define LAST = vm $(EXISTING_INDEX MAX)\ndeploy and start all /$(LAST)
define OLD = vm $(EXISTING_INDEX MIN > 50 ) under /tomcat-vm\ndelete /tomcat-vm/$(OLD)
define t = $(FORMATTED_TIME yyyy-MM-dd 'at' HH:mm )\ndefine id = $(t)-$(NANO_TIME)-$(MILLI_TIME)
write $(id) $(UUID) into /tmp/$(VAR)\nappend x into $(id)";
    let (c, diags) = run(text);
    assert_eq!(diags, [(Code::CMD_UNRESOLVED_VARIABLE, 13)]); // $(UUID) outside a define
    let lines: Vec<usize> = c.instructions.iter().map(Instruction::line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14]);
    let last = &c.instructions[12];
    assert_eq!(
        format!("{last:?}"),
        r#"Append { line: 14, content: "x", file: "$(id)" }"#
    );
    let old = &c.instructions[8];
    assert!(matches!(old, Instruction::Define { under: Some(u), .. } if u == "/tomcat-vm"));
}

#[test]
fn static_variables_are_substituted() {
    let (c, d) = run("define n = web\ncreate vm as $(n)\nDefine p = /$(n)\nstop all $(p)");
    assert_eq!(d, []);
    let got = format!("{:?}", c.instructions[3]);
    assert_eq!(
        got,
        r#"Bulk { line: 4, action: StopAll, target: Instance("/web") }"#
    );
}

#[test]
fn too_many_simulated_instances() {
    let text: String = (0..34_000)
        .map(|i| format!("replicate /tomcat-vm as c{i}\n"))
        .collect();
    let (_, d) = run(&text);
    // 6 instances, 3 more per replication: line 33 332 would pass 100 000.
    assert_eq!(d.len(), 1);
    assert_eq!(d[0], (Code::X_TOO_MANY_INSTANCES, 33_332));
}

#[test]
fn executions_across_files() {
    let file = |name: &str, targets: &[&str]| {
        let exec = |(i, t): (usize, &&str)| Instruction::Execute {
            line: i + 1,
            command: t.to_string(),
        };
        let instructions = targets.iter().enumerate().map(exec).collect();
        (
            PathBuf::from(format!("{name}.commands")),
            Commands {
                name: name.into(),
                instructions,
            },
        )
    };
    let all = [
        file("a", &["b", "d"]),
        file("b", &["c"]),
        file("c", &["b"]),
        file("d", &["zz"]),
        file("e", &["d"]),
    ];
    let d = check_executions(all.iter().map(|(p, c)| (p.as_path(), c)));
    let got: Vec<(String, Code, usize)> = d
        .iter()
        .map(|d| (d.file.display().to_string(), d.code, d.line))
        .collect();
    let nasty = Code::CMD_NASTY_LOOPING_COMMAND;
    let expected = [
        ("a.commands".to_string(), nasty, 1),
        ("b.commands".to_string(), nasty, 1),
        ("c.commands".to_string(), nasty, 1),
        ("d.commands".to_string(), Code::CMD_INEXISTING_COMMAND, 1),
    ];
    assert_eq!(got, expected);
}

#[test]
fn corpus_lamp_scale() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/roboconf-corpus");
    let path = Path::new(dir).join("applications/lamp/commands/scale.commands");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return println!("skipped: {} is absent", path.display());
    };
    let (c, d) = parse(&text, &path, &App);
    assert_eq!(d, []);
    assert_eq!(c.name, "scale");
    assert_eq!(c.instructions.len(), 2);
}

proptest::proptest! {
    #[test]
    fn never_panics(s in r"(?s)([a-zA-Z/ =#\\\n.$()é]|create|as|under|define|all|with|\$\(SMART_INDEX\)|instances of|into|\$\(EXISTING_INDEX MIN ?[<>]? ?[0-9]*\))*") {
        let _ = parse(&s, Path::new("fuzz.commands"), &App);
    }
}
