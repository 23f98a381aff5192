//! The bridge's client task: one tokio task owns the lapin connection. It connects
//! (5 s timeout), declares exchanges as messages need them (once per connection),
//! publishes the outbox in order with publisher confirms and at most `in-flight`
//! unconfirmed messages, and removes an entry only when the broker acks it. A nack makes
//! it re-publish everything unconfirmed once the window drains; a lost connection ends
//! the session, and the next one starts again from the outbox's oldest entry (same
//! message ids: duplicates are possible, losses are not). With `commands = true` it
//! also consumes `<domain>.roboconf.commands` (manual ack), hands each command to the
//! agent and answers on `reply_to`.
//!
//! Reconnection is a plain loop owned by the task (backoff 100 ms doubling to 2 s),
//! not lapin's automatic recovery: after a recovery every in-flight publish fails
//! anyway and must be re-sent after `wait_for_recovery`, exchanges declared lazily
//! must be declared again, and the consumer must be re-created; a fresh session per
//! connection does all of this in one place, and the task never blocks its callers:
//! [`Handle::push`] only appends to the outbox and wakes the task.

use super::commands::{self, Answer, Command};
use super::config::{BrokerUrl, Config};
use super::messages::{now_ms, short, APP_ID};
use super::outbox::{Outbox, Pushed};
use super::topology::{commands_queue, dead_letters};
use super::{Error, Event, Status};
use futures::stream::{FuturesUnordered, StreamExt};
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer,
    ExchangeKind,
};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tracing::Instrument as _;

/// Where the bridge hands commands to the agent, each with the channel of its answer.
pub type CommandSender = mpsc::Sender<(Command, oneshot::Sender<Answer>)>;

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How long the agent may take to answer a command before it is dead-lettered.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Commands delivered to this bridge and not yet acknowledged, at most.
const PREFETCH: u16 = 32;
/// Messages read from the outbox at once.
const BATCH: usize = 256;
const BACKOFF_MIN: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Counters {
    connected: bool,
    published: u64,
    confirmed: u64,
    failed: u64,
    commands_received: u64,
    commands_answered: u64,
    commands_rejected: u64,
    last_error: Option<String>,
}

struct Shared {
    outbox: Outbox,
    domain: String,
    url: String,
    wake: Notify,
    stop: watch::Sender<bool>,
    counters: Mutex<Counters>,
}

impl Shared {
    fn count(&self, f: impl FnOnce(&mut Counters)) {
        f(&mut self.counters.lock().unwrap_or_else(|p| p.into_inner()));
    }

    fn error(&self, e: impl ToString) {
        self.count(|c| c.last_error = Some(e.to_string()));
    }
}

/// A cloneable handle on a running bridge.
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// Queues an event for publishing under its stable `message_id` (the event's
    /// `origin:sequence`), and wakes the task. Never waits for the broker.
    pub fn push(&self, message_id: &str, event: &Event) -> Result<Pushed, Error> {
        let msg = event.to_message(&self.shared.domain, message_id, now_ms())?;
        let pushed = self.shared.outbox.push(&msg)?;
        if let Pushed::Queued(_) = pushed {
            self.shared.wake.notify_one();
        }
        Ok(pushed)
    }

    /// The connection, the outbox and the counters now.
    pub fn status(&self) -> Status {
        let sh = &self.shared;
        let c = sh.counters.lock().unwrap_or_else(|p| p.into_inner());
        Status {
            connected: c.connected,
            url: sh.url.clone(),
            outbox: sh.outbox.len(),
            published: c.published,
            confirmed: c.confirmed,
            failed: c.failed,
            overflowed: sh.outbox.overflowed(),
            commands_received: c.commands_received,
            commands_answered: c.commands_answered,
            commands_rejected: c.commands_rejected,
            last_error: c.last_error.clone(),
        }
    }

    /// Asks the task to close its connection and end.
    pub fn stop(&self) {
        self.shared.stop.send_replace(true);
    }
}

