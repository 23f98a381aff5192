//! Admission (DESIGN §9): who belongs to a mesh. `mesh init` makes a mesh id and a CA
//! (an Ed25519 key and self-signed certificate made with rcgen); every member holds a
//! node certificate, signed by that CA, whose subject key is the node's libp2p key and
//! whose URI names `roboconf://<mesh>/<peer-id>`, so a certificate is worth nothing on
//! any other connection. Join tokens are single-use and short-lived: the token's secret
//! never enters the replicated state, only its SHA-256 with the expiry and, once
//! redeemed, who redeemed it. The credentials live in `<data-dir>/mesh/credentials.json`
//! (owner-only). This module is pure apart from `load` and `save`.

use libp2p::PeerId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SignatureAlgorithm,
};
use serde::{Deserialize, Serialize};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How long the CA and node certificates are valid (there is no rotation yet).
const VALID_DAYS: i64 = 3650;
pub use roboconf_core::admission::{
    check_token_ttl, Token, TokenRecord, MAX_TOKEN_TTL_MS, MIN_TOKEN_TTL_MS,
};
use roboconf_core::admission::{hex, unhex};

/// Why admission material could not be made, read or accepted.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate: {0}")]
    Cert(String),
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

/// Why a peer's certificate is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("certificate cannot be read")]
    Unreadable,
    #[error("certificate is not signed by this mesh's CA")]
    WrongIssuer,
    #[error("certificate is expired or not yet valid")]
    Expired,
    #[error("certificate is for another peer or mesh")]
    WrongSubject,
}

/// What a member holds: the mesh id, the CA (certificate and key, so that any member
/// can admit) and its own certificate.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub mesh: String,
    /// DER of the CA certificate.
    #[serde(with = "hex_bytes")]
    pub ca_cert: Vec<u8>,
    /// PKCS#8 PEM of the CA key.
    pub ca_key: String,
    /// DER of this node's certificate.
    #[serde(with = "hex_bytes")]
    pub cert: Vec<u8>,
}

impl std::fmt::Debug for Credentials {
    // No secret in logs: the CA key is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mesh", &self.mesh)
            .finish_non_exhaustive()
    }
}

fn cert_err(e: impl std::fmt::Display) -> Error {
    Error::Cert(e.to_string())
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    // The system RNG only fails when the OS has none; nothing sensible can go on then.
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .unwrap_or_else(|_| std::process::abort());
    b
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(b))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        super::unhex(&s).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

/// The CA's parameters: rebuilt the same way to sign, so the issuer name always matches.
fn ca_params(mesh: &str) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("roboconf mesh {mesh}"));
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(1);
    p.not_after = now + time::Duration::days(VALID_DAYS);
    Ok(p)
}

/// The libp2p Ed25519 key of a peer, as the subject key of its certificate.
struct PeerKey(Vec<u8>);

impl PublicKeyData for PeerKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_ED25519
    }
}

fn peer_key(peer: &PeerId) -> Option<Vec<u8>> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes().to_vec())
}

fn subject_uri(mesh: &str, peer: &PeerId) -> String {
    format!("roboconf://{mesh}/{peer}")
}

impl Credentials {
    /// A new mesh with `me` as its first member.
    pub fn init(me: &PeerId) -> Result<Credentials, Error> {
        let mesh = hex(&random_bytes::<8>());
        let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(cert_err)?;
        let ca = ca_params(&mesh)?.self_signed(&key).map_err(cert_err)?;
        let mut creds = Credentials {
            mesh,
            ca_cert: ca.der().to_vec(),
            ca_key: key.serialize_pem(),
            cert: Vec::new(),
        };
        creds.cert = creds.issue(me)?;
        Ok(creds)
    }

    /// A certificate for `peer` in this mesh, signed by the CA.
    pub fn issue(&self, peer: &PeerId) -> Result<Vec<u8>, Error> {
        let subject =
            peer_key(peer).ok_or_else(|| Error::Cert("the peer's key is not Ed25519".into()))?;
        let ca_key = KeyPair::from_pem(&self.ca_key).map_err(cert_err)?;
        let issuer = Issuer::new(ca_params(&self.mesh)?, ca_key);
        let mut p = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, peer.to_string());
        p.distinguished_name = dn;
        p.subject_alt_names = vec![SanType::URI(
            subject_uri(&self.mesh, peer).try_into().map_err(cert_err)?,
        )];
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(VALID_DAYS);
        let cert = p.signed_by(&PeerKey(subject), &issuer).map_err(cert_err)?;
        Ok(cert.der().to_vec())
    }

    /// A TLS server certificate for the HTTP API, signed by the CA, with a fresh ECDSA
    /// P-256 key (what browsers and curl accept) for `names` (host names or IP
    /// addresses): its DER and the key's PKCS#8 PEM.
    pub fn issue_server(&self, names: &[String]) -> Result<(Vec<u8>, String), Error> {
        let ca_key = KeyPair::from_pem(&self.ca_key).map_err(cert_err)?;
        let issuer = Issuer::new(ca_params(&self.mesh)?, ca_key);
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut p = CertificateParams::new(names.to_vec()).map_err(cert_err)?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("roboconf http {}", self.mesh));
        p.distinguished_name = dn;
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(VALID_DAYS);
        let cert = p.signed_by(&key, &issuer).map_err(cert_err)?;
        Ok((cert.der().to_vec(), key.serialize_pem()))
    }

    /// What the network needs to check peers (no CA key).
    pub fn verifier(&self) -> Verifier {
        Verifier {
            mesh: self.mesh.clone(),
            ca_cert: self.ca_cert.clone(),
            cert: self.cert.clone(),
        }
    }

    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("mesh").join("credentials.json")
    }

    /// The credentials kept in the data dir, if this node is a member.
    pub fn load(data_dir: &Path) -> Result<Option<Credentials>, Error> {
        let path = Self::path(data_dir);
        let fail = |message: String| Error::File {
            path: path.display().to_string(),
            message,
        };
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| fail(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    /// Keeps the credentials, owner-only, written whole or not at all.
    pub fn save(&self, data_dir: &Path) -> Result<(), Error> {
        let path = Self::path(data_dir);
        let fail = |e: std::io::Error| Error::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let dir = data_dir.join("mesh");
        std::fs::create_dir_all(&dir).map_err(fail)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        let tmp = dir.join("credentials.json.tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| fail(std::io::Error::other(e)))?;
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(fail)?;
            f.write_all(&bytes).map_err(fail)?;
            f.sync_all().map_err(fail)?;
        }
        std::fs::rename(&tmp, &path).map_err(fail)
    }
}

/// What the network checks peers' certificates with.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub mesh: String,
    pub ca_cert: Vec<u8>,
    /// This node's own certificate, shown to peers.
    pub cert: Vec<u8>,
}

