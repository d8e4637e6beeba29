//! OpenTelemetry traces across producers, brokers and consumers, collected by an OTLP receiver
//! that is not Eddy's (tests/python/otlp_receiver.py: the official OpenTelemetry protos served
//! with grpcio) from a three-broker cluster and the CLI, all exporting to it:
//!
//! - `eddy produce` sends a `send` span (PRODUCER); the leader's `produce` span (SERVER) is its
//!   child, with `append` and `commit` children; `eddy consume` makes a `process` span
//!   (CONSUMER) per record, a child of the producer's span and linked to it; each replica's
//!   `apply` of the batch's entry is the producer span's child too; the broker's
//!   `fetch` span links to it too. One trace id joins them all, with the messaging attributes.
//! - A REST produce that comes with a `traceparent` continues the caller's trace: the gateway's
//!   HTTP span is the caller's child, and the records carry the trace on to their consumer.
//! - A producer that samples nothing (ratio 0) leaves no span anywhere, the brokers' included
//!   (parent-based sampling); a producer without an endpoint writes no trace headers at all.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{Cluster, eddy_bin, free_port, python, wait_for};

/// The receiver process, killed when dropped.
struct Receiver {
    child: Child,
    endpoint: String,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    fn start() -> Receiver {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("spans.jsonl");
        let port = free_port();
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/otlp_receiver.py");
        let mut child = Command::new(python())
            .arg(script)
            .args([&port.to_string(), out.to_str().expect("utf-8 path")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the OTLP receiver");
        let mut ready = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut ready).expect("receiver output");
        assert_eq!(ready.trim(), "ready", "the OTLP receiver did not start");
        Receiver { child, endpoint: format!("http://127.0.0.1:{port}"), out, _dir: dir }
    }

    fn spans(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).expect("a span per line")).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn eddy(cluster: &Cluster, args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(eddy_bin())
        .args(args)
        .args(["--brokers", &cluster.brokers()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run eddy");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    let out = child.wait_with_output().expect("wait for eddy");
    assert!(out.status.success(), "eddy {args:?} failed: {}\n{}", String::from_utf8_lossy(&out.stderr), cluster.logs());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

fn find(spans: &[Value], what: impl Fn(&Value) -> bool) -> Vec<&Value> {
    spans.iter().filter(|s| what(s)).collect()
}

#[test]
fn one_trace_follows_an_event_from_its_producer_through_the_brokers_to_its_consumer() {
    let receiver = Receiver::start();
    let endpoint = receiver.endpoint.clone();
    let cluster = Cluster::start_with_env(3, &[("EDDY_OTLP_ENDPOINT", &endpoint)]);
    for topic in ["orders", "unsampled", "plain", "web"] {
        cluster.eddy_json(&["topic", "create", topic, "--partitions", "1", "--replication-factor", "3"]);
        cluster.wait_leaders(topic);
    }

    // Sampled out at the producer: nobody records the trace, the brokers included.
    eddy(&cluster, &["produce", "unsampled", "--otlp-endpoint", &endpoint, "--trace-sample-ratio", "0"], "u1\nu2\n");
    // No endpoint, no incoming context: no trace headers are written.
    eddy(&cluster, &["produce", "plain"], "p1\n");

    eddy(&cluster, &["produce", "orders", "--otlp-endpoint", &endpoint], "o1\no2\no3\n");
    let consumed = eddy(
        &cluster,
        &["consume", "orders", "--from-beginning", "--exit-at-end", "--format", "json", "--otlp-endpoint", &endpoint],
        "",
    );
    assert_eq!(consumed.lines().count(), 3, "{consumed}");

    // A web client's trace goes on through the REST gateway to the records' consumer.
    let web_trace = "0af7651916cd43dd8448eb211c80319c";
    let web_parent = "b7ad6b7169203331";
    let body = serde_json::json!({"records": [{"key": "w", "value": {"order": 1}}]});
    let traceparent = format!("00-{web_trace}-{web_parent}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let (status, answer) =
        support::http_request(&cluster.node(2).http, "POST", "/topics/web/records", &headers, Some(&body));
    assert_eq!(status, 200, "{answer}");
    eddy(
        &cluster,
        &["consume", "web", "--from-beginning", "--exit-at-end", "--format", "json", "--otlp-endpoint", &endpoint],
        "",
    );

    // The records produced without tracing carry no trace context.
    let (status, plain) =
        support::http_json(&cluster.node(1).http, "GET", "/topics/plain/partitions/0/records?offset=0", None);
    assert_eq!(status, 200, "{plain}");
    let headers = &plain["records"][0]["headers"];
    assert!(headers.get("traceparent").is_none(), "an untraced record got trace headers: {plain}");

    // Brokers export every few seconds: wait for every part of both traces.
    let spans = wait_for(Duration::from_secs(60), "the spans of both traces", || {
        let spans = receiver.spans();
        let has = |name: &str, kind: &str| spans.iter().any(|s| s["name"] == name && s["kind"] == kind);
        let web_done = spans.iter().any(|s| s["trace_id"] == web_trace && s["name"] == "process web");
        // Every replica (leader and followers) applied each traced batch.
        let applied_everywhere = spans.iter().filter(|s| s["name"] == "send orders").all(|send| {
            let replicas: std::collections::BTreeSet<String> = spans
                .iter()
                .filter(|s| s["name"] == "apply" && s["parent_span_id"] == send["span_id"])
                .map(|s| s["instance"].to_string())
                .collect();
            replicas.len() == 3
        });
        let broker_web = spans.iter().any(|s| s["trace_id"] == web_trace && s["name"] == "commit web");
        (has("send orders", "PRODUCER")
            && has("produce orders", "SERVER")
            && has("append orders", "INTERNAL")
            && has("commit orders", "INTERNAL")
            && has("fetch orders", "SERVER")
            && spans.iter().filter(|s| s["name"] == "process orders").count() == 3
            && web_done
            && broker_web
            && applied_everywhere)
            .then_some(spans)
    });

    // The producer's spans (stdin lines may go out in more than one batch), and each one's
    // trace through the leader to the consumer.
    let sends = find(&spans, |s| s["name"] == "send orders");
    let batch_count = |s: &Value| attr(s, "messaging.batch.message_count").as_i64().unwrap_or(1);
    assert_eq!(sends.iter().map(|s| batch_count(s)).sum::<i64>(), 3, "three records sent: {sends:?}");
    let mut offsets = Vec::new();
    for send in &sends {
        assert_eq!(send["service"], "eddy-cli");
        assert_eq!(send["kind"], "PRODUCER");
        assert_eq!(attr(send, "messaging.system"), "eddy");
        assert_eq!(attr(send, "messaging.operation.type"), "send");
        assert_eq!(attr(send, "messaging.destination.name"), "orders");
        assert_eq!(attr(send, "messaging.destination.partition.id"), "0");
        let trace = send["trace_id"].as_str().expect("a trace id");
        let in_trace = |name: &str| find(&spans, |s| s["trace_id"] == trace && s["name"] == name);

        let produce = in_trace("produce orders");
        assert_eq!(produce.len(), 1, "{produce:?}");
        let produce = produce[0];
        assert_eq!(produce["service"], "eddy-broker");
        assert_eq!(produce["parent_span_id"], send["span_id"], "the broker's span is the producer's child");
        assert_eq!(attr(produce, "messaging.batch.message_count").as_i64(), Some(batch_count(send)));
        for step in ["append orders", "commit orders"] {
            let step_spans = in_trace(step);
            assert_eq!(step_spans.len(), 1, "{step}: {step_spans:?}");
            assert_eq!(step_spans[0]["parent_span_id"], produce["span_id"], "{step}");
            assert_eq!(step_spans[0]["instance"], produce["instance"], "{step} on the leader");
        }
        let index = attr(in_trace("commit orders")[0], "messaging.eddy.raft.log_index").as_i64();
        assert!(index.is_some_and(|i| i > 0), "{index:?}");
        // Each of the three replicas applied the batch's entry, in the producer's trace.
        let applies = in_trace("apply");
        assert_eq!(applies.len(), 3, "{applies:?}");
        for apply in &applies {
            assert_eq!(apply["parent_span_id"], send["span_id"]);
            assert_eq!(attr(apply, "messaging.eddy.raft.log_index").as_i64(), index, "the same entry everywhere");
        }

        let processed = in_trace("process orders");
        assert_eq!(processed.len() as i64, batch_count(send), "a process span per record of the batch: {processed:?}");
        for span in &processed {
            assert_eq!(span["kind"], "CONSUMER");
            assert_eq!(span["service"], "eddy-cli");
            assert_eq!(span["parent_span_id"], send["span_id"], "processing is the producer's child");
            assert_eq!(span["links"][0]["span_id"], send["span_id"], "and linked to the producer's span");
            assert_eq!(attr(span, "messaging.operation.type"), "process");
            offsets.push(attr(span, "messaging.eddy.offset").as_i64().expect("an offset"));
        }
    }
    offsets.sort();
    assert_eq!(offsets, [0, 1, 2]);

    let fetches = find(&spans, |s| s["name"] == "fetch orders");
    assert!(
        fetches.iter().any(|f| {
            f["links"].as_array().unwrap().iter().any(|l| sends.iter().any(|s| l["span_id"] == s["span_id"]))
        }),
        "a fetch links to the records' trace: {fetches:?}"
    );

    // The web client's trace: gateway span, the gateway's send, the leader's produce, the consumer.
    let web = find(&spans, |s| s["trace_id"] == web_trace);
    let http = web.iter().find(|s| s["name"] == "POST /topics/{topic}/records").expect("the gateway's span");
    assert_eq!(http["parent_span_id"], web_parent, "the gateway continues the caller's span");
    assert_eq!(http["kind"], "SERVER");
    let web_send = web.iter().find(|s| s["name"] == "send web").expect("the gateway's send span");
    assert_eq!(web_send["parent_span_id"], http["span_id"]);
    let web_produce = web.iter().find(|s| s["name"] == "produce web").expect("the leader's span");
    assert_eq!(web_produce["parent_span_id"], web_send["span_id"]);
    let web_process = web.iter().find(|s| s["name"] == "process web").expect("the consumer's span");
    assert_eq!(web_process["parent_span_id"], web_send["span_id"]);

    // Sampled out: nothing of it anywhere, though later spans of the same brokers arrived.
    let unsampled = find(&spans, |s| attr(s, "messaging.destination.name") == "unsampled");
    assert!(unsampled.is_empty(), "an unsampled trace was recorded: {unsampled:?}");
}
