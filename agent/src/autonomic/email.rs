//! A minimal SMTP client for the commands' `email` instruction: the greeting, `EHLO` (or
//! `HELO` when `EHLO` is refused), `AUTH PLAIN` when a user is configured, `MAIL FROM`,
//! `RCPT TO` for each recipient, `DATA` (headers, then the body with CRLF line endings and
//! dot-stuffing), `QUIT`. The whole exchange, connection included, is bounded by the
//! relay's timeout; an error names the relay, the SMTP step and the server's reply. Line
//! breaks in the subject or the addresses are refused (no header injection).
//!
//! It speaks no TLS (`STARTTLS` is not spoken, nor SMTPS): use a relay on the agent's host
//! or on loopback (postfix, exim, ...), which forwards the mail as it is configured to.

use super::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// The longest reply line read (RFC 5321 allows 512 bytes; servers are lenient).
const MAX_LINE: u64 = 4096;
/// The most bytes of one (multi-line) reply.
const MAX_REPLY: usize = 64 * 1024;
/// How long the answer to `QUIT` is awaited once the mail was accepted.
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// An SMTP relay and how to use it.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    /// The sender: an address, or `Name <address>`.
    pub from: String,
    /// With a user, `AUTH PLAIN` is sent (in clear: a local relay only).
    pub username: Option<String>,
    pub password: Option<String>,
    /// The bound of the whole exchange.
    pub timeout: Duration,
}

/// Sends one e-mail to every address of `to` (each an address or `Name <address>`).
pub async fn send(relay: &Relay, to: &[String], subject: &str, body: &str) -> Result<(), Error> {
    let from = envelope("sender", &relay.from)?;
    if to.is_empty() {
        return Err(Error::Invalid("an e-mail without a recipient".into()));
    }
    let rcpts = to
        .iter()
        .map(|t| envelope("recipient", t))
        .collect::<Result<Vec<_>, _>>()?;
    no_break("subject", subject)?;
    let me = helo_name(&crate::config::hostname());
    let text = message(
        &relay.from,
        to,
        subject,
        body,
        &me,
        time::OffsetDateTime::now_utc(),
    );
    let mut s = Session::connect(relay).await?;
    s.exchange("greeting", None, &[220]).await?;
    let (code, reply) = s
        .talk("EHLO", Some(&format!("EHLO {me}")), s.deadline)
        .await?;
    if (500..600).contains(&code) {
        s.exchange("HELO", Some(&format!("HELO {me}")), &[250])
            .await?;
    } else if code != 250 {
        return Err(s.refused("EHLO", reply));
    }
    if let Some(user) = &relay.username {
        let pass = relay.password.as_deref().unwrap_or_default();
        let token = base64(format!("\0{user}\0{pass}").as_bytes());
        // The step is named without the credentials.
        s.exchange_named("AUTH PLAIN", &format!("AUTH PLAIN {token}"), &[235])
            .await?;
    }
    s.exchange_line(&format!("MAIL FROM:<{from}>"), &[250])
        .await?;
    for r in rcpts {
        s.exchange_line(&format!("RCPT TO:<{r}>"), &[250, 251])
            .await?;
    }
    s.exchange_line("DATA", &[354]).await?;
    s.exchange_named("end of DATA", &format!("{text}."), &[250])
        .await?;
    // The mail is accepted: the answer to QUIT is awaited briefly, and not required.
    let quit = (Instant::now() + QUIT_WAIT).min(s.deadline);
    let _ = s.talk("QUIT", Some("QUIT"), quit).await;
    Ok(())
}

/// One connection to a relay, and the deadline of the whole exchange.
struct Session {
    conn: BufReader<TcpStream>,
    deadline: Instant,
    timeout: Duration,
    /// `SMTP relay HOST:PORT`.
    what: String,
}

