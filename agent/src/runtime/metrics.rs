//! The agent's Prometheus metrics (stub: filled in by the metrics work).

use super::Loop;

impl Loop {
    /// Every metric, in Prometheus' text exposition format.
    pub(super) fn metrics_text(&self) -> String {
        "# EOF\n".to_string()
    }
}
