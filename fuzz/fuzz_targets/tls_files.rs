//! TLS inputs: PEM files as a listener or a client loads them (certificate chain, private key
//! and CA, through `ServerTls::load` and `ClientTls::load`: PEM parsing, key parsing, trust
//! roots), and a peer's certificate bytes as `principal_of` names them. The first byte picks
//! which; the rest is the file or the certificate.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use eddy_tls::{CertificateDer, ClientAuth, ClientTls, ClientTlsFiles, ServerTls, TlsFiles};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % 3 {
        0 => principal(bytes),
        1 => {
            // One file as certificate, key and CA: a valid PEM bundle of all three loads.
            let path = write(bytes);
            let files = TlsFiles { cert: path.clone(), key: path.clone(), ca: Some(path.clone()) };
            let _ = ServerTls::load(&files, ClientAuth::Optional, &[b"h2".as_slice()]);
            let _ = ClientTls::load(&ClientTlsFiles { ca: path.clone(), cert: Some(path.clone()), key: Some(path) });
        }
        _ => {
            let path = write(bytes);
            let _ = ClientTls::load(&ClientTlsFiles { ca: path, cert: None, key: None });
        }
    }
});

/// Names the certificate `bytes` as the broker names a verified client.
fn principal(bytes: &[u8]) {
    let Some(name) = eddy_tls::principal_of(&CertificateDer::from(bytes)) else { return };
    assert!(!name.is_empty(), "a named principal has a name");
    if let Some(id) = eddy_tls::broker_node_id(&name) {
        assert_eq!(name, format!("{}{id}", eddy_tls::BROKER_NAME_PREFIX));
    }
    let _ = eddy_auth::Principal::user(&name);
}

/// Writes `bytes` to this process's one scratch file: the loaders read paths.
fn write(bytes: &[u8]) -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    let path = PATH.get_or_init(|| std::env::temp_dir().join(format!("eddy-fuzz-tls-{}.pem", std::process::id())));
    std::fs::write(path, bytes).expect("the scratch file is writable");
    path.clone()
}
