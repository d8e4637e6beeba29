//! Certificates and keys from PEM files, and a fingerprint of those files to notice changes.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::{PEM_FILE_MAX_BYTES, TlsError};

/// A listener's TLS files (PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that peers' certificates must chain to. A server requests client
    /// certificates only when it has one.
    pub ca: Option<PathBuf>,
}

/// A client's TLS files (PEM): what to trust and, for mutual TLS, who it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsFiles {
    /// CA certificates the servers' certificates must chain to.
    pub ca: PathBuf,
    /// The client's certificate chain, for servers that authenticate clients by certificate.
    pub cert: Option<PathBuf>,
    /// The key of `cert`.
    pub key: Option<PathBuf>,
}

/// Reads a PEM file whole, bounded.
pub(crate) fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let fail = |reason: String| TlsError::Read { what, path: path.to_path_buf(), reason };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(PEM_FILE_MAX_BYTES + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > PEM_FILE_MAX_BYTES {
        return Err(TlsError::TooLarge { what, path: path.to_path_buf(), max: PEM_FILE_MAX_BYTES });
    }
    Ok(bytes)
}

/// Every certificate of a PEM file, in order.
pub(crate) fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read { what, path: path.to_path_buf(), reason: e.to_string() })?;
    if certificates.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_path_buf(), expected: "PEM certificate" });
    }
    Ok(certificates)
}

/// The private key of a PEM file.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("TLS key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            TlsError::Empty { what: "TLS key", path: path.to_path_buf(), expected: "PEM private key" }
        }
        e => TlsError::Read { what: "TLS key", path: path.to_path_buf(), reason: e.to_string() },
    })
}

/// The CA certificates of a PEM file, as trust roots.
pub(crate) fn roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates("TLS CA", path)? {
        roots.add(certificate).map_err(|e| TlsError::Read {
            what: "TLS CA",
            path: path.to_path_buf(),
            reason: format!("not a usable CA certificate: {e}"),
        })?;
    }
    Ok(roots)
}

/// The contents of `paths`, to tell whether any changed since the last look. A file that cannot
/// be read counts as empty: the reload that follows reports why.
pub(crate) fn fingerprint<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<Vec<u8>> {
    paths.into_iter().map(|p| read("TLS file", p).unwrap_or_default()).collect()
}

impl TlsFiles {
    pub(crate) fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.cert.as_path(), self.key.as_path()];
        paths.extend(self.ca.as_deref());
        paths
    }
}

impl ClientTlsFiles {
    pub(crate) fn paths(&self) -> Vec<&Path> {
        let mut paths = vec![self.ca.as_path()];
        paths.extend(self.cert.as_deref());
        paths.extend(self.key.as_deref());
        paths
    }
}