/// The running bridge: its task and a handle. Dropping it stops the task.
pub struct Bridge {
    handle: Handle,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bridge {
    /// Starts the task on the current tokio runtime. Fails only on settings (it never
    /// waits for the broker). `commands` is required when `config.commands` is set and
    /// ignored otherwise.
    pub fn start(
        config: &Config,
        outbox: Outbox,
        commands: Option<CommandSender>,
    ) -> Result<Bridge, Error> {
        config.validate()?;
        let url = config.effective_url()?;
        let commands = match (config.commands, commands) {
            (true, None) => {
                return Err(Error::Config(
                    "commands = true needs a command handler".into(),
                ))
            }
            (true, some) => some,
            (false, _) => None,
        };
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("the bridge needs a tokio runtime".into()))?;
        let shared = Arc::new(Shared {
            outbox,
            domain: config.domain.clone(),
            url: url.to_string(),
            wake: Notify::new(),
            stop: watch::channel(false).0,
            counters: Mutex::new(Counters::default()),
        });
        let task = rt.spawn(run(shared.clone(), config.clone(), url, commands));
        Ok(Bridge {
            handle: Handle { shared },
            task: Some(task),
        })
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// [`Handle::push`].
    pub fn push(&self, message_id: &str, event: &Event) -> Result<Pushed, Error> {
        self.handle.push(message_id, event)
    }

    /// [`Handle::status`].
    pub fn status(&self) -> Status {
        self.handle.status()
    }

    /// Stops the task and waits for it to close its connection.
    pub async fn stop(mut self) {
        self.handle.stop();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

async fn run(sh: Arc<Shared>, cfg: Config, url: BrokerUrl, commands: Option<CommandSender>) {
    let mut stop = sh.stop.subscribe();
    let mut backoff = BACKOFF_MIN;
    // The last error printed: a broker that stays away is reported once, not every 2 s.
    let mut logged: Option<String> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let span = tracing::info_span!("amqp", url = sh.url.as_str());
        let result = session(&sh, &cfg, &url, commands.as_ref(), &mut stop, &mut backoff)
            .instrument(span)
            .await;
        let was_connected = std::mem::take(
            &mut sh
                .counters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .connected,
        );
        match result {
            Ok(()) => break,
            Err(e) => {
                let text = e.to_string();
                if was_connected || logged.as_deref() != Some(text.as_str()) {
                    tracing::warn!(
                        url = sh.url.as_str(),
                        error = text.as_str(),
                        "amqp: connection failed; retrying"
                    );
                    logged = Some(text.clone());
                }
                sh.error(text);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stopped(&mut stop) => break,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life: `Ok` when asked to stop, the error that ended it otherwise.
async fn session(
    sh: &Shared,
    cfg: &Config,
    url: &BrokerUrl,
    commands: Option<&CommandSender>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Duration,
) -> Result<(), Error> {
    let tls = if url.tls {
        cfg.tls_config()?
    } else {
        Default::default()
    };
    let props = ConnectionProperties::default()
        .with_connection_name(LongString::from(format!("{APP_ID} {}", sh.domain)));
    let connect = Connection::connect_uri_with_config(
        url.to_uri(),
        props,
        tls,
        lapin::runtime::default_runtime()?,
    );
    // Connecting, then declaring and consuming, each within the connect timeout, and
    // given up at once when the bridge is asked to stop.
    let timeout = || Error::Timeout(CONNECT_TIMEOUT.as_secs());
    let conn = tokio::select! {
        c = tokio::time::timeout(CONNECT_TIMEOUT, connect) => c.map_err(|_| timeout())??,
        _ = stopped(stop) => return Ok(()),
    };
    let mut s = tokio::select! {
        s = tokio::time::timeout(CONNECT_TIMEOUT, Session::open(sh, &conn, cfg, commands)) => {
            s.map_err(|_| timeout())??
        }
        _ = stopped(stop) => return Ok(()),
    };
    tracing::info!("amqp connected");
    *backoff = BACKOFF_MIN;
    sh.count(|c| c.connected = true);
    let result = s.serve(stop).await;
    if result.is_err() {
        let lost = s.inflight.len() as u64;
        sh.count(|c| c.failed += lost);
    }
    drop(s);
    if conn.status().connected() {
        let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, short("bye"))).await;
    }
    result
}

type Confirming = Pin<Box<dyn Future<Output = (u64, lapin::Result<Confirmation>)> + Send>>;
/// A command's delivery and the agent's answer (`Err`: no answer).
type Answering = Pin<Box<dyn Future<Output = (Delivery, Result<Answer, String>)> + Send>>;

struct Session<'a> {
    sh: &'a Shared,
    conn: &'a Connection,
    publish: Channel,
    in_flight: usize,
    declared: HashSet<String>,
    inflight: FuturesUnordered<Confirming>,
    cursor: u64,
    rewind: bool,
    commands: Option<(&'a CommandSender, Consumer)>,
    replies: Option<Channel>,
    answers: FuturesUnordered<Answering>,
}

impl<'a> Session<'a> {
    async fn open(
        sh: &'a Shared,
        conn: &'a Connection,
        cfg: &Config,
        commands: Option<&'a CommandSender>,
    ) -> Result<Session<'a>, Error> {
        let publish = conn.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let commands = match commands {
            Some(tx) => Some((tx, consume_commands(conn, &sh.domain).await?)),
            None => None,
        };
        Ok(Session {
            sh,
            conn,
            publish,
            in_flight: cfg.in_flight.max(1) as usize,
            declared: HashSet::new(),
            inflight: FuturesUnordered::new(),
            cursor: 0,
            rewind: false,
            commands,
            replies: None,
            answers: FuturesUnordered::new(),
        })
    }

    async fn serve(&mut self, stop: &mut watch::Receiver<bool>) -> Result<(), Error> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            self.fill().await?;
            tokio::select! {
                _ = stopped(stop) => return Ok(()),
                Some((seq, r)) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.confirmed(seq, r)?;
                }
                _ = self.sh.wake.notified() => {}
                d = next_delivery(&mut self.commands), if self.commands.is_some() => {
                    self.delivered(d).await?;
                }
                Some((d, answer)) = self.answers.next(), if !self.answers.is_empty() => {
                    self.answered(d, answer).await?;
                }
                _ = tick.tick() => {
                    if !self.conn.status().connected() {
                        return Err(Error::Lost("the connection was closed".into()));
                    }
                }
            }
        }
    }

