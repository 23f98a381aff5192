//! The control socket: a Unix socket in the data directory, mode 0600, where each line
//! is one JSON `Request` and the agent answers each with one JSON `Response` line. Lines
//! are bounded; garbage gets an error reply and the connection stays usable.

use crate::api::{Request, Response};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

/// Where the control socket of the agent owning `data_dir` lives.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control.sock")
}

/// Longest request line accepted.
pub const MAX_LINE: usize = 1 << 20;

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

/// Accepts connections until the process ends, passing requests to `requests_tx`.
pub async fn serve(listener: UnixListener, requests_tx: mpsc::Sender<Pending>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = requests_tx.clone();
        tokio::spawn(async move {
            let _ = connection(stream, tx).await;
        });
    }
}

async fn connection(stream: UnixStream, tx: mpsc::Sender<Pending>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let response = if line.len() > MAX_LINE {
            // Skip the rest of the oversized line before answering.
            let mut rest = Vec::new();
            let _ = reader.read_until(b'\n', &mut rest).await;
            Response::error(format!("request larger than {MAX_LINE} bytes"))
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response::error(format!("invalid request: {e}")),
                Ok(req) => {
                    let (reply_tx, reply_rx) = oneshot::channel();
                    if tx.send((req, reply_tx)).await.is_err() {
                        Response::error("the agent is shutting down")
                    } else {
                        reply_rx
                            .await
                            .unwrap_or_else(|_| Response::error("the agent is shutting down"))
                    }
                }
            }
        };
        let mut out = serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec());
        out.push(b'\n');
        write.write_all(&out).await?;
    }
}

use tokio::io::AsyncReadExt;

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
