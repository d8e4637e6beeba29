//! The client side of TLS, for tonic channels.

use std::io;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::files::{self, ClientTlsFiles};
use crate::reload::Reloadable;
use crate::{TlsError, provider};

/// A client's TLS: the roots it trusts and, for mutual TLS, its own certificate, reloaded when
/// the files change (new connections use the new ones). Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<Reloadable<ClientConfig>>,
    files: ClientTlsFiles,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("files", &self.files).finish()
    }
}

impl ClientTls {
    /// Builds the configuration from `files`.
    pub fn load(files: &ClientTlsFiles) -> Result<ClientTls, TlsError> {
        if files.cert.is_some() != files.key.is_some() {
            return Err(TlsError::Config("a client certificate needs its key, and a key its certificate".into()));
        }
        let paths = files.paths().into_iter().map(Into::into).collect();
        let source = files.clone();
        let config = Reloadable::new(paths, Box::new(move || build(&source)))?;
        Ok(ClientTls { config: Arc::new(config), files: files.clone() })
    }

    /// Rebuilds the configuration if the files changed; `Ok(true)` when it did.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.config.reload_if_changed()
    }

    /// Reloads whenever the files change, until `stopping` turns true.
    pub async fn watch(self, stopping: tokio::sync::watch::Receiver<bool>) {
        self.config.watch("client certificate", stopping).await;
    }

    /// A lazily connecting channel to `endpoint`'s host over TLS, configured otherwise by
    /// `endpoint` (timeouts, HTTP/2 keep-alive). The server's certificate must name the host
    /// (a DNS name, or an IP address for an address given as one).
    pub fn channel(&self, endpoint: Endpoint) -> Channel {
        let tls = self.config.clone();
        let connect = tower::service_fn(move |uri: Uri| {
            let config = tls.current();
            async move {
                let host = uri.host().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no host"))?;
                let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
                let port = uri.port_u16().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no port"))?;
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
                let stream = TcpStream::connect((host.as_str(), port)).await?;
                stream.set_nodelay(true)?;
                let stream = tokio_rustls::TlsConnector::from(config).connect(name, stream).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        });
        endpoint.connect_with_connector_lazy(connect)
    }
}

fn build(files: &ClientTlsFiles) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(files::roots(&files.ca)?);
    let mut config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(files::certificates("TLS client certificate", cert)?, files::private_key(key)?)
            .map_err(|e| TlsError::Config(format!("{}: {e}", cert.display())))?,
        _ => builder.with_no_client_auth(),
    };
    // gRPC is HTTP/2; a server that offers HTTP/1.1 too must pick h2.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
