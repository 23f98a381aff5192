//! `roboconf man`: the manual pages, generated from the clap definitions (so they never
//! drift from `--help`): `roboconf.1` on stdout, or, with `--out DIR`, that page and one
//! `roboconf-<command>.1` per subcommand (`roboconf-mesh-init.1` for nested ones).

use super::Cli;
use clap::CommandFactory;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub fn write(out: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match out {
        None => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut buf)?;
            super::out(&String::from_utf8_lossy(&buf));
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            let n = pages(&dir, cmd, "roboconf")?;
            eprintln!("roboconf man: {n} pages written to {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the page of `cmd` as `<name>.1`, then its subcommands' pages; their count.
fn pages(dir: &Path, cmd: clap::Command, name: &str) -> anyhow::Result<usize> {
    let cmd = cmd.name(name.to_string());
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut buf)?;
    std::fs::write(dir.join(format!("{name}.1")), buf)?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += pages(dir, sub.clone(), &format!("{name}-{}", sub.get_name()))?;
    }
    Ok(n)
}
