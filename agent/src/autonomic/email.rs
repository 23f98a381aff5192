//! A minimal SMTP client for the commands' `email` instruction: greeting, `EHLO` (or
//! `HELO`), `AUTH PLAIN` when a user is configured, `MAIL FROM`, `RCPT TO` for each
//! recipient, `DATA` (dot-stuffed, CRLF), `QUIT`; every step under the relay's timeout,
//! and an error names the step and the server's answer. It speaks no TLS: use a relay on
//! the agent's host or network (postfix, exim), which forwards as it is configured to.

use super::Error;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// An SMTP relay.
#[derive(Debug, Clone)]
pub struct Relay {
    pub host: String,
    pub port: u16,
    pub from: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
}

type Conn = BufReader<TcpStream>;

/// Reads a (multi-line) reply: its code and text.
async fn reply(c: &mut Conn) -> Result<(u16, String), Error> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = c
            .read_line(&mut line)
            .await
            .map_err(|e| Error::Io("SMTP".into(), e))?;
        if n == 0 {
            return Err(Error::Protocol(
                "the SMTP server closed the connection".into(),
            ));
        }
        if text.len() > 64 * 1024 {
            return Err(Error::Protocol("SMTP reply too long".into()));
        }
        text.push_str(line.trim_end());
        text.push(' ');
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| Error::Protocol(format!("not an SMTP reply: `{}`", line.trim_end())))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text.trim_end().to_string()));
        }
    }
}

async fn step(c: &mut Conn, what: &str, line: Option<&str>, ok: &[u16]) -> Result<(), Error> {
    if let Some(l) = line {
        c.get_mut()
            .write_all(format!("{l}\r\n").as_bytes())
            .await
            .map_err(|e| Error::Io(format!("SMTP {what}"), e))?;
    }
    let (code, text) = reply(c).await?;
    if ok.contains(&code) {
        Ok(())
    } else {
        Err(Error::Protocol(format!("SMTP {what} refused: {text}")))
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn clean(what: &str, s: &str) -> Result<(), Error> {
    if s.contains(['\r', '\n']) {
        return Err(Error::Protocol(format!(
            "a line break in the {what} `{}`",
            s.escape_debug()
        )));
    }
    Ok(())
}

/// Sends one e-mail.
pub async fn send(relay: &Relay, to: &[String], subject: &str, body: &str) -> Result<(), Error> {
    clean("subject", subject)?;
    clean("sender", &relay.from)?;
    for t in to {
        clean("recipient", t)?;
    }
    if to.is_empty() {
        return Err(Error::Protocol("no recipient".into()));
    }
    let secs = relay.timeout.as_secs().max(1);
    tokio::time::timeout(relay.timeout, converse(relay, to, subject, body))
        .await
        .unwrap_or(Err(Error::Timeout(secs)))
}

async fn converse(relay: &Relay, to: &[String], subject: &str, body: &str) -> Result<(), Error> {
    let what = format!("SMTP relay {}:{}", relay.host, relay.port);
    let s = TcpStream::connect((relay.host.as_str(), relay.port))
        .await
        .map_err(|e| Error::Io(what, e))?;
    let mut c = BufReader::new(s);
    step(&mut c, "greeting", None, &[220]).await?;
    let me = crate::config::hostname();
    if step(&mut c, "EHLO", Some(&format!("EHLO {me}")), &[250])
        .await
        .is_err()
    {
        step(&mut c, "HELO", Some(&format!("HELO {me}")), &[250]).await?;
    }
    if let Some(user) = &relay.username {
        let pass = relay.password.clone().unwrap_or_default();
        let token = base64(format!("\0{user}\0{pass}").as_bytes());
        step(&mut c, "AUTH", Some(&format!("AUTH PLAIN {token}")), &[235]).await?;
    }
    step(
        &mut c,
        "MAIL FROM",
        Some(&format!("MAIL FROM:<{}>", relay.from)),
        &[250],
    )
    .await?;
    for t in to {
        step(
            &mut c,
            &format!("RCPT TO {t}"),
            Some(&format!("RCPT TO:<{t}>")),
            &[250, 251],
        )
        .await?;
    }
    step(&mut c, "DATA", Some("DATA"), &[354]).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let date = roboconf_model::timefmt::format("EEE, d MMM yyyy HH:mm:ss Z", now);
    let mut msg = format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{now}.{}@{me}>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        relay.from,
        to.join(", "),
        std::process::id()
    );
    for line in body.lines() {
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    msg.push('.');
    step(&mut c, "message", Some(&msg), &[250]).await?;
    let _ = step(&mut c, "QUIT", Some("QUIT"), &[221]).await;
    Ok(())
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

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"\0u\0p"), "AHUAcA==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }

    #[tokio::test]
    async fn a_mail_reaches_the_sink_dot_stuffed() {
        let sink = Sink::start();
        let to = vec!["a@x.org".to_string(), "b@x.org".to_string()];
        send(
            &relay(sink.port()),
            &to,
            "Alert!",
            "Scaled up.\n.hidden line\nend",
        )
        .await
        .unwrap();
        let mails = sink.wait_for(1, Duration::from_secs(10));
        assert_eq!(mails[0].to, to);
        assert_eq!(mails[0].from, "roboconf@test");
        assert!(
            mails[0].data.contains("Subject: Alert!\r\n"),
            "{}",
            mails[0].data
        );
        assert!(
            mails[0].data.contains("\r\n.hidden line\r\n"),
            "{}",
            mails[0].data
        );
        assert!(mails[0].data.contains("Scaled up."));
    }

    #[tokio::test]
    async fn a_refused_recipient_and_a_relay_down_fail_clearly() {
        let sink = Sink::refusing();
        let e = send(&relay(sink.port()), &["a@x.org".into()], "s", "b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("RCPT TO a@x.org"), "{e}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let e = send(&relay(port), &["a@x.org".into()], "s", "b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("SMTP relay 127.0.0.1"), "{e}");
        let e = send(&relay(port), &["a@x.org".into()], "s\r\nBcc: x", "b")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("line break"), "{e}");
    }
}
