//! The control socket: a Unix socket in the data directory, mode 0600, where each line
//! is one JSON `Request` and the agent answers each with one JSON `Response` line.
//! Everything a client can make the agent hold is bounded: a request line is at most
//! `MAX_LINE` bytes (a longer one is answered with an error and the rest of it is read
//! and dropped in `READ_CHUNK` pieces, never kept, so the connection stays usable); at
//! most `MAX_CLIENTS` connections are served at once, and a newcomer over that cap takes
//! the slot of the connection that has waited longest for its client's next line (or,
//! when every connection is waiting for the agent's answer, gets a "busy" error); a
//! client has `REQUEST_DEADLINE` to send each line and `WRITE_DEADLINE` to take each
//! answer; a failing `accept` (out of descriptors...) is retried after a growing pause
//! instead of in a loop, while the connections already open keep being served. What it
//! counts (connections open, newcomers refused as busy, connections evicted) feeds the
//! agent's metrics.

use crate::api::{Request, Response};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Where the control socket of the agent owning `data_dir` lives.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Longest request line accepted, in bytes, without its newline.
pub const MAX_LINE: usize = 1 << 20;
/// How many connections are served at once. The CLI opens one per command and closes it
/// when answered, so 64 is far above what operators and scripts use together, while what
/// they can make the agent hold stays small: 64 × (`MAX_LINE` + `READ_CHUNK`) ≈ 65 MiB
/// at worst, and 64 descriptors of the default 1,024.
pub const MAX_CLIENTS: usize = 64;
/// How long a client has to send a whole request line, counted from the connection (or
/// from the previous answer): a connection left idle, or fed a byte at a time, is closed.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// How long a client has to take an answer (a client that never reads is let go).
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long a connection must have waited for its client's line before a newcomer over
/// `MAX_CLIENTS` may take its place.
pub const MIN_IDLE_TO_EVICT: Duration = Duration::from_secs(1);
/// What is read from a client at a time (and all that a line over `MAX_LINE` costs).
pub const READ_CHUNK: usize = 16 * 1024;
/// The first pause after a failed `accept`; it doubles at each failure in a row...
pub const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(10);
/// ...up to this.
pub const ACCEPT_PAUSE_MAX: Duration = Duration::from_millis(500);

/// A request waiting for the agent's answer.
pub type Pending = (Request, oneshot::Sender<Response>);

/// Binds the socket (replacing a stale one) with owner-only permissions.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// What the socket counts, for the agent's metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub open: AtomicU64,
    /// Newcomers answered "busy" (every slot waited for the agent).
    pub busy: AtomicU64,
    /// Idle connections closed to make room for a newcomer.
    pub evicted: AtomicU64,
}

/// Accepts connections until the process ends, passing requests to `requests_tx`.
pub async fn serve(
    listener: UnixListener,
    requests_tx: mpsc::Sender<Pending>,
    counters: Arc<Counters>,
) {
    let clients = Arc::new(Mutex::new(Clients {
        counters,
        ..Clients::default()
    }));
    let mut pause = ACCEPT_PAUSE_MIN;
    let mut failing = false;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and the like leave the connection in the backlog, so the next
                // accept would fail at once: wait, and let the open connections go on.
                if !failing {
                    tracing::error!(
                        error = %e,
                        pause_max_ms = ACCEPT_PAUSE_MAX.as_millis() as u64,
                        "control socket: cannot accept a connection; retrying after pauses"
                    );
                    failing = true;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(ACCEPT_PAUSE_MAX);
                continue;
            }
        };
        if failing {
            tracing::info!("control socket: accepting connections again");
            failing = false;
        }
        pause = ACCEPT_PAUSE_MIN;
        let admitted = lock(&clients).admit(Instant::now());
        match admitted {
            Some((id, evicted)) => {
                let slot = Slot {
                    clients: clients.clone(),
                    id,
                };
                tokio::spawn(connection(stream, requests_tx.clone(), slot, evicted));
            }
            None => {
                tracing::debug!("control socket: busy, a newcomer refused");
                let busy = Response::error(format!(
                    "busy: the agent is answering {MAX_CLIENTS} clients; try again"
                ));
                last_word(stream, &busy);
            }
        }
    }
}

/// The connections being served, and which of them wait for their client's next line
/// (the ones a newcomer over the cap may replace).
#[derive(Default)]
struct Clients {
    next_id: u64,
    open: HashMap<u64, Client>,
    counters: Arc<Counters>,
}

struct Client {
    /// Since when the connection waits for its client; `None` while the agent works.
    waiting_since: Option<Instant>,
    /// Closes the connection to make room for a newcomer.
    evict: oneshot::Sender<()>,
}

