//! The command line (DESIGN §11): one `clap` subcommand per operator command. Each
//! command lives in its own module and returns the process exit code.

mod validate;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Roboconf mesh: deploy and reconfigure distributed applications, with no central manager.
#[derive(Debug, Parser)]
#[command(name = "roboconf", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an application folder, or one .graph / .instances file, offline.
    ///
    /// Exit code 0 when valid (warnings allowed), 1 when invalid, 2 on a usage error.
    Validate {
        /// An application folder, a .graph file or an .instances file.
        path: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { path, json } => validate::run(&path, json),
    }
}
