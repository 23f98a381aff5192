//! Live events for clients: a WebSocket at `/roboconf-dm-websocket` in Roboconf's JSON
//! shape (`{"event":"CHANGED","app":{…},"inst":{…}}`), and the same objects as
//! Server-Sent Events at `/roboconf-dm/events`. Each client reads from the agent's
//! bounded broadcast channel: one that falls behind (it does not read, or reads too
//! slowly) is sent a notice and dropped, never buffered without bound.

use super::Shared;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State as Ctx;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures::StreamExt;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// How long one event may take to leave for a WebSocket client before it is dropped.
pub const SEND_DEADLINE: Duration = Duration::from_secs(5);
/// Largest message accepted from a WebSocket client (it has nothing to say).
const MAX_CLIENT_MESSAGE: usize = 4096;

fn lagged_notice(missed: u64) -> String {
    serde_json::json!({
        "msg": format!(
            "dropped: this client fell {missed} events behind; reconnect and read the state again"
        )
    })
    .to_string()
}

pub async fn websocket(Ctx(s): Ctx<Shared>, ws: WebSocketUpgrade) -> impl IntoResponse {
    // Clients say nothing: a small read buffer (tungstenite's default, 128 KiB, zeroed
    // on first use, would be resident for each client).
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(MAX_CLIENT_MESSAGE)
        .write_buffer_size(16 * 1024)
        .on_upgrade(move |socket| stream_ws(socket, s))
}

/// Most events sent to one client before its socket is flushed.
const BATCH: usize = 64;

async fn stream_ws(mut socket: WebSocket, s: Shared) {
    use futures::SinkExt;
    let mut events_rx = s.live.subscribe();
    s.stats.ws_clients.fetch_add(1, Relaxed);
    let mut batch: Vec<String> = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            ev = events_rx.recv() => {
                // What is ready already leaves with it, in one write.
                let mut next = Some(ev);
                let mut lagged = None;
                while let Some(ev) = next.take() {
                    match ev {
                        Ok(e) => batch.push(e.json.clone()),
                        Err(RecvError::Lagged(n)) => lagged = Some(n),
                        Err(RecvError::Closed) => break,
                    }
                    if batch.len() < BATCH && lagged.is_none() {
                        next = match events_rx.try_recv() {
                            Ok(e) => Some(Ok(e)),
                            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                            Err(_) => None,
                        };
                    }
                }
                if let Some(n) = lagged {
                    s.stats.slow_dropped.fetch_add(1, Relaxed);
                    tracing::info!(missed = n, "http: a WebSocket client fell behind and is dropped");
                    let notice = Message::Text(lagged_notice(n).into());
                    let _ = tokio::time::timeout(Duration::from_millis(200), socket.send(notice)).await;
                    break;
                }
                if batch.is_empty() {
                    break;
                }
                let send = async {
                    for text in batch.drain(..) {
                        socket.feed(Message::Text(text.into())).await?;
                    }
                    socket.flush().await
                };
                match tokio::time::timeout(SEND_DEADLINE, send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        s.stats.slow_dropped.fetch_add(1, Relaxed);
                        tracing::info!("http: a WebSocket client stopped reading and is dropped");
                        break;
                    }
                }
            }
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    s.stats.ws_clients.fetch_sub(1, Relaxed);
}

pub async fn sse(Ctx(s): Ctx<Shared>) -> impl IntoResponse {
    let stats = s.stats.clone();
    stats.sse_clients.fetch_add(1, Relaxed);
    let guard = SseGuard(stats.clone());
    let stream = tokio_stream::wrappers::BroadcastStream::new(s.live.subscribe()).scan(
        false,
        move |ended, item| {
            let _held = &guard;
            if *ended {
                return futures::future::ready(None);
            }
            let out = match item {
                Ok(e) => {
                    let name = match e.event {
                        crate::live::LiveEvent::Application { created: true, .. } => "CREATED",
                        crate::live::LiveEvent::Application { created: false, .. } => "DELETED",
                        _ => "CHANGED",
                    };
                    Event::default().event(name).data(e.json.as_str())
                }
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    *ended = true;
                    stats.slow_dropped.fetch_add(1, Relaxed);
                    Event::default().event("notice").data(lagged_notice(n))
                }
            };
            futures::future::ready(Some(Ok::<_, std::convert::Infallible>(out)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Counts an SSE client out when its stream is dropped.
struct SseGuard(std::sync::Arc<super::Stats>);

impl Drop for SseGuard {
    fn drop(&mut self) {
        self.0.sse_clients.fetch_sub(1, Relaxed);
    }
}
