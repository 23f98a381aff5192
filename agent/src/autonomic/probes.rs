//! The I/O of Roboconf's probe handlers (`file`, `rest`, `nagios`, `docker`); the probe
//! files are parsed in the model (`roboconf_model::probes`) and the handlers here take
//! plain parameters. A handler returns what a hit carries (`Some` details) or the answer
//! the caller tests; every network operation and child process is bounded by the given
//! timeout, and every answer by `MAX_ANSWER` bytes.
//!
//! `rest_get` is a minimal HTTP/1.1 client (`Content-Length`, chunked and read-to-EOF
//! bodies, IPv4, `[IPv6]`, names). It speaks no TLS: an `https://` URL is refused with
//! `Error::Unsupported`; probe a local `http` endpoint (e.g. a status page on loopback),
//! or use a `nagios` or `file` probe instead.

use super::Error;
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most bytes read of an answer (an HTTP body, a LiveStatus answer).
pub const MAX_ANSWER: usize = 1024 * 1024;
/// The most bytes of an HTTP status line and headers.
const MAX_HEAD: usize = 64 * 1024;
/// The most bytes kept of what `docker` prints on each of its outputs.
const MAX_DOCKER_OUTPUT: usize = 64 * 1024;

/// What a `file` probe checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Hit (and delete the file or folder) when the path exists.
    DeleteIfExists,
    /// Hit when the path does not exist.
    NotifyIfNotExists,
    /// Hit when the path exists.
    NotifyIfExists,
}

/// Roboconf's `file` handler. A path that cannot be examined (other than not existing,
/// e.g. a folder that cannot be read) is an error, not an absence.
pub async fn file_check(kind: FileKind, path: &Path) -> Result<Option<String>, Error> {
    let shown = path.display().to_string();
    let io = |source| Error::Io {
        what: shown.clone(),
        source,
    };
    let meta = match tokio::fs::symlink_metadata(path).await {
        Ok(m) => Some(m),
        Err(e) if is_absent(&e) => None,
        Err(e) => return Err(io(e)),
    };
    match (kind, meta) {
        (FileKind::DeleteIfExists, Some(m)) => {
            // A symbolic link is removed itself, never what it points to.
            let removed = if m.is_dir() {
                tokio::fs::remove_dir_all(path).await
            } else {
                tokio::fs::remove_file(path).await
            };
            match removed {
                Ok(()) => Ok(Some(format!("{shown} was deleted."))),
                // Gone meanwhile: someone else deleted it.
                Err(e) if is_absent(&e) => Ok(None),
                Err(e) => Err(io(e)),
            }
        }
        (FileKind::NotifyIfNotExists, None) => Ok(Some(format!("{shown} does not exist."))),
        (FileKind::NotifyIfExists, Some(_)) => Ok(Some(format!("{shown} was checked."))),
        _ => Ok(None),
    }
}

fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

/// `f` under `timeout`; `what` names the operation in the timeout error.
async fn bounded<T>(
    what: &str,
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| {
        Err(Error::Timeout {
            what: what.to_string(),
            after: timeout,
        })
    })
}

/// A parsed `http://` URL.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    host: String,
    port: u16,
    /// The path and query (fragment removed), starting with `/`.
    target: String,
}

impl Url {
    fn parse(url: &str) -> Result<Url, Error> {
        let bad = |why: &str| Error::Invalid(format!("`{}`: {why}", url.escape_debug()));
        if url.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad("a space or a control character in the URL"));
        }
        let scheme_end = url
            .find("://")
            .ok_or_else(|| bad("expected http://host[:port]/path"))?;
        let scheme = &url[..scheme_end];
        if scheme.eq_ignore_ascii_case("https") {
            return Err(Error::Unsupported(format!(
                "{url}: https is not spoken by the rest probe (no TLS in the agent); use a local http endpoint or a nagios/file probe"
            )));
        }
        if !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("only http:// URLs are probed"));
        }
        let rest = &url[scheme_end + 3..];
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, target) = match rest.find(['/', '?']) {
            Some(i) if rest[i..].starts_with('?') => (&rest[..i], format!("/{}", &rest[i..])),
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        let (host, port) = if let Some(h) = authority.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| bad("no `]` after the IPv6 address"))?;
            match p {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected `:` after `]`"))?,
                    ),
                ),
            }
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 80,
            Some(p) => p
                .parse()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("bad port"))?,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            target,
        })
    }

    /// The `Host` header's value.
    fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Connects to the first address of `host` (a name, an IPv4 or IPv6 address) that answers.
