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
            if let Some(m) = &i.machine {
                let id = if m.id.is_empty() { "-" } else { m.id.as_str() };
                let _ = writeln!(
                    out,
                    "{}  machine: {id} on target {} ({}), generation {}, {}",
                    "  ".repeat(depth),
                    m.target,
                    m.handler,
                    m.generation,
                    m.state
                );
            }
            if let Some(e) = &i.last_error {
                let _ = writeln!(out, "{}  last error: {e}", "  ".repeat(depth));
            }
            if let Some(r) = &i.retry {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                let when = match r.at_ms.saturating_sub(now).div_ceil(1000) {
                    0 => "due now".to_string(),
                    s => format!("in {s} s"),
                };
                let _ = writeln!(
                    out,
                    "{}  next attempt: {when} (attempt {} failed)",
                    "  ".repeat(depth),
                    r.attempt
                );
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

pub fn members(members: &[crate::api::MemberView]) -> String {
    let mut out = String::new();
    if members.is_empty() {
        out.push_str("no member known (this agent is not in a mesh)\n");
    }
    for m in members {
        let build = m.binary.as_ref().map_or(String::new(), |b| {
            format!(" build {} {}", &b.sha256[..12.min(b.sha256.len())], b.arch)
        });
        let _ = writeln!(
            out,
            "{:<16} {:<8} {} roots [{}] v{}{build}{}",
            m.name,
            m.state,
            m.id,
            m.roots.join(", "),
            m.version,
            match m.differs {
                true => "  DIFFERS from most members",
                false => "",
            }
        );
        for a in &m.addresses {
            let _ = writeln!(out, "    {a}");
        }
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
            (true, Some(c), Some(w)) => format!("ok (exit {c}), {w}"),
            (true, Some(c), None) => format!("ok (exit {c})"),
            (true, None, _) => "ok (no script for this action)".to_string(),
            (false, _, Some(e)) => format!("FAILED: {e}"),
            (false, _, None) => "FAILED".to_string(),
        };
        let _ = writeln!(
            out,
            "#{} {} {} at {}",
            r.seq,
            r.action,
            verdict,
            utc(r.at_ms)
        );
        for l in r.output.lines() {
            let _ = writeln!(out, "    {l}");
        }
    }
    out
}

/// Milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS.mmmZ` (UTC).
pub fn utc(ms: u64) -> String {
    let (secs, millis) = (ms / 1000, ms % 1000);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00.000Z");
        assert_eq!(super::utc(951_782_400_123), "2000-02-29 00:00:00.123Z");
        assert_eq!(super::utc(1_795_670_497_681), "2026-11-26 05:21:37.681Z");
    }
}
