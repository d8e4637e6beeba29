//! Certificates for TLS tests: a CA, and leaves it signs written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};

/// A certificate authority whose certificates and keys live under `dir`.
pub struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM).
    pub ca: PathBuf,
}

/// A leaf certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new CA named `name`, writing under `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        std::fs::create_dir_all(dir).expect("PKI dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let ca = dir.join(format!("{name}.ca.pem"));
        std::fs::write(&ca, params.self_signed(&key).expect("CA certificate").pem()).expect("write CA");
        Pki { dir: dir.to_path_buf(), issuer: Issuer::new(params, key), ca }
    }

    /// A certificate for common name `cn`, valid for 127.0.0.1 and localhost, written to
    /// `<file>.pem` and `<file>.key` (replacing what was there).
    pub fn leaf(&self, cn: &str, file: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("leaf params");
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().expect("IP")));
        params.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let leaf = Leaf { cert: self.dir.join(format!("{file}.pem")), key: self.dir.join(format!("{file}.key")) };
        // The key first: a broker reloading between the two writes sees a mismatched pair and
        // keeps its previous certificate until the next look.
        std::fs::write(&leaf.key, key.serialize_pem()).expect("write key");
        std::fs::write(&leaf.cert, cert.pem()).expect("write certificate");
        leaf
    }
}
