//! TLS for every Eddy listener and connection, on rustls with the ring provider.
//!
//! - [`TlsFiles`]: a certificate chain, its key and the CA peers must chain to, as PEM files.
//! - [`ServerTls`]: a listener's rustls configuration, reloaded when its files change (new
//!   connections get the new certificate; open ones keep theirs), with client certificates
//!   ignored, requested or required ([`ClientAuth`]).
//! - [`incoming`]: the accepted connections of a listener, plain or TLS, handshaken off the
//!   accept path (a slow or silent peer cannot hold up the others), each carrying its
//!   [`PeerInfo`] (remote address, certificate chain) into every request it makes.
//! - [`ClientTls`]: the client side, for tonic channels: roots to trust and, for mutual TLS, the
//!   client's own certificate.
//! - [`principal_of`]: the name a certificate authenticates (its subject's common name).
//!
//! Nothing here decides who may do what: that is the broker's job, from the [`PeerInfo`].

mod accept;
mod client;
mod error;
mod files;
mod identity;
mod reload;
mod server;

pub use accept::{Conn, PeerInfo, incoming, peer_info};
pub use client::ClientTls;
pub use error::TlsError;
pub use files::{ClientTlsFiles, TlsFiles};
pub use identity::{BROKER_NAME_PREFIX, broker_node_id, peer_broker, principal_of};
pub use rustls_pki_types::CertificateDer;
pub use server::{ClientAuth, ServerTls, accepts_client_certificate};

/// How often a listener's certificate files are read again to see whether they changed.
pub const RELOAD_INTERVAL_MS: u64 = 2_000;
/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Most handshakes a listener runs at once; past it, accepting waits (the kernel's backlog
/// holds the rest), so a flood of silent connections costs bounded memory.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 1_024;
/// Largest PEM file read (certificate chain, key or CA bundle).
pub const PEM_FILE_MAX_BYTES: u64 = 1 << 20;

/// The cryptography every configuration uses.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
