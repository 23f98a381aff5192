//! `roboconf-agent`: the Roboconf mesh agent and the `roboconf` command-line tool. `core`
//! is the sans-IO state machine (life cycle, reconciliation, operator commands); the
//! runtime around it (`runtime`, `store`, `control`) does the I/O; `cli` is the command
//! line.

pub mod admission;
pub mod amqp;
pub mod autonomic;
pub mod binary;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod control;
pub mod http;
pub mod live;
pub mod meshio;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod store;
pub mod targets;

// The sans-IO node lives in `roboconf-core`; the runtime's modules name its parts as
// before.
pub use roboconf_core::engine as core;
pub use roboconf_core::{api, mesh, swim};
