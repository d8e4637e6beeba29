//! Live push of committed records (`eddy.v1.Eddy/Subscribe`), through real processes:
//!
//! - subscriptions from the latest offset, a given offset and the earliest one each get exactly
//!   the committed records from there, in offset order, as they are produced; one keeps going
//!   through the loss of the partition's leader (the client library subscribes again at the new
//!   leader after the last record it yielded: no gap, no repeat);
//! - a subscriber that stops reading stops the broker reading for it: while 64 MiB are produced,
//!   the broker reads at most a few MiB ahead of it, and it still gets every byte once it reads;
//! - a bad subscription is refused with its reason (unknown topic, offset past the end).

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_client::{Client, ClientConfig, StartAt, v1};
use futures::{Stream, StreamExt};
use support::{Cluster, metric_value, produce_request, scrape_metrics};

/// Records produced as `value-N` (N from `from`), `count` of them, one request each `per` records.
async fn produce_values(client: &Client, topic: &str, from: usize, count: usize) {
    for chunk in (from..from + count).collect::<Vec<_>>().chunks(10) {
        let records =
            chunk.iter().map(|i| v1::Record { value: format!("value-{i}").into(), ..Default::default() }).collect();
        client.produce(produce_request(topic, 0, records)).await.expect("produce");
    }
}

/// Takes records from a subscription until it has `count`, checking each is the next offset.
async fn take_records(
    feed: &mut (impl Stream<Item = eddy_client::ClientResult<v1::SubscribeResponse>> + Unpin),
    first: u64,
    count: usize,
) -> Vec<String> {
    let mut values = Vec::new();
    let mut next = first;
    while values.len() < count {
        let batch = tokio::time::timeout(Duration::from_secs(60), feed.next())
            .await
            .unwrap_or_else(|_| panic!("no batch within 60 s after {} records", values.len()))
            .expect("the subscription ended")
            .expect("a batch");
        assert!(!batch.records.is_empty(), "a pushed batch is never empty");
        for record in batch.records {
            assert_eq!(record.offset, next, "records arrive in offset order without gaps or repeats");
            next += 1;
            values.push(String::from_utf8(record.value.to_vec()).unwrap());
        }
    }
    assert_eq!(values.len(), count, "no record past the ones produced");
    values
}

fn values(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("value-{i}")).collect()
}

#[test]
fn subscriptions_push_committed_records_in_order_and_follow_the_leader() {
    let mut cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", "feed", "--partitions", "1", "--replication-factor", "3"]);
    let described = cluster.wait_leaders("feed");
    let leader = described["partitions"][0]["leader"].as_u64().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(
        Client::new(cluster.brokers().split(',').map(String::from).collect(), ClientConfig::default()).unwrap(),
    );
    let mut latest = runtime.block_on(async {
        produce_values(&client, "feed", 0, 50).await;
        let mut latest = Box::pin(client.subscribe("feed", 0, StartAt::Latest).await.unwrap());
        let mut from_20 = Box::pin(client.subscribe("feed", 0, StartAt::Offset(20)).await.unwrap());
        let mut earliest = Box::pin(client.subscribe("feed", 0, StartAt::Earliest).await.unwrap());
        assert_eq!(take_records(&mut from_20, 20, 30).await, values(20..50));
        produce_values(&client, "feed", 50, 50).await;
        assert_eq!(take_records(&mut latest, 50, 50).await, values(50..100));
        assert_eq!(take_records(&mut from_20, 50, 50).await, values(50..100));
        assert_eq!(take_records(&mut earliest, 0, 100).await, values(0..100));
        latest
    });
    // The leader dies; the subscription from the latest offset goes on at the next leader.
    cluster.kill_node(leader);
    runtime.block_on(async {
        produce_values(&client, "feed", 100, 50).await;
        assert_eq!(take_records(&mut latest, 100, 50).await, values(100..150));
    });
}

#[test]
fn a_subscriber_that_stops_reading_stops_the_reads_and_then_gets_everything() {
    const REQUESTS: usize = 64;
    const RECORDS_PER_REQUEST: usize = 64;
    const VALUE_BYTES: usize = 16 << 10;
    let cluster = Cluster::start(1);
    cluster.eddy_json(&["topic", "create", "slow", "--partitions", "1", "--replication-factor", "1"]);
    cluster.wait_leaders("slow");
    let node = cluster.node(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Client::new(vec![node.address.clone()], ClientConfig::default()).unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.address))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut raw = v1::eddy_client::EddyClient::new(channel).max_decoding_message_size(64 << 20);
        let request = v1::SubscribeRequest { topic: "slow".into(), partition: 0, ..Default::default() };
        let mut stream = raw.subscribe(request).await.expect("subscribe").into_inner();
        for request in 0..REQUESTS {
            let records = (0..RECORDS_PER_REQUEST)
                .map(|i| {
                    let mut value = vec![b'a' + (i % 26) as u8; VALUE_BYTES];
                    value[..16].copy_from_slice(format!("{request:08}-{i:07}").as_bytes());
                    v1::Record { value: Bytes::from(value), ..Default::default() }
                })
                .collect();
            client.produce(produce_request("slow", 0, records)).await.expect("produce");
        }
        // 64 MiB are committed; the subscriber has read nothing.
        let produced = (REQUESTS * RECORDS_PER_REQUEST * VALUE_BYTES) as f64;
        let body = scrape_metrics(&node.metrics);
        let read = metric_value(&body, "eddy_bytes_out_total", "topic=\"slow\"").unwrap_or(0.0);
        eprintln!("the broker read {read} bytes for a subscriber that read nothing while {produced} were produced");
        assert!(
            read < produced / 4.0,
            "the broker read {read} bytes ahead of a subscriber that read nothing ({produced} produced)"
        );
        // Reading now, it gets every record, in order.
        let mut next = 0u64;
        while next < (REQUESTS * RECORDS_PER_REQUEST) as u64 {
            let batch = tokio::time::timeout(Duration::from_secs(60), stream.message())
                .await
                .expect("a batch within 60 s")
                .expect("no error")
                .expect("the stream goes on");
            for record in batch.records {
                assert_eq!(record.offset, next);
                let (request, i) = (next as usize / RECORDS_PER_REQUEST, next as usize % RECORDS_PER_REQUEST);
                assert_eq!(&record.value[..16], format!("{request:08}-{i:07}").as_bytes());
                assert_eq!(record.value.len(), VALUE_BYTES);
                next += 1;
            }
        }
    });
}

#[test]
fn bad_subscriptions_are_refused_with_their_reason() {
    let cluster = Cluster::start(1);
    cluster.eddy_json(&["topic", "create", "known", "--partitions", "1", "--replication-factor", "1"]);
    cluster.wait_leaders("known");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(Client::new(vec![cluster.node(1).address.clone()], ClientConfig::default()).unwrap());
    runtime.block_on(async {
        let refusal = |topic: &str, start: StartAt| {
            let client = client.clone();
            let topic = topic.to_string();
            async move {
                let error = client.subscribe(&topic, 0, start).await.err().expect("refused");
                error.code().map(|r| r.as_str().to_string()).unwrap_or_default()
            }
        };
        assert_eq!(refusal("unknown", StartAt::Earliest).await, "UNKNOWN_TOPIC");
        assert_eq!(refusal("known", StartAt::Offset(5)).await, "OFFSET_OUT_OF_RANGE");
    });
}