impl Session {
    async fn connect(relay: &Relay) -> Result<Session, Error> {
        let what = format!("SMTP relay {}:{}", relay.host, relay.port);
        let deadline = Instant::now() + relay.timeout;
        let host = relay.host.trim_start_matches('[').trim_end_matches(']');
        let conn = tokio::time::timeout_at(deadline, TcpStream::connect((host, relay.port)))
            .await
            .map_err(|_| Error::Timeout {
                what: format!("{what} (connect)"),
                after: relay.timeout,
            })?
            .map_err(|source| Error::Io {
                what: format!("cannot connect to {what}"),
                source,
            })?;
        Ok(Session {
            conn: BufReader::new(conn),
            deadline,
            timeout: relay.timeout,
            what,
        })
    }

    fn refused(&self, step: &str, reply: String) -> Error {
        Error::Refused {
            what: self.what.clone(),
            step: step.to_string(),
            reply,
        }
    }

    /// Sends `line` (when given) and reads the reply, before `deadline`.
    async fn talk(
        &mut self,
        step: &str,
        line: Option<&str>,
        deadline: Instant,
    ) -> Result<(u16, String), Error> {
        let (conn, what) = (&mut self.conn, &self.what);
        let io = |source| Error::Io {
            what: format!("{what} ({step})"),
            source,
        };
        let exchange = async {
            if let Some(l) = line {
                let w = conn.get_mut();
                w.write_all(format!("{l}\r\n").as_bytes())
                    .await
                    .map_err(io)?;
                w.flush().await.map_err(io)?;
            }
            read_reply(conn, what, step).await
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    what: format!("{what} ({step})"),
                    after: self.timeout,
                })
            })
    }

    /// `talk`, then the reply's code must be one of `ok`.
    async fn exchange(&mut self, step: &str, line: Option<&str>, ok: &[u16]) -> Result<(), Error> {
        let (code, reply) = self.talk(step, line, self.deadline).await?;
        if ok.contains(&code) {
            Ok(())
        } else {
            Err(self.refused(step, reply))
        }
    }

    /// `exchange` of a command named by itself.
    async fn exchange_line(&mut self, line: &str, ok: &[u16]) -> Result<(), Error> {
        self.exchange(line, Some(line), ok).await
    }

    /// `exchange` of a command named otherwise (credentials, a whole message).
    async fn exchange_named(&mut self, step: &str, line: &str, ok: &[u16]) -> Result<(), Error> {
        self.exchange(step, Some(line), ok).await
    }
}

/// Reads a reply, multi-line (`250-...`) or not: its code, and its code and text.
async fn read_reply(
    conn: &mut BufReader<TcpStream>,
    what: &str,
    step: &str,
) -> Result<(u16, String), Error> {
    let mut text = String::new();
    loop {
        let mut raw = Vec::new();
        let n = (&mut *conn)
            .take(MAX_LINE)
            .read_until(b'\n', &mut raw)
            .await
            .map_err(|source| Error::Io {
                what: format!("{what} ({step})"),
                source,
            })?;
        if n == 0 {
            return Err(Error::Protocol(format!(
                "{what} closed the connection at {step}"
            )));
        }
        if !raw.ends_with(b"\n") && n as u64 == MAX_LINE {
            return Err(Error::TooLarge {
                what: format!("{what} ({step}): a reply line"),
                limit: MAX_LINE as usize,
            });
        }
        let line = String::from_utf8_lossy(&raw);
        let line = line.trim_end();
        let code = line
            .get(..3)
            .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                Error::Protocol(format!(
                    "{what} ({step}): not an SMTP reply: `{}`",
                    line.escape_debug()
                ))
            })?;
        let rest = line.get(4..).unwrap_or_default().trim();
        if text.is_empty() {
            text = format!("{code} {rest}");
        } else {
            text.push_str("; ");
            text.push_str(rest);
        }
        if text.len() > MAX_REPLY {
            return Err(Error::TooLarge {
                what: format!("{what} ({step}): a reply"),
                limit: MAX_REPLY,
            });
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text.trim_end().to_string()));
        }
    }
}

