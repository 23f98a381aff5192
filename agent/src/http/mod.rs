//! The agent's HTTP surface (off unless configured): Roboconf's REST resources under
//! `/roboconf-dm`, live events over WebSocket and Server-Sent Events, Prometheus
//! `/metrics`, the OpenAPI document and the embedded web console. Every operator request
//! goes through the same channel as the control socket's, so the API and the CLI are
//! one implementation. Access: loopback is open to the host's users (as the control
//! socket is); any other address is served over TLS and asks for bearer tokens
//! (`access`).

use crate::api::{Request, Response};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub mod access;
mod console;
mod events;
mod rest;
mod server;

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

/// How long the agent has to answer one request.
pub const ANSWER_DEADLINE: Duration = Duration::from_secs(30);

/// The server's own counters (added to `/metrics`).
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub auth_failed: AtomicU64,
    pub forbidden: AtomicU64,
    pub connections: AtomicU64,
    pub refused: AtomicU64,
    pub tls_failed: AtomicU64,
    pub ws_clients: AtomicU64,
    pub sse_clients: AtomicU64,
    pub slow_dropped: AtomicU64,
}

/// What every handler shares.
#[derive(Clone)]
pub struct Shared {
    requests_tx: mpsc::Sender<crate::control::Pending>,
    live: crate::live::Hub,
    gate: Option<Arc<access::Gate>>,
    stats: Arc<Stats>,
}

impl Shared {
    /// Asks the agent, as the control socket does.
    async fn call(&self, req: Request) -> Result<Response, ApiError> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let down = || ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the agent is shutting down".into(),
            details: Vec::new(),
        };
        self.requests_tx
            .send((req, reply_tx))
            .await
            .map_err(|_| down())?;
        match tokio::time::timeout(ANSWER_DEADLINE, reply_rx).await {
            Ok(Ok(Response::Error { message, details })) => Err(ApiError {
                status: status_of(&message),
                message,
                details,
            }),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(down()),
            Err(_) => Err(ApiError {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: format!(
                    "no answer from the agent within {} s",
                    ANSWER_DEADLINE.as_secs()
                ),
                details: Vec::new(),
            }),
        }
    }
}

/// The HTTP status of an operator error: unknown things are 404, a conflict 409, the
/// rest is the request's fault (400).
fn status_of(message: &str) -> StatusCode {
    if message.starts_with("no application named")
        || message.contains(" has no instance ")
        || message.starts_with("unknown ")
    {
        StatusCode::NOT_FOUND
    } else if message.contains("already exists")
        || message.contains("already registered")
        || message.contains("already has an instance")
    {
        StatusCode::CONFLICT
    } else if message.contains("has no network") || message.starts_with("busy") {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_REQUEST
    }
}

/// An error as the API answers it: a status and `{"error": ..., "details": [...]}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    fn unexpected(r: &Response) -> ApiError {
        match r {
            Response::Error { message, details } => ApiError {
                status: status_of(message),
                message: message.clone(),
                details: details.clone(),
            },
            _ => ApiError::internal("unexpected answer from the agent"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let body = serde_json::json!({ "error": self.message, "details": self.details });
        (self.status, axum::Json(body)).into_response()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The token a request carries: `Authorization: Bearer`, or `access_token=` in the
/// query (browsers cannot set headers on WebSocket and EventSource).
fn token_of(req: &axum::extract::Request) -> Option<String> {
    if let Some(h) = req.headers().get(axum::http::header::AUTHORIZATION) {
        let h = h.to_str().ok()?;
        return h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(|t| t.trim().to_string());
    }
    let query: axum::extract::Query<std::collections::HashMap<String, String>> =
        axum::extract::Query::try_from_uri(req.uri()).ok()?;
    query.0.get("access_token").cloned()
}

/// Asks for a token where one is needed, and refuses changes to read-only tokens.
/// The console's assets are public (they hold no data: the page asks for a token).
async fn guard(
    axum::extract::State(s): axum::extract::State<Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    s.stats.requests.fetch_add(1, Relaxed);
    let Some(gate) = &s.gate else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/" || path.starts_with(console::PREFIX) {
        return next.run(req).await;
    }
    let client = req
        .extensions()
        .get::<server::Peer>()
        .map(|p| p.0.to_string())
        .unwrap_or_default();
    match gate.check(token_of(&req).as_deref(), now_ms()) {
        Ok(claims) => {
            let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
            if claims.read_only && changes {
                s.stats.forbidden.fetch_add(1, Relaxed);
                tracing::info!(client, token_id = %claims.id, method = %req.method(), path, "http: a read-only token cannot change anything");
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "this token is read-only: it cannot change anything",
                )
                .into_response();
            }
            next.run(req).await
        }
        Err(denied) => {
            s.stats.auth_failed.fetch_add(1, Relaxed);
            tracing::warn!(client, reason = %denied, path, "http: authentication failed");
            let mut r = ApiError::new(StatusCode::UNAUTHORIZED, denied.to_string()).into_response();
            r.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"roboconf\""),
            );
            r
        }
    }
}