impl Clients {
    /// Makes room for a new connection: its id and the signal that it must make room in
    /// turn, or `None` when all `MAX_CLIENTS` wait for the agent's answers.
    fn admit(&mut self, now: Instant) -> Option<(u64, oneshot::Receiver<()>)> {
        if self.open.len() >= MAX_CLIENTS {
            // Only a connection idle for a while makes room: one accepted a moment ago (in a
            // flood of connections, the operator's own) has had no time to send its line.
            let longest_idle = self
                .open
                .iter()
                .filter_map(|(id, c)| c.waiting_since.map(|since| (since, *id)))
                .filter(|(since, _)| now.saturating_duration_since(*since) >= MIN_IDLE_TO_EVICT)
                .min();
            let Some(longest_idle) = longest_idle else {
                self.counters.busy.fetch_add(1, Relaxed);
                return None;
            };
            if let Some(client) = self.open.remove(&longest_idle.1) {
                self.counters.evicted.fetch_add(1, Relaxed);
                let _ = client.evict.send(());
            }
        }
        let (evict, evicted) = oneshot::channel();
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            Client {
                waiting_since: Some(now),
                evict,
            },
        );
        self.counters.open.store(self.open.len() as u64, Relaxed);
        Some((id, evicted))
    }
}

/// One connection's place in `Clients`, given back when the connection ends.
struct Slot {
    clients: Arc<Mutex<Clients>>,
    id: u64,
}

impl Slot {
    /// Marks the connection as waiting for its client (`true`) or for the agent; `false`
    /// when it has been evicted meanwhile.
    fn set_waiting(&self, waiting: bool) -> bool {
        let mut clients = lock(&self.clients);
        match clients.open.get_mut(&self.id) {
            Some(c) => {
                c.waiting_since = waiting.then(Instant::now);
                true
            }
            None => false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut clients = lock(&self.clients);
        clients.open.remove(&self.id);
        clients
            .counters
            .open
            .store(clients.open.len() as u64, Relaxed);
    }
}

fn lock(clients: &Mutex<Clients>) -> std::sync::MutexGuard<'_, Clients> {
    // The table stays consistent whatever panicked while holding it.
    clients
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn encode(response: &Response) -> Vec<u8> {
    let mut out = serde_json::to_vec(response).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}

/// What reading one request line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A line (its newline dropped) is in the buffer; the last one may lack its newline.
    Complete,
    /// The line was longer than the limit: it has been read to its end and dropped.
    TooLong,
    /// The client closed the connection between lines.
    End,
}

/// Reads one line into `line` (cleared first), keeping at most `max` bytes of it: the
/// rest of a longer line is consumed chunk by chunk, as the reader hands it over, and
/// dropped, so memory stays bounded whatever the client sends.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(match (read_any, too_long) {
                (false, _) => Line::End,
                (true, true) => Line::TooLong,
                (true, false) => Line::Complete,
            });
        }
        read_any = true;
        let newline = chunk.iter().position(|b| *b == b'\n');
        let piece = &chunk[..newline.unwrap_or(chunk.len())];
        if !too_long {
            if line.len() + piece.len() > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(piece);
            }
        }
        let used = newline.map_or(chunk.len(), |at| at + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

async fn connection(
    stream: UnixStream,
    tx: mpsc::Sender<Pending>,
    slot: Slot,
    evicted: oneshot::Receiver<()>,
) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_CHUNK, read);
    let last = serve_lines(&mut reader, &mut write, &tx, &slot, evicted).await;
    if let Some(message) = last {
        if let Ok(stream) = reader.into_inner().reunite(write) {
            last_word(stream, &Response::error(message));
        }
    }
}

/// Answers the lines of one connection until it ends; what to tell the client when the
/// agent is the one closing.
async fn serve_lines(
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
    tx: &mpsc::Sender<Pending>,
    slot: &Slot,
    mut evicted: oneshot::Receiver<()>,
) -> Option<String> {
    let mut line = Vec::new();
    loop {
        if !slot.set_waiting(true) {
            return Some(evicted_message());
        }
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, read_line(reader, &mut line, MAX_LINE)) => read,
            _ = &mut evicted => return Some(evicted_message()),
        };
        let response = match read {
            Err(_) => {
                return Some(format!(
                    "closed: no complete request within {} s",
                    REQUEST_DEADLINE.as_secs()
                ))
            }
            Ok(Err(_)) | Ok(Ok(Line::End)) => return None,
            Ok(Ok(Line::TooLong)) => Response::error(format!(
                "request larger than {MAX_LINE} bytes (the line was dropped)"
            )),
            Ok(Ok(Line::Complete)) => {
                if !slot.set_waiting(false) {
                    return Some(evicted_message());
                }
                answer(&line, tx).await
            }
        };
        // A large request's buffer is not kept for the next one.
        if line.capacity() > READ_CHUNK {
            line = Vec::new();
        }
        let out = encode(&response);
        let sent = tokio::time::timeout(WRITE_DEADLINE, write.write_all(&out)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return None;
        }
    }
}

