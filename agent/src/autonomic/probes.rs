//! The I/O of Roboconf's probe handlers. Each returns what a hit carries (`Some`
//! details) or that the probe does not hit; every network operation is bounded by a
//! timeout and every answer by `MAX_ANSWER` bytes. `rest` speaks plain HTTP/1.1 only:
//! an `https://` URL is refused (probe a local `http` endpoint, or use a `file` or
//! `nagios` probe).

use super::Error;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes read of an answer.
pub const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    DeleteIfExists,
    NotifyIfNotExists,
    NotifyIfExists,
}

/// Roboconf's `file` handler.
pub async fn file_check(kind: FileKind, path: &Path) -> Result<Option<String>, Error> {
    let exists = tokio::fs::symlink_metadata(path).await.is_ok();
    let shown = path.display().to_string();
    match kind {
        FileKind::DeleteIfExists if exists => {
            let r = if tokio::fs::metadata(path).await.is_ok_and(|m| m.is_dir()) {
                tokio::fs::remove_dir_all(path).await
            } else {
                tokio::fs::remove_file(path).await
            };
            r.map_err(|e| Error::Io(shown.clone(), e))?;
            Ok(Some(format!("{shown} was deleted.")))
        }
        FileKind::NotifyIfNotExists if !exists => Ok(Some(format!("{shown} does not exist."))),
        FileKind::NotifyIfExists if exists => Ok(Some(format!("{shown} was checked."))),
        _ => Ok(None),
    }
}

async fn bounded<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(Error::Timeout(timeout.as_secs().max(1))))
}

/// Reads to the end, at most `MAX_ANSWER` bytes.
async fn read_all(s: &mut TcpStream, what: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| Error::Io(what.into(), e))?;
        if n == 0 {
            return Ok(out);
        }
        if out.len() + n > MAX_ANSWER {
            return Err(Error::Protocol(format!(
                "{what}: answer over {MAX_ANSWER} bytes"
            )));
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// `http://host[:port]/path` → (host, port, path).
fn split_url(url: &str) -> Result<(String, u16, String), Error> {
    if url.starts_with("https://") {
        return Err(Error::Unsupported(format!(
            "{url}: https is not spoken by the rest probe; probe a local http endpoint"
        )));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| Error::Protocol(format!("{url}: expected http://host[:port]/path")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = if let Some(h) = authority.strip_prefix('[') {
        let (h, p) = h
            .split_once(']')
            .ok_or_else(|| Error::Protocol(format!("{url}: bad IPv6 address")))?;
        (h.to_string(), p.strip_prefix(':').unwrap_or("80"))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (authority.to_string(), "80"),
        }
    };
    let port = port
        .parse()
        .map_err(|_| Error::Protocol(format!("{url}: bad port")))?;
    if host.is_empty() {
        return Err(Error::Protocol(format!("{url}: no host")));
    }
    Ok((host, port, path))
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, Error> {
    let what = format!("{host}:{port}");
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Error::Io(what.clone(), e))?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Io(
        what,
        last.unwrap_or_else(|| std::io::Error::other("no address")),
    ))
}

/// GET `url` (plain HTTP/1.1): the body of a 2xx answer.
pub async fn rest_get(url: &str, timeout: Duration) -> Result<String, Error> {
    let (host, port, path) = split_url(url)?;
    bounded(timeout, async move {
        let mut s = connect(&host, port).await?;
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: Mozilla/34.0\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| Error::Io(url.to_string(), e))?;
        let raw = read_all(&mut s, url).await?;
        parse_response(url, &raw)
    })
    .await
}

