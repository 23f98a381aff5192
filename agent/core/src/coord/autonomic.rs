//! The autonomic part of the coordinator's replicated state: what makes every rule fire
//! at most once per event occurrence and never inside its sleep period, every job fire
//! at most once per scheduled instant, and every operator's `exec` run once — across
//! leader changes, since it is applied from the Raft log on every voter. It holds each
//! rule's last trigger and firing time, each job's last instant, the executions queued
//! and the one being carried out per application (with its plan: the concrete,
//! idempotent steps its commands file resolved to), and the latest history items until
//! the leader published them to the mesh. Everything is bounded: the snapshot that holds
//! this state travels in one datagram.

use crate::api::Desired;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Executions waiting or in progress, mesh-wide; more are refused (and say so).
pub const MAX_QUEUED: usize = 64;
/// The serialized size a plan may have (it is a Raft entry and part of the snapshot).
pub const MAX_PLAN_BYTES: usize = 8 * 1024;
/// Applications executing a plan at once.
pub const MAX_EXECUTING_APPS: usize = 4;
/// History items kept in the state until published (the mesh's records keep more).
pub const RECENT_KEPT: usize = 32;
/// Operator requests remembered, so a request seen again is not run again.
pub const REQUESTS_KEPT: usize = 256;

/// Why an execution runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Origin {
    /// `roboconf exec` (Roboconf's REST_API origin), by request id.
    Operator { request: String },
    /// An autonomic rule, on an occurrence of its event.
    Rule { rule: String, trigger: String },
    /// A scheduled job, for one instant of its schedule.
    Job {
        job: String,
        name: String,
        instant_ms: u64,
    },
}

impl Origin {
    pub fn word(&self) -> &'static str {
        match self {
            Origin::Operator { .. } => "operator",
            Origin::Rule { .. } => "rule",
            Origin::Job { .. } => "job",
        }
    }

    /// What it runs for: the rule's event occurrence, the job's instant, the request.
    pub fn occurrence(&self) -> String {
        match self {
            Origin::Operator { request } => request.clone(),
            Origin::Rule { trigger, .. } => trigger.clone(),
            Origin::Job { instant_ms, .. } => instant_ms.to_string(),
        }
    }

    /// The rule's or job's name, or the request id.
    pub fn details(&self) -> String {
        match self {
            Origin::Operator { request } => request.clone(),
            Origin::Rule { rule, .. } => rule.clone(),
            Origin::Job { name, .. } => name.clone(),
        }
    }
}

/// One concrete, idempotent step of a plan: applied again by a new leader, it changes
/// nothing that the first application did (creating an instance that exists, setting
/// a state already wished, deleting what is gone are no-ops).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    Create {
        path: String,
        component: String,
    },
    Set {
        path: String,
        target: Desired,
    },
    /// Deletes an instance and what is under it once none of it is deployed (it waits
    /// for an undeployment asked just before).
    Delete {
        path: String,
    },
    /// The target file of a root's machine (`associate`).
    Target {
        root: String,
        target: String,
    },
    /// Writes (or appends a line to) a file of the agent's `autonomic/files` folder.
    Write {
        file: String,
        content: String,
        append: bool,
    },
    Email {
        to: Vec<String>,
        subject: String,
        body: String,
    },
}

impl Step {
    /// Steps done outside the mesh by the leader's runtime.
    pub fn external(&self) -> bool {
        matches!(self, Step::Write { .. } | Step::Email { .. })
    }
}

/// What a commands file resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Instructions skipped because a query found nothing (`$(EXISTING_INDEX ...)`).
    pub skipped: bool,
    /// Commands files run through `execute`, in order (each gets a history item).
    pub nested: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    OkWithSkipped,
    Error,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::OkWithSkipped => "ok with skipped",
            Outcome::Error => "error",
        }
    }
}

