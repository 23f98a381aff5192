//! The bridge's settings (the agent configuration's `[amqp]` table) and the broker URL.
//! It owns the parsing of `amqp://user:pass@host:port/vhost`, Roboconf's own keys
//! accepted as aliases (`net.roboconf.messaging.rabbitmq.*`), validation, the TLS files
//! and the masking of the password in everything printed.
//!
//! Roboconf keys used: `…server.ip` (`host` or `host:port`), `…server.username`,
//! `…server.password`, `…ssl.use` (amqps, port 5671 by default), `…ssl.key.store.path`
//! with `…ssl.key.store.passphrase` (a PKCS#12 client identity, Roboconf's default type),
//! `…ssl.trust.store.path` (CA certificates, which must be PEM here: convert a JKS trust
//! store with `keytool -exportcert -rfc`). Accepted and ignored: `…ssl.protocol` (rustls
//! speaks TLS 1.2 and 1.3 only), `…ssl.pass.as.user.data`, `…ssl.trust.store.passphrase`,
//! `…ssl.key.manager.factory`, `…ssl.trust.manager.factory`. Without a trust store the
//! system's root certificates are used.

use super::Error;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

const RMQ: &str = "net.roboconf.messaging.rabbitmq.";

/// The `[amqp]` settings.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// `amqp[s]://user:pass@host:port/vhost`; when absent, built from Roboconf's keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Roboconf's messaging domain: the prefix of every exchange and queue name.
    pub domain: String,
    /// Accept commands on the queue `<domain>.roboconf.commands`.
    pub commands: bool,
    /// Events kept while the broker is away; newer ones are dropped and counted.
    pub outbox_max: u64,
    /// Publishes awaiting the broker's confirmation at once.
    pub in_flight: u32,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.server.ip")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ip: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.server.username")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_username: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.server.password")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_password: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.use")]
    #[serde(deserialize_with = "flag", skip_serializing_if = "Option::is_none")]
    pub ssl_use: Option<bool>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.protocol")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_protocol: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.pass.as.user.data")]
    #[serde(deserialize_with = "flag", skip_serializing_if = "Option::is_none")]
    pub ssl_pass_as_user_data: Option<bool>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.key.store.path")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_store_path: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.key.store.passphrase")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_store_passphrase: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.key.store.type")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_store_type: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.trust.store.path")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_trust_store_path: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.trust.store.passphrase")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_trust_store_passphrase: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.trust.store.type")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_trust_store_type: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.key.manager.factory")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_key_manager_factory: Option<String>,
    #[serde(rename = "net.roboconf.messaging.rabbitmq.ssl.trust.manager.factory")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_trust_manager_factory: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: None,
            domain: "default".into(),
            commands: false,
            outbox_max: 100_000,
            in_flight: 1_000,
            server_ip: None,
            server_username: None,
            server_password: None,
            ssl_use: None,
            ssl_protocol: None,
            ssl_pass_as_user_data: None,
            ssl_key_store_path: None,
            ssl_key_store_passphrase: None,
            ssl_key_store_type: None,
            ssl_trust_store_path: None,
            ssl_trust_store_passphrase: None,
            ssl_trust_store_type: None,
            ssl_key_manager_factory: None,
            ssl_trust_manager_factory: None,
        }
    }
}

/// A boolean written as TOML's `true` or as Roboconf's string `"true"`.
fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Flag::deserialize(d)? {
        Flag::Bool(b) => Ok(Some(b)),
        Flag::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            _ => Err(serde::de::Error::custom(format!(
                "`{t}` is not a boolean (true or false)"
            ))),
        },
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

