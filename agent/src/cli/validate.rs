//! `roboconf validate PATH [--json]`: the model's verdict on an application folder or a
//! single DSL file, as `path:line:col: error[CODE]: message` lines (errors first) and a
//! closing summary, or as one JSON object.

use roboconf_model::dsl::Limits;
use roboconf_model::validate::{validate_path, Report, Target};
use std::fmt::Write;
use std::path::Path;
use std::process::ExitCode;

pub fn run(path: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let report = match validate_path(path, Limits::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("roboconf validate: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut text = String::new();
    if json {
        let mut value = serde_json::to_value(&report)?;
        value["path"] = serde_json::Value::String(path.display().to_string());
        writeln!(text, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        for d in &report.diagnostics {
            writeln!(text, "{d}")?;
        }
        if let Some(note) = report.note.as_ref().filter(|_| report.valid) {
            writeln!(text, "note: {note}")?;
        }
        writeln!(text, "{}", summary_line(path, &report))?;
    }
    super::out(&text);
    Ok(ExitCode::from(if report.valid { 0 } else { 1 }))
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn summary_line(path: &Path, r: &Report) -> String {
    let verdict = if r.valid { "valid" } else { "INVALID" };
    let what = match r.target {
        Target::Application => match &r.summary.name {
            Some(n) => format!("application `{n}`"),
            None => "application".to_string(),
        },
        Target::Graph => "graph file".to_string(),
        Target::Instances => "instances file".to_string(),
    };
    let s = &r.summary;
    let mut counts = Vec::new();
    if r.target != Target::Instances {
        counts.push(plural(s.components, "component"));
        counts.push(plural(s.facets, "facet"));
    }
    if r.target != Target::Graph {
        counts.push(plural(s.instances, "instance"));
    }
    if s.commands > 0 {
        counts.push(plural(s.commands, "commands file"));
    }
    if s.rules > 0 {
        counts.push(plural(s.rules, "rule"));
    }
    // Counts only mean something once the model could be built.
    let counts = if r.valid {
        format!(" ({})", counts.join(", "))
    } else {
        String::new()
    };
    format!(
        "{}: {verdict} {what}{counts}: {}, {}",
        path.display(),
        plural(r.errors, "error"),
        plural(r.warnings, "warning")
    )
}
