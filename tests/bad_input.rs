//! Bad input gets a clear error with a reason code and a non-zero exit, and leaves the cluster
//! healthy: every case below runs against one live cluster, which must still work at the end.

mod support;

use std::process::Command;

use support::{Cluster, eddy_bin, write_file};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs the CLI and expects failure with `reason` in its one-line error.
fn expect_error(cluster: &Cluster, args: &[&str], reason: &str) {
    let out = cluster.eddy(args);
    assert!(!out.status.success(), "eddy {args:?} should fail");
    let err = stderr(&out);
    assert!(err.starts_with("error: "), "eddy {args:?}: error line expected, got {err:?}");
    assert!(err.contains(reason), "eddy {args:?}: expected {reason} in {err:?}");
}

#[test]
fn bad_requests_are_refused_and_the_cluster_stays_healthy() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", "events", "--partitions", "2", "--replication-factor", "3"]);
    cluster.wait_leaders("events");

    expect_error(&cluster, &["topic", "describe", "missing"], "UNKNOWN_TOPIC");
    expect_error(&cluster, &["topic", "delete", "missing"], "UNKNOWN_TOPIC");
    expect_error(&cluster, &["topic", "create", "events", "--partitions", "1"], "TOPIC_ALREADY_EXISTS");
    expect_error(&cluster, &["topic", "create", "zero", "--partitions", "0"], "INVALID_PARTITIONS");
    expect_error(&cluster, &["topic", "create", "huge", "--partitions", "100000"], "INVALID_PARTITIONS");
    expect_error(&cluster, &["topic", "create", "wide", "--replication-factor", "4"], "INVALID_REPLICATION_FACTOR");
    expect_error(&cluster, &["topic", "create", "bad name!"], "INVALID_TOPIC_NAME");
    expect_error(&cluster, &["consume", "events", "--partition", "7", "--exit-at-end"], "UNKNOWN_PARTITION");
    expect_error(
        &cluster,
        &["consume", "events", "--partition", "0", "--offset", "999", "--exit-at-end"],
        "OFFSET_OUT_OF_RANGE",
    );

    // A record above the 1 MiB default limit is refused; nothing of it is stored.
    let big = "x".repeat((1 << 20) + 10);
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "events", &["--partition", "0"]);
    producer.send(&big);
    let (ok, err, acks) = producer.finish();
    assert!(!ok, "an oversized record must fail");
    assert!(err.contains("RECORD_TOO_LARGE"), "expected RECORD_TOO_LARGE in {err:?}");
    assert!(acks.is_empty());

    // Producing to a missing topic names the problem.
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "nope", &[]);
    producer.send("x");
    let (ok, err, _) = producer.finish();
    assert!(!ok && err.contains("UNKNOWN_TOPIC"), "expected UNKNOWN_TOPIC in {err:?}");

    // Idempotence needs the quorum's answer: ACKS_LEADER with a producer identity is refused.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let refused = runtime.block_on(async {
        let client = eddy_client::Client::new(vec![cluster.nodes[0].address.clone()], Default::default()).unwrap();
        client
            .produce(eddy_client::v1::ProduceRequest {
                topic: "events".into(),
                partition: 1,
                records: vec![eddy_client::v1::Record { value: "x".into(), ..Default::default() }],
                acks: eddy_client::v1::Acks::Leader as i32,
                producer: Some(eddy_client::v1::ProducerIdentity { producer_id: 1, epoch: 0, first_sequence: 0 }),
                timeout_ms: 0,
            })
            .await
            .unwrap_err()
    });
    assert_eq!(refused.reason(), "INVALID_REQUEST", "{refused}");

    // The cluster is still healthy: a normal round trip works and partition 0 holds only it.
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "events", &["--partition", "0"]);
    producer.send("still-works");
    let (ok, err, acks) = producer.finish();
    assert!(ok, "produce after bad input failed: {err}");
    assert_eq!(acks[0]["offset"], 0, "the refused record took no offset");
    let out = cluster.eddy(&["consume", "events", "--partition", "0", "--from-beginning", "--exit-at-end"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "still-works");

    // Offsets by time: records stamped before a moment are skipped when consuming from it.
    let mut producer = support::ProduceSession::start(&cluster.brokers(), "events", &["--partition", "0"]);
    assert!(producer.send("later"));
    let (ok, err, _) = producer.finish();
    assert!(ok, "{err}");
    let out = cluster.eddy(&[
        "consume",
        "events",
        "--partition",
        "0",
        "--from-beginning",
        "--exit-at-end",
        "--format",
        "json",
    ]);
    let records: Vec<serde_json::Value> =
        String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records.len(), 2);
    let second_ts = records[1]["timestamp"].as_i64().unwrap();
    let first_ts = records[0]["timestamp"].as_i64().unwrap();
    if second_ts > first_ts {
        let from = second_ts.to_string();
        let out = cluster.eddy(&["consume", "events", "--partition", "0", "--from-timestamp", &from, "--exit-at-end"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "later");
    }
    let future = (second_ts + 3_600_000).to_string();
    let out = cluster.eddy(&["consume", "events", "--partition", "0", "--from-timestamp", &future, "--exit-at-end"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "nothing is at or after a future time");

    // Deleting a topic removes it; its name can be used again, from offset 0.
    cluster.eddy_json(&["topic", "delete", "events"]);
    let listed = cluster.eddy_json(&["topic", "list"]);
    assert!(listed["topics"].as_array().unwrap().iter().all(|t| t["name"] != "events"), "{listed}");
    expect_error(&cluster, &["topic", "describe", "events"], "UNKNOWN_TOPIC");
    cluster.eddy_json(&["topic", "create", "events", "--partitions", "1", "--replication-factor", "3"]);
    cluster.wait_leaders("events");
    let described = cluster.eddy_json(&["topic", "describe", "events"]);
    assert_eq!(described["partitions"][0]["high_watermark"], 0, "the new topic starts empty");
}

#[test]
fn bad_server_configuration_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let run =
        |args: &[&str]| Command::new(eddy_bin()).arg("server").args(args).env_remove("EDDY_BROKERS").output().unwrap();

    let out = run(&["--node-id", "1", "--controller-voters", "1=127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("controller_voters"), "{}", stderr(&out));

    let out = run(&["--node-id", "0", "--controller-voters", "1=127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("node_id"), "{}", stderr(&out));

    let out = run(&["--node-id", "3", "--controller-voters", "1=127.0.0.1:1", "--http-cors-origins", "ftp://shop"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("http_cors_origins"), "{}", stderr(&out));

    let voters = ["--node-id", "3", "--controller-voters", "1=127.0.0.1:1"];
    let out = run(&[&voters[..], &["--otlp-endpoint", "grpc://collector:4317"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("otlp_endpoint"), "{}", stderr(&out));
    let out = run(&[&voters[..], &["--trace-sample-ratio", "1.5"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("trace_sample_ratio"), "{}", stderr(&out));
    // A client command refuses a bad endpoint before it does anything.
    let out = Command::new(eddy_bin())
        .args(["topic", "list", "--brokers", "127.0.0.1:1", "--otlp-endpoint", "127.0.0.1:4317"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("OTLP endpoint \"127.0.0.1:4317\""), "{}", stderr(&out));

    // The inter-broker listener never shares the client port, and voters are listed at theirs.
    let out = run(&[&voters[..], &["--listen", "127.0.0.1:7000", "--internal-listen", "0.0.0.0:7000"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("internal_listen"), "{}", stderr(&out));
    let out = run(&["--node-id", "1", "--listen", "127.0.0.1:7000", "--controller-voters", "1=127.0.0.1:7000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("inter-broker listener"), "{}", stderr(&out));

    let config = write_file(dir.path(), "bad.toml", "node_id = 1\nheartbeat_interval_ms = \"soon\"\n");
    let out = run(&["--config", config.to_str().unwrap(), "--controller-voters", "1=127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("heartbeat_interval_ms"), "{}", stderr(&out));

    let config = write_file(dir.path(), "unknown.toml", "node_id = 1\nretention = 5\n");
    let out = run(&["--config", config.to_str().unwrap(), "--controller-voters", "1=127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("retention"), "{}", stderr(&out));

    // A good configuration prints as TOML with every layer applied (file < env < flags).
    let config =
        write_file(dir.path(), "good.toml", "node_id = 1\nheartbeat_interval_ms = 700\nrecord_size_max_bytes = 1000\n");
    let out = Command::new(eddy_bin())
        .args([
            "server",
            "--config",
            config.to_str().unwrap(),
            // The flag's former name is still accepted.
            "--seeds",
            "2=127.0.0.1:9000",
            "--node-id",
            "3",
            "--print-config",
        ])
        .env("EDDY_RECORD_SIZE_MAX_BYTES", "2000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("node_id = 3"), "{printed}");
    assert!(printed.contains("heartbeat_interval_ms = 700"), "{printed}");
    assert!(printed.contains("record_size_max_bytes = 2000"), "{printed}");
    assert!(printed.contains("[[controller_voters]]"), "{printed}");
}

#[test]
fn incompatible_data_dir_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("eddy-format"), "format=999\nnode_id=1\n").unwrap();
    let (port, internal) = (support::free_port(), support::free_port());
    let out = Command::new(eddy_bin())
        .args(["server", "--node-id", "1", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--internal-listen", &format!("127.0.0.1:{internal}")])
        .args(["--controller-voters", &format!("1=127.0.0.1:{internal}")])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("incompatible version"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(data.join("eddy-format")).unwrap(), "format=999\nnode_id=1\n");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1, "nothing else was written");
}