fn parse_response(url: &str, raw: &[u8]) -> Result<String, Error> {
    let bad = |why: &str| Error::Protocol(format!("{url}: {why}"));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no complete HTTP header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code: u16 = status
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no HTTP status"))?;
    if !(200..300).contains(&code) {
        return Err(bad(&format!("answered `{status}`")));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        let mut rest = body;
        loop {
            let i = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| bad("bad chunk"))?;
            let size_text = String::from_utf8_lossy(&rest[..i]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            rest = &rest[i + 2..];
            if size == 0 {
                break;
            }
            let chunk = rest.get(..size).ok_or_else(|| bad("truncated chunk"))?;
            out.extend_from_slice(chunk);
            rest = rest.get(size + 2..).unwrap_or_default();
        }
        out
    } else if let Some(n) = header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        body.get(..n).ok_or_else(|| bad("truncated body"))?.to_vec()
    } else {
        body.to_vec()
    };
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A LiveStatus query over TCP: the whole answer.
pub async fn nagios_query(
    host: &str,
    port: u16,
    query: &str,
    timeout: Duration,
) -> Result<String, Error> {
    bounded(timeout, async move {
        let mut s = connect(host, port).await?;
        let what = format!("LiveStatus {host}:{port}");
        let mut q = query.trim_end().to_string();
        q.push_str("\n\n");
        s.write_all(q.as_bytes())
            .await
            .map_err(|e| Error::Io(what.clone(), e))?;
        s.shutdown().await.map_err(|e| Error::Io(what.clone(), e))?;
        let raw = read_all(&mut s, &what).await?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    })
    .await
}

/// Whether a Docker container runs (`docker inspect`).
pub async fn docker_running(container: &str, timeout: Duration) -> Result<bool, Error> {
    docker_running_with("docker", container, timeout).await
}

async fn docker_running_with(
    program: &str,
    container: &str,
    timeout: Duration,
) -> Result<bool, Error> {
    let out = bounded(timeout, async {
        tokio::process::Command::new(program)
            .args(["inspect", "-f", "{{.State.Running}}", container])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| Error::Io(format!("`{program}` (is Docker installed?)"), e))
    })
    .await?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Ok(stdout.trim() == "true");
    }
    if stderr.contains("No such") {
        return Ok(false);
    }
    Err(Error::Protocol(format!(
        "docker inspect {container}: {}",
        stderr.trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server answering each connection with `answer` once it read the request.
    async fn serve(answer: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer).await;
            }
        });
        port
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("flag");
        assert!(file_check(FileKind::NotifyIfExists, &p)
            .await
            .unwrap()
            .is_none());
        assert!(file_check(FileKind::NotifyIfNotExists, &p)
            .await
            .unwrap()
            .is_some());
        std::fs::create_dir_all(p.join("inner")).unwrap();
        assert!(file_check(FileKind::NotifyIfExists, &p)
            .await
            .unwrap()
            .is_some());
        let hit = file_check(FileKind::DeleteIfExists, &p).await.unwrap();
        assert!(hit.is_some_and(|h| h.ends_with("was deleted.")));
        assert!(!p.exists());
    }

    #[tokio::test]
    async fn rest_reads_lengths_chunks_and_refuses_errors() {
        let port = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"load\":3}\nextra").await;
        let body = rest_get(&format!("http://127.0.0.1:{port}/lb-load"), T)
            .await
            .unwrap();
        assert_eq!(body, "{\"load\":3}\n");
        let port = serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nload\r\n3\r\n: 1\r\n0\r\n\r\n").await;
        assert_eq!(
            rest_get(&format!("http://127.0.0.1:{port}/"), T)
                .await
                .unwrap(),
            "load: 1"
        );
        let port = serve(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n").await;
        let e = rest_get(&format!("http://127.0.0.1:{port}/x"), T)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("404"), "{e}");
        assert!(matches!(
            rest_get("https://x/", T).await,
            Err(Error::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let c = l.accept().await;
            std::future::pending::<()>().await;
            drop(c);
        });
        let started = std::time::Instant::now();
        let e = rest_get(
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Timeout(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(3));
        held.abort();
    }

    #[tokio::test]
    async fn nagios_sends_the_query_and_reads_the_answer() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut q = String::new();
            s.read_to_string(&mut q).await.unwrap();
            s.write_all(b"host1;1;0\n").await.unwrap();
            q
        });
        let a = nagios_query("127.0.0.1", port, "GET hosts\nColumns: a b", T)
            .await
            .unwrap();
        assert_eq!(a, "host1;1;0\n");
        assert_eq!(server.await.unwrap(), "GET hosts\nColumns: a b\n\n");
    }

    #[tokio::test]
    async fn docker_missing_is_an_error_that_says_so() {
        let e = docker_running_with("/nonexistent/docker", "c", T)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is Docker installed"), "{e}");
    }
}
