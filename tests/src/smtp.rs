//! An SMTP sink for tests: a server on 127.0.0.1:0, on its own thread, that speaks
//! enough SMTP (EHLO, HELO, AUTH PLAIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) to take
//! mails and keep them; `refusing` answers 554 to every recipient. Stopped on drop.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A mail the sink took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, CRLF, dot-stuffing undone.
    pub data: String,
}

type Shared = Arc<(Mutex<Vec<Mail>>, Condvar)>;

pub struct Sink {
    port: u16,
    mails: Shared,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    pub fn start() -> Sink {
        Sink::with(false)
    }

    pub fn refusing() -> Sink {
        Sink::with(true)
    }

    fn with(refuse: bool) -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
        let port = l.local_addr().expect("addr").port();
        let mails: Shared = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s) = (mails.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::Acquire) {
                    return;
                }
                if let Ok(c) = conn {
                    let _ = session(c, &m, refuse);
                }
            }
        });
        Sink {
            port,
            mails,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// At least `n` mails, waiting for them until `within` passed (then what came).
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Mail> {
        let deadline = Instant::now() + within;
        let (lock, cv) = &*self.mails;
        let mut m = lock.lock().expect("mails");
        while m.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            m = cv.wait_timeout(m, left).expect("mails").0;
        }
        m.clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn session(c: TcpStream, mails: &Shared, refuse: bool) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut w = c.try_clone()?;
    let mut r = BufReader::new(c);
    w.write_all(b"220 sink ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("AUTH") {
            b"235 ok\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = cmd[10..].trim().trim_matches(['<', '>']).to_string();
            b"250 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            if refuse {
                b"554 no such user\r\n"
            } else {
                to.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
                b"250 ok\r\n"
            }
        } else if upper == "DATA" {
            w.write_all(b"354 go on\r\n")?;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l)? == 0 {
                    return Ok(());
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            let (lock, cv) = &**mails;
            if let Ok(mut m) = lock.lock() {
                m.push(Mail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
            }
            cv.notify_all();
            b"250 queued\r\n"
        } else if upper == "RSET" {
            from.clear();
            to.clear();
            b"250 ok\r\n"
        } else if upper == "QUIT" {
            w.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"500 unknown\r\n"
        };
        w.write_all(answer)?;
    }
}
