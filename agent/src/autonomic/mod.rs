//! The agent's autonomic I/O: the probe handlers (`probes`: files, HTTP, Nagios'
//! LiveStatus, Docker) and the e-mail relay of the commands' `email` (`email`). What
//! fires and what runs is decided by the core (`roboconf_core::autonomic`).

pub mod email;
pub mod probes;

/// Why a probe or an e-mail failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("no answer within {0} s")]
    Timeout(u64),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Unsupported(String),
}
