//! Static API keys: bearer tokens known to brokers only by their SHA-256.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Principal;

/// An API key: the principal it authenticates and the SHA-256 of the token, as lowercase hex
/// (`eddy auth generate-key` prints a token and its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub principal: String,
    pub sha256: String,
}

impl ApiKey {
    /// Whether `token` is this key's (compared in constant time).
    pub fn matches(&self, token: &str) -> bool {
        token_sha256(token).as_bytes().ct_eq(self.sha256.to_ascii_lowercase().as_bytes()).into()
    }

    /// The principal, checked.
    pub fn principal(&self) -> Result<Principal, crate::PrincipalError> {
        Principal::parse(&self.principal)
    }

    /// Whether the hash is 64 hex digits.
    pub fn valid_hash(&self) -> bool {
        self.sha256.len() == 64 && self.sha256.chars().all(|c| c.is_ascii_hexdigit())
    }
}

/// SHA-256 of `token`, lowercase hex.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: `eddy_` and 43 characters of URL-safe base64 (256 bits).
pub fn generate_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    format!("eddy_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_its_token_only() {
        let token = generate_token();
        let key = ApiKey { principal: "User:admin".into(), sha256: token_sha256(&token) };
        assert!(key.valid_hash());
        assert!(key.matches(&token));
        assert!(!key.matches(&generate_token()));
        let upper = ApiKey { sha256: key.sha256.to_uppercase(), ..key.clone() };
        assert!(upper.matches(&token));
        assert_eq!(key.principal().unwrap().name(), "admin");
    }
}