/// Why a connection that lost its place to a newcomer is closed.
fn evicted_message() -> String {
    format!(
        "closed: this connection was the longest idle of {MAX_CLIENTS} and a new client needed its place"
    )
}

/// Writes a last answer without waiting (a socket's buffer has room for one line; when
/// it has not, the client is not reading anyway) and closes the connection.
fn last_word(stream: UnixStream, response: &Response) {
    use std::io::Write;
    if let Ok(stream) = stream.into_std() {
        let _ = (&stream).write(&encode(response));
    }
}

/// The agent's answer to one request line.
async fn answer(line: &[u8], tx: &mpsc::Sender<Pending>) -> Response {
    let req = match serde_json::from_slice::<Request>(line) {
        Ok(req) => req,
        // serde quotes the client's input (an unknown `op`...): not more than a glance of it.
        Err(e) => {
            let e = e.to_string();
            let cut = e.char_indices().nth(300).map_or(e.len(), |(at, _)| at);
            return Response::error(format!(
                "invalid request: {}{}",
                &e[..cut],
                if cut < e.len() { "…" } else { "" }
            ));
        }
    };
    let (reply_tx, reply_rx) = oneshot::channel();
    if tx.send((req, reply_tx)).await.is_err() {
        return Response::error("the agent is shutting down");
    }
    reply_rx
        .await
        .unwrap_or_else(|_| Response::error("the agent is shutting down"))
}

/// Sends one request to the agent whose socket is `path` and waits for the answer.
pub async fn call(path: &Path, request: &Request) -> std::io::Result<Response> {
    let stream = UnixStream::connect(path).await?;
    let (read, mut write) = stream.into_split();
    let mut out = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).await?;
    serde_json::from_slice(&line)
        .map_err(|e| std::io::Error::other(format!("unreadable answer from the agent: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all_lines(input: &[u8], max: usize) -> Vec<(Line, Vec<u8>)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            // A small buffer, so that lines span several chunks.
            let mut reader = BufReader::with_capacity(4, input);
            let mut line = Vec::new();
            let mut out = Vec::new();
            loop {
                let got = read_line(&mut reader, &mut line, max).await.expect("read");
                if got == Line::End {
                    return out;
                }
                out.push((got, line.clone()));
            }
        })
    }

    #[test]
    fn lines_over_the_limit_are_dropped_and_the_next_line_is_read() {
        let got = read_all_lines(b"abcde\nabcdefghijk\n\nxyz", 5);
        assert_eq!(
            got,
            vec![
                (Line::Complete, b"abcde".to_vec()),
                (Line::TooLong, Vec::new()),
                (Line::Complete, Vec::new()),
                (Line::Complete, b"xyz".to_vec()),
            ]
        );
        // A long line cut by the end of the stream is still too long.
        assert_eq!(
            read_all_lines(b"abcdefgh", 5),
            vec![(Line::TooLong, Vec::new())]
        );
    }

    #[test]
    fn over_the_cap_the_longest_idle_client_makes_room() {
        let mut clients = Clients::default();
        let t0 = Instant::now();
        let mut signals = Vec::new();
        for i in 0..MAX_CLIENTS {
            let at = t0 + Duration::from_millis(i as u64);
            signals.push(clients.admit(at).expect("room"));
        }
        // Client 0 is busy with the agent: client 1 is the longest idle, but no one has
        // waited long enough to give its place yet.
        clients.open.get_mut(&0).expect("client 0").waiting_since = None;
        assert!(clients.admit(t0 + Duration::from_millis(500)).is_none());
        let (newcomer, _) = clients.admit(t0 + Duration::from_secs(2)).expect("room");
        assert_eq!(clients.open.len(), MAX_CLIENTS);
        assert!(!clients.open.contains_key(&1));
        assert!(clients.open.contains_key(&newcomer));
        assert!(signals[1].1.try_recv().is_ok(), "client 1 was told to go");
        assert!(signals[2].1.try_recv().is_err(), "client 2 stays");
        // When every client waits for the agent, a newcomer is turned away.
        for c in clients.open.values_mut() {
            c.waiting_since = None;
        }
        assert!(clients.admit(t0 + Duration::from_secs(3)).is_none());
        assert_eq!(clients.open.len(), MAX_CLIENTS);
    }
}
