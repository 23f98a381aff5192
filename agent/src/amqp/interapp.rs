//! The inter-application side of the bridge: what links applications of different
//! meshes through `<domain>.roboconf.inter-app`, as Roboconf's agents do. One task with a
//! connection of its own (so that a slow importer never holds the publisher) binds a
//! private queue with `those.that.import.<P>` for each prefix this node's applications
//! import as `external`, and `those.that.export.<Q>` for each prefix they export; it asks
//! the exporters of each imported prefix to announce themselves again when it connects
//! (Roboconf's `MsgCmdRequestImport`), and hands what arrives to the agent: exports added
//! or removed, and requests for this node's own external exports. Bad messages (no or an
//! unknown `type`, invalid JSON, over 64 KiB) are dropped and counted.

use super::config::{BrokerUrl, Config};
use super::messages::{short, APP_ID};
use super::{topology, Error};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::Instrument as _;

/// The largest inter-application message taken.
const BODY_MAX: usize = 64 * 1024;
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the inter-application exchange brings the agent.
#[derive(Debug, Clone, PartialEq)]
pub enum InterApp {
    /// An exporter elsewhere: `source` is `<application>:<path>`; `vars` are
    /// `<prefix>.<alias>` → value, `None` when it withdrew them.
    Exports {
        source: String,
        prefix: String,
        vars: Option<BTreeMap<String, String>>,
    },
    /// An importer elsewhere asks the exporters of `prefix` to announce themselves.
    Requested { prefix: String },
}

/// The prefixes to bind: (imported as `external`, exported with `exports-prefix`).
pub type Prefixes = (BTreeSet<String>, BTreeSet<String>);

/// The counters of the inter-application link.
#[derive(Debug, Default)]
pub struct Counters {
    pub connected: AtomicBool,
    pub received: AtomicU64,
    pub dropped: AtomicU64,
}

