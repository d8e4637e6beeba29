//! Every node serves Prometheus metrics: records in and out, produce and commit latency, fsync
//! latency, partitions led and per-partition high watermarks; and gRPC health.

mod support;

use std::time::Duration;

use support::{Cluster, metric_value, scrape_metrics, wait_for};

#[test]
fn metrics_report_what_the_cluster_did() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", "metered", "--partitions", "1", "--replication-factor", "3"]);
    let described = cluster.wait_leaders("metered");
    let leader = described["partitions"][0]["leader"].as_u64().unwrap();

    let mut producer = support::ProduceSession::start(&cluster.brokers(), "metered", &[]);
    for i in 0..5 {
        assert!(producer.send(&format!("m{i}")));
    }
    let (ok, err, acks) = producer.finish();
    assert!(ok && acks.len() == 5, "{err}");
    let out = cluster.eddy(&["consume", "metered", "--from-beginning", "--exit-at-end"]);
    assert!(out.status.success());

    let leader_metrics = cluster.node(leader).metrics.clone();
    // Gauges are refreshed with every heartbeat; wait for the one after the produce.
    let body = wait_for(Duration::from_secs(30), "the leader's gauges to show the records", || {
        let body = scrape_metrics(&leader_metrics);
        let hw = metric_value(&body, "eddy_partition_high_watermark", "topic=\"metered\"")?;
        (hw == 5.0).then_some(body)
    });
    assert_eq!(metric_value(&body, "eddy_records_in_total", "topic=\"metered\""), Some(5.0));
    assert_eq!(metric_value(&body, "eddy_records_out_total", "topic=\"metered\""), Some(5.0));
    assert_eq!(metric_value(&body, "eddy_partition_is_leader", "topic=\"metered\""), Some(1.0));
    assert!(metric_value(&body, "eddy_partitions_led", "").is_some_and(|n| n >= 1.0));
    for histogram in [
        "eddy_produce_latency_seconds_count",
        "eddy_raft_commit_latency_seconds_count",
        "eddy_storage_fsync_seconds_count",
    ] {
        assert!(metric_value(&body, histogram, "").is_some_and(|n| n >= 1.0), "{histogram} missing in:\n{body}");
    }

    // Followers replicate: their high watermark gauge reaches 5 as well.
    for node in cluster.nodes.iter().filter(|n| n.id != leader) {
        wait_for(Duration::from_secs(30), "a follower's high watermark", || {
            let body = scrape_metrics(&node.metrics);
            (metric_value(&body, "eddy_partition_high_watermark", "topic=\"metered\"")? == 5.0).then_some(())
        });
    }
}