impl Verifier {
    /// Checks that `cert` is a certificate of this mesh's CA for `peer`, valid at `now_s`
    /// (seconds since the Unix epoch).
    pub fn check(&self, peer: &PeerId, cert: &[u8], now_s: i64) -> Result<(), Refusal> {
        use x509_parser::prelude::*;
        let (_, ca) = X509Certificate::from_der(&self.ca_cert).map_err(|_| Refusal::Unreadable)?;
        let (rest, c) = X509Certificate::from_der(cert).map_err(|_| Refusal::Unreadable)?;
        if !rest.is_empty() {
            return Err(Refusal::Unreadable);
        }
        c.verify_signature(Some(ca.public_key()))
            .map_err(|_| Refusal::WrongIssuer)?;
        let at = ASN1Time::from_timestamp(now_s).map_err(|_| Refusal::Expired)?;
        if !c.validity().is_valid_at(at) {
            return Err(Refusal::Expired);
        }
        let want = subject_uri(&self.mesh, peer);
        let named = c
            .subject_alternative_name()
            .ok()
            .flatten()
            .is_some_and(|san| {
                san.value
                    .general_names
                    .iter()
                    .any(|n| matches!(n, GeneralName::URI(u) if *u == want))
            });
        let key_matches = peer_key(peer)
            .is_some_and(|k| c.public_key().subject_public_key.data.as_ref() == k.as_slice());
        if !named || !key_matches {
            return Err(Refusal::WrongSubject);
        }
        Ok(())
    }
}

/// A new join token, from the system's random source.
pub fn new_token() -> Token {
    Token::new(random_bytes::<8>(), random_bytes::<16>())
}

/// What a member answers a node that proved a token.
#[derive(Clone, Serialize, Deserialize)]
pub struct Grant {
    pub creds: Credentials,
    /// The admitting member's own certificate (the joiner checks it too).
    #[serde(with = "hex_bytes")]
    pub issuer_cert: Vec<u8>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("mesh", &self.creds.mesh)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn now_s() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    #[test]
    fn a_certificate_binds_the_peer_and_the_mesh() {
        let a = Keypair::generate_ed25519().public().to_peer_id();
        let b = Keypair::generate_ed25519().public().to_peer_id();
        let creds = Credentials::init(&a).expect("init");
        let v = creds.verifier();
        assert_eq!(v.check(&a, &creds.cert, now_s()), Ok(()));
        let b_cert = creds.issue(&b).expect("issue");
        assert_eq!(v.check(&b, &b_cert, now_s()), Ok(()));
        // Someone else's certificate is worth nothing.
        assert_eq!(
            v.check(&b, &creds.cert, now_s()),
            Err(Refusal::WrongSubject)
        );
        // Another mesh's CA: refused.
        let other = Credentials::init(&b).expect("init");
        assert_eq!(v.check(&b, &other.cert, now_s()), Err(Refusal::WrongIssuer));
        // Garbage, truncation, expiry.
        assert_eq!(v.check(&b, b"junk", now_s()), Err(Refusal::Unreadable));
        assert_eq!(
            v.check(&b, &b_cert[..b_cert.len() - 3], now_s()),
            Err(Refusal::Unreadable)
        );
        let later = now_s() + (VALID_DAYS + 2) * 86_400;
        assert_eq!(v.check(&b, &b_cert, later), Err(Refusal::Expired));
        // A flipped byte in the signed part breaks the signature.
        let mut forged = b_cert.clone();
        let i = forged.len() / 2;
        forged[i] ^= 1;
        assert!(v.check(&b, &forged, now_s()).is_err());
    }

    #[test]
    fn credentials_survive_a_round_trip_owner_only() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = Keypair::generate_ed25519().public().to_peer_id();
        assert!(Credentials::load(dir.path()).expect("load").is_none());
        let creds = Credentials::init(&a).expect("init");
        creds.save(dir.path()).expect("save");
        let back = Credentials::load(dir.path()).expect("load").expect("some");
        assert!(back == creds);
        let mode = std::fs::metadata(dir.path().join("mesh/credentials.json"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
        assert!(!format!("{creds:?}").contains("PRIVATE"));
        // A certificate issued by the reloaded CA still verifies.
        let b = Keypair::generate_ed25519().public().to_peer_id();
        let cert = back.issue(&b).expect("issue");
        assert_eq!(creds.verifier().check(&b, &cert, now_s()), Ok(()));
    }
}
