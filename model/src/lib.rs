//! `roboconf-model`: Roboconf's application model as pure Rust. It parses the graph and
//! instances DSL and the other files of an application project, resolves them into a
//! runtime model (components, facets, inherited variables, instances, imports matched to
//! exporters), validates them with Roboconf's stable error codes, and writes models back
//! as canonical DSL text. It does no I/O beyond reading the files it parses, and nothing
//! async.

pub mod app;
pub mod commands;
pub mod cron;
pub mod descriptor;
pub mod diag;
pub mod dsl;
pub mod graph;
pub mod instances;
pub mod limits;
pub mod probes;
pub mod props;
pub mod puppet;
pub mod recipes;
pub mod resolve;
pub mod rules;
pub mod targets;
pub mod timefmt;
pub mod validate;

pub use diag::{Code, Diagnostic, Severity};
