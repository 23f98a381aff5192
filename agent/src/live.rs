//! Live events: what observers of a running agent are told as it happens (the web
//! console, the WebSocket and Server-Sent Events streams). The event loop publishes
//! each change once on a bounded broadcast channel; a subscriber that falls more than
//! `CAPACITY` events behind is told so and must re-read the state (it is never buffered
//! without bound).

use crate::api::State;
use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a slow subscriber before it is told it lagged.
pub const CAPACITY: usize = 4096;

/// One thing that changed, anywhere in the mesh this agent sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// An instance's state, as its host reports it (`node`: the host's name; empty when
    /// this agent hosts it).
    Instance {
        app: String,
        path: String,
        state: State,
        node: String,
    },
    /// A member's liveness verdict changed.
    Member { node: String, dead: bool },
    /// An application was registered (`created`) or removed.
    Application { name: String, created: bool },
}

/// The sending end, cloned into whoever publishes; `subscribe` for a receiver.
#[derive(Clone)]
pub struct Hub {
    events_tx: broadcast::Sender<LiveEvent>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    pub fn new() -> Hub {
        let (events_tx, _) = broadcast::channel(CAPACITY);
        Hub { events_tx }
    }

    /// Publishes to the current subscribers (none: dropped at once).
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.events_tx.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.events_tx.subscribe()
    }

    /// How many subscribers listen now.
    pub fn subscribers(&self) -> usize {
        self.events_tx.receiver_count()
    }
}
