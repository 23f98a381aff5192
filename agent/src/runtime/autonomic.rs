//! The runtime's autonomic I/O: the probes of the instances this agent hosts, evaluated
//! every `probe-period-secs` (Roboconf's 20 s by default) for those DEPLOYED_STARTED, each
//! with a timeout so that an unreachable target delays nothing else — each hit becomes an
//! `Input::Probe` for the node, which publishes the occurrence to the mesh — and, on the
//! coordinator's leader, the steps of an execution that leave the mesh: files written
//! into `<data-dir>/autonomic/files` (the only folder `write` and `append` reach: `%TMP%`
//! and absolute paths are taken inside it, `..` is refused) and e-mails sent through the
//! configured SMTP relay.

use super::{now_ms, Loop};
use crate::autonomic::{email, probes};
use roboconf_core::autonomic::records::EventRecord;
use roboconf_core::coord::autonomic::Step;
use roboconf_core::node::{External, Input};
use roboconf_model::probes::{Check, FileCheck, Probe};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the autonomic tasks report to the loop.
#[derive(Debug)]
pub(super) enum Report {
    Hit(EventRecord),
    Done {
        execution: u64,
        index: usize,
        error: Option<String>,
    },
}

/// The most bytes of a probe's answer kept as the event's details.
const DETAILS_MAX: usize = 4 * 1024;

/// The probe rounds' state.
pub(super) struct Probing {
    pub next_ms: u64,
    /// A round is running (the next one waits for it).
    pub busy: Arc<AtomicBool>,
    pub report_tx: mpsc::Sender<Report>,
}

impl Loop {
    pub(super) fn autonomic_report(&mut self, r: Report) {
        match r {
            Report::Hit(rec) => {
                tracing::info!(
                    app = rec.app.as_str(),
                    path = rec.instance.as_str(),
                    event = rec.event.as_str(),
                    "probe hit"
                );
                let details = rec.details.clone().unwrap_or_default();
                self.amqp_probe(&rec.app, &rec.instance, &rec.event, &details);
                self.node.step(now_ms(), Input::Probe(rec))
            }
            Report::Done {
                execution,
                index,
                error,
            } => self.node.step(
                now_ms(),
                Input::ExternalDone {
                    execution,
                    index,
                    error,
                },
            ),
        }
    }

    /// Starts a probe round when one is due (and the last one ended).
    pub(super) fn probe_round(&mut self) {
        let now = now_ms();
        let period = self.cfg.probe_period_secs.max(1) * 1000;
        if now < self.probing.next_ms {
            return;
        }
        self.probing.next_ms = now + period;
        if self.probing.busy.load(Ordering::Acquire) {
            return;
        }
        let engine = self.node.engine();
        let mut work: Vec<(String, String, Probe)> = Vec::new();
        for (app, path, component) in engine.probed_instances() {
            let Some(a) = engine.app(&app) else { continue };
            if let Some(list) = a.probes.get(&component) {
                for p in list {
                    work.push((app.clone(), path.clone(), p.clone()));
                }
            }
        }
        if work.is_empty() {
            return;
        }
        let busy = self.probing.busy.clone();
        busy.store(true, Ordering::Release);
        let report_tx = self.probing.report_tx.clone();
        let timeout = Duration::from_secs(self.cfg.probe_timeout_secs.max(1));
        tokio::spawn(async move {
            let all = work.into_iter().map(|(app, path, probe)| {
                let report_tx = report_tx.clone();
                async move {
                    let hit = tokio::time::timeout(timeout, evaluate(&probe, &path, timeout)).await;
                    match hit {
                        Ok(Ok(Some(details))) => {
                            let details = (!details.is_empty()).then(|| truncate(details));
                            let rec = EventRecord {
                                app,
                                instance: path,
                                event: probe.event.clone(),
                                details,
                                at_ms: now_ms(),
                            };
                            let _ = report_tx.send(Report::Hit(rec)).await;
                        }
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => tracing::warn!(
                            app = app.as_str(),
                            path = path.as_str(),
                            event = probe.event.as_str(),
                            error = %e,
                            "probe failed"
                        ),
                        Err(_) => tracing::warn!(
                            app = app.as_str(),
                            path = path.as_str(),
                            event = probe.event.as_str(),
                            timeout_s = timeout.as_secs(),
                            "probe: no answer in time"
                        ),
                    }
                }
            });
            futures::future::join_all(all).await;
            busy.store(false, Ordering::Release);
        });
    }

