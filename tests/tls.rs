//! A cluster with TLS on every listener (client gRPC and HTTP listeners with each node's
//! certificate, the inter-broker listener with mutual TLS) serves clients that trust its CA,
//! replicates over mutual TLS, and refuses everyone else: plaintext on any listener, a client
//! certificate on the inter-broker listener, a broker presenting another node's certificate.
//! New certificate files are served without a restart.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use eddy_proto::internal::raft_transport_client::RaftTransportClient;
use eddy_proto::internal::{ControllerEnvelope, RaftEnvelope};
use serde_json::Value;
use support::pki::{Leaf, Pki};
use support::{Cluster, eddy_bin, free_port, wait_for};

const TOPIC: &str = "secure";

/// A blocking TLS connection to `address` trusting `ca`, presenting `identity` if given.
fn tls_connect(
    address: &str,
    ca: &Path,
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::pem::PemObject::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![rustls_pki_types::pem::PemObject::from_pem_file(&leaf.cert).unwrap()],
                rustls_pki_types::pem::PemObject::from_pem_file(&leaf.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(address)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// The common name of the certificate `address` serves now.
fn served_name(address: &str, ca: &Path) -> String {
    let stream = tls_connect(address, ca, None, &[b"h2", b"http/1.1"]).expect("TLS handshake");
    let leaf = &stream.conn.peer_certificates().expect("a server certificate")[0];
    eddy_tls::principal_of(leaf).expect("a common name")
}

/// One HTTP/1.1 GET over TLS; returns the status and the body as JSON.
fn https_get(address: &str, ca: &Path, path: &str) -> (u16, Value) {
    https_request(address, ca, None, "GET", path, None)
}

/// One HTTP/1.1 request over TLS as `identity` (a client certificate) if given; returns the
/// status and the body as JSON.
fn https_request(
    address: &str,
    ca: &Path,
    identity: Option<&Leaf>,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut stream = tls_connect(address, ca, identity, &[b"http/1.1"]).expect("TLS handshake");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Whether a plaintext HTTP/1.1 request to `address` gets any HTTP answer.
fn plaintext_http_answers(address: &str) -> bool {
    let mut tcp = TcpStream::connect(address).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The listener may close the connection before the request is written (a broken pipe):
    // that is no answer either.
    if write!(tcp, "GET /topics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response);
    response.starts_with(b"HTTP/")
}

fn grpc_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A channel to `address` over TLS trusting `ca`, as `identity` if given.
fn tls_channel(address: &str, ca: &Path, identity: Option<&Leaf>) -> tonic::transport::Channel {
    let files = eddy_tls::ClientTlsFiles {
        ca: ca.to_path_buf(),
        cert: identity.map(|l| l.cert.clone()),
        key: identity.map(|l| l.key.clone()),
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}")).unwrap();
    eddy_tls::ClientTls::load(&files).unwrap().channel(endpoint)
}

#[test]
fn a_tls_cluster_serves_clients_that_trust_it_and_refuses_plaintext() {
    let cluster = Cluster::start_tls(3, &[]);
    let pki = cluster.pki.as_ref().unwrap();
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "2", "--replication-factor", "3"]);
    cluster.wait_leaders(TOPIC);

    // Produce and consume through the CLI over TLS; the records were replicated over mutual TLS
    // (acks=all needs the followers).
    let mut produce = Command::new(eddy_bin())
        .args(["produce", TOPIC, "--format", "json", "--brokers", &cluster.brokers()])
        .arg("--tls-ca")
        .arg(&pki.ca)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let stdin = produce.stdin.as_mut().unwrap();
        for i in 0..20 {
            writeln!(stdin, "order-{i}").unwrap();
        }
    }
    let produced = produce.wait_with_output().unwrap();
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let out = cluster.eddy(&["consume", TOPIC, "--from-beginning", "--exit-at-end", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let values: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["value"].as_str().map(str::to_string))
        .collect();
    assert_eq!(values.len(), 20, "{values:?}");

    // A plaintext client is refused, with a message and a non-zero exit.
    let out = Command::new(eddy_bin()).args(["topic", "list", "--brokers", &cluster.brokers()]).output().unwrap();
    assert!(!out.status.success(), "a plaintext client was served");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PROTOCOL_ERROR") && stderr.contains("--tls-ca"), "{stderr}");

    // The HTTP listener speaks HTTPS only.
    let http = &cluster.node(1).http;
    let (status, topics) = https_get(http, &pki.ca, "/topics");
    assert_eq!(status, 200, "{topics}");
    assert!(topics.to_string().contains(TOPIC), "{topics}");
    assert!(!plaintext_http_answers(http), "the HTTP listener answered plaintext");

    // The inter-broker listener: no plaintext, no client without a certificate, and a
    // certificate from the cluster's CA that is not a broker's gets PERMISSION_DENIED.
    let internal = cluster.node(1).internal.clone();
    let alice = pki.leaf("alice", "alice");
    let runtime = grpc_runtime();
    runtime.block_on(async {
        let ping = || RaftEnvelope { group_id: 0, kind: 6, payload: Default::default() };
        let plain = tonic::transport::Endpoint::from_shared(format!("http://{internal}")).unwrap().connect_lazy();
        let status = RaftTransportClient::new(plain).call(ping()).await.unwrap_err();
        // The TLS alert reads as an HTTP/2 protocol error, or the connection is already gone:
        // either way a transport failure, never a service's answer.
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
            ),
            "{status:?}"
        );
        // Without a certificate the handshake fails: the call never reaches a service.
        let anonymous = tls_channel(&internal, &pki.ca, None);
        let status = RaftTransportClient::new(anonymous).call(ping()).await.unwrap_err();
        assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
            ),
            "{status:?}"
        );
        let client = tls_channel(&internal, &pki.ca, Some(&alice));
        let status = RaftTransportClient::new(client.clone()).call(ping()).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        let controller = eddy_proto::internal::controller_rpc_client::ControllerRpcClient::new(client);
        let status = controller.clone().call(ControllerEnvelope { payload: Default::default() }).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        // With a broker's certificate the same call is served.
        let broker = pki.leaf("broker-2", "broker-2-probe");
        let channel = tls_channel(&internal, &pki.ca, Some(&broker));
        let answer = RaftTransportClient::new(channel.clone()).call(ping()).await;
        assert!(answer.is_ok(), "{answer:?}");
        // ... but it speaks for broker 2 only: a (pre-)vote for the controller in node 3's name
        // is refused before Raft sees it; in its own name it reaches Raft.
        let pre_vote = |candidate: u64| {
            use openraft::vote::{RaftLeaderId, RaftVote};
            type Controller = eddy_controller::ControllerTypes;
            let leader = openraft::type_config::alias::LeaderIdOf::<Controller>::new(0, candidate);
            let vote = openraft::type_config::alias::VoteOf::<Controller>::from_leader_id(leader, false);
            let request = openraft::raft::VoteRequest::<Controller>::new(vote, None);
            let kind = eddy_raft::transport::RpcKind::PreVote as u32;
            RaftEnvelope { group_id: 0, kind, payload: eddy_raft::transport::encode(&request).into() }
        };
        let status = RaftTransportClient::new(channel.clone()).call(pre_vote(3)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("cannot send a pre-vote request for node 3"), "{status:?}");
        let answer = RaftTransportClient::new(channel).call(pre_vote(2)).await;
        assert!(answer.is_ok(), "{answer:?}");
    });
}