/// The running link; dropping it stops the task.
pub struct Link {
    prefixes_tx: watch::Sender<Prefixes>,
    pub counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl Link {
    /// Starts the task (on the current tokio runtime); what arrives goes to `to_agent`.
    pub fn start(cfg: &Config, to_agent: mpsc::Sender<InterApp>) -> Result<Link, Error> {
        let url = cfg.effective_url()?;
        let (prefixes_tx, prefixes_rx) = watch::channel(Prefixes::default());
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            cfg.clone(),
            url,
            prefixes_rx,
            to_agent,
            counters.clone(),
        ));
        Ok(Link {
            prefixes_tx,
            counters,
            task,
        })
    }

    /// The prefixes to bind now (bound at once when they changed).
    pub fn set_prefixes(&self, p: Prefixes) {
        self.prefixes_tx.send_if_modified(|cur| {
            let changed = *cur != p;
            *cur = p;
            changed
        });
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    cfg: Config,
    url: BrokerUrl,
    mut prefixes_rx: watch::Receiver<Prefixes>,
    to_agent: mpsc::Sender<InterApp>,
    counters: Arc<Counters>,
) {
    let mut backoff = Duration::from_millis(100);
    // The same failure again is not logged again (the bridge's status has it).
    let mut logged: Option<String> = None;
    loop {
        let span = tracing::info_span!("amqp_interapp", url = %url);
        let r = session(
            &cfg,
            &url,
            &mut prefixes_rx,
            &to_agent,
            &counters,
            &mut backoff,
        )
        .instrument(span)
        .await;
        counters.connected.store(false, Ordering::Relaxed);
        if to_agent.is_closed() {
            return;
        }
        if let Err(e) = r {
            let text = e.to_string();
            if logged.as_deref() != Some(text.as_str()) {
                tracing::warn!(
                    error = text.as_str(),
                    "amqp inter-app link failed; retrying"
                );
                logged = Some(text);
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn session(
    cfg: &Config,
    url: &BrokerUrl,
    prefixes_rx: &mut watch::Receiver<Prefixes>,
    to_agent: &mpsc::Sender<InterApp>,
    counters: &Counters,
    backoff: &mut Duration,
) -> Result<(), Error> {
    let tls = if url.tls {
        cfg.tls_config()?
    } else {
        Default::default()
    };
    let props = ConnectionProperties::default().with_connection_name(LongString::from(format!(
        "{APP_ID} {} inter-app",
        cfg.domain
    )));
    let connect = Connection::connect_uri_with_config(
        url.to_uri(),
        props,
        tls,
        lapin::runtime::default_runtime()?,
    );
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| Error::Timeout(CONNECT_TIMEOUT.as_secs()))??;
    let ch = conn.create_channel().await?;
    let exchange = topology::inter_app_exchange(&cfg.domain);
    ch.exchange_declare(
        short(&exchange),
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let q = ch
        .queue_declare(
            short(""),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let queue = q.name().to_string();
    let mut consumer = ch
        .basic_consume(
            short(&queue),
            short("inter-app"),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    counters.connected.store(true, Ordering::Relaxed);
    tracing::info!("amqp inter-app link connected");
    *backoff = Duration::from_millis(100);
    let mut bound = Prefixes::default();
    let wanted = prefixes_rx.borrow_and_update().clone();
    bind(&ch, &exchange, &queue, &mut bound, &wanted).await?;
    loop {
        tokio::select! {
            d = consumer.next() => {
                let Some(d) = d else {
                    return Err(Error::Lost("the inter-app consumer ended".into()));
                };
                let d = d?;
                counters.received.fetch_add(1, Ordering::Relaxed);
                let kind = d.properties.kind().as_ref().map(|s| s.to_string());
                match parse(kind.as_deref(), &d.data) {
                    Some(m) => {
                        if to_agent.send(m).await.is_err() {
                            return Ok(());
                        }
                    }
                    None => {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            changed = prefixes_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let wanted = prefixes_rx.borrow_and_update().clone();
                bind(&ch, &exchange, &queue, &mut bound, &wanted).await?;
            }
        }
    }
}

/// Binds the prefixes not bound yet; for each newly imported one, asks its exporters.
async fn bind(
    ch: &Channel,
    exchange: &str,
    queue: &str,
    bound: &mut Prefixes,
    wanted: &Prefixes,
) -> Result<(), Error> {
    for p in wanted.0.difference(&bound.0.clone()) {
        ch.queue_bind(
            short(queue),
            short(exchange),
            short(&topology::import_key(p)),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        bound.0.insert(p.clone());
        let body = serde_json::json!({
            "applicationOrContextName": "", "componentOrFacetName": p,
        });
        let props = BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_type(short("MsgCmdRequestImport"))
            .with_app_id(short(APP_ID));
        ch.basic_publish(
            short(exchange),
            short(&topology::export_key(p)),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            props,
        )
        .await?;
    }
    for p in wanted.1.difference(&bound.1.clone()) {
        ch.queue_bind(
            short(queue),
            short(exchange),
            short(&topology::export_key(p)),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        bound.1.insert(p.clone());
    }
    Ok(())
}

/// An inter-application message, when it is one this link takes.
pub fn parse(kind: Option<&str>, body: &[u8]) -> Option<InterApp> {
    if body.len() > BODY_MAX {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let prefix = s("componentOrFacetName").filter(|p| !p.is_empty())?;
    match kind? {
        "MsgCmdAddImport" => {
            let app = s("applicationOrContextName")?;
            let path = s("addedInstancePath")?;
            let vars: BTreeMap<String, String> = v
                .get("exportedVariables")?
                .as_object()?
                .iter()
                .filter_map(|(k, x)| Some((k.clone(), x.as_str()?.to_string())))
                .collect();
            Some(InterApp::Exports {
                source: format!("{app}:{path}"),
                prefix,
                vars: Some(vars),
            })
        }
        "MsgCmdRemoveImport" => {
            let app = s("applicationOrContextName")?;
            let path = s("removedInstancePath")?;
            Some(InterApp::Exports {
                source: format!("{app}:{path}"),
                prefix,
                vars: None,
            })
        }
        "MsgCmdRequestImport" => Some(InterApp::Requested { prefix }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inter_app_messages_are_read_or_dropped() {
        let add = br#"{"applicationOrContextName":"lamp","componentOrFacetName":"Lamp","addedInstancePath":"/vm/apache","exportedVariables":{"Lamp.lb_ip":"10.0.0.1"}}"#;
        assert_eq!(
            parse(Some("MsgCmdAddImport"), add),
            Some(InterApp::Exports {
                source: "lamp:/vm/apache".into(),
                prefix: "Lamp".into(),
                vars: Some([("Lamp.lb_ip".to_string(), "10.0.0.1".to_string())].into()),
            })
        );
        let rm = br#"{"applicationOrContextName":"lamp","componentOrFacetName":"Lamp","removedInstancePath":"/vm/apache"}"#;
        assert!(matches!(
            parse(Some("MsgCmdRemoveImport"), rm),
            Some(InterApp::Exports { vars: None, .. })
        ));
        let req = br#"{"applicationOrContextName":"","componentOrFacetName":"Lamp"}"#;
        assert_eq!(
            parse(Some("MsgCmdRequestImport"), req),
            Some(InterApp::Requested {
                prefix: "Lamp".into()
            })
        );
        assert_eq!(parse(None, add), None, "no type");
        assert_eq!(parse(Some("MsgEcho"), add), None, "another type");
        assert_eq!(parse(Some("MsgCmdAddImport"), b"{nope"), None);
        let huge = vec![b' '; BODY_MAX + 1];
        assert_eq!(parse(Some("MsgCmdAddImport"), &huge), None);
    }
}
