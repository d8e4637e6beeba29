//! Produce requests at and beyond the batch limits, against a real 3-node cluster.
//!
//! One Produce of 2,097,152 empty records (4 MiB on the wire) once wedged its partition for good:
//! its Raft entry never replicated within openraft's heartbeat-derived timeout, and ACKS_LEADER
//! answers given meanwhile named offsets the stalled batch took later. Now such a request is
//! refused before it reaches the log; the largest accepted batches replicate; and an ACKS_ALL
//! request that gives up waiting (its timeout) keeps its place in the ACKS_LEADER offset
//! predictions, so every ACKS_LEADER answer names the offset its record really has.

mod support;

use std::collections::BTreeMap;

use eddy_client::v1::{self, eddy_client::EddyClient};
use eddy_client::{Client, ClientConfig};
use support::Cluster;

const TOPIC: &str = "large";
/// The broker's default limits (BrokerConfig).
const BATCH_RECORDS_MAX: usize = 65_536;
const BATCH_BYTES_MAX: usize = 16 << 20;

fn empty_records(n: usize) -> Vec<v1::Record> {
    vec![v1::Record::default(); n]
}

fn request(records: Vec<v1::Record>, acks: v1::Acks, timeout_ms: u32) -> v1::ProduceRequest {
    v1::ProduceRequest { topic: TOPIC.into(), partition: 0, records, acks: acks as i32, timeout_ms, producer: None }
}

#[test]
fn oversized_batches_are_refused_and_large_ones_never_wedge_the_partition() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "1", "--replication-factor", "3"]);
    let described = cluster.wait_leaders(TOPIC);
    let leader = described["partitions"][0]["leader_address"].as_str().expect("a leader address").to_string();

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let config = ClientConfig { message_size_max_bytes: 64 << 20, ..ClientConfig::default() };
        let client = Client::new(cluster.brokers().split(',').map(String::from).collect(), config).unwrap();
        // Raw stub to the leader: one attempt per request, no client retries.
        let mut raw = EddyClient::connect(format!("http://{leader}"))
            .await
            .unwrap()
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);

        // The request that wedged a partition: refused at once, before it is decoded, naming the
        // limit.
        let status = raw.produce(request(empty_records(2_097_152), v1::Acks::All, 0)).await.unwrap_err();
        let refused = eddy_client::ClientError::from_status(&status);
        assert_eq!(refused.reason(), "BATCH_TOO_LARGE", "{refused}");
        let limit = eddy_limits::BATCH_RECORDS_MAX_LIMIT.to_string();
        assert!(refused.to_string().contains(&limit), "the error names the limit: {refused}");
        // So are one record too many, and a batch of records within the record limit whose sum
        // is above the batch limit.
        let status = raw.produce(request(empty_records(BATCH_RECORDS_MAX + 1), v1::Acks::All, 0)).await.unwrap_err();
        assert_eq!(eddy_client::ClientError::from_status(&status).reason(), "BATCH_TOO_LARGE");
        let at_record_limit = v1::Record { value: vec![0; (1 << 20) - 32].into(), ..Default::default() };
        let over = vec![at_record_limit; BATCH_BYTES_MAX / (1 << 20) + 1];
        let status = raw.produce(request(over, v1::Acks::All, 0)).await.unwrap_err();
        assert_eq!(eddy_client::ClientError::from_status(&status).reason(), "BATCH_TOO_LARGE");

        // The largest batches accepted: the most records, and (nearly) the most bytes, sent with
        // a 1 ms timeout so the server stops waiting while their entries are still replicating.
        let mut big = Vec::new();
        big.push(empty_records(BATCH_RECORDS_MAX));
        let value_bytes = (1 << 20) - 64;
        let count = BATCH_BYTES_MAX / (1 << 20) - 1;
        big.push(vec![v1::Record { value: vec![7; value_bytes].into(), timestamp_ms: 1, ..Default::default() }; count]);
        big.push(empty_records(BATCH_RECORDS_MAX));
        let mut big_records = 0u64;
        for records in big {
            big_records += records.len() as u64;
            match raw.produce(request(records, v1::Acks::All, 1)).await {
                Ok(answer) => assert!(!answer.get_ref().duplicate),
                Err(status) => {
                    let e = eddy_client::ClientError::from_status(&status);
                    assert!(matches!(e.reason(), "TIMEOUT" | "OUTCOME_UNKNOWN"), "unexpected answer: {e}");
                }
            }
        }

        // ACKS_LEADER answers given while those batches may still be replicating.
        let mut leader_acked: BTreeMap<u64, String> = BTreeMap::new();
        for i in 0..50 {
            let value = format!("leader-ack-{i}");
            let records = vec![v1::Record { value: value.clone().into_bytes().into(), ..Default::default() }];
            let answer = client.produce(request(records, v1::Acks::Leader, 0)).await.expect("ACKS_LEADER produce");
            assert!(leader_acked.insert(answer.base_offset, value).is_none(), "an offset was answered twice");
        }

        // The partition keeps committing: an ACKS_ALL produce is acknowledged within the
        // client's retry deadline (60 s), where a wedged partition never answers.
        let last = vec![v1::Record { value: b"after".to_vec().into(), ..Default::default() }];
        let after = client.produce(request(last, v1::Acks::All, 0)).await.expect("the partition still commits");
        let end = after.base_offset + 1;
        assert_eq!(end, big_records + leader_acked.len() as u64 + 1, "every accepted batch committed once");

        // Every ACKS_LEADER answer names the offset its record has.
        let mut offset = 0;
        let mut found = 0;
        while offset < end {
            let fetch = v1::FetchRequest {
                topic: TOPIC.into(),
                partition: 0,
                offset,
                max_bytes: 32 << 20,
                max_records: 100_000,
                max_wait_ms: 0,
                read_from_follower: false,
            };
            let answer = client.fetch(fetch).await.expect("fetch");
            assert!(!answer.records.is_empty(), "no records at offset {offset} below {end}");
            for record in answer.records {
                assert_eq!(record.offset, offset, "offsets are dense");
                if let Some(value) = leader_acked.get(&record.offset) {
                    // Compared, not printed: the record found there may be a megabyte.
                    assert!(
                        record.value == value.as_bytes(),
                        "ACKS_LEADER answered offset {offset} for {value:?}, but it holds a record of {} bytes",
                        record.value.len()
                    );
                    found += 1;
                }
                offset += 1;
            }
        }
        assert_eq!(found, leader_acked.len());
    });
}
