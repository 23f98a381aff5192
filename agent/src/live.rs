//! Live events: what observers of a running agent are told as it happens (the web
//! console, the WebSocket and Server-Sent Events streams). The event loop publishes
//! each change once on a bounded broadcast channel; a subscriber that falls more than
//! `CAPACITY` events behind is told so and must re-read the state (it is never buffered
//! without bound). Each event is written once, as it is published, in Roboconf's
//! WebSocket JSON shape, whatever the number of subscribers.

use crate::api::State;
use serde::Serialize;
use std::sync::Arc;
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

impl LiveEvent {
    /// Roboconf's JSON of the event (`{"event":"CHANGED","app":{…},"inst":{…}}`), with
    /// what the mesh adds (members).
    pub fn to_json(&self) -> String {
        let v = match self {
            LiveEvent::Instance {
                app,
                path,
                state,
                node,
            } => serde_json::json!({
                "event": "CHANGED",
                "app": { "name": app },
                "inst": {
                    "name": path.rsplit('/').next().unwrap_or_default(),
                    "path": path,
                    "status": state.as_str(),
                    "data": { "node": node },
                },
            }),
            LiveEvent::Member { node, dead } => serde_json::json!({
                "event": "CHANGED",
                "member": { "name": node, "state": if *dead { "dead" } else { "alive" } },
            }),
            LiveEvent::Application { name, created } => serde_json::json!({
                "event": if *created { "CREATED" } else { "DELETED" },
                "app": { "name": name },
            }),
        };
        v.to_string()
    }
}

/// An event as subscribers get it: shared, with its JSON written once.
#[derive(Debug)]
pub struct Published {
    pub event: LiveEvent,
    pub json: String,
}

/// The sending end, cloned into whoever publishes; `subscribe` for a receiver.
#[derive(Clone)]
pub struct Hub {
    events_tx: broadcast::Sender<Arc<Published>>,
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

    /// Publishes to the current subscribers (none: dropped at once, nothing written).
    pub fn publish(&self, event: LiveEvent) {
        if self.events_tx.receiver_count() == 0 {
            return;
        }
        let json = event.to_json();
        let _ = self.events_tx.send(Arc::new(Published { event, json }));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.events_tx.subscribe()
    }

    /// How many subscribers listen now.
    pub fn subscribers(&self) -> usize {
        self.events_tx.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_roboconf_shapes_and_slow_readers_learn_they_lagged() {
        let hub = Hub::new();
        hub.publish(LiveEvent::Member {
            node: "nobody listens".into(),
            dead: true,
        });
        let mut rx = hub.subscribe();
        hub.publish(LiveEvent::Instance {
            app: "lamp".into(),
            path: "/vm 1/web".into(),
            state: State::DeployedStarted,
            node: "n1".into(),
        });
        let got = rx.try_recv().expect("an event");
        let v: serde_json::Value = serde_json::from_str(&got.json).expect("json");
        assert_eq!(v["event"], "CHANGED");
        assert_eq!(v["app"]["name"], "lamp");
        assert_eq!(v["inst"]["name"], "web");
        assert_eq!(v["inst"]["status"], "DEPLOYED_STARTED");
        assert_eq!(v["inst"]["data"]["node"], "n1");
        for created in [true, false] {
            hub.publish(LiveEvent::Application {
                name: "lamp".into(),
                created,
            });
            let v: serde_json::Value =
                serde_json::from_str(&rx.try_recv().expect("event").json).expect("json");
            assert_eq!(v["event"], if created { "CREATED" } else { "DELETED" });
        }
        // A reader that falls a ring behind is told so, not buffered for.
        for _ in 0..CAPACITY + 5 {
            hub.publish(LiveEvent::Member {
                node: "n2".into(),
                dead: false,
            });
        }
        assert!(matches!(
            rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(5))
        ));
    }
}