impl Config {
    /// Checks everything that can be checked without the broker.
    pub fn validate(&self) -> Result<(), Error> {
        let d = &self.domain;
        if d.is_empty()
            || d.len() > 64
            || !d
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(invalid(format!(
                "domain `{d}`: 1 to 64 characters among letters, digits, `.`, `_` and `-`"
            )));
        }
        if self.outbox_max == 0 {
            return Err(invalid("outbox-max must be at least 1"));
        }
        if !(1..=65_535).contains(&self.in_flight) {
            return Err(invalid("in-flight must be between 1 and 65535"));
        }
        let roboconf_keys = self.server_ip.is_some()
            || self.server_username.is_some()
            || self.server_password.is_some()
            || self.ssl_use.is_some();
        if self.url.is_some() && roboconf_keys {
            return Err(invalid(format!(
                "give either `url` or Roboconf's `{RMQ}server.*`/`ssl.use` keys, not both"
            )));
        }
        let url = self.effective_url()?;
        if let Some(t) = &self.ssl_key_store_type {
            if !t.eq_ignore_ascii_case("PKCS12") {
                return Err(invalid(format!(
                    "{RMQ}ssl.key.store.type `{t}`: only PKCS12 key stores are read"
                )));
            }
        }
        if let Some(t) = &self.ssl_trust_store_type {
            if !t.eq_ignore_ascii_case("PEM") {
                return Err(invalid(format!(
                    "{RMQ}ssl.trust.store.type `{t}`: the trust store must be PEM certificates \
                     (export a JKS one with `keytool -exportcert -rfc`)"
                )));
            }
        }
        let tls_files = self.ssl_key_store_path.is_some() || self.ssl_trust_store_path.is_some();
        if tls_files && !url.tls {
            return Err(invalid(format!(
                "TLS key or trust stores are set but the connection is not TLS \
                 (set {RMQ}ssl.use, or an amqps:// url)"
            )));
        }
        Ok(())
    }

    /// The broker to connect to: `url`, else Roboconf's keys (defaults `localhost`,
    /// `guest`/`guest`, vhost `/`, port 5672 or 5671 with TLS).
    pub fn effective_url(&self) -> Result<BrokerUrl, Error> {
        if let Some(u) = &self.url {
            return BrokerUrl::parse(u);
        }
        let tls = self.ssl_use.unwrap_or(false);
        let ip = self.server_ip.as_deref().unwrap_or("localhost").trim();
        let (host, port) = split_host_port(ip)?;
        Ok(BrokerUrl {
            tls,
            username: self
                .server_username
                .clone()
                .unwrap_or_else(|| "guest".into()),
            password: self
                .server_password
                .clone()
                .unwrap_or_else(|| "guest".into()),
            host,
            port: port.unwrap_or(if tls { 5671 } else { 5672 }),
            vhost: "/".into(),
            heartbeat: None,
        })
    }

    /// The TLS client settings (read from the files now): the trust store's PEM
    /// certificates and the PKCS#12 client identity, when given.
    pub fn tls_config(&self) -> Result<lapin::tcp::OwnedTLSConfig, Error> {
        let read = |path: &str| {
            std::fs::read(path).map_err(|source| Error::Tls {
                path: path.to_string(),
                source,
            })
        };
        let mut tls = lapin::tcp::OwnedTLSConfig::default();
        if let Some(p) = &self.ssl_trust_store_path {
            let pem = read(p)?;
            tls.cert_chain = Some(String::from_utf8_lossy(&pem).into_owned());
        }
        if let Some(p) = &self.ssl_key_store_path {
            tls.identity = Some(lapin::tcp::OwnedIdentity::PKCS12 {
                der: read(p)?,
                password: self.ssl_key_store_passphrase.clone().unwrap_or_default(),
            });
        }
        Ok(tls)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mask = |o: &Option<String>| o.as_ref().map(|_| "***");
        f.debug_struct("Config")
            .field("url", &self.url.as_deref().map(mask_url))
            .field("domain", &self.domain)
            .field("commands", &self.commands)
            .field("outbox_max", &self.outbox_max)
            .field("in_flight", &self.in_flight)
            .field("server_ip", &self.server_ip)
            .field("server_username", &self.server_username)
            .field("server_password", &mask(&self.server_password))
            .field("ssl_use", &self.ssl_use)
            .field("ssl_key_store_path", &self.ssl_key_store_path)
            .field(
                "ssl_key_store_passphrase",
                &mask(&self.ssl_key_store_passphrase),
            )
            .field("ssl_trust_store_path", &self.ssl_trust_store_path)
            .finish_non_exhaustive()
    }
}

/// A URL as text with its password masked (unparsable text is masked whole).
fn mask_url(u: &str) -> String {
    BrokerUrl::parse(u)
        .map(|b| b.to_string())
        .unwrap_or_else(|_| "<invalid url>".into())
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Result<(String, Option<u16>), Error> {
    let bad = || invalid(format!("`{s}` is not `host` or `host:port`"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) if !p.contains(':') => (h, Some(p)),
            Some(_) => return Err(bad()),
            None => (s, None),
        }
    };
    if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
        return Err(bad());
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?),
        None => None,
    };
    Ok((host.to_string(), port))
}

fn percent_decode(s: &str) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| invalid(format!("bad percent-escape in `{}`", mask_url(s))))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("a URL part is not UTF-8 once decoded"))
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// A parsed broker URL. `Display` and `Debug` mask the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub username: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    /// `/` when the URL has no path (and for a bare `/`: RabbitMQ has no empty vhost).
    pub vhost: String,
    /// `?heartbeat=N` (seconds), else the broker's proposal.
    pub heartbeat: Option<u16>,
}

impl BrokerUrl {
    /// Parses `amqp[s]://[user[:pass]@]host[:port][/vhost][?heartbeat=N]`; user and
    /// password default to `guest`, user, password and vhost are percent-decoded.
    pub fn parse(s: &str) -> Result<BrokerUrl, Error> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| invalid("url must start with amqp:// or amqps://"))?;
        let tls = match scheme {
            "amqp" => false,
            "amqps" => true,
            _ => return Err(invalid("url must start with amqp:// or amqps://")),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((n, p)) => (percent_decode(n)?, percent_decode(p)?),
                None => (percent_decode(u)?, "guest".into()),
            },
            None => ("guest".into(), "guest".into()),
        };
        let (host, port) = split_host_port(hostport)?;
        let vhost = match percent_decode(path)? {
            v if v.is_empty() => "/".to_string(),
            v => v,
        };
        let mut heartbeat = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("heartbeat", v)) => {
                    heartbeat = Some(v.parse().map_err(|_| {
                        invalid(format!("heartbeat `{v}` is not a number of seconds"))
                    })?)
                }
                _ => {
                    return Err(invalid(format!(
                        "url parameter `{pair}`: only `heartbeat=SECONDS` is understood"
                    )))
                }
            }
        }
        Ok(BrokerUrl {
            tls,
            username,
            password,
            host,
            port: port.unwrap_or(if tls { 5671 } else { 5672 }),
            vhost,
            heartbeat,
        })
    }

    /// The URI lapin connects to (built field by field: lapin's own parser turns an IP
    /// address host into `localhost`).
    pub fn to_uri(&self) -> lapin::uri::AMQPUri {
        use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.username.clone(),
                    password: self.password.clone(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString {
                heartbeat: self.heartbeat,
                ..AMQPQueryString::default()
            },
        }
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(
            f,
            "{}://{}:***@{host}:{}/{}",
            if self.tls { "amqps" } else { "amqp" },
            percent_encode(&self.username),
            self.port,
            percent_encode(&self.vhost)
        )?;
        if let Some(h) = self.heartbeat {
            write!(f, "?heartbeat={h}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