#[test]
fn a_broker_with_another_nodes_certificate_cannot_join() {
    let cluster = Cluster::start_tls(3, &[]);
    let pki = cluster.pki.as_ref().unwrap();
    // Node 4 presents broker 2's certificate: it must not register as broker 4 (nor as 2).
    let impostor = pki.leaf("broker-2", "impostor");
    let client = pki.leaf("eddy-node-4", "node-4-client");
    let voters: Vec<String> = cluster.nodes.iter().map(|n| format!("{}={}", n.id, n.internal)).collect();
    let log = cluster.dir.path().join("node-4.log");
    let mut node = Command::new(eddy_bin())
        .args(["server", "--node-id", "4", "--controller-voters", &voters.join(",")])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--internal-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(cluster.dir.path().join("node-4"))
        .args(["--tls-cert".as_ref(), client.cert.as_os_str(), "--tls-key".as_ref(), client.key.as_os_str()])
        .args(["--tls-ca".as_ref(), pki.ca.as_os_str()])
        .args(["--internal-tls-cert".as_ref(), impostor.cert.as_os_str()])
        .args(["--internal-tls-key".as_ref(), impostor.key.as_os_str(), "--internal-tls-ca".as_ref()])
        .arg(&pki.ca)
        .env_remove("EDDY_BROKERS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Its heartbeats are refused, by name, for as long as it tries.
    wait_for(Duration::from_secs(30), "the impostor's heartbeats to be refused", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("cannot register or heartbeat broker 4").then_some(())
    });
    let described = cluster.eddy_json(&["cluster", "describe"]);
    let brokers = described["brokers"].as_array().unwrap();
    assert!(brokers.iter().all(|b| b["id"] != 4), "the impostor registered: {described}");
    assert_eq!(brokers.len(), 3, "{described}");
    let _ = node.kill();
    let _ = node.wait();
}

