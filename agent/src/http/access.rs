//! Who may use the HTTP API. On loopback, anyone local (as the control socket trusts
//! the host's users); anywhere else, over TLS and with a bearer token. Tokens are
//! issued by `roboconf http token [--ttl] [--read-only]` and signed (HMAC-SHA256) with a
//! key every member of the mesh derives from the mesh's CA key, so a token works on any
//! agent of its mesh and on no other; an agent outside any mesh signs with a key of its
//! own (`<data-dir>/http/token.key`). A token carries its mesh, expiry, access and id;
//! it is never logged. TLS uses the certificate given, or one issued at start by the
//! mesh's CA for the bound address (the CA's certificate is written to
//! `<data-dir>/http/ca.pem` for clients).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The tokens' format version, their first part.
const PREFIX: &str = "rbh1";
/// Longest token lifetime: 1 year (the shortest is 1 s).
pub const MAX_TTL_MS: u64 = 366 * 24 * 3600 * 1000;
/// Longest token accepted, in bytes.
const MAX_TOKEN: usize = 1024;

/// Why the API's access cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error("tls: {0}")]
    Tls(String),
}

/// Why a token is refused (said to the client; the token itself never is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no bearer token (Authorization: Bearer <token>)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is for another mesh")]
    OtherMesh,
    #[error("the token's signature is wrong")]
    Forged,
    #[error("the token has expired")]
    Expired,
}

/// What a token carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The mesh id (`standalone` for an agent outside any mesh).
    #[serde(rename = "m")]
    pub mesh: String,
    /// Expiry, ms since the Unix epoch.
    #[serde(rename = "e")]
    pub expires_ms: u64,
    #[serde(rename = "r")]
    pub read_only: bool,
    /// A random id, to tell tokens apart in logs.
    #[serde(rename = "i")]
    pub id: String,
}

/// The signing key and the mesh it belongs to.
#[derive(Clone)]
pub struct Keys {
    pub mesh: String,
    key: hmac::Key,
}

impl Keys {
    /// The mesh's key when this agent is a member, else the agent's own (made once).
    pub fn load(data_dir: &Path) -> Result<Keys, Error> {
        let creds = crate::admission::Credentials::load(data_dir).map_err(|e| Error::File {
            path: data_dir.join("mesh").display().to_string(),
            message: e.to_string(),
        })?;
        Ok(match creds {
            Some(c) => Keys::for_mesh(&c.mesh, c.ca_key.as_bytes()),
            None => {
                let secret = own_secret(&data_dir.join("http").join("token.key"))?;
                Keys::for_mesh("standalone", &secret)
            }
        })
    }

    /// The key of mesh `mesh` whose secret is `secret` (the CA key's PEM).
    pub fn for_mesh(mesh: &str, secret: &[u8]) -> Keys {
        let digest = ring::digest::digest(
            &ring::digest::SHA256,
            &[b"roboconf http token key\0".as_slice(), secret].concat(),
        );
        Keys {
            mesh: mesh.to_string(),
            key: hmac::Key::new(hmac::HMAC_SHA256, digest.as_ref()),
        }
    }

    /// A token valid `ttl_ms` from `now_ms`.
    pub fn issue(&self, ttl_ms: u64, read_only: bool, now_ms: u64) -> Result<String, String> {
        if !(1000..=MAX_TTL_MS).contains(&ttl_ms) {
            return Err(format!(
                "a token lives from 1 s to {} days",
                MAX_TTL_MS / (24 * 3600 * 1000)
            ));
        }
        let claims = Claims {
            mesh: self.mesh.clone(),
            expires_ms: now_ms.saturating_add(ttl_ms),
            read_only,
            id: roboconf_core::admission::hex(&crate::admission::random_bytes::<8>()),
        };
        let body = B64.encode(serde_json::to_vec(&claims).map_err(|e| e.to_string())?);
        let signed = format!("{PREFIX}.{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        Ok(format!("{signed}.{}", B64.encode(tag.as_ref())))
    }

    /// The claims of a token this mesh signed and that is still valid at `now_ms`.
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Claims, Denied> {
        if token.len() > MAX_TOKEN {
            return Err(Denied::Malformed);
        }
        let mut parts = token.trim().split('.');
        let (Some(PREFIX), Some(body), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Denied::Malformed);
        };
        let claims: Claims = B64
            .decode(body)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(Denied::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| Denied::Malformed)?;
        if claims.mesh != self.mesh {
            return Err(Denied::OtherMesh);
        }
        hmac::verify(&self.key, format!("{PREFIX}.{body}").as_bytes(), &tag)
            .map_err(|_| Denied::Forged)?;
        if now_ms >= claims.expires_ms {
            return Err(Denied::Expired);
        }
        Ok(claims)
    }
}

