//! The accept loop and the client connector against each other, with certificates made here:
//! TLS and mutual TLS work, a plaintext client or one without a required certificate gets
//! nothing, the peer's principal comes from its certificate, and new certificate files are
//! served without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use eddy_tls::{ClientAuth, ClientTls, ClientTlsFiles, Conn, ServerTls, TlsFiles, incoming, principal_of};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    Ca { issuer: Issuer::new(params, key), pem }
}

/// A leaf certificate for `cn`, valid for 127.0.0.1 and localhost; returns (cert PEM, key PEM).
fn leaf(ca: &Ca, cn: &str) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

struct Setup {
    dir: tempfile::TempDir,
    ca: Ca,
    server: TlsFiles,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca("test CA");
    let (cert, key) = leaf(&ca, "broker-1");
    let server = TlsFiles {
        cert: write(dir.path(), "server.pem", &cert),
        key: write(dir.path(), "server.key", &key),
        ca: Some(write(dir.path(), "ca.pem", &ca.pem)),
    };
    Setup { dir, ca, server }
}

fn client_config(setup: &Setup, identity: Option<&str>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::pem::PemObject::from_pem_slice(setup.ca.pem.as_bytes()).unwrap()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(cn) => {
            let (cert, key) = leaf(&setup.ca, cn);
            let chain = vec![rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes()).unwrap()];
            let key = rustls_pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Starts a listener that echoes one line per connection and reports each connection's peer.
async fn echo_server(tls: ServerTls) -> (String, tokio::sync::mpsc::UnboundedReceiver<eddy_tls::PeerInfo>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (peers, seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut connections = Box::pin(incoming(listener, Some(tls)));
        while let Some(Ok(mut conn)) = connections.next().await {
            let _ = peers.send(conn.peer().clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if let Ok(n) = conn.read(&mut buf).await {
                    let _ = conn.write_all(&buf[..n]).await;
                    let _ = conn.flush().await;
                }
                drop::<Conn>(conn);
            });
        }
    });
    (address, seen)
}

/// One TLS round trip; returns the server's leaf certificate principal.
async fn round_trip(address: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<String> {
    let tcp = TcpStream::connect(address).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await?;
    tls.write_all(b"ping").await?;
    tls.flush().await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"ping");
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok(principal_of(&leaf).unwrap())
}

#[tokio::test]
async fn mutual_tls_names_the_client_and_refuses_others() {
    let setup = setup();
    let tls = ServerTls::load(&setup.server, ClientAuth::Required, &[b"h2"]).unwrap();
    let (address, mut peers) = echo_server(tls).await;

    assert_eq!(round_trip(&address, client_config(&setup, Some("alice"))).await.unwrap(), "broker-1");
    let peer = peers.recv().await.unwrap();
    assert!(peer.tls);
    let certificates = peer.certificates.expect("the client's certificate");
    assert_eq!(principal_of(&certificates[0]).as_deref(), Some("alice"));

    // Without a certificate the handshake fails (TLS 1.3 reports it on first read).
    assert!(round_trip(&address, client_config(&setup, None)).await.is_err());
    // A certificate from another CA is refused too.
    let stranger = Setup { ca: ca("another CA"), ..setup };
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(
            rustls_pki_types::pem::PemObject::from_pem_slice(
                std::fs::read(stranger.server.ca.as_ref().unwrap()).unwrap().as_slice(),
            )
            .unwrap(),
        )
        .unwrap();
    let (cert, key) = leaf(&stranger.ca, "mallory");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![rustls_pki_types::pem::PemObject::from_pem_slice(cert.as_bytes()).unwrap()],
            rustls_pki_types::pem::PemObject::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    assert!(round_trip(&address, Arc::new(config)).await.is_err());
}

#[tokio::test]
async fn a_plaintext_client_gets_nothing() {
    let setup = setup();
    let tls = ServerTls::load(&setup.server, ClientAuth::None, &[b"h2"]).unwrap();
    let (address, _peers) = echo_server(tls).await;
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await.expect("closed");
    // The server answers with a TLS alert at most, then closes: never an HTTP/2 frame.
    assert!(read.is_err() || buf.is_empty() || buf[0] == 0x15, "{buf:?}");
    assert!(round_trip(&address, client_config(&setup, None)).await.is_ok(), "TLS clients still served");
}

#[tokio::test]
async fn new_certificate_files_are_served_without_a_restart() {
    let setup = setup();
    let tls = ServerTls::load(&setup.server, ClientAuth::None, &[b"h2"]).unwrap();
    let (address, _peers) = echo_server(tls.clone()).await;
    assert_eq!(round_trip(&address, client_config(&setup, None)).await.unwrap(), "broker-1");
    assert!(!tls.reload_if_changed().unwrap(), "nothing changed yet");

    // A half-written key is not taken: the old certificate stays.
    std::fs::write(&setup.server.key, "-----BEGIN PRIVATE KEY-----\n").unwrap();
    assert!(tls.reload_if_changed().is_err());
    assert_eq!(round_trip(&address, client_config(&setup, None)).await.unwrap(), "broker-1");

    let (cert, key) = leaf(&setup.ca, "broker-1-renewed");
    std::fs::write(&setup.server.cert, cert).unwrap();
    std::fs::write(&setup.server.key, key).unwrap();
    assert!(tls.reload_if_changed().unwrap());
    assert_eq!(round_trip(&address, client_config(&setup, None)).await.unwrap(), "broker-1-renewed");
}

#[tokio::test]
async fn grpc_over_tls_through_the_connector() {
    let setup = setup();
    let tls = ServerTls::load(&setup.server, ClientAuth::Optional, &[b"h2"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder().add_service(health).serve_with_incoming(incoming(listener, Some(tls))),
    );

    let dir = setup.dir.path();
    let (cert, key) = leaf(&setup.ca, "alice");
    let files = ClientTlsFiles {
        ca: setup.server.ca.clone().unwrap(),
        cert: Some(write(dir, "alice.pem", &cert)),
        key: Some(write(dir, "alice.key", &key)),
    };
    for files in [files.clone(), ClientTlsFiles { cert: None, key: None, ..files }] {
        let client = ClientTls::load(&files).unwrap();
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(client.channel(endpoint));
        let answer = health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await;
        assert!(answer.is_ok(), "{answer:?}");
    }
    // A client that does not trust the server's CA cannot connect.
    let other = ca("another CA");
    let files = ClientTlsFiles { ca: write(dir, "other-ca.pem", &other.pem), cert: None, key: None };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(ClientTls::load(&files).unwrap().channel(endpoint));
    assert!(health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_err());
}

#[test]
fn bad_files_are_named() {
    let setup = setup();
    let missing = TlsFiles { cert: setup.dir.path().join("nope.pem"), ..setup.server.clone() };
    let error = ServerTls::load(&missing, ClientAuth::None, &[]).unwrap_err().to_string();
    assert!(error.contains("nope.pem"), "{error}");
    let empty = TlsFiles { cert: write(setup.dir.path(), "empty.pem", ""), ..setup.server.clone() };
    let error = ServerTls::load(&empty, ClientAuth::None, &[]).unwrap_err().to_string();
    assert!(error.contains("holds no PEM certificate"), "{error}");
    let no_ca = TlsFiles { ca: None, ..setup.server.clone() };
    let error = ServerTls::load(&no_ca, ClientAuth::Required, &[]).unwrap_err().to_string();
    assert!(error.contains("CA"), "{error}");
}