/// One execution of a commands file, as `roboconf history` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub id: u64,
    pub app: String,
    pub command: String,
    /// `operator`, `rule`, `job` or `command` (run by `execute`).
    pub origin: String,
    /// The rule's or job's name, the request id, or the calling command.
    pub details: String,
    /// The event occurrence a rule fired for, the instant a job fired for, or the
    /// request id.
    #[serde(default)]
    pub occurrence: String,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Milliseconds since the Unix epoch (the leader's clock).
    pub start_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    Queued,
    Planned(Plan),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Execution {
    pub app: String,
    pub command: String,
    pub origin: Origin,
    pub start_ms: u64,
    pub phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RuleState {
    pub fired_ms: u64,
    /// The occurrence that fired it last (its hash: occurrences are long strings).
    pub trigger: u64,
}

/// A change to the autonomic state (one Raft entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// A rule fires on an occurrence of its event, at `at_ms` (the leader's clock): its
    /// commands are queued, unless this occurrence fired it already or it sleeps.
    Fire {
        app: String,
        rule: String,
        trigger: String,
        at_ms: u64,
        sleep_ms: u64,
        commands: Vec<String>,
    },
    /// A job's instant came: its command is queued unless that instant (or a later one)
    /// fired already.
    Job {
        app: String,
        job: String,
        name: String,
        instant_ms: u64,
        command: String,
        at_ms: u64,
    },
    /// An operator's `exec`: queued once per request.
    Exec {
        app: String,
        request: String,
        command: String,
        at_ms: u64,
    },
    /// The leader resolved a queued execution (or could not: `Err` ends it).
    Planned { id: u64, plan: Result<Plan, String> },
    /// The leader carried out a planned execution.
    Executed {
        id: u64,
        result: Outcome,
        reason: Option<String>,
        ended_ms: u64,
    },
    /// The leader published these history items to the mesh.
    Published { ids: Vec<u64> },
}

/// The replicated autonomic state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Autonomic {
    /// `app \0 rule` → its last firing.
    pub rules: std::collections::HashMap<String, RuleState>,
    /// Job id → the last instant it fired for.
    pub jobs: BTreeMap<String, u64>,
    /// Operator requests taken (oldest first).
    pub requests: VecDeque<String>,
    /// Executions not ended, by id (ids grow: the oldest first).
    pub queue: BTreeMap<u64, Execution>,
    /// Ended executions the leader has not published yet.
    pub recent: VecDeque<HistoryItem>,
    pub next_id: u64,
    /// Executions refused because the queue was full.
    pub refused: u64,
}

/// The key of a rule's state.
pub fn rule_key(app: &str, rule: &str) -> String {
    format!("{app}\u{0}{rule}")
}

/// A stable hash of an occurrence (FNV-1a).
pub fn trigger_hash(trigger: &str) -> u64 {
    crate::mesh::fnv1a(trigger.as_bytes())
}

