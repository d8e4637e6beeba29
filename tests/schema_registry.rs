//! The schema registry against Confluent's own Python client (confluent-kafka's
//! SchemaRegistryClient and Avro serializer from PyPI, unmodified): Avro, JSON Schema and
//! Protobuf subjects with references are registered, evolved and refused through one broker;
//! then the controller leader, which holds the registry, is SIGKILLed and another broker serves
//! every id, subject and version unchanged and gives new schemas fresh ids.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{Cluster, python};

/// Runs `tests/python/schema_registry.py verify URL` with `expected` on its standard input.
fn verify(url: &str, expected: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/schema_registry.py");
    let mut child = Command::new(python())
        .arg(&script)
        .args(["verify", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    child.stdin.take().expect("stdin").write_all(expected.as_bytes()).expect("write expected registry");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "verify against {url} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn confluent_clients_register_evolve_and_read_through_a_controller_failover() {
    let mut cluster = Cluster::start(3);
    let controller =
        cluster.eddy_json(&["cluster", "describe"])["controller_leader"].as_u64().expect("a controller leader");
    // Register through a broker that is not the controller leader: it forwards.
    let first = (1..=3).find(|id| *id != controller).expect("another node");
    let populated =
        support::run_python("schema_registry.py", &["populate", &format!("http://{}", cluster.node(first).http)]);
    let expected = populated.lines().last().expect("the registry's contents").to_string();
    let contents: serde_json::Value = serde_json::from_str(&expected).expect("JSON");
    assert_eq!(contents["subjects"]["orders-value"], serde_json::json!([1, 2]), "{expected}");
    // Nine schemas under live subjects: addresses-value reuses shop.Address's id, and the scratch
    // subject was deleted permanently.
    assert_eq!(contents["ids"].as_object().map(|ids| ids.len()), Some(9), "{expected}");

    cluster.kill_node(controller);
    let other = (1..=3).find(|id| *id != controller && *id != first).expect("a third node");
    support::wait_for(std::time::Duration::from_secs(60), "a new controller leader", || {
        let described = cluster.eddy_json(&["cluster", "describe"]);
        described["controller_leader"].as_u64().filter(|leader| *leader != controller)
    });
    verify(&format!("http://{}", cluster.node(other).http), &expected);

    // The old leader comes back and serves the same registry (it forwards to the new leader).
    cluster.start_node(controller);
    cluster.wait_healthy();
    verify(&format!("http://{}", cluster.node(controller).http), &expected);
}
