//! Writes the binary part of the seed corpus: valid inputs of each binary target, encoded by the
//! project's own types, so the fuzzer starts from what brokers really send and store. Run from
//! `fuzz/` with `cargo run --example seeds`; the text seeds (configurations, schemas, bodies,
//! PEM files) are committed as they are.

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use eddy_controller::ControllerRequest;
use eddy_partition::dedup::ProducerState;
use eddy_partition::store::IndexEntry;
use eddy_partition::{PartitionCommand, PartitionTypes, ProducerBatch, Record, RecordBatch};
use eddy_proto::internal::{ControllerEnvelope, RaftEnvelope};
use eddy_proto::v1;
use eddy_raft::transport::{RpcKind, encode};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::vote::leader_id_std::CommittedLeaderId;
use openraft::{EntryPayload, LogId, Vote};
use prost::Message;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let write = |target: &str, name: &str, selector: Option<u8>, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).expect("the corpus directory is writable");
        let mut input = selector.map(|s| vec![s]).unwrap_or_default();
        input.extend_from_slice(bytes);
        std::fs::write(dir.join(name), input).expect("the corpus is writable");
    };

    // grpc_request: the selector byte is the target's message index.
    let produce = v1::ProduceRequest {
        topic: "orders".into(),
        partition: 1,
        records: vec![
            v1::Record {
                key: Some(Bytes::from_static(b"order-7")),
                value: Bytes::from_static(br#"{"type":"OrderPlaced","order_id":7}"#),
                headers: vec![v1::Header { key: "ce_id".into(), value: Bytes::from_static(b"e-1") }],
                timestamp_ms: 1_700_000_000_000,
            },
            v1::Record { key: None, value: Bytes::new(), headers: vec![], timestamp_ms: 0 },
        ],
        acks: v1::Acks::All as i32,
        producer: Some(v1::ProducerIdentity { producer_id: 7, epoch: 1, first_sequence: 40 }),
        timeout_ms: 5_000,
    };
    write("grpc_request", "produce", Some(0), &produce.encode_to_vec());
    let fetch = v1::FetchRequest { topic: "orders".into(), partition: 1, offset: 10, ..Default::default() };
    write("grpc_request", "fetch", Some(1), &fetch.encode_to_vec());
    let create = v1::CreateTopicRequest {
        name: "orders".into(),
        partitions: 3,
        replication_factor: 3,
        configs: [("retention.ms".to_string(), "86400000".to_string())].into(),
    };
    write("grpc_request", "create_topic", Some(4), &create.encode_to_vec());
    let acl = v1::Acl {
        principal: "User:alice".into(),
        resource_type: 1,
        pattern_type: 1,
        name: "orders".into(),
        operation: 2,
        permission: 1,
    };
    write("grpc_request", "create_acls", Some(6), &v1::CreateAclsRequest { acls: vec![acl] }.encode_to_vec());
    let filter = v1::DeleteAclsRequest {
        filter: Some(v1::AclFilter { principal: Some("User:alice".into()), ..Default::default() }),
    };
    write("grpc_request", "delete_acls", Some(7), &filter.encode_to_vec());
    let offsets = v1::FetchOffsetsRequest {
        group_id: "billing".into(),
        partitions: vec![v1::TopicPartitions { topic: "orders".into(), partitions: vec![0, 1, 2] }],
    };
    write("grpc_request", "fetch_offsets", Some(10), &offsets.encode_to_vec());

    // stored_batch and raft_rpc: a partition's data entry, as stored and as replicated.
    let batch = RecordBatch {
        records: vec![
            Record {
                key: Some(Bytes::from_static(b"order-7")),
                value: Bytes::from_static(br#"{"order_id":7}"#),
                headers: vec![("ce_id".into(), Bytes::from_static(b"e-1"))],
                timestamp_ms: 1_700_000_000_000,
            },
            Record { key: None, value: Bytes::from_static(b"x"), headers: vec![], timestamp_ms: 1_700_000_000_001 },
        ],
        producer: Some(ProducerBatch { producer_id: 7, epoch: 1, first_sequence: 40, idle_expiry_ms: 60_000 }),
        append_time_ms: 1_700_000_000_002,
        expected_base_offset: None,
    };
    let log_id = |index| -> LogIdOf<PartitionTypes> { LogId::new(CommittedLeaderId::new(3), index) };
    let entry: EntryOf<PartitionTypes> =
        openraft::Entry { log_id: log_id(12), payload: EntryPayload::Normal(PartitionCommand::Append(batch)) };
    write("stored_batch", "append", None, &encode(&entry));
    let blank: EntryOf<PartitionTypes> = openraft::Entry { log_id: log_id(13), payload: EntryPayload::Blank };
    write("stored_batch", "blank", None, &encode(&blank));

    let vote: VoteOf<PartitionTypes> = Vote::new_committed(3, 1);
    let append = AppendEntriesRequest::<PartitionTypes> {
        vote,
        prev_log_id: Some(log_id(11)),
        entries: vec![entry.clone()],
        leader_commit: Some(log_id(11)),
    };
    let envelope = |kind: RpcKind, payload: Vec<u8>| {
        RaftEnvelope { group_id: 42, kind: kind as u32, payload: payload.into() }.encode_to_vec()
    };
    write("raft_rpc", "append_entries", Some(0), &envelope(RpcKind::AppendEntries, encode(&append)));
    let vote_request = VoteRequest::<PartitionTypes> {
        vote: Vote::new(4, 2),
        last_log_id: Some(log_id(12)),
        leadership_transfer: false,
    };
    write("raft_rpc", "vote", Some(0), &envelope(RpcKind::Vote, encode(&vote_request)));
    let mut bare = vec![(RpcKind::AppendEntries as u8) << 1];
    bare.extend(encode(&append));
    write("raft_rpc", "append_entries_bare", Some(2), &bare);
    let mut ping = vec![(RpcKind::NodePing as u8) << 1];
    ping.extend(encode(&vec![1u64, 5, 9]));
    write("raft_rpc", "node_ping_bare", Some(2), &ping);
    let request = ControllerRequest::CreateTopic {
        name: "orders".into(),
        partitions: 3,
        replication_factor: 3,
        configs: BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]),
    };
    write(
        "raft_rpc",
        "controller_create_topic",
        Some(1),
        &ControllerEnvelope { payload: encode(&request).into() }.encode_to_vec(),
    );
    write(
        "raft_rpc",
        "controller_alter_topic",
        Some(3),
        &encode(&ControllerRequest::AlterTopic {
            name: "orders".into(),
            set: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            delete: vec!["max.message.bytes".into()],
            partitions: Some(6),
        }),
    );

    // storage_values: the selector byte is the value's kind.
    let index = IndexEntry { raft_index: 12, record_count: 2, size_bytes: 180 };
    write("storage_values", "index_entry", Some(0), &encode(&index));
    write("storage_values", "time_index", Some(1), &encode(&40u64));
    write(
        "storage_values",
        "producer_state",
        Some(3),
        &encode(&ProducerState { epoch: 1, last_append_ms: 5, ..Default::default() }),
    );
    write("storage_values", "vote", Some(4), &encode(&vote));
    write("storage_values", "committed", Some(5), &encode(&Some(log_id(12))));
    write("storage_values", "partition_entry", Some(9), &encode(&entry));
    let mut key = 42u64.to_be_bytes().to_vec();
    key.extend_from_slice(&12u64.to_be_bytes());
    write("storage_values", "key", Some(10), &key);
}
