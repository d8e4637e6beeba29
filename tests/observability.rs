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

    // Refusals are counted by API, topic and reason code; a name that is no topic is no label.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = eddy_client::Client::new(vec![cluster.node(leader).address.clone()], Default::default()).unwrap();
        let beyond = eddy_client::v1::FetchRequest {
            topic: "metered".into(),
            partition: 0,
            offset: 1_000,
            max_bytes: 0,
            max_records: 0,
            max_wait_ms: 0,
            read_from_follower: false,
        };
        let error = client.fetch_from_broker(&cluster.node(leader).address, beyond).await.unwrap_err();
        assert_eq!(error.code(), Some(eddy_client::Reason::OffsetOutOfRange), "{error}");
        let made_up =
            eddy_client::v1::FetchRequest { topic: "no-such-topic-xyz".into(), offset: 0, ..Default::default() };
        let error = client.fetch_from_broker(&cluster.node(leader).address, made_up).await.unwrap_err();
        assert_eq!(error.code(), Some(eddy_client::Reason::UnknownTopic), "{error}");
    });
    let body = scrape_metrics(&leader_metrics);
    let refused = |labels: &str| metric_value(&body, "eddy_request_errors_total", labels);
    assert_eq!(refused("api=\"fetch\",topic=\"metered\",reason=\"OFFSET_OUT_OF_RANGE\""), Some(1.0), "{body}");
    assert_eq!(refused("api=\"fetch\",topic=\"\",reason=\"UNKNOWN_TOPIC\""), Some(1.0), "{body}");
    assert!(!body.contains("no-such-topic-xyz"), "a made-up topic name became a label:\n{body}");

    // Followers replicate: their high watermark gauge reaches 5 as well.
    for node in cluster.nodes.iter().filter(|n| n.id != leader) {
        wait_for(Duration::from_secs(30), "a follower's high watermark", || {
            let body = scrape_metrics(&node.metrics);
            (metric_value(&body, "eddy_partition_high_watermark", "topic=\"metered\"")? == 5.0).then_some(())
        });
    }
}

/// gRPC health reports the client API as serving, and reflection, in both of its versions (v1,
/// and the v1alpha that grpcio's client, Postman and older grpcurl speak), lists Eddy's public
/// services and describes none of the node-to-node ones.
#[test]
fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

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

        // The same exchange in both versions: list the services, then ask for the file of a
        // public and of an internal service.
        macro_rules! reflect {
            ($version:ident) => {{
                use tonic_reflection::pb::$version::ServerReflectionRequest;
                use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
                use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
                use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
                let ask = |message: MessageRequest| ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(message),
                };
                let requests = [
                    ask(MessageRequest::ListServices(String::new())),
                    ask(MessageRequest::FileContainingSymbol("eddy.v1.Eddy".into())),
                    ask(MessageRequest::FileContainingSymbol("eddy.internal.v1.RaftTransport".into())),
                ];
                let mut answers = ServerReflectionClient::new(channel.clone())
                    .server_reflection_info(futures::stream::iter(requests))
                    .await
                    .unwrap()
                    .into_inner();
                let mut next = async || answers.message().await.unwrap().expect("an answer").message_response;
                let Some(MessageResponse::ListServicesResponse(list)) = next().await else {
                    panic!("{} listed no services", stringify!($version));
                };
                let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
                names.sort();
                let described = matches!(next().await, Some(MessageResponse::FileDescriptorResponse(_)));
                // Refused either way: an error answer, or (tonic's) an error status ending the stream.
                let internal = matches!(
                    answers.message().await,
                    Ok(Some(answer)) if matches!(answer.message_response, Some(MessageResponse::FileDescriptorResponse(_)))
                );
                (names, described, internal)
            }};
        }
        let expected = [
            "eddy.v1.Eddy",
            "eddy.v1.Groups",
            "eddy.v1.Security",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ];
        for (version, (names, described, internal)) in [("v1", reflect!(v1)), ("v1alpha", reflect!(v1alpha))] {
            assert_eq!(names, expected, "{version} lists the public services only");
            assert!(described, "{version} describes eddy.v1.Eddy");
            assert!(!internal, "{version} does not describe the Raft transport");
        }
    });
}