/// The message (headers and body, CRLF, dot-stuffed), without the final `.` line.
fn message(
    from: &str,
    to: &[String],
    subject: &str,
    body: &str,
    me: &str,
    now: time::OffsetDateTime,
) -> String {
    static SENT: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "{:x}.{}.{}@{me}",
        now.unix_timestamp_nanos(),
        std::process::id(),
        SENT.fetch_add(1, Ordering::Relaxed)
    );
    let mut to_line = String::new();
    let mut width = "To: ".len();
    for (i, t) in to.iter().enumerate() {
        if i > 0 {
            // Header lines stay well under SMTP's 998 characters.
            if width + t.len() > 76 {
                to_line.push_str(",\r\n ");
                width = 1;
            } else {
                to_line.push_str(", ");
                width += 2;
            }
        }
        to_line.push_str(t);
        width += t.len();
    }
    let mut out = format!(
        "From: {from}\r\nTo: {to_line}\r\nSubject: {}\r\nDate: {}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n",
        header_text(subject),
        rfc2822(now)
    );
    if !body.is_ascii() {
        out.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    out.push_str("\r\n");
    // CRLF, LF and a lone CR all end a line.
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    for line in body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// A header's text: as is when short ASCII, else RFC 2047 encoded words (folded).
fn header_text(s: &str) -> String {
    if s.is_ascii() && s.len() <= 900 {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut start = 0;
    while start < s.len() {
        let mut end = (start + 45).min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!(
            "=?utf-8?B?{}?=",
            base64(s.get(start..end).unwrap_or_default().as_bytes())
        ));
        start = end;
    }
    words.join("\r\n ")
}

/// RFC 2822's date: `Thu, 1 Jan 1970 00:00:00 +0000`, in UTC.
fn rfc2822(t: time::OffsetDateTime) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = t.to_offset(time::UtcOffset::UTC);
    let day = DAYS
        .get(usize::from(t.weekday().number_days_from_monday()))
        .unwrap_or(&"Mon");
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .unwrap_or(&"Jan");
    format!(
        "{day}, {} {month} {} {:02}:{:02}:{:02} +0000",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The name given to `EHLO`: the host's, when it is a plain domain name.
fn helo_name(host: &str) -> String {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if plain {
        host.to_string()
    } else {
        "roboconf".to_string()
    }
}

fn no_break(what: &str, s: &str) -> Result<(), Error> {
    if s.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "a line break or control character in the {what} `{}`",
            s.escape_debug()
        )));
    }
    Ok(())
}

/// The address of `addr` (`a@b` or `Name <a@b>`) for `MAIL FROM` / `RCPT TO`.
fn envelope<'a>(what: &str, addr: &'a str) -> Result<&'a str, Error> {
    no_break(what, addr)?;
    let a = match (addr.rfind('<'), addr.rfind('>')) {
        (Some(i), Some(j)) if i < j => addr.get(i + 1..j).unwrap_or_default(),
        _ => addr.trim(),
    };
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
        return Err(Error::Invalid(format!(
            "the {what} `{addr}` is not an address"
        )));
    }
    Ok(a)
}

