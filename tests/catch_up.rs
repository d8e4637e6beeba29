//! Catch-up of a far-behind replica, through real processes: a follower is down while 200 MB are
//! produced to its partition; after it restarts it holds every record (byte-identical at the
//! end of the log) within a bound, and the partition keeps its leader and term throughout: no
//! election, because AppendEntries are bounded in bytes, their timeout grows with their payload
//! instead of following the heartbeat interval, and the follower's pre-vote never disrupts a
//! leader it hears from.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::{Client, ClientConfig, v1};
use support::{Cluster, metric_value, scrape_metrics, wait_for};

const TOPIC: &str = "bulk";
/// 200 requests of 64 records of 16 KiB: 200 MiB.
const REQUESTS: usize = 200;
const RECORDS_PER_REQUEST: usize = 64;
const VALUE_BYTES: usize = 16 << 10;
/// How long the restarted follower may take to hold everything.
const CATCH_UP_BOUND: Duration = Duration::from_secs(180);

fn term_on(cluster: &Cluster, node: u64) -> Option<f64> {
    let body = scrape_metrics(&cluster.node(node).metrics);
    metric_value(&body, "eddy_partition_raft_term", &format!("topic=\"{TOPIC}\",partition=\"0\""))
}

#[test]
fn a_replica_down_during_200_mb_catches_up_without_an_election() {
    let mut cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "3"]);
    cluster.wait_leaders(TOPIC);
    // A new group may elect more than once while its replicas start: the baseline is a leader and
    // term that held for three seconds.
    let mut last = None;
    let (leader, term) = wait_for(Duration::from_secs(60), "a settled leader and term", || {
        std::thread::sleep(Duration::from_secs(3));
        let described = cluster.eddy_json(&["topic", "describe", TOPIC]);
        let leader = described["partitions"][0]["leader"].as_u64()?;
        let now = (leader, term_on(&cluster, leader)?);
        (last.replace(now) == Some(now)).then_some(now)
    });
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");

    cluster.kill_node(follower);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let client = Client::new(vec![cluster.node(leader).address.clone()], ClientConfig::default()).expect("client");
    let last_value = runtime.block_on(async {
        let mut last = Bytes::new();
        for request in 0..REQUESTS {
            let records: Vec<v1::Record> = (0..RECORDS_PER_REQUEST)
                .map(|i| {
                    let mut value = vec![b'a' + (i % 26) as u8; VALUE_BYTES];
                    value[..16].copy_from_slice(format!("{request:08}-{i:07}").as_bytes());
                    v1::Record { value: Bytes::from(value), ..Default::default() }
                })
                .collect();
            last = records.last().expect("records").value.clone();
            let produce = support::produce_request(TOPIC, 0, records);
            client.produce(produce).await.expect("produce with one follower down");
        }
        last
    });
    let end = (REQUESTS * RECORDS_PER_REQUEST) as u64;

    cluster.start_node(follower);
    let started = Instant::now();
    let address = cluster.node(follower).address.clone();
    let caught_up = runtime.block_on(async {
        loop {
            let request = v1::FetchRequest {
                topic: TOPIC.into(),
                partition: 0,
                offset: end - 1,
                max_records: 1,
                max_wait_ms: 500,
                read_from_follower: true,
                ..Default::default()
            };
            if let Ok(response) = client.fetch_from_broker(&address, request).await
                && let Some(record) = response.records.first()
            {
                return Some(record.value.clone());
            }
            if started.elapsed() > CATCH_UP_BOUND {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let took = started.elapsed();
    let caught_up = caught_up
        .unwrap_or_else(|| panic!("node {follower} did not catch up within {CATCH_UP_BOUND:?}\n{}", cluster.logs()));
    assert_eq!(caught_up, last_value, "the last record, byte-identical on the restarted follower");
    eprintln!("node {follower} caught up with 200 MiB in {took:?}");
    let described = cluster.eddy_json(&["topic", "describe", TOPIC]);
    assert_eq!(described["partitions"][0]["leader"].as_u64(), Some(leader), "the leader stayed: {described}");
    assert_eq!(term_on(&cluster, leader), Some(term), "no election happened\n{}", cluster.logs());
}
