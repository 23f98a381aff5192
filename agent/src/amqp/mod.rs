//! The AMQP bridge (issue 18, DESIGN §10): the standalone pieces that let a mesh show its
//! events to RabbitMQ and take commands from it, on Roboconf's own exchange names and
//! routing keys, with JSON payloads (never Java serialization). This module owns the
//! bridge's shared types (its error, its status report); the parts are
//! [`config`] (the `[amqp]` settings and the broker URL), [`topology`] (names),
//! [`messages`] (events → AMQP messages), [`commands`] (JSON commands in, replies out),
//! [`outbox`] (the durable FIFO in sled) and [`bridge`] (the tokio task holding the
//! connection). The agent runtime builds an [`Outbox`] in its sled database, starts a
//! [`Bridge`] with it, calls [`Handle::push`] for each event and serves the commands
//! it is handed.

pub mod bridge;
pub mod commands;
pub mod config;
pub mod interapp;
pub mod messages;
pub mod outbox;
pub mod topology;

pub use bridge::{Bridge, CommandSender, Handle};
pub use commands::{Answer, Command};
pub use config::{BrokerUrl, Config};
pub use messages::{Event, Import, MemberState, Message};
pub use outbox::{Outbox, Pushed};

use serde::{Deserialize, Serialize};

/// Why a part of the bridge failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `[amqp]` settings are refused.
    #[error("amqp: {0}")]
    Config(String),
    /// An event cannot become an AMQP message (a name longer than AMQP's 255 bytes).
    #[error("amqp: cannot publish {what}: {why}")]
    Message { what: String, why: String },
    /// The outbox's sled tree failed.
    #[error("amqp outbox: {0}")]
    Store(#[from] sled::Error),
    /// An outbox record this version cannot read.
    #[error("amqp outbox: unreadable record {0}")]
    Corrupt(u64),
    /// The broker or the connection failed.
    #[error("amqp broker: {0}")]
    Broker(#[from] lapin::Error),
    /// The connection or the commands consumer ended.
    #[error("amqp broker: {0}")]
    Lost(String),
    /// Connecting (or declaring what the bridge needs) took longer than the timeout.
    #[error("amqp broker: no answer within {0} s")]
    Timeout(u64),
    /// A TLS file could not be read.
    #[error("amqp tls: cannot read {path}: {source}")]
    Tls {
        path: String,
        source: std::io::Error,
    },
    /// The bridge's task is gone (stopped or panicked).
    #[error("amqp bridge: stopped")]
    Stopped,
}

/// What `roboconf amqp status` shows: the bridge's connection and counters since it
/// started (the outbox depth and the overflow count are the durable ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// A connection to the broker is open now.
    pub connected: bool,
    /// The broker URL, its password masked.
    pub url: String,
    /// Events waiting in the outbox (published but unconfirmed ones included).
    pub outbox: u64,
    /// Publishes sent (a re-publish counts again).
    pub published: u64,
    /// Publishes the broker confirmed (their events left the outbox).
    pub confirmed: u64,
    /// Publishes the broker refused (nack) or lost with the connection; re-published.
    pub failed: u64,
    /// Events dropped because the outbox was full (persisted across restarts).
    pub overflowed: u64,
    pub commands_received: u64,
    /// Commands handed to the agent and answered (successfully or not).
    pub commands_answered: u64,
    /// Commands refused (malformed, unknown, too big, unanswered): dead-lettered.
    pub commands_rejected: u64,
    /// The last connection, publish or command error, if any.
    pub last_error: Option<String>,
}