    /// Publishes from the outbox until the window is full or the outbox is exhausted.
    async fn fill(&mut self) -> Result<(), Error> {
        if self.rewind && self.inflight.is_empty() {
            self.rewind = false;
            self.cursor = 0;
        }
        while !self.rewind && self.inflight.len() < self.in_flight {
            let room = (self.in_flight - self.inflight.len()).min(BATCH);
            let batch = self.sh.outbox.peek(self.cursor, room)?;
            if batch.is_empty() {
                break;
            }
            for (seq, msg) in batch {
                if !self.declared.contains(&msg.exchange) {
                    declare_exchange(&self.publish, &msg.exchange).await?;
                    self.declared.insert(msg.exchange.clone());
                }
                let confirm = self
                    .publish
                    .basic_publish(
                        short(&msg.exchange),
                        short(&msg.routing_key),
                        BasicPublishOptions::default(),
                        &msg.body,
                        msg.properties(),
                    )
                    .await?;
                self.inflight
                    .push(Box::pin(async move { (seq, confirm.await) }));
                self.cursor = seq;
                self.sh.count(|c| c.published += 1);
            }
        }
        Ok(())
    }

    fn confirmed(&mut self, seq: u64, r: lapin::Result<Confirmation>) -> Result<(), Error> {
        // A publish lost with the connection counts as failed, as the rest of the window.
        let r = r.inspect_err(|_| self.sh.count(|c| c.failed += 1))?;
        match r {
            Confirmation::Nack(_) => {
                self.rewind = true;
                self.sh.count(|c| {
                    c.failed += 1;
                    c.last_error = Some(format!("the broker refused message {seq}; re-publishing"));
                });
            }
            Confirmation::Ack(_) | Confirmation::NotRequested => {
                self.sh.outbox.remove(seq)?;
                self.sh.count(|c| c.confirmed += 1);
            }
        }
        Ok(())
    }

