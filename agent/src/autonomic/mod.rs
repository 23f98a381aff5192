//! The agent's autonomic I/O: the probe handlers (`probes`: files, HTTP, Nagios'
//! LiveStatus, Docker) and the e-mail relay of the commands' `email` instruction
//! (`email`). The rule engine (what fires, what runs) lives in the core
//! (`roboconf_core::autonomic`); this module only talks to the world, with every network
//! operation under a timeout and every answer read up to a bound.

pub mod email;
pub mod probes;

use std::time::Duration;

/// Why a probe or an e-mail failed. Every message names what was being done (the URL, the
/// SMTP step, the program) so that it reads on its own in a history or a log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed (connect, read, write, delete, spawn).
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// Nothing (or not everything) came back in time.
    #[error("{what}: no answer within {}", shown(*.after))]
    Timeout { what: String, after: Duration },
    /// An HTTP server answered with a status other than 2xx.
    #[error("{what}: the server answered `{status}`")]
    Status { what: String, status: String },
    /// An SMTP server refused a step (`step` is the command, `reply` its answer).
    #[error("{what} refused {step}: {reply}")]
    Refused {
        what: String,
        step: String,
        reply: String,
    },
    /// An answer is larger than what is read of it.
    #[error("{what}: answer over {limit} bytes")]
    TooLarge { what: String, limit: usize },
    /// An answer that does not follow its protocol.
    #[error("{0}")]
    Protocol(String),
    /// A parameter that cannot be used (bad URL, a line break in a header, ...).
    #[error("{0}")]
    Invalid(String),
    /// Something this agent does not speak (e.g. `https`).
    #[error("{0}")]
    Unsupported(String),
    /// Docker answered with an error other than "no such container".
    #[error("{0}")]
    Docker(String),
}

/// `300 ms`, `5 s`, `1.5 s`.
fn shown(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}
