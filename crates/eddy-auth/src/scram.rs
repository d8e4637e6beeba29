//! Passwords as SCRAM-SHA-256 stores them (RFC 5802, RFC 7677), as Kafka does.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// PBKDF2 iterations of a new credential (RFC 7677's minimum; Kafka's default).
pub const SCRAM_ITERATIONS_DEFAULT: u32 = 4_096;
/// Fewest iterations a credential may have.
pub const SCRAM_ITERATIONS_MIN: u32 = 4_096;
/// Most iterations a credential may have: each password check costs this many HMACs.
pub const SCRAM_ITERATIONS_MAX: u32 = 100_000;
/// Bytes of a salt a client may send.
pub const SCRAM_SALT_MAX_BYTES: usize = 256;
/// Bytes of a new credential's salt.
const SALT_BYTES: usize = 32;

/// A user's SCRAM-SHA-256 credential: what a server keeps instead of the password. Whoever
/// reads it cannot log in with it (the stored key is a hash of the client key, which the
/// password derives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl ScramCredential {
    /// The credential of `password` with a fresh random salt.
    pub fn new(password: &str, iterations: u32) -> ScramCredential {
        Self::with_salt(password, Self::new_salt(), iterations)
    }

    /// The credential of `password` with `salt` (deterministic: for tests and the simulation).
    pub fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> ScramCredential {
        let iterations = iterations.clamp(SCRAM_ITERATIONS_MIN, SCRAM_ITERATIONS_MAX);
        let salted = salted_password(password, &salt, iterations);
        Self::from_salted_password(salt, iterations, &salted)
    }

    /// The credential whose salted password (`Hi(password, salt, iterations)`) a client sent,
    /// as Kafka's AlterUserScramCredentials does: the password itself never leaves the client.
    pub fn from_salted_password(salt: Vec<u8>, iterations: u32, salted: &[u8; 32]) -> ScramCredential {
        let client_key = hmac(salted, b"Client Key");
        ScramCredential {
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac(salted, b"Server Key"),
            salt,
            iterations,
        }
    }

    /// A fresh random salt.
    pub fn new_salt() -> Vec<u8> {
        let mut salt = vec![0u8; SALT_BYTES];
        rand::Rng::fill(&mut rand::rng(), salt.as_mut_slice());
        salt
    }

    /// Whether `password` is this credential's (compared in constant time). Costs
    /// `iterations` HMACs: callers cache successes.
    pub fn verify(&self, password: &str) -> bool {
        if !(SCRAM_ITERATIONS_MIN..=SCRAM_ITERATIONS_MAX).contains(&self.iterations) {
            return false;
        }
        let salted = salted_password(password, &self.salt, self.iterations);
        let stored: [u8; 32] = Sha256::digest(hmac(&salted, b"Client Key")).into();
        stored.ct_eq(&self.stored_key).into()
    }
}

/// `Hi(password, salt, iterations)` of RFC 5802: PBKDF2 with HMAC-SHA-256.
pub fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_password_and_only_it_verifies() {
        let credential = ScramCredential::new("correct horse", SCRAM_ITERATIONS_DEFAULT);
        assert!(credential.verify("correct horse"));
        assert!(!credential.verify("correct horse "));
        assert!(!credential.verify(""));
        let again = ScramCredential::new("correct horse", SCRAM_ITERATIONS_DEFAULT);
        assert_ne!(credential.salt, again.salt, "a fresh salt each time");
        assert_ne!(credential.stored_key, again.stored_key);
    }

    #[test]
    fn matches_rfc_7677_test_vector() {
        // RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
        // 4096 iterations; the server signature there follows from this server key.
        use base64::Engine as _;
        let salt = base64::engine::general_purpose::STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = ScramCredential::with_salt("pencil", salt, 4096);
        let client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO";
        let server_first = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_bare = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_message = format!("{client_first_bare},{server_first},{client_final_bare}");
        let signature = hmac(&credential.server_key, auth_message.as_bytes());
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(signature),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn a_tampered_iteration_count_never_verifies() {
        let mut credential = ScramCredential::new("pw", SCRAM_ITERATIONS_DEFAULT);
        credential.iterations = 1;
        assert!(!credential.verify("pw"));
    }
}