    async fn delivered(&mut self, d: Option<lapin::Result<Delivery>>) -> Result<(), Error> {
        let d = match d {
            Some(d) => d?,
            None => {
                return Err(Error::Lost(
                    "the broker cancelled the commands consumer".into(),
                ))
            }
        };
        self.sh.count(|c| c.commands_received += 1);
        let kind = d.properties.kind().as_ref().map(|k| k.as_str().to_string());
        match commands::parse(&d.data, kind.as_deref()) {
            Ok(cmd) => {
                let Some((tx, _)) = &self.commands else {
                    return Ok(());
                };
                let tx = (*tx).clone();
                self.answers.push(Box::pin(async move {
                    let (atx, arx) = oneshot::channel();
                    let ask = async {
                        tx.send((cmd, atx))
                            .await
                            .map_err(|_| "the agent takes no commands".to_string())?;
                        arx.await
                            .map_err(|_| "the agent dropped the command".to_string())
                    };
                    let answer = tokio::time::timeout(ANSWER_TIMEOUT, ask)
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()))
                        });
                    (d, answer)
                }));
                Ok(())
            }
            Err(why) => self.answered(d, Err(why)).await,
        }
    }

    /// Replies (when asked to), then acks an answered command or dead-letters one that
    /// was refused or unanswered.
    async fn answered(&mut self, d: Delivery, answer: Result<Answer, String>) -> Result<(), Error> {
        let reply = match &answer {
            Ok(a) => a.clone(),
            Err(why) => Err(why.clone()),
        };
        self.reply(&d, &reply).await;
        match answer {
            Ok(_) => {
                d.acker.ack(BasicAckOptions::default()).await?;
                self.sh.count(|c| c.commands_answered += 1);
            }
            Err(why) => {
                d.acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
                self.sh.count(|c| {
                    c.commands_rejected += 1;
                    c.last_error = Some(format!("command refused: {why}"));
                });
            }
        }
        Ok(())
    }

    /// Publishes the reply to `reply_to` through the default exchange, not mandatory (a
    /// missing reply queue drops it), on a channel of its own, reopened if the broker
    /// closed it. A failed reply is recorded, not fatal.
    async fn reply(&mut self, d: &Delivery, answer: &Answer) {
        let Some(reply_to) = d.properties.reply_to().clone() else {
            return;
        };
        let mut props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_type(short("MeshCommandReply"))
            .with_app_id(short(APP_ID))
            .with_timestamp(now_ms() / 1000);
        if let Some(c) = d.properties.correlation_id().clone() {
            props = props.with_correlation_id(c);
        }
        let body = commands::reply_body(answer);
        let r = async {
            let ch = match self.replies.take() {
                Some(ch) if ch.status().connected() => ch,
                _ => self.conn.create_channel().await?,
            };
            let sent = ch
                .basic_publish(
                    short(""),
                    reply_to,
                    BasicPublishOptions::default(),
                    &body,
                    props,
                )
                .await;
            self.replies = Some(ch);
            sent.map(|_| ())
        }
        .await;
        if let Err(e) = r {
            self.sh.error(format!("command reply: {e}"));
        }
    }
}

/// Resolves once the bridge is asked to stop.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn next_delivery(
    commands: &mut Option<(&CommandSender, Consumer)>,
) -> Option<lapin::Result<Delivery>> {
    match commands {
        Some((_, consumer)) => consumer.next().await,
        None => std::future::pending().await,
    }
}

/// Declares a Roboconf exchange as Roboconf does: topic, not durable, not auto-deleted.
async fn declare_exchange(ch: &Channel, name: &str) -> Result<(), Error> {
    ch.exchange_declare(
        short(name),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    Ok(())
}

/// Declares the durable commands queue, dead-lettering to a durable fanout exchange
/// and queue, and consumes it with manual acks.
async fn consume_commands(conn: &Connection, domain: &str) -> Result<Consumer, Error> {
    let ch = conn.create_channel().await?;
    let dead = dead_letters(domain);
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    ch.exchange_declare(
        short(&dead),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await?;
    ch.queue_declare(short(&dead), durable, FieldTable::default())
        .await?;
    ch.queue_bind(
        short(&dead),
        short(&dead),
        short(""),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut args = FieldTable::default();
    args.insert(
        short("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(dead.as_str())),
    );
    let queue = commands_queue(domain);
    ch.queue_declare(short(&queue), durable, args).await?;
    ch.basic_qos(PREFETCH, BasicQosOptions::default()).await?;
    let consumer = ch
        .basic_consume(
            short(&queue),
            short(&format!("{APP_ID}-bridge")),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(consumer)
}
