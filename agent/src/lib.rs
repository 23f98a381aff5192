//! `roboconf-agent`: the Roboconf mesh agent and the `roboconf` command-line tool. `core`
//! is the sans-IO state machine (life cycle, reconciliation, operator commands); the
//! runtime around it (`runtime`, `store`, `control`) does the I/O; `cli` is the command
//! line.

pub mod admission;
pub mod api;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod control;
pub mod core;
pub mod mesh;
pub mod meshio;
pub mod net;
pub mod runtime;
pub mod store;
pub mod swim;
