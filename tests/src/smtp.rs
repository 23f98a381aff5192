//! An SMTP sink for tests: a server on 127.0.0.1 at a port the OS gives, on its own
//! threads (std::net), that speaks enough SMTP (EHLO, HELO, AUTH PLAIN, MAIL, RCPT, DATA,
//! RSET, NOOP, QUIT) to take mails and keep them, with dot-stuffing undone. `refusing`
//! answers 554 to every recipient, `helo_only` 502 to `EHLO`. Dropping it stops its
//! threads and closes the sessions still open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The most bytes of a command line, and of a mail.
const MAX_LINE: u64 = 64 * 1024;
const MAX_MAIL: usize = 10 * 1024 * 1024;
/// A session silent this long is closed.
const IDLE: Duration = Duration::from_secs(30);

/// A mail the sink took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The envelope's sender and recipients (`MAIL FROM`, `RCPT TO`), without `<>`.
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, CRLF, dot-stuffing undone, without the final `.` line.
    pub data: String,
}

/// How the sink answers.
#[derive(Debug, Clone, Copy, Default)]
struct Mode {
    refuse_rcpt: bool,
    refuse_ehlo: bool,
}

type Mails = Arc<(Mutex<Vec<Mail>>, Condvar)>;
type Sessions = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

pub struct Sink {
    port: u16,
    mails: Mails,
    sessions: Sessions,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Sink {
    /// A sink that takes every mail.
    pub fn start() -> Sink {
        Sink::with(Mode::default())
    }

    /// A sink that refuses every recipient (`554`).
    pub fn refusing() -> Sink {
        Sink::with(Mode {
            refuse_rcpt: true,
            ..Mode::default()
        })
    }

    /// A sink that refuses `EHLO` (`502`), as an old server: clients fall back to `HELO`.
    pub fn helo_only() -> Sink {
        Sink::with(Mode {
            refuse_ehlo: true,
            ..Mode::default()
        })
    }

    fn with(mode: Mode) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
        let port = l.local_addr().expect("the SMTP sink's address").port();
        let mails: Mails = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sessions: Sessions = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, ss, s) = (mails.clone(), sessions.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                let Ok(c) = conn else { continue };
                let Ok(handle) = c.try_clone() else { continue };
                let m = m.clone();
                let t = std::thread::spawn(move || {
                    let _ = session(c, &m, mode);
                });
                if let Ok(mut ss) = ss.lock() {
                    ss.push((handle, t));
                }
            }
        });
        Sink {
            port,
            mails,
            sessions,
            stop,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The mails taken so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The mails once there are at least `n`, or what came when `within` has passed.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.mails;
        let Ok(mut m) = lock.lock() else {
            return Vec::new();
        };
        while m.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            m = match cv.wait_timeout(m, left) {
                Ok((m, _)) => m,
                Err(_) => return Vec::new(),
            };
        }
        m.clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept: it sees `stop` and ends. Without that connection it could not
        // be woken: then it is left (it holds nothing but the listener).
        if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            if let Some(t) = self.accept.take() {
                let _ = t.join();
            }
        }
        let sessions = self
            .sessions
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        for (conn, thread) in sessions {
            let _ = conn.shutdown(Shutdown::Both);
            let _ = thread.join();
        }
    }
}

/// One line (at most `MAX_LINE` bytes), `None` at the end of the stream.
fn line(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<String>> {
    let mut raw = Vec::new();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut raw)?;
    Ok((n > 0).then(|| String::from_utf8_lossy(&raw).into_owned()))
}

/// The address in `<...>` after a `MAIL FROM:` or `RCPT TO:`.
fn address(arg: &str) -> String {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('<')
        .and_then(|a| a.split_once('>'))
        .map_or(arg, |(a, _)| a);
    inner.to_string()
}

fn session(c: TcpStream, mails: &Mails, mode: Mode) -> std::io::Result<()> {
    c.set_read_timeout(Some(IDLE))?;
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    w.write_all(b"220 sink ESMTP\r\n")?;
    let (mut from, mut to) = (None::<String>, Vec::new());
    while let Some(l) = line(&mut r)? {
        let cmd = l.trim_end();
        let upper = cmd.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or_default();
        let answer: &[u8] = match verb {
            "EHLO" if mode.refuse_ehlo => b"502 command not implemented\r\n",
            "EHLO" => b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n",
            "HELO" | "NOOP" => b"250 ok\r\n",
            "AUTH" => b"235 authenticated\r\n",
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                from = Some(address(cmd.get(10..).unwrap_or_default()));
                to.clear();
                b"250 ok\r\n"
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                if from.is_none() {
                    b"503 MAIL first\r\n"
                } else if mode.refuse_rcpt {
                    b"554 no such user here\r\n"
                } else {
                    to.push(address(cmd.get(8..).unwrap_or_default()));
                    b"250 ok\r\n"
                }
            }
            "DATA" if from.is_none() || to.is_empty() => b"503 RCPT first\r\n",
            "DATA" => {
                w.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    let Some(l) = line(&mut r)? else {
                        return Ok(());
                    };
                    if l == ".\r\n" || l == ".\n" {
                        break;
                    }
                    if data.len() + l.len() > MAX_MAIL {
                        return w.write_all(b"552 too large\r\n");
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                }
                let (lock, cv) = &**mails;
                if let Ok(mut m) = lock.lock() {
                    m.push(Mail {
                        from: from.take().unwrap_or_default(),
                        to: std::mem::take(&mut to),
                        data,
                    });
                }
                cv.notify_all();
                b"250 queued\r\n"
            }
            "RSET" => {
                from = None;
                to.clear();
                b"250 ok\r\n"
            }
            "QUIT" => return w.write_all(b"221 bye\r\n"),
            _ => b"500 unknown command\r\n",
        };
        w.write_all(answer)?;
    }
    Ok(())
}
