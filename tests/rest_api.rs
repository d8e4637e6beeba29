//! The REST API and the gRPC API's reflection, exercised by clients that are not Eddy's, against
//! a real three-broker cluster:
//!
//! - Python's standard HTTP client (tests/python/rest_api.py) creates, lists, describes and
//!   deletes topics, produces JSON, string and base64 values with keys and headers through one
//!   broker and reads them back through another, wakes a long poll, appends once with a retried
//!   Idempotency-Key, follows the Server-Sent Events stream and resumes it with Last-Event-ID,
//!   and gets each error as problem+json with its status and reason code;
//! - openapi-spec-validator validates `/openapi.json`;
//! - a group's lag is what its committed offsets leave;
//! - a produce that cannot reach min.insync.replicas is answered 503 NOT_ENOUGH_REPLICAS;
//! - grpcio's reflection client (v1alpha only) lists the public services and resolves them;
//! - a browser's cross-origin requests (a CORS preflight, simple requests) are answered for the
//!   configured origin and not for another.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Cluster, http_json, run_python, wait_for};

#[test]
fn plain_http_clients_produce_read_stream_and_administer() {
    let mut cluster = Cluster::start_with_env(3, &[("EDDY_HTTP_CORS_ORIGINS", "https://shop.example")]);
    let url = |id: u64| format!("http://{}", cluster.node(id).http);
    let out = run_python("rest_api.py", &["records", &url(1), &url(2)]);
    eprintln!("records: {out}");
    let out = run_python("rest_api.py", &["cors", &url(2), "https://shop.example"]);
    eprintln!("cors: {out}");
    let out = run_python("rest_api.py", &["openapi", &url(3)]);
    eprintln!("openapi: {out}");

    // A group that read 10 records lags by the rest.
    let consumed = cluster.eddy(&["consume", "orders", "--group", "g1", "--from-beginning", "--max-records", "10"]);
    assert!(consumed.status.success(), "{}", String::from_utf8_lossy(&consumed.stderr));
    let topic = cluster.eddy_json(&["topic", "describe", "orders"]);
    let total: u64 =
        topic["partitions"].as_array().unwrap().iter().map(|p| p["high_watermark"].as_u64().unwrap()).sum();
    let (status, group) = http_json(&cluster.node(2).http, "GET", "/groups/g1", None);
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["total_lag"].as_u64(), Some(total - 10), "{group}");
    let committed: u64 =
        group["offsets"].as_array().unwrap().iter().filter_map(|o| o["committed_offset"].as_u64()).sum();
    assert_eq!(committed, 10, "{group}");

    // With a broker down, a topic needing three in-sync replicas refuses produce with 503.
    let create = json!({"name": "strict", "partitions": 1, "replication_factor": 3,
                        "configs": {"min.insync.replicas": "3"}});
    let (status, answer) = http_json(&cluster.node(1).http, "POST", "/topics", Some(&create));
    assert_eq!(status, 201, "{answer}");
    cluster.wait_leaders("strict");
    let leader = cluster.eddy_json(&["topic", "describe", "strict"])["partitions"][0]["leader"].as_u64().unwrap();
    let victim = (1..=3).find(|n| *n != leader).unwrap();
    cluster.kill_node(victim);
    let produce = json!({"records": [{"value": {"strict": true}}]});
    let refusal = wait_for(Duration::from_secs(120), "a 503 NOT_ENOUGH_REPLICAS", || {
        let (status, answer) = http_json(&cluster.node(leader).http, "POST", "/topics/strict/records", Some(&produce));
        (status == 503 && answer["reason"] == "NOT_ENOUGH_REPLICAS").then_some(answer)
    });
    assert_eq!(refusal["status"], 503, "{refusal}");
    assert!(refusal["detail"].as_str().unwrap().contains("min.insync.replicas"), "{refusal}");
}

#[test]
fn grpcio_reflection_lists_and_resolves_the_public_services() {
    let cluster = Cluster::start(1);
    let out = run_python("rest_api.py", &["reflection", &cluster.node(1).address]);
    let answer: Value = serde_json::from_str(out.trim()).expect("JSON");
    let services: Vec<&str> = answer["services"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(services.contains(&"eddy.v1.Eddy") && services.contains(&"eddy.v1.Groups"), "{answer}");
    assert!(!services.iter().any(|s| s.contains("internal")), "{answer}");
    let methods: Vec<&str> = answer["eddy_methods"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(methods.contains(&"Produce") && methods.contains(&"Subscribe"), "{answer}");
}
