//! A small HTTP/1.1 client for the tests of the agent's API (one connection per
//! request, `Connection: close`), and where an agent serves its API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// An answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The base URL (`http://127.0.0.1:PORT`) an agent's log announces.
pub fn base_url(agent: &crate::Agent) -> String {
    let find = |a: &crate::Agent| crate::log::http_addresses(&a.log_text()).into_iter().next();
    agent.wait_until("the HTTP API's address", Duration::from_secs(20), |a| {
        find(a).is_some()
    });
    find(agent).unwrap_or_default()
}

/// Percent-encodes a query value or path segment.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// One request to `base` (`http://host:port`); `target` is the path and query.
pub fn request(
    base: &str,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
    token: Option<&str>,
) -> Reply {
    let host = base
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("only http:// here: {base}"));
    let mut stream = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    // A body the server refuses early may cut the write short: the answer still counts.
    let _ = stream.write_all(&out);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse(&raw)
}

/// GET, as JSON, expecting 200.
pub fn get_json(base: &str, target: &str) -> serde_json::Value {
    let r = request(base, "GET", target, None, None);
    assert_eq!(r.status, 200, "GET {target}: {}", r.body);
    r.json()
}

fn parse(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// `GET /metrics` in Prometheus' text format, checked by `promtool check metrics`
/// (Debian's `prometheus` package; CI installs it: a missing promtool fails the test).
pub fn metrics_checked(base: &str) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let r = request(base, "GET", "/metrics", None, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool cannot run ({e}): install Debian's `prometheus` package")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(r.body.as_bytes())
        .expect("write to promtool");
    let o = child.wait_with_output().expect("promtool");
    assert!(
        o.status.success(),
        "promtool check metrics: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        r.body
    );
    r.body
}

/// The value of one series (`name{labels}` exactly as written), 0 when absent.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
