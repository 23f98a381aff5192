//! Human output of the agent's answers: the instance tree with states, hosts, exports and
//! errors; the list of applications; script runs.

use crate::api::{AppStatus, AppSummary, RunView, State};
use std::fmt::Write as _;

/// The instance tree of each application.
pub fn status(apps: &[AppStatus]) -> String {
    let mut out = String::new();
    if apps.is_empty() {
        out.push_str("no application registered\n");
    }
    for a in apps {
        let started = a
            .instances
            .iter()
            .filter(|i| i.state == State::DeployedStarted)
            .count();
        let _ = writeln!(
            out,
            "{} ({} instances, {} started)",
            a.app,
            a.instances.len(),
            started
        );
        for i in &a.instances {
            let depth = i.path.matches('/').count();
            let name = i.path.rsplit('/').next().unwrap_or_default();
            let label = format!("{}{} ({})", "  ".repeat(depth), name, i.component);
            let mut line = format!("{label:<40} {:<21}", i.state.as_str());
            if let Some(n) = &i.node {
                if depth == 1 {
                    let _ = write!(line, " on {n}");
                }
            }
            let own: Vec<String> = i
                .exports
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{}.", i.component)))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if !own.is_empty() {
                let _ = write!(line, " {}", own.join(" "));
            }
            let _ = writeln!(out, "{}", line.trim_end());
            if let Some(e) = &i.last_error {
                let _ = writeln!(out, "{}  last error: {e}", "  ".repeat(depth));
            }
        }
    }
    out
}

pub fn apps(apps: &[AppSummary]) -> String {
    let mut out = String::new();
    if apps.is_empty() {
        out.push_str("no application registered\n");
    }
    for a in apps {
        let _ = writeln!(
            out,
            "{} {} ({} instances, {} started)",
            a.name, a.version, a.instances, a.started
        );
    }
    out
}

pub fn runs(runs: &[RunView]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        out.push_str("no script run recorded\n");
    }
    for r in runs {
        let verdict = match (r.ok, r.code, &r.error) {
            (true, Some(c), _) => format!("ok (exit {c})"),
            (true, None, _) => "ok (no script for this action)".to_string(),
            (false, _, Some(e)) => format!("FAILED: {e}"),
            (false, _, None) => "FAILED".to_string(),
        };
        let _ = writeln!(out, "#{} {} {} at {}", r.seq, r.action, verdict, r.at_ms);
        for l in r.output.lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}