    /// A step of an execution outside the mesh.
    pub(super) fn external(&mut self, x: External) {
        let report_tx = self.probing.report_tx.clone();
        let files = self.cfg.data_dir.join("autonomic").join("files");
        let relay = self.cfg.email.clone();
        tokio::spawn(async move {
            let error = match x.step {
                Step::Write {
                    file,
                    content,
                    append,
                } => tokio::task::spawn_blocking(move || write(&files, &file, &content, append))
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
                    .err(),
                Step::Email { to, subject, body } => match relay {
                    None => {
                        Some("no SMTP relay is configured (the agent's `[email]` settings)".into())
                    }
                    Some(r) => {
                        let mut to = to;
                        to.extend(r.default_recipients.iter().cloned());
                        to.dedup();
                        if to.is_empty() {
                            Some("no recipient (and no default-recipients)".into())
                        } else {
                            email::send(&r.relay(), &to, &subject, &body)
                                .await
                                .err()
                                .map(|e| e.to_string())
                        }
                    }
                },
                _ => Some("not a step outside the mesh".into()),
            };
            let _ = report_tx
                .send(Report::Done {
                    execution: x.execution,
                    index: x.index,
                    error,
                })
                .await;
        });
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > DETAILS_MAX {
        let mut cut = DETAILS_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// One probe: `Some(details)` when it hits.
async fn evaluate(probe: &Probe, path: &str, timeout: Duration) -> Result<Option<String>, String> {
    match &probe.check {
        Check::File(f) => {
            let (kind, p) = match f {
                FileCheck::DeleteIfExists(p) => (probes::FileKind::DeleteIfExists, p),
                FileCheck::NotifyIfNotExists(p) => (probes::FileKind::NotifyIfNotExists, p),
                FileCheck::NotifyIfExists(p) => (probes::FileKind::NotifyIfExists, p),
            };
            probes::file_check(kind, Path::new(p))
                .await
                .map_err(|e| e.to_string())
        }
        Check::Rest(r) => {
            let body = probes::rest_get(&r.url, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(r.holds(&body).then_some(body))
        }
        Check::Nagios(n) => {
            let answer = probes::nagios_query(&n.host, n.port, &n.query, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Some(n.event_info(&answer)))
        }
        Check::Docker { container } => {
            let name = path.rsplit('/').next().unwrap_or_default();
            let container = roboconf_model::probes::docker_container_name(container, name, path);
            let running = probes::docker_running(&container, timeout)
                .await
                .map_err(|e| e.to_string())?;
            Ok((!running).then(String::new))
        }
    }
}

/// The file a `write` or `append` names, inside `base`.
pub fn confined(base: &Path, file: &str) -> Result<PathBuf, String> {
    let rel = file.strip_prefix("%TMP%").unwrap_or(file);
    let mut out = base.to_path_buf();
    let mut any = false;
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(p) => {
                out.push(p);
                any = true;
            }
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "`{file}`: `..` is not allowed (files stay in {})",
                    base.display()
                ))
            }
        }
    }
    if !any {
        return Err(format!("`{file}` names no file"));
    }
    Ok(out)
}

/// `write` (or `append`: a line break first when the file is not empty).
fn write(base: &Path, file: &str, content: &str, append: bool) -> Result<(), String> {
    use std::io::Write as _;
    let path = confined(base, file)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    if append {
        let non_empty = std::fs::metadata(&path)
            .map(|m| m.len() > 0)
            .unwrap_or(false);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        if non_empty {
            f.write_all(b"\n").map_err(err)?;
        }
        f.write_all(content.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)
    } else {
        std::fs::write(&path, content).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_stay_in_their_folder() {
        let base = Path::new("/data/autonomic/files");
        assert_eq!(
            confined(base, "%TMP%/a/b.txt").unwrap(),
            base.join("a/b.txt")
        );
        assert_eq!(
            confined(base, "/etc/passwd").unwrap(),
            base.join("etc/passwd")
        );
        assert!(confined(base, "%TMP%/../x").is_err());
        assert!(confined(base, "%TMP%").is_err());
    }

    #[test]
    fn write_then_append_adds_lines() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "%TMP%/log/x.txt", "one", false).unwrap();
        write(d.path(), "%TMP%/log/x.txt", "two", true).unwrap();
        let text = std::fs::read_to_string(d.path().join("log/x.txt")).unwrap();
        assert_eq!(text, "one\ntwo");
        write(d.path(), "%TMP%/empty", "", false).unwrap();
        assert!(d.path().join("empty").exists());
    }
}
