//! The `roboconf` binary: parses the command line and runs the chosen command. Exit
//! codes: 0 success, 1 the operation failed or the input is invalid, 2 usage error.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = roboconf_agent::cli::Cli::parse();
    match roboconf_agent::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roboconf: {e:#}");
            ExitCode::from(1)
        }
    }
}
