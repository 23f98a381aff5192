//! The pure parts of admission (DESIGN §9): join tokens — how one is written
//! (`rcm1-<id>-<secret>`), parsed, and what the replicated state keeps of it (the hash of
//! its secret, its expiry, who redeemed it) — and the bounds on their lifetime. Making
//! tokens (randomness), the mesh's CA and certificates live in the agent.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// A token that is not `rcm1-<16 hex>-<32 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed join token (expected rcm1-<16 hex>-<32 hex>)")]
pub struct MalformedToken;

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex (an even number of hex digits) as bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Longest join token lifetime (`mesh token --ttl`, and any `mesh_token` request).
pub const MAX_TOKEN_TTL_MS: u64 = 7 * 24 * 3600 * 1000;
/// Shortest join token lifetime.
pub const MIN_TOKEN_TTL_MS: u64 = 1000;

/// Whether a join token may live `ttl_ms`: from 1 s to 7 days, both included. The agent
/// checks every request with it, whatever client sent it; the CLI checks it too.
pub fn check_token_ttl(ttl_ms: u64) -> Result<(), String> {
    if (MIN_TOKEN_TTL_MS..=MAX_TOKEN_TTL_MS).contains(&ttl_ms) {
        Ok(())
    } else {
        Err(format!(
            "a join token lives from 1 s to 7 days ({MIN_TOKEN_TTL_MS} to {MAX_TOKEN_TTL_MS} ms); {ttl_ms} ms was asked"
        ))
    }
}

/// A join token as the operator copies it: `rcm1-<id>-<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub id: String,
    secret: [u8; 16],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.id)
    }
}

impl Token {
    /// The token of an id and a secret, both random (the caller's random source: this
    /// crate has none).
    pub fn new(id: [u8; 8], secret: [u8; 16]) -> Token {
        Token {
            id: hex(&id),
            secret,
        }
    }

    pub fn parse(s: &str) -> Result<Token, MalformedToken> {
        let mut it = s.trim().splitn(3, '-');
        let (Some("rcm1"), Some(id), Some(secret)) = (it.next(), it.next(), it.next()) else {
            return Err(MalformedToken);
        };
        let id_ok = id.len() == 16 && unhex(id).is_some();
        let secret: [u8; 16] = unhex(secret)
            .and_then(|b| b.try_into().ok())
            .ok_or(MalformedToken)?;
        if !id_ok {
            return Err(MalformedToken);
        }
        Ok(Token {
            id: id.to_ascii_lowercase(),
            secret,
        })
    }

    /// The token as text (this is the secret: print it only to the operator).
    pub fn reveal(&self) -> String {
        format!("rcm1-{}-{}", self.id, hex(&self.secret))
    }

    /// What the replicated state keeps instead of the secret.
    pub fn hash(&self) -> String {
        hex(&Sha256::digest(self.secret))
    }
}

/// A token as the replicated state knows it (a record of kind `Token`, keyed by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub hash: String,
    pub expires_ms: u64,
    /// The peer that redeemed it.
    pub used_by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_go_from_one_second_to_seven_days() {
        for ok in [1000, 60_000, 6 * 86_400_000, MAX_TOKEN_TTL_MS] {
            assert_eq!(check_token_ttl(ok), Ok(()), "{ok}");
        }
        let ten_years = 3650 * 86_400_000;
        for bad in [0, 999, MAX_TOKEN_TTL_MS + 1, ten_years, u64::MAX] {
            let e = check_token_ttl(bad).expect_err("refused");
            assert!(
                e.contains("from 1 s to 7 days") && e.contains(&bad.to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn tokens_parse_back_and_reject_garbage() {
        let t = Token::new([7; 8], [42; 16]);
        let back = Token::parse(&t.reveal()).expect("parse");
        assert_eq!(back, t);
        assert_eq!(back.hash(), t.hash());
        assert!(!format!("{t:?}").contains(&hex(&t.secret)));
        for bad in [
            "",
            "rcm1",
            "rcm2-0011223344556677-00112233445566778899aabbccddeeff",
            "rcm1-0011-00112233445566778899aabbccddeeff",
            "rcm1-0011223344556677-0011",
            "rcm1-zz11223344556677-00112233445566778899aabbccddeeff",
        ] {
            assert!(Token::parse(bad).is_err(), "{bad}");
        }
    }
}