async fn connect(host: &str, port: u16) -> Result<TcpStream, Error> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let what = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| Error::Io {
            what: format!("cannot resolve {host}"),
            source,
        })?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(Error::Io {
        what: format!("cannot connect to {what}"),
        source: last.unwrap_or_else(|| std::io::Error::other("the name has no address")),
    })
}

/// GET `url` (plain HTTP/1.1): the body of a 2xx answer, read as UTF-8 (invalid bytes
/// replaced). Another status is `Error::Status`; a body over `MAX_ANSWER` bytes is
/// `Error::TooLarge`; the whole exchange (resolution included) is bounded by `timeout`.
pub async fn rest_get(url: &str, timeout: Duration) -> Result<String, Error> {
    let u = Url::parse(url)?;
    bounded(url, timeout, async {
        let s = connect(&u.host, u.port).await?;
        let mut r = Reader::new(s, url);
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Mozilla/34.0\r\nAccept: */*\r\nConnection: close\r\n\r\n",
            u.target,
            u.host_header()
        );
        r.s.write_all(req.as_bytes()).await.map_err(|e| r.io(e))?;
        let body = read_response(&mut r).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    })
    .await
}

/// A buffered reader of a response that never holds much more than it was asked for.
struct Reader<'a> {
    s: TcpStream,
    buf: Vec<u8>,
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn new(s: TcpStream, what: &'a str) -> Self {
        Reader {
            s,
            buf: Vec::new(),
            what,
        }
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::Io {
            what: self.what.to_string(),
            source,
        }
    }

    fn protocol(&self, why: &str) -> Error {
        Error::Protocol(format!("{}: {why}", self.what))
    }

    fn too_large(&self, limit: usize) -> Error {
        Error::TooLarge {
            what: self.what.to_string(),
            limit,
        }
    }

    /// Reads once more; false at the end of the stream.
    async fn fill(&mut self) -> Result<bool, Error> {
        let mut chunk = [0u8; 8192];
        let n = self.s.read(&mut chunk).await.map_err(|e| self.io(e))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The bytes before `pat` (consumed with it), at most `limit` of them.
    async fn until(&mut self, pat: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
        loop {
            if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                let out = self.buf[..i].to_vec();
                self.buf.drain(..i + pat.len());
                return Ok(out);
            }
            if self.buf.len() > limit {
                return Err(self.too_large(limit));
            }
            if !self.fill().await? {
                return Err(self.protocol("the answer ends early"));
            }
        }
    }

    /// Exactly `n` bytes.
    async fn exact(&mut self, n: usize) -> Result<Vec<u8>, Error> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(self.protocol("the answer ends early"));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Everything up to the end of the stream, at most `limit` bytes.
    async fn rest(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        loop {
            if self.buf.len() > limit {
                return Err(self.too_large(limit));
            }
            if !self.fill().await? {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }
}

/// Reads a response's head and its body (as its framing says).
async fn read_response(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let (code, head) = loop {
        let head = r.until(b"\r\n\r\n", MAX_HEAD).await?;
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head.lines().next().unwrap_or_default().trim().to_string();
        let code: u16 = status
            .strip_prefix("HTTP/")
            .and_then(|s| s.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| {
                r.protocol(&format!(
                    "not an HTTP status line: `{}`",
                    status.escape_debug()
                ))
            })?;
        // 100 Continue and other interim answers come before the real one.
        if (100..200).contains(&code) && code != 101 {
            continue;
        }
        if !(200..300).contains(&code) {
            return Err(Error::Status {
                what: r.what.to_string(),
                status,
            });
        }
        break (code, head);
    };
    if code == 204 || code == 205 {
        return Ok(Vec::new());
    }
    let chunked = header_values(&head, "transfer-encoding").any(|t| {
        t.rsplit(',')
            .next()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        return read_chunked(r).await;
    }
    let lengths: Vec<String> = header_values(&head, "content-length").collect();
    match lengths.first() {
        None => r.rest(MAX_ANSWER).await,
        Some(first) => {
            if lengths.iter().any(|l| l != first) {
                return Err(r.protocol("conflicting Content-Length headers"));
            }
            if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                return Err(r.protocol("bad Content-Length"));
            }
            // Digits only: a value that does not fit is too large.
            let n: u64 = first.parse().unwrap_or(u64::MAX);
            match usize::try_from(n) {
                Ok(n) if n <= MAX_ANSWER => r.exact(n).await,
                _ => Err(r.too_large(MAX_ANSWER)),
            }
        }
    }
}

/// The values of the headers named `name` (any case) in a response's head.
fn header_values<'a>(head: &'a str, name: &'a str) -> impl Iterator<Item = String> + 'a {
    head.lines().skip(1).filter_map(move |l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

async fn read_chunked(r: &mut Reader<'_>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    loop {
        let line = r.until(b"\r\n", 4096).await?;
        let line = String::from_utf8_lossy(&line);
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = (!size.is_empty() && size.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| usize::from_str_radix(size, 16).ok())
            .flatten()
            .ok_or_else(|| r.protocol(&format!("bad chunk size `{}`", line.escape_debug())))?;
        if size == 0 {
            // Trailers, if any, are not needed: the connection closes.
            return Ok(out);
        }
        if size > MAX_ANSWER.saturating_sub(out.len()) {
            return Err(r.too_large(MAX_ANSWER));
        }
        out.extend_from_slice(&r.exact(size).await?);
        if r.exact(2).await? != b"\r\n" {
            return Err(r.protocol("a chunk does not end with CRLF"));
        }
    }
}

/// A LiveStatus query over TCP: writes the query's lines and a blank line, closes the
/// writing half (the server then answers and closes) and returns the whole answer (at
/// most `MAX_ANSWER` bytes, read as UTF-8), all within `timeout`.
pub async fn nagios_query(
    host: &str,
    port: u16,
    query: &str,
    timeout: Duration,
) -> Result<String, Error> {
    let what = format!("LiveStatus {host}:{port}");
    bounded(&what, timeout, async {
        let s = connect(host, port).await?;
        let mut r = Reader::new(s, &what);
        let mut q: String = query
            .lines()
            .filter(|l| !l.trim().is_empty())
            .flat_map(|l| [l, "\n"])
            .collect();
        q.push('\n');
        r.s.write_all(q.as_bytes()).await.map_err(|e| r.io(e))?;
        r.s.shutdown().await.map_err(|e| r.io(e))?;
        let raw = r.rest(MAX_ANSWER).await?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    })
    .await
}

/// Whether a Docker container runs: `docker inspect -f {{.State.Running}} CONTAINER`.
/// `Ok(false)` when it is stopped or does not exist; an error when `docker` cannot be run
/// (not installed, not on the agent's `PATH`), when the engine does not answer, or after
/// `timeout` (the `docker` process is then killed).
pub async fn docker_running(container: &str, timeout: Duration) -> Result<bool, Error> {
    docker_running_with(OsStr::new("docker"), &[], container, timeout).await
}

/// `docker_running` with the program to run (and arguments before `inspect`), so that
/// tests run a stand-in.
async fn docker_running_with(
    program: &OsStr,
    leading: &[&OsStr],
    container: &str,
    timeout: Duration,
) -> Result<bool, Error> {
    if container.is_empty() || container.starts_with('-') || container.chars().any(char::is_control)
    {
        return Err(Error::Invalid(format!(
            "`{}` is not a Docker container name",
            container.escape_debug()
        )));
    }
    let shown = program.to_string_lossy();
    let what = format!("{shown} inspect {container}");
    let mut child = tokio::process::Command::new(program)
        .args(leading)
        .args(["inspect", "-f", "{{.State.Running}}", container])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Io {
            what: format!("cannot run `{shown}` (is Docker installed and on the agent's PATH?)"),
            source,
        })?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let io = |source| Error::Io {
        what: what.clone(),
        source,
    };
    // On a timeout the future is dropped, and with it the child, which is then killed.
    let (status, out, err) = bounded(
        &format!("{what} (is the Docker engine stuck?)"),
        timeout,
        async {
            let (out, err) = tokio::join!(capped(stdout), capped(stderr));
            let status = child.wait().await.map_err(io)?;
            Ok((status, out.map_err(io)?, err.map_err(io)?))
        },
    )
    .await?;
    let (out, err) = (String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    if status.success() {
        return Ok(out.trim() == "true");
    }
    let lower = err.to_ascii_lowercase();
    if lower.contains("no such object") || lower.contains("no such container") {
        return Ok(false);
    }
    let why = match err.trim() {
        "" => format!("exited with {status}"),
        e => e.to_string(),
    };
    if lower.contains("cannot connect") || lower.contains("is the docker daemon running") {
        return Err(Error::Docker(format!(
            "{what}: the Docker engine does not answer: {why}"
        )));
    }
    Err(Error::Docker(format!("{what}: {why}")))
}

/// Reads a pipe to its end, keeping its first `MAX_DOCKER_OUTPUT` bytes (the rest is
/// read and dropped, so that the child never blocks on a full pipe).
async fn capped(pipe: Option<impl AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut pipe) = pipe else {
        return Ok(out);
    };
    let mut chunk = [0u8; 8192];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok(out);
        }
        let keep = n.min(MAX_DOCKER_OUTPUT.saturating_sub(out.len()));
        out.extend_from_slice(&chunk[..keep]);
    }
}

#[cfg(test)]
#[path = "probes_tests.rs"]
mod tests;
