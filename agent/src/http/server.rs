//! The HTTP server's connections: an accept loop over a bound TCP listener that serves
//! each connection (HTTP/1.1, upgrades for WebSocket) on its own task, after a TLS
//! handshake when TLS is on. What a client can hold is bounded: `MAX_CONNECTIONS` at
//! once (a newcomer over the cap is closed at once), `HANDSHAKE_DEADLINE` for TLS,
//! `HEADER_DEADLINE` to send a request's head; a failing `accept` is retried after a
//! growing pause.

use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;
/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a client has to send a request's head.
pub const HEADER_DEADLINE: Duration = Duration::from_secs(10);

/// The client's address, given to handlers (for logs).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Serves `app` on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stats: Arc<super::Stats>,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut pause = Duration::from_millis(10);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(c) => {
                pause = Duration::from_millis(10);
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "http: cannot accept a connection; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            stats
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone().layer(axum::Extension(Peer(addr)));
        let tls = tls.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let _permit = permit;
            stats
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, app).await,
                        Ok(Err(e)) => {
                            stats
                                .tls_failed
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tracing::debug!(client = %addr, error = %e, "http: TLS handshake failed");
                        }
                        Err(_) => {
                            stats
                                .tls_failed
                                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
                None => connection(tcp, app).await,
            }
        });
    }
}

async fn connection<S>(stream: S, app: axum::Router)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service = hyper_util::service::TowerToHyperService::new(app);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_DEADLINE)
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
}