/// Reads the agent's own secret, making it (owner-only) the first time.
fn own_secret(path: &Path) -> Result<Vec<u8>, Error> {
    let fail = |e: std::io::Error| Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    match std::fs::read(path) {
        Ok(b) if b.len() == 32 => return Ok(b),
        Ok(_) => {
            return Err(Error::File {
                path: path.display().to_string(),
                message: "not a 32-byte key (delete it to make a new one)".into(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let secret = crate::admission::random_bytes::<32>().to_vec();
    write_private(path, &secret).map_err(fail)?;
    Ok(secret)
}

/// Writes `bytes` owner-only, whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The verifier the server asks: it re-reads the keys when the mesh credentials change
/// (an agent that joins a mesh after it started accepts that mesh's tokens).
pub struct Gate {
    data_dir: PathBuf,
    cached: std::sync::Mutex<Option<(Option<std::time::SystemTime>, Keys)>>,
}

impl Gate {
    pub fn new(data_dir: &Path) -> Result<Arc<Gate>, Error> {
        let gate = Gate {
            data_dir: data_dir.to_path_buf(),
            cached: std::sync::Mutex::new(None),
        };
        gate.keys()?;
        Ok(Arc::new(gate))
    }

    fn stamp(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.data_dir.join("mesh").join("credentials.json"))
            .and_then(|m| m.modified())
            .ok()
    }

    fn keys(&self) -> Result<Keys, Error> {
        let stamp = self.stamp();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((s, k)) = cached.as_ref() {
            if *s == stamp {
                return Ok(k.clone());
            }
        }
        let keys = Keys::load(&self.data_dir)?;
        *cached = Some((stamp, keys.clone()));
        Ok(keys)
    }

    /// The claims of `token`, or why it is refused.
    pub fn check(&self, token: Option<&str>, now_ms: u64) -> Result<Claims, Denied> {
        let token = token.ok_or(Denied::Missing)?;
        let keys = self.keys().map_err(|_| Denied::Forged)?;
        keys.verify(token, now_ms)
    }
}

/// The TLS settings: the given certificate and key, or one issued by the mesh's CA for
/// `addr` (the CA's certificate is then written to `<data-dir>/http/ca.pem`).
pub fn tls_config(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    addr: std::net::SocketAddr,
) -> Result<rustls::ServerConfig, Error> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let (chain, key): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) = match (cert, key) {
        (Some(c), Some(k)) => {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| Error::File {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })
            };
            let chain = rustls_pemfile::certs(&mut read(c)?.as_slice())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Error::Tls(format!("{}: {e}", c.display())))?;
            if chain.is_empty() {
                return Err(Error::Tls(format!("{}: no certificate in it", c.display())));
            }
            let key = rustls_pemfile::private_key(&mut read(k)?.as_slice())
                .map_err(|e| Error::Tls(format!("{}: {e}", k.display())))?
                .ok_or_else(|| Error::Tls(format!("{}: no private key in it", k.display())))?;
            (chain, key)
        }
        _ => {
            let creds = crate::admission::Credentials::load(data_dir)
                .map_err(|e| Error::Tls(e.to_string()))?
                .ok_or_else(|| {
                    Error::Tls(format!(
                        "serving {addr} needs TLS: give --http-cert and --http-key, or make \
                         this agent a mesh member first (mesh init or join) so that the \
                         mesh's CA issues its certificate"
                    ))
                })?;
            let mut names = vec![addr.ip().to_string(), "localhost".to_string()];
            if addr.ip().is_unspecified() {
                names.push("127.0.0.1".into());
            }
            let host = crate::config::hostname();
            if !host.is_empty() {
                names.push(host);
            }
            let (der, key_pem) = creds
                .issue_server(&names)
                .map_err(|e| Error::Tls(e.to_string()))?;
            let ca_pem = pem("CERTIFICATE", &creds.ca_cert);
            let ca_path = data_dir.join("http").join("ca.pem");
            write_private(&ca_path, ca_pem.as_bytes()).map_err(|e| Error::File {
                path: ca_path.display().to_string(),
                message: e.to_string(),
            })?;
            let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
                .ok()
                .flatten()
                .ok_or_else(|| Error::Tls("the issued key cannot be read".into()))?;
            (vec![CertificateDer::from(der)], key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// PEM text of DER bytes.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_mesh_signature_and_expiry() {
        let keys = Keys::for_mesh("m1", b"secret one");
        let t = keys.issue(60_000, true, 1_000).expect("issued");
        let c = keys.verify(&t, 2_000).expect("valid");
        assert!(c.read_only);
        assert_eq!(c.mesh, "m1");
        assert_eq!(keys.verify(&t, 61_000), Err(Denied::Expired));
        // Another mesh's token, and one signed with another key under our mesh's name.
        let other = Keys::for_mesh("m2", b"secret two");
        let theirs = other.issue(60_000, false, 1_000).expect("issued");
        assert_eq!(keys.verify(&theirs, 2_000), Err(Denied::OtherMesh));
        let forger = Keys::for_mesh("m1", b"guessed");
        let forged = forger.issue(60_000, false, 1_000).expect("issued");
        assert_eq!(keys.verify(&forged, 2_000), Err(Denied::Forged));
        // A read-only token edited to grant writes no longer matches its signature.
        let parts: Vec<&str> = t.split('.').collect();
        let mut claims: Claims =
            serde_json::from_slice(&B64.decode(parts[1]).expect("b64")).expect("json");
        claims.read_only = false;
        let edited = format!(
            "{}.{}.{}",
            parts[0],
            B64.encode(serde_json::to_vec(&claims).expect("json")),
            parts[2]
        );
        assert_eq!(keys.verify(&edited, 2_000), Err(Denied::Forged));
        for junk in [
            "",
            "rbh1",
            "rbh1.x.y",
            "a.b.c",
            &"x".repeat(5000),
            "rbh1.e30.AA.x",
        ] {
            assert_eq!(keys.verify(junk, 2_000), Err(Denied::Malformed), "{junk}");
        }
        assert!(keys.issue(10, false, 0).is_err());
    }

    #[test]
    fn a_standalone_agent_keeps_its_own_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Keys::load(dir.path()).expect("keys");
        let t = a.issue(60_000, false, 0).expect("issued");
        let again = Keys::load(dir.path()).expect("keys");
        assert!(again.verify(&t, 1).is_ok(), "the key file is reused");
        let mode = std::fs::metadata(dir.path().join("http/token.key"))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .expect("key file");
        assert_eq!(mode, 0o600);
    }
}
