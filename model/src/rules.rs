//! The autonomic rules language (`rules.autonomic/*.drl`): [`parse`] reads the one rule a
//! file holds, as Roboconf does: `rule "name"`, optional properties (`sleep period is 60s`,
//! `time window is 120s`), `when` the event, `then` the commands files to run (one per line
//! or separated by `;`), `end`; comments are `#` or `//` to the end of the line and
//! `/* ... */`. Whether the commands exist is the caller's check (RULE_UNKNOWN_COMMAND).

use crate::commands::{find_word, starts_ci};
use crate::diag::{Code, Diagnostic, Severity};
use std::path::Path;

/// An autonomic rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub name: String,
    /// The event that triggers the rule (the `when` part).
    pub event: String,
    /// The commands files to run, in order, named without `.commands` (the `then` part).
    pub commands: Vec<String>,
    /// `sleep period is N[s]`: seconds before the rule may run again (Roboconf's delay
    /// between succeeding invocations; 0 when not set).
    pub sleep_period: u32,
    /// `time window is N[s]`: seconds during which an event counts; `None`: no window.
    pub time_window: Option<u32>,
    /// The line of `rule`.
    pub line: usize,
    /// The line of `then`, where the commands start.
    pub then_line: usize,
}

/// Parses a rule file. The rule is `None` when the file's structure is not a rule
/// (RULE_INVALID_SYNTAX); otherwise it comes with RULE_EMPTY_NAME, RULE_EMPTY_WHEN and
/// RULE_EMPTY_THEN errors if any, and warnings for property text Roboconf ignores.
pub fn parse(text: &str, file: &Path) -> (Option<Rule>, Vec<Diagnostic>) {
    let (s, open_comment) = blank_comments(text);
    let invalid = |off: usize, msg: &str| {
        let (line, col) = position(&s, off);
        let d = Diagnostic::new(Code::RULE_INVALID_SYNTAX, file, line, col, msg);
        (None, vec![d])
    };
    if let Some(off) = open_comment {
        return invalid(off, "unterminated `/*` comment");
    }
    let start = s.len() - s.trim_start().len();
    let after_kw = s.get(start + 4..).unwrap_or_default();
    if !starts_ci(&s[start..], "rule") || !after_kw.starts_with(char::is_whitespace) {
        return invalid(start, "a rule file must start with `rule \"name\"`");
    }
    let quote = s.len() - after_kw.trim_start().len();
    let Some(name_len) = s[quote..].strip_prefix('"').and_then(|r| r.find('"')) else {
        return invalid(
            quote,
            "expected the rule name in double quotes after `rule`",
        );
    };
    let rest_at = quote + name_len + 2;
    let rest = s[rest_at..].trim_end();
    let Some(&when) = find_word(rest, "when").first() else {
        return invalid(rest_at, "missing `when`");
    };
    let Some(then) = find_word(&rest[when..], "then").first().map(|t| when + t) else {
        return invalid(rest_at + when, "missing `then` after `when`");
    };
    let end = find_word(&rest[then..], "end").last().map(|e| then + e);
    let Some(end) = end.filter(|e| e + 3 == rest.len()) else {
        return invalid(rest_at + rest.len(), "missing `end` at the end of the rule");
    };
    let then_part = &rest[then + 4..end];
    if let Some(extra) = find_word(then_part, "end").first() {
        return invalid(
            rest_at + then + 4 + extra,
            "stray `end`: a file holds one rule",
        );
    }
    let split = then_part
        .split([';', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let mut rule = Rule {
        name: s[quote + 1..quote + 1 + name_len].trim().to_string(),
        event: rest[when + 4..then].trim().to_string(),
        commands: split.map(String::from).collect(),
        line: position(&s, start).0,
        then_line: position(&s, rest_at + then).0,
        ..Rule::default()
    };
    let at = |code: Code, off: usize, msg: &str| {
        let (line, col) = position(&s, off);
        Diagnostic::new(code, file, line, col, msg)
    };
    let mut diags = Vec::new();
    read_properties(&s[rest_at..rest_at + when], &mut rule, |off, what| {
        let msg = format!("unrecognized rule property `{what}`, ignored");
        let d = at(Code::RULE_INVALID_SYNTAX, rest_at + off, &msg);
        diags.push(Diagnostic {
            severity: Severity::Warning,
            ..d
        });
    });
    if rule.name.is_empty() {
        diags.push(at(Code::RULE_EMPTY_NAME, quote, "empty rule name"));
    }
    if rule.event.is_empty() {
        diags.push(at(
            Code::RULE_EMPTY_WHEN,
            rest_at + when,
            "no event after `when`",
        ));
    }
    if rule.commands.is_empty() {
        diags.push(at(
            Code::RULE_EMPTY_THEN,
            rest_at + then,
            "no command after `then`",
        ));
    }
    (Some(rule), diags)
}

/// Reads `sleep period is N[s]` and `time window is N[s]`; `ignored(offset, text)` gets
/// each run of words that are neither.
fn read_properties(props: &str, rule: &mut Rule, mut ignored: impl FnMut(usize, &str)) {
    let words = words(props);
    let (mut i, mut run) = (0, None);
    while let Some(&(off, word)) = words.get(i) {
        let is = |w: usize, kw: &str| {
            words
                .get(i + w)
                .is_some_and(|x| x.1.eq_ignore_ascii_case(kw))
        };
        let seconds = words.get(i + 3).and_then(|(_, n)| {
            let n = n.strip_suffix(['s', 'S']).unwrap_or(n);
            n.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| n.parse::<u32>().ok())
                .flatten()
        });
        match seconds.filter(|_| is(2, "is")) {
            Some(n) if is(0, "sleep") && is(1, "period") => rule.sleep_period = n,
            Some(n) if is(0, "time") && is(1, "window") => rule.time_window = Some(n),
            _ => {
                run = Some((run.map_or(off, |r: (usize, usize)| r.0), off + word.len()));
                i += 1;
                continue;
            }
        }
        if let Some((a, b)) = run.take() {
            ignored(a, &props[a..b]);
        }
        i += 4;
    }
    if let Some((a, b)) = run {
        ignored(a, &props[a..b]);
    }
}

/// The words of `s`, with their byte offsets.
fn words(s: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices().chain([(s.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(b)) => {
                out.push((b, &s[b..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    out
}

/// Replaces comments by blanks (keeping line breaks, so lines and columns stay), ignoring
/// comment marks inside double quotes. Also gives where an unterminated `/*` starts.
fn blank_comments(text: &str) -> (String, Option<usize>) {
    let mut out = String::with_capacity(text.len());
    let (mut quoted, mut line, mut block) = (false, false, None);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        line &= c != '\n';
        if block.is_some() && c == '*' && next == Some('/') {
            chars.next();
            out.push_str("  ");
            block = None;
            continue;
        }
        if line || block.is_some() {
            out.push(if c == '\n' { '\n' } else { ' ' });
            continue;
        }
        match (c, next) {
            ('"', _) => quoted = !quoted,
            ('#', _) | ('/', Some('/')) => line = !quoted,
            ('/', Some('*')) if !quoted => {
                chars.next();
                block = Some(out.len());
                out.push_str("  ");
                continue;
            }
            _ => {}
        }
        out.push(if line { ' ' } else { c });
    }
    (out, block)
}

/// The 1-based line and column (in characters) of a byte offset.
fn position(s: &str, off: usize) -> (usize, usize) {
    let before = s.get(..off).unwrap_or(s);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> (Option<Rule>, Vec<(Code, usize, usize)>) {
        let (rule, d) = parse(text, Path::new("rules.autonomic/r.drl"));
        (rule, d.iter().map(|d| (d.code, d.line, d.col)).collect())
    }

    #[test]
    fn simple_rule() {
        let (rule, d) = run("rule \"test\"\nwhen\n\tevent-1\nthen\n\tcmd1\nend\n");
        assert_eq!(d, []);
        let expected = Rule {
            name: "test".into(),
            event: "event-1".into(),
            commands: vec!["cmd1".into()],
            line: 1,
            then_line: 4,
            ..Rule::default()
        };
        assert_eq!(rule, Some(expected));
    }

    #[test]
    fn comments_separators_and_properties() {
        let text = "// c1\n# c2\n\nRULE /* oops */ \"te#st\"\nSleep period is 8s\n\
            Time window is 60\t// the 's' is optional\nWHEN\n\tevent-1 # if...\nTHEN\n\t/*\n\t \
            * cmd0\n\t */\n\tcmd1;\n\tcmd2; cmd3\n\tcmd4\n\t// ignore it\nEND";
        let (rule, d) = run(text);
        assert_eq!(d, []);
        let rule = rule.unwrap_or_default();
        assert_eq!(
            (rule.name.as_str(), rule.event.as_str()),
            ("te#st", "event-1")
        );
        assert_eq!(rule.commands, ["cmd1", "cmd2", "cmd3", "cmd4"]);
        assert_eq!((rule.sleep_period, rule.time_window), (8, Some(60)));
        assert_eq!((rule.line, rule.then_line), (4, 9));
    }

    #[test]
    fn empty_parts() {
        let (rule, d) = run("rule \"\"\nwhen\n\t\nthen\n\t\nend\n");
        assert!(rule.is_some());
        let expected = [
            (Code::RULE_EMPTY_NAME, 1, 6),
            (Code::RULE_EMPTY_WHEN, 2, 1),
            (Code::RULE_EMPTY_THEN, 4, 1),
        ];
        assert_eq!(d, expected);
        let (_, d) = run("rule \"x\" when then ; end");
        assert_eq!(
            d,
            [
                (Code::RULE_EMPTY_WHEN, 1, 10),
                (Code::RULE_EMPTY_THEN, 1, 15)
            ]
        );
    }

    #[test]
    fn invalid_syntax() {
        let cases: &[(&str, (usize, usize))] = &[
            ("", (1, 1)),
            ("\n\tThis is not a valid rule\nend", (2, 2)),
            ("rule test when a then b end", (1, 6)),
            ("rule \"test when a then b end", (1, 6)),
            ("rules \"x\" when a then b end", (1, 1)),
            ("rule \"x\"\nthen b end", (1, 9)),
            ("rule \"x\"\nwhen a\nend", (2, 1)),
            ("rule \"x\" when a then b", (1, 23)),
            ("rule \"x\" when a then b end extra", (1, 33)),
            (
                "rule \"a\" when e then c end\nrule \"b\" when e then c end",
                (1, 24),
            ),
            ("rule \"x\" when a then b end\n/* open", (2, 1)),
        ];
        for (text, at) in cases {
            let (rule, d) = run(text);
            assert_eq!(
                (rule, d),
                (None, vec![(Code::RULE_INVALID_SYNTAX, at.0, at.1)]),
                "{text:?}"
            );
        }
    }

    #[test]
    fn ignored_properties_are_warnings() {
        let (rule, d) = parse(
            "rule \"x\"\nsleep period is soon\nwhen a then b end",
            Path::new("x"),
        );
        assert_eq!(rule.map(|r| r.sleep_period), Some(0));
        let got: Vec<_> = d
            .iter()
            .map(|d| (d.code, d.severity, d.line, d.col))
            .collect();
        let warning = (Code::RULE_INVALID_SYNTAX, Severity::Warning, 2, 1);
        assert_eq!(got, [warning]);
        assert_eq!(
            d[0].message,
            "unrecognized rule property `sleep period is soon`, ignored"
        );
        let text = "rule \"x\" a b time window is 5 c when a then b end";
        let (rule, d) = parse(text, Path::new("x"));
        assert_eq!(rule.and_then(|r| r.time_window), Some(5));
        let got: Vec<_> = d.iter().map(|d| (d.col, d.message.as_str())).collect();
        let ignored = |t| format!("unrecognized rule property `{t}`, ignored");
        assert_eq!(
            got,
            [(10, ignored("a b").as_str()), (31, ignored("c").as_str())]
        );
    }

    #[test]
    fn corpus_lamp_sample() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/roboconf-corpus");
        let path = Path::new(dir).join("applications/lamp/rules.autonomic/sample.drl");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return println!("skipped: {} is absent", path.display());
        };
        let (rule, d) = parse(&text, &path);
        assert_eq!(d, []);
        let rule = rule.unwrap_or_default();
        assert_eq!(
            (rule.name.as_str(), rule.event.as_str()),
            ("sample", "alert")
        );
        assert_eq!(rule.commands, ["scale"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in r##"(?s)([a-z "#/*;\n\t0-9é]|rule|when|then|end|sleep period is|//|/\*|\*/)*"##) {
            let _ = parse(&s, Path::new("fuzz.drl"));
        }
    }
}