#[test]
fn listener_certificates_are_reloaded_without_a_restart() {
    let cluster = Cluster::start_tls(1, &[]);
    let pki: &Pki = cluster.pki.as_ref().unwrap();
    let node = cluster.node(1);
    assert_eq!(served_name(&node.address, &pki.ca), "eddy-node-1");
    assert_eq!(served_name(&node.http, &pki.ca), "eddy-node-1");
    pki.leaf("eddy-node-1-renewed", "node-1-client");
    wait_for(Duration::from_secs(30), "the renewed certificate to be served", || {
        (served_name(&node.address, &pki.ca) == "eddy-node-1-renewed").then_some(())
    });
    wait_for(Duration::from_secs(30), "the renewed certificate on the HTTP listener", || {
        (served_name(&node.http, &pki.ca) == "eddy-node-1-renewed").then_some(())
    });
    // Clients go on as before: the CA did not change.
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "1"]);
}

/// The core's bad-input answers, unchanged with TLS and authentication on: each names its
/// reason, and the cluster keeps serving.
#[test]
fn bad_input_is_answered_clearly_with_tls_and_authentication_on() {
    let cluster = Cluster::start_tls_with_auth(3);
    let pki = cluster.pki.as_ref().unwrap();
    cluster.eddy_json(&["topic", "create", "events", "--partitions", "2", "--replication-factor", "3"]);
    cluster.wait_leaders("events");
    let expect_error = |args: &[&str], reason: &str| {
        let out = cluster.eddy(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.starts_with("error: "), "eddy {args:?}: {err}");
        assert!(err.contains(reason), "eddy {args:?}: expected {reason} in {err:?}");
    };
    expect_error(&["topic", "describe", "missing"], "UNKNOWN_TOPIC");
    expect_error(&["topic", "create", "events", "--partitions", "1"], "TOPIC_ALREADY_EXISTS");
    expect_error(&["topic", "create", "zero", "--partitions", "0"], "INVALID_PARTITIONS");
    expect_error(&["topic", "create", "wide", "--replication-factor", "4"], "INVALID_REPLICATION_FACTOR");
    expect_error(&["topic", "create", "bad name!"], "INVALID_TOPIC_NAME");
    expect_error(&["consume", "events", "--partition", "7", "--exit-at-end"], "UNKNOWN_PARTITION");
    expect_error(&["consume", "events", "--partition", "0", "--offset", "999", "--exit-at-end"], "OFFSET_OUT_OF_RANGE");

    let ca = pki.ca.display().to_string();
    let client_args = ["--tls-ca", ca.as_str(), "--token", support::ADMIN_TOKEN];
    let partition_0 = [&["--partition", "0"][..], &client_args[..]].concat();
    let big = "x".repeat((1 << 20) + 10);
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "events", &partition_0);
    producer.send(&big);
    let (ok, err, acks) = producer.finish();
    assert!(!ok && err.contains("RECORD_TOO_LARGE") && acks.is_empty(), "{err}");
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "nope", &client_args);
    producer.send("x");
    let (ok, err, _) = producer.finish();
    assert!(!ok && err.contains("UNKNOWN_TOPIC"), "{err}");

    // And the cluster still serves: the refused record took no offset.
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "events", &partition_0);
    producer.send("still-works");
    let (ok, err, acks) = producer.finish();
    assert!(ok, "{err}");
    assert_eq!(acks[0]["offset"], 0);
}

