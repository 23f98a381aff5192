//! The `logger` installer (as in Roboconf): it runs nothing and only records each action
//! with the instance and its variables, which makes it the plug-in of choice for
//! dry runs and for components whose software is managed elsewhere.

use crate::{Action, Error, Invocation, Outcome, Plugin};
use std::sync::Mutex;

/// Records every invocation; `lines()` returns what it recorded, and each run's output
/// is its line (the agent logs it).
#[derive(Debug, Default)]
pub struct Logger {
    lines: Mutex<Vec<String>>,
    /// Most lines kept in memory; older ones are dropped.
    pub capacity: usize,
}

impl Logger {
    pub fn new(capacity: usize) -> Self {
        Logger {
            lines: Mutex::new(Vec::new()),
            capacity,
        }
    }

    /// The lines logged so far (the most recent `capacity`).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Plugin for Logger {
    fn installer(&self) -> &'static str {
        "logger"
    }

    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error> {
        let imports: usize = inv.imports.values().map(Vec::len).sum();
        let mut line = format!(
            "{} {} ({}): {} export(s), {} import(s)",
            action.as_str(),
            inv.instance_path,
            inv.component,
            inv.exports.len(),
            imports
        );
        if let Some(c) = &inv.changed {
            line.push_str(&format!("; changed: {} is {}", c.import.path, c.status));
        }
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line.clone());
            let excess = lines.len().saturating_sub(self.capacity.max(1));
            lines.drain(..excess);
        }
        Ok(Outcome {
            ran: true,
            output: line,
            ..Outcome::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_actions_and_bounds_memory() {
        let log = Logger::new(2);
        let inv = Invocation {
            instance_path: "/vm/app".into(),
            component: "App".into(),
            ..Invocation::default()
        };
        for a in [Action::Deploy, Action::Start, Action::Stop] {
            assert!(log.run(a, &inv).expect("logger never fails").ran);
        }
        assert_eq!(
            log.lines(),
            vec![
                "start /vm/app (App): 0 export(s), 0 import(s)",
                "stop /vm/app (App): 0 export(s), 0 import(s)"
            ]
        );
    }
}