/// Standard base64, with padding.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use roboconf_tests::smtp::Sink;

    fn relay(port: u16) -> Relay {
        Relay {
            host: "127.0.0.1".into(),
            port,
            from: "roboconf@test".into(),
            username: Some("u".into()),
            password: Some("p".into()),
            timeout: Duration::from_secs(10),
        }
    }

    fn header<'a>(data: &'a str, name: &str) -> &'a str {
        data.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .split("\r\n")
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {name} in {data}"))
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"\0u\0p"), "AHUAcA==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"\xff\xfe"), "//4=");
    }

    #[test]
    fn messages_are_crlf_dot_stuffed_and_dated() {
        let epoch = time::OffsetDateTime::from_unix_timestamp(0).unwrap();
        assert_eq!(rfc2822(epoch), "Thu, 1 Jan 1970 00:00:00 +0000");
        let m = message("f@x", &["a@x".into()], "s", "a\r\n.b\rc\n.\n", "h", epoch);
        assert!(m.ends_with("\r\n\r\na\r\n..b\r\nc\r\n..\r\n"), "{m:?}");
        assert_eq!(header(&m, "Date"), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            header_text("Café"),
            format!("=?utf-8?B?{}?=", base64("Café".as_bytes()))
        );
        assert_eq!(helo_name("web-1.example.org"), "web-1.example.org");
        assert_eq!(helo_name("bad name\r\n"), "roboconf");
    }

    #[tokio::test]
    async fn a_mail_reaches_the_sink_with_its_headers() {
        let sink = Sink::start();
        let to = vec!["a@x.org".to_string(), "b@x.org".to_string()];
        let mut r = relay(sink.port());
        r.from = "Roboconf <roboconf@test>".into();
        send(&r, &to, "Alert!", "Scaled up.\n.hidden line\n.\nend")
            .await
            .unwrap();
        let mails = sink.wait_for(1, Duration::from_secs(10));
        let m = &mails[0];
        assert_eq!(m.from, "roboconf@test");
        assert_eq!(m.to, to);
        assert_eq!(header(&m.data, "From"), "Roboconf <roboconf@test>");
        assert_eq!(header(&m.data, "To"), "a@x.org, b@x.org");
        assert_eq!(header(&m.data, "Subject"), "Alert!");
        assert_eq!(header(&m.data, "MIME-Version"), "1.0");
        assert_eq!(header(&m.data, "Content-Type"), "text/plain; charset=utf-8");
        assert!(header(&m.data, "Date").ends_with(" +0000"));
        let id = header(&m.data, "Message-ID");
        assert!(
            id.starts_with('<') && id.ends_with('>') && id.contains('@'),
            "{id}"
        );
        let body = m.data.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body, "Scaled up.\r\n.hidden line\r\n.\r\nend\r\n");
    }

    #[tokio::test]
    async fn helo_when_ehlo_is_refused_and_utf8_subjects_encoded() {
        let sink = Sink::helo_only();
        let mut r = relay(sink.port());
        r.username = None;
        send(&r, &["a@x.org".into()], "Déploiement", "é")
            .await
            .unwrap();
        let m = &sink.wait_for(1, Duration::from_secs(10))[0];
        assert_eq!(header(&m.data, "Subject"), header_text("Déploiement"));
        assert!(m.data.ends_with("\r\n\r\né\r\n"), "{:?}", m.data);
    }

    #[tokio::test]
    async fn a_refused_recipient_is_named() {
        let sink = Sink::refusing();
        let e = send(&relay(sink.port()), &["a@x.org".into()], "s", "b")
            .await
            .unwrap_err();
        assert!(matches!(&e, Error::Refused { step, .. } if step == "RCPT TO:<a@x.org>"));
        let shown = e.to_string();
        assert!(shown.contains("refused RCPT TO:<a@x.org>: 554"), "{shown}");
        assert!(sink.mails().is_empty());
    }

    #[tokio::test]
    async fn a_relay_down_fails_fast_and_a_silent_one_times_out() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let started = std::time::Instant::now();
        let e = send(&relay(port), &["a@x.org".into()], "s", "b")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot connect to SMTP relay 127.0.0.1:{port}")),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // A server that accepts and never greets.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = relay(l.local_addr().unwrap().port());
        r.timeout = Duration::from_millis(300);
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let held = l.accept().await;
            let _ = released.await;
            drop(held);
        });
        let started = std::time::Instant::now();
        let e = send(&r, &["a@x.org".into()], "s", "b").await.unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("(greeting): no answer within 300 ms"),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let _ = release.send(());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn header_injection_is_refused_before_connecting() {
        // Nothing listens on port 1: the input is refused before.
        let r = relay(1);
        for (to, subject) in [
            ("a@x.org", "s\r\nBcc: x@y"),
            ("a@x.org\r\nBcc: x@y", "s"),
            ("a@x.org>\nRCPT TO:<x@y", "s"),
            ("", "s"),
            ("a b@x", "s"),
        ] {
            let e = send(&r, &[to.into()], subject, "b").await.unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{to:?} {subject:?}: {e}");
        }
        assert!(matches!(
            send(&r, &[], "s", "b").await,
            Err(Error::Invalid(_))
        ));
        let mut r = relay(1);
        r.from = "x@y\r\nBcc: z".into();
        assert!(matches!(
            send(&r, &["a@x".into()], "s", "b").await,
            Err(Error::Invalid(_))
        ));
    }
}
