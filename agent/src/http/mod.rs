//! The agent's HTTP surface (off unless configured): Roboconf's REST resources under
//! `/roboconf-dm`, live events over WebSocket and Server-Sent Events, Prometheus
//! `/metrics`, the OpenAPI document and the embedded web console. Every operator request
//! goes through the same channel as the control socket's, so the API and the CLI are
//! one implementation.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Largest request body accepted, in bytes, by default.
pub const MAX_BODY: usize = 1 << 20;

/// `[http]`: where the API listens and how it is protected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `host:port` (`127.0.0.1:8181`; port 0 picks a free one, printed at start).
    pub listen: String,
    /// A certificate chain (PEM) for TLS; with `tls-key`. Without them, an address other
    /// than loopback is served with a certificate issued by the mesh's CA.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Ask for a bearer token on loopback too (always asked elsewhere).
    pub require_token: bool,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8181".into(),
            tls_cert: None,
            tls_key: None,
            require_token: false,
            max_body: MAX_BODY,
        }
    }
}

impl Config {
    /// The address to bind.
    pub fn addr(&self) -> Result<SocketAddr, String> {
        self.listen.parse().map_err(|_| {
            format!(
                "http listen `{}` is not an address and port (e.g. 127.0.0.1:8181)",
                self.listen
            )
        })
    }

    /// Whether clients must present a token.
    pub fn needs_token(&self) -> bool {
        self.require_token || self.addr().map_or(true, |a| !a.ip().is_loopback())
    }

    pub fn validate(&self) -> Result<(), String> {
        self.addr()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("http: tls-cert and tls-key go together".into());
        }
        if self.max_body < 1024 {
            return Err("http: max-body must be at least 1024 bytes".into());
        }
        Ok(())
    }
}

/// Binds the API's address and serves it in the background (stub until the server lands).
pub async fn start(
    cfg: &Config,
    _data_dir: &std::path::Path,
    _requests_tx: tokio::sync::mpsc::Sender<crate::control::Pending>,
    _live: crate::live::Hub,
) -> Result<(), String> {
    cfg.validate()
}