/// With client certificates asked for, an HTTP caller's certificate is its principal, as on
/// gRPC: the gateway acts for it on every broker it reaches (its own certificate, a broker's,
/// vouches for the caller), and nobody else can claim to act for anyone.
#[test]
fn http_callers_are_their_client_certificates_and_only_brokers_act_for_others() {
    let cluster = Cluster::start_tls_with_auth_and_client_certificates(3);
    let pki = cluster.pki.as_ref().unwrap();
    cluster.eddy_json(&["topic", "create", "certified", "--partitions", "3", "--replication-factor", "3"]);
    cluster.wait_leaders("certified");
    let alice = pki.leaf("alice", "alice-http");
    let http = cluster.node(1).http.clone();
    let record = serde_json::json!({"records": [
        {"value": {"n": 1}, "partition": 0},
        {"value": {"n": 2}, "partition": 1},
        {"value": {"n": 3}, "partition": 2},
    ]});
    let path = "/topics/certified/records";

    // No certificate, no credentials: 401. A certificate without ACLs: 403.
    let (status, problem) = https_request(&http, &pki.ca, None, "POST", path, Some(&record));
    assert_eq!((status, problem["reason"].as_str()), (401, Some("UNAUTHENTICATED")), "{problem}");
    let (status, problem) = https_request(&http, &pki.ca, Some(&alice), "POST", path, Some(&record));
    assert_eq!((status, problem["reason"].as_str()), (403, Some("PERMISSION_DENIED")), "{problem}");

    // Allowed to write: the records reach all three partitions' leaders, each of which takes
    // the gateway's word (a broker's certificate) for alice.
    cluster.eddy_json(&["acl", "add", "--principal", "User:alice", "--operation", "write", "--topic", "certified"]);
    let answer = wait_for(Duration::from_secs(20), "alice's certificate to be allowed to write", || {
        let (status, answer) = https_request(&http, &pki.ca, Some(&alice), "POST", path, Some(&record));
        (status == 200).then_some(answer)
    });
    let partitions: std::collections::BTreeSet<u64> =
        answer["records"].as_array().unwrap().iter().map(|r| r["partition"].as_u64().unwrap()).collect();
    assert_eq!(partitions.len(), 3, "{answer}");
    // Writing is all alice may do.
    let (status, problem) =
        https_request(&http, &pki.ca, Some(&alice), "GET", "/topics/certified/partitions/0/records", None);
    assert_eq!((status, problem["reason"].as_str()), (403, Some("PERMISSION_DENIED")), "{problem}");

    // Acting for someone else takes a broker's certificate: alice's certificate, or the admin's
    // own token, with `eddy-on-behalf-of` is refused on the client listener.
    let runtime = grpc_runtime();
    runtime.block_on(async {
        use eddy_proto::v1::eddy_client::EddyClient;
        let list = |token: Option<&str>| {
            let mut request = tonic::Request::new(eddy_proto::v1::ListTopicsRequest::default());
            request.metadata_mut().insert(eddy_auth::ON_BEHALF_OF, "User:admin".parse().unwrap());
            if let Some(token) = token {
                request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            request
        };
        let node = &cluster.node(2).address;
        let as_alice = tls_channel(node, &pki.ca, Some(&alice));
        let status = EddyClient::new(as_alice).list_topics(list(None)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        let as_admin = tls_channel(node, &pki.ca, None);
        let status = EddyClient::new(as_admin).list_topics(list(Some(support::ADMIN_TOKEN))).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(status.message().contains("broker's client certificate"), "{status:?}");
    });
}