/// `/metrics`: the agent's registry, then the server's own counters.
async fn metrics(
    axum::extract::State(s): axum::extract::State<Shared>,
) -> axum::response::Response {
    let text = match s.call(Request::Metrics).await {
        Ok(Response::Metrics { text }) => text,
        Ok(other) => return ApiError::unexpected(&other).into_response(),
        Err(e) => return e.into_response(),
    };
    let mut out = text;
    let st = &s.stats;
    let counters: [(&str, &str, &AtomicU64); 7] = [
        (
            "roboconf_http_requests_total",
            "HTTP requests received.",
            &st.requests,
        ),
        (
            "roboconf_http_auth_failed_total",
            "HTTP requests refused for a missing, malformed, forged, expired or foreign token.",
            &st.auth_failed,
        ),
        (
            "roboconf_http_forbidden_total",
            "HTTP changes refused to read-only tokens.",
            &st.forbidden,
        ),
        (
            "roboconf_http_connections_total",
            "HTTP connections accepted.",
            &st.connections,
        ),
        (
            "roboconf_http_connections_refused_total",
            "HTTP connections closed at once: too many open.",
            &st.refused,
        ),
        (
            "roboconf_http_tls_handshakes_failed_total",
            "TLS handshakes that failed or timed out.",
            &st.tls_failed,
        ),
        (
            "roboconf_http_event_clients_dropped_total",
            "Live-event clients dropped for falling behind.",
            &st.slow_dropped,
        ),
    ];
    for (name, help, c) in counters {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            c.load(Relaxed)
        ));
    }
    for (name, help, c) in [
        (
            "roboconf_http_websocket_clients",
            "WebSocket clients connected.",
            &st.ws_clients,
        ),
        (
            "roboconf_http_sse_clients",
            "Server-Sent Events clients connected.",
            &st.sse_clients,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n",
            c.load(Relaxed)
        ));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The OpenAPI document of the API.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> axum::response::Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
        .into_response()
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no resource at {}",
        roboconf_model::limits::preview(uri.path())
    ))
}

/// The whole application: resources, events, metrics, documents and console.
pub fn router(shared: Shared, max_body: usize) -> axum::Router {
    use axum::routing::get;
    rest::routes()
        .route("/roboconf-dm-websocket", get(events::websocket))
        .route("/roboconf-dm/events", get(events::sse))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .merge(console::routes())
        .fallback(unknown_route)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), guard))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// Binds the API's address and serves it in the background; logs the URL it serves.
pub async fn start(
    cfg: &Config,
    data_dir: &Path,
    requests_tx: mpsc::Sender<crate::control::Pending>,
    live: crate::live::Hub,
) -> Result<(), String> {
    cfg.validate()?;
    let addr = cfg.addr()?;
    let tls_wanted = cfg.tls_cert.is_some() || !addr.ip().is_loopback();
    let gate = match cfg.needs_token() {
        true => Some(access::Gate::new(data_dir).map_err(|e| e.to_string())?),
        false => None,
    };
    let tls = match tls_wanted {
        true => {
            let c = access::tls_config(
                cfg.tls_cert.as_deref(),
                cfg.tls_key.as_deref(),
                data_dir,
                addr,
            )
            .map_err(|e| e.to_string())?;
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(c)))
        }
        false => None,
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let stats = Arc::new(Stats::default());
    let shared = Shared {
        requests_tx,
        live,
        gate,
        stats: stats.clone(),
    };
    let app = router(shared, cfg.max_body);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        target: crate::runtime::ANNOUNCE,
        address = %format!("{scheme}://{bound}"),
        tokens = cfg.needs_token(),
        "http: serving on {scheme}://{bound} (console at {scheme}://{bound}/roboconf-web-administration/)"
    );
    tokio::spawn(server::serve(listener, app, tls, stats));
    Ok(())
}
