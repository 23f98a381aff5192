//! Roboconf's autonomic management, sans-IO: the records that carry events, jobs and
//! operators' `exec` requests over the mesh (`records`), the rules of an application
//! indexed by event for the coordinator's leader (`Rules`, `due`), and the resolution of
//! a commands file into a plan of idempotent steps (`plan`). The replicated state that
//! makes firings and executions happen once is `crate::coord::autonomic`; the leader's
//! policy that drives them is `crate::node::autonomic`.

pub mod plan;
pub mod records;

pub use plan::Model;

use crate::coord::autonomic::{rule_key, trigger_hash, RuleState};
use roboconf_model::rules::Rule;
use std::collections::HashMap;

/// `$(FORMATTED_TIME pattern)` (Java's `SimpleDateFormat`, UTC).
pub fn format_time(pattern: &str, ms: u64) -> String {
    roboconf_model::timefmt::format(pattern, ms)
}

/// Whether a Quartz cron expression parses.
pub fn check_cron(expr: &str) -> Result<(), String> {
    parse_cron(expr).map(|_| ())
}

pub use roboconf_model::cron::Schedule;

/// A Quartz cron expression (with seconds, UTC).
pub fn parse_cron(expr: &str) -> Result<Schedule, String> {
    roboconf_model::cron::parse(expr).map_err(|e| e.to_string())
}

/// An application's rules, indexed by the event that triggers them.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub rules: Vec<Rule>,
    by_event: HashMap<String, Vec<usize>>,
}

impl Rules {
    pub fn new(rules: Vec<Rule>) -> Rules {
        let mut by_event: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rules.iter().enumerate() {
            by_event.entry(r.event.clone()).or_default().push(i);
        }
        Rules { rules, by_event }
    }

    /// The rules an event triggers.
    pub fn of_event<'a>(&'a self, event: &str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.by_event
            .get(event)
            .into_iter()
            .flatten()
            .filter_map(|i| self.rules.get(*i))
    }
}

/// An occurrence of an event: its identity (origin, store generation and sequence of
/// the record that carried it) and when it happened (the hosting node's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occurrence {
    pub app: String,
    pub event: String,
    pub trigger: String,
    pub at_ms: u64,
}

/// The rules an occurrence fires now (`now_ms`, the leader's clock), as Roboconf decides:
/// not one this occurrence fired already, not one inside its sleep period, not when the
/// occurrence is older than the rule's time window.
pub fn due<'a>(
    rules: &'a Rules,
    o: &Occurrence,
    fired: &HashMap<String, RuleState>,
    now_ms: u64,
) -> Vec<&'a Rule> {
    let hash = trigger_hash(&o.trigger);
    // One key buffer for all the lookups (no allocation per rule).
    let mut key = rule_key(&o.app, "");
    let prefix = key.len();
    rules
        .of_event(&o.event)
        .filter(|r| {
            let window_ok = r
                .time_window
                .is_none_or(|w| now_ms.saturating_sub(o.at_ms) <= u64::from(w) * 1000);
            key.truncate(prefix);
            key.push_str(&r.name);
            let state = fired.get(key.as_str());
            let rested = state.is_none_or(|s| {
                s.trigger != hash
                    && now_ms >= s.fired_ms.saturating_add(u64::from(r.sleep_period) * 1000)
            });
            window_ok && rested
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, event: &str, sleep: u32, window: Option<u32>) -> Rule {
        Rule {
            name: name.into(),
            event: event.into(),
            commands: vec!["c".into()],
            sleep_period: sleep,
            time_window: window,
            ..Rule::default()
        }
    }

    #[test]
    fn an_occurrence_fires_the_rules_of_its_event_that_rest_and_whose_window_holds_it() {
        let rules = Rules::new(vec![
            rule("up", "high", 60, None),
            rule("alert", "high", 0, Some(10)),
            rule("down", "low", 0, None),
        ]);
        let o = Occurrence {
            app: "a".into(),
            event: "high".into(),
            trigger: "n:1:7".into(),
            at_ms: 100_000,
        };
        let names = |v: Vec<&Rule>| v.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        let mut fired = HashMap::new();
        assert_eq!(names(due(&rules, &o, &fired, 105_000)), ["up", "alert"]);
        // Outside the window of `alert`.
        assert_eq!(names(due(&rules, &o, &fired, 111_000)), ["up"]);
        fired.insert(
            rule_key("a", "up"),
            RuleState {
                fired_ms: 105_000,
                trigger: trigger_hash("n:1:6"),
            },
        );
        // `up` sleeps for 60 s.
        assert_eq!(names(due(&rules, &o, &fired, 106_000)), ["alert"]);
        assert_eq!(names(due(&rules, &o, &fired, 165_000)), ["up"]);
        // The same occurrence never fires it twice.
        fired.get_mut(&rule_key("a", "up")).unwrap().trigger = trigger_hash("n:1:7");
        assert!(names(due(&rules, &o, &fired, 500_000)).is_empty());
    }
}
