//! A listener's rustls configuration, reloaded when its files change.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};

use crate::files::{self, TlsFiles};
use crate::reload::Reloadable;
use crate::{TlsError, provider};

/// What a server asks of its clients' certificates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Clients present no certificate.
    #[default]
    None,
    /// A client may present one (it must then chain to the CA); clients without one pass the
    /// handshake and authenticate another way, or not at all.
    Optional,
    /// Every client must present one that chains to the CA, or the handshake fails (mutual
    /// TLS, as between brokers).
    Required,
}

/// A listener's TLS: the configuration new connections get (open ones keep theirs). Cheap to
/// clone; clones share the configuration.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<Reloadable<ServerConfig>>,
    files: TlsFiles,
    client_auth: ClientAuth,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").field("files", &self.files).field("client_auth", &self.client_auth).finish()
    }
}

impl ServerTls {
    /// Builds the configuration from `files`, offering the `alpn` protocols (`h2` for gRPC;
    /// `h2` and `http/1.1` for HTTP).
    pub fn load(files: &TlsFiles, client_auth: ClientAuth, alpn: &[&[u8]]) -> Result<ServerTls, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let paths = files.paths().into_iter().map(Into::into).collect();
        let source = files.clone();
        let config = Reloadable::new(paths, Box::new(move || build(&source, client_auth, &alpn)))?;
        Ok(ServerTls { config: Arc::new(config), files: files.clone(), client_auth })
    }

    /// The configuration a connection accepted now gets.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.config.current()
    }

    /// What this listener asks of client certificates.
    pub fn client_auth(&self) -> ClientAuth {
        self.client_auth
    }

    /// Rebuilds the configuration if the files changed; `Ok(true)` when it did. On an error the
    /// previous configuration stays.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.config.reload_if_changed()
    }

    /// Reloads the configuration whenever its files change, until `stopping` turns true.
    pub async fn watch(self, stopping: tokio::sync::watch::Receiver<bool>) {
        let what = format!("listener certificate {}", self.files.cert.display());
        self.config.watch(&what, stopping).await;
    }
}

fn build(files: &TlsFiles, client_auth: ClientAuth, alpn: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let chain = files::certificates("TLS certificate", &files.cert)?;
    let key = files::private_key(&files.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match (client_auth, &files.ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Config("client certificates need a CA to check them against (tls ca)".into()));
        }
        (auth, Some(ca)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(files::roots(ca)?), provider());
            let verifier = match auth {
                ClientAuth::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Config(e.to_string()))?)
        }
    };
    let mut config =
        builder.with_single_cert(chain, key).map_err(|e| TlsError::Config(format!("{}: {e}", files.cert.display())))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// Whether a listener checking client certificates against the CAs in `ca` accepts the
/// certificate chain in `cert` (leaf first) as a client's, now.
pub fn accepts_client_certificate(ca: &std::path::Path, cert: &std::path::Path) -> Result<bool, TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(files::roots(ca)?), provider())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let chain = files::certificates("TLS certificate", cert)?;
    let (leaf, intermediates) = chain.split_first().expect("at least one certificate");
    Ok(verifier.verify_client_cert(leaf, intermediates, rustls_pki_types::UnixTime::now()).is_ok())
}
