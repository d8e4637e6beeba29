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

/// gRPC health reports the client API as serving, and reflection lists Eddy's services.
#[test]
fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let cluster = Cluster::start(1);
    let address = format!("http://{}", cluster.nodes[0].address);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(address).unwrap().connect().await.unwrap();
        let health = HealthClient::new(channel.clone())
            .check(HealthCheckRequest { service: "eddy.v1.Eddy".into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut answers = ServerReflectionClient::new(channel)
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().expect("one reflection answer");
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            panic!("unexpected reflection answer {answer:?}");
        };
        let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        assert!(names.contains(&"eddy.v1.Eddy".to_string()), "{names:?}");
    });
}
