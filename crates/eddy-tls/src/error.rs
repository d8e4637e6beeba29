//! Why a TLS configuration could not be built.

use std::path::PathBuf;

/// A TLS configuration that cannot be used; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Read { what: &'static str, path: PathBuf, reason: String },
    #[error("{what} {path} holds no {expected}")]
    Empty { what: &'static str, path: PathBuf, expected: &'static str },
    #[error("{what} {path} is larger than {max} bytes")]
    TooLarge { what: &'static str, path: PathBuf, max: u64 },
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}