impl Autonomic {
    /// Applies a committed change.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Fire {
                app,
                rule,
                trigger,
                at_ms,
                sleep_ms,
                commands,
            } => {
                let key = rule_key(&app, &rule);
                let hash = trigger_hash(&trigger);
                if let Some(s) = self.rules.get(&key) {
                    if s.trigger == hash || at_ms < s.fired_ms.saturating_add(sleep_ms) {
                        return;
                    }
                }
                if self.queue.len() + commands.len() > MAX_QUEUED {
                    self.refused += 1;
                    return;
                }
                self.rules.insert(
                    key,
                    RuleState {
                        fired_ms: at_ms,
                        trigger: hash,
                    },
                );
                for command in commands {
                    let origin = Origin::Rule {
                        rule: rule.clone(),
                        trigger: trigger.clone(),
                    };
                    self.enqueue(&app, command, origin, at_ms);
                }
            }
            Op::Job {
                app,
                job,
                name,
                instant_ms,
                command,
                at_ms,
            } => {
                if self.jobs.get(&job).is_some_and(|last| *last >= instant_ms) {
                    return;
                }
                if self.queue.len() >= MAX_QUEUED {
                    self.refused += 1;
                    return;
                }
                self.jobs.insert(job.clone(), instant_ms);
                let origin = Origin::Job {
                    job,
                    name,
                    instant_ms,
                };
                self.enqueue(&app, command, origin, at_ms);
            }
            Op::Exec {
                app,
                request,
                command,
                at_ms,
            } => {
                if self.requests.contains(&request) {
                    return;
                }
                if self.queue.len() >= MAX_QUEUED {
                    self.refused += 1;
                    return;
                }
                self.requests.push_back(request.clone());
                while self.requests.len() > REQUESTS_KEPT {
                    self.requests.pop_front();
                }
                self.enqueue(&app, command, Origin::Operator { request }, at_ms);
            }
            Op::Planned { id, plan } => {
                let Some(e) = self.queue.get_mut(&id) else {
                    return;
                };
                if e.phase != Phase::Queued {
                    return;
                }
                match plan {
                    Ok(p) => e.phase = Phase::Planned(p),
                    Err(reason) => {
                        let end = e.start_ms;
                        self.end(id, Outcome::Error, Some(reason), end);
                    }
                }
            }
            Op::Executed {
                id,
                result,
                reason,
                ended_ms,
            } => {
                if self
                    .queue
                    .get(&id)
                    .is_some_and(|e| matches!(e.phase, Phase::Planned(_)))
                {
                    self.end(id, result, reason, ended_ms);
                }
            }
            Op::Published { ids } => self.recent.retain(|h| !ids.contains(&h.id)),
        }
    }

    fn enqueue(&mut self, app: &str, command: String, origin: Origin, at_ms: u64) {
        self.next_id += 1;
        self.queue.insert(
            self.next_id,
            Execution {
                app: app.to_string(),
                command,
                origin,
                start_ms: at_ms,
                phase: Phase::Queued,
            },
        );
    }

    fn end(&mut self, id: u64, result: Outcome, reason: Option<String>, ended_ms: u64) {
        let Some(e) = self.queue.remove(&id) else {
            return;
        };
        let nested = match &e.phase {
            Phase::Planned(p) => p.nested.clone(),
            Phase::Queued => Vec::new(),
        };
        let item = HistoryItem {
            id,
            app: e.app.clone(),
            command: e.command.clone(),
            origin: e.origin.word().to_string(),
            details: e.origin.details(),
            occurrence: e.origin.occurrence(),
            result,
            reason,
            start_ms: e.start_ms,
            duration_ms: ended_ms.saturating_sub(e.start_ms),
        };
        for n in nested {
            // The files run by `execute` are listed too, under ids of their own.
            self.next_id += 1;
            self.recent.push_back(HistoryItem {
                id: self.next_id,
                command: n,
                origin: "command".into(),
                details: e.command.clone(),
                ..item.clone()
            });
        }
        self.recent.push_back(item);
        while self.recent.len() > RECENT_KEPT {
            self.recent.pop_front();
        }
    }

    /// The execution an application carries out now, if any.
    pub fn executing(&self, app: &str) -> Option<(u64, &Execution)> {
        self.queue
            .iter()
            .find(|(_, e)| e.app == app && matches!(e.phase, Phase::Planned(_)))
            .map(|(id, e)| (*id, e))
    }

    /// Applications with a planned execution.
    pub fn executing_apps(&self) -> usize {
        let apps: std::collections::BTreeSet<&str> = self
            .queue
            .values()
            .filter(|e| matches!(e.phase, Phase::Planned(_)))
            .map(|e| e.app.as_str())
            .collect();
        apps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(trigger: &str, at_ms: u64) -> Op {
        Op::Fire {
            app: "a".into(),
            rule: "r".into(),
            trigger: trigger.into(),
            at_ms,
            sleep_ms: 10_000,
            commands: vec!["scale".into()],
        }
    }

    #[test]
    fn a_rule_fires_once_per_occurrence_and_never_while_it_sleeps() {
        let mut a = Autonomic::default();
        a.apply(fire("n:1:5", 1_000));
        assert_eq!(a.queue.len(), 1);
        // The same occurrence again (a new leader's proposal): nothing.
        a.apply(fire("n:1:5", 20_000));
        // Another occurrence inside the sleep period: nothing.
        a.apply(fire("n:1:6", 10_999));
        assert_eq!(a.queue.len(), 1);
        a.apply(fire("n:1:6", 11_000));
        assert_eq!(a.queue.len(), 2);
    }

    #[test]
    fn a_job_instant_and_an_operator_request_run_once() {
        let mut a = Autonomic::default();
        let job = |instant_ms| Op::Job {
            app: "a".into(),
            job: "j1".into(),
            name: "nightly".into(),
            instant_ms,
            command: "c".into(),
            at_ms: instant_ms,
        };
        a.apply(job(60_000));
        a.apply(job(60_000));
        a.apply(job(30_000));
        assert_eq!(a.queue.len(), 1);
        a.apply(job(120_000));
        assert_eq!(a.queue.len(), 2);
        let exec = Op::Exec {
            app: "a".into(),
            request: "q".into(),
            command: "c".into(),
            at_ms: 1,
        };
        a.apply(exec.clone());
        a.apply(exec);
        assert_eq!(a.queue.len(), 3);
    }

    #[test]
    fn an_execution_is_planned_then_ends_in_the_history_with_its_nested_files() {
        let mut a = Autonomic::default();
        a.apply(fire("t", 1_000));
        let plan = Plan {
            nested: vec!["inner".into()],
            ..Plan::default()
        };
        a.apply(Op::Planned {
            id: 1,
            plan: Ok(plan),
        });
        assert!(a.executing("a").is_some());
        a.apply(Op::Executed {
            id: 1,
            result: Outcome::Ok,
            reason: None,
            ended_ms: 1_500,
        });
        assert!(a.queue.is_empty());
        let origins: Vec<&str> = a.recent.iter().map(|h| h.origin.as_str()).collect();
        assert_eq!(origins, ["command", "rule"]);
        assert_eq!(a.recent[1].duration_ms, 500);
        a.apply(Op::Published { ids: vec![1] });
        assert_eq!(a.recent.len(), 1, "the nested item has an id of its own");
        a.apply(Op::Published { ids: vec![2] });
        assert!(a.recent.is_empty());
        // A plan that failed ends the execution at once.
        a.apply(fire("u", 20_000));
        a.apply(Op::Planned {
            id: 3,
            plan: Err("no instance /x".into()),
        });
        assert_eq!(a.recent[0].result, Outcome::Error);
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut a = Autonomic::default();
        for i in 0..(MAX_QUEUED + 5) {
            a.apply(Op::Exec {
                app: "a".into(),
                request: format!("q{i}"),
                command: "c".into(),
                at_ms: 1,
            });
        }
        assert_eq!(a.queue.len(), MAX_QUEUED);
        assert_eq!(a.refused, 5);
    }
}
