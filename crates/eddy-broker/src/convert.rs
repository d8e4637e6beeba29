//! Conversions between the wire types of `eddy.v1` and the broker's domain types, in one place.

use std::collections::BTreeSet;

use eddy_controller::TopicInfo;
use eddy_groups::{CommittedOffset, TopicPartition};
use eddy_partition::{ProducerBatch, Record};
use eddy_proto::v1;

/// A produced record, stamped with `now_ms` when the producer left its timestamp at 0.
pub fn record_from_wire(record: v1::Record, now_ms: i64) -> Record {
    Record {
        key: record.key,
        value: record.value,
        headers: record.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        timestamp_ms: if record.timestamp_ms == 0 { now_ms } else { record.timestamp_ms },
    }
}

/// A produced batch's producer identity, with the idle expiry this broker is configured with.
pub fn producer_from_wire(producer: v1::ProducerIdentity, idle_expiry_ms: u64) -> ProducerBatch {
    ProducerBatch {
        producer_id: producer.producer_id,
        epoch: producer.epoch,
        first_sequence: producer.first_sequence,
        idle_expiry_ms,
    }
}

pub fn stored_record_to_wire(offset: u64, record: Record) -> v1::StoredRecord {
    v1::StoredRecord {
        offset,
        key: record.key,
        value: record.value,
        headers: record.headers.into_iter().map(|(key, value)| v1::Header { key, value }).collect(),
        timestamp_ms: record.timestamp_ms,
    }
}

/// The static part of a topic's description; leaders and offsets are filled in by the caller.
pub fn topic_to_wire(topic: &TopicInfo) -> v1::TopicDescription {
    v1::TopicDescription {
        name: topic.name.clone(),
        replication_factor: topic.replication_factor,
        partitions: topic
            .partitions
            .iter()
            .map(|p| v1::PartitionDescription {
                partition: p.partition,
                leader: None,
                leader_address: String::new(),
                replicas: p.replicas.clone(),
                log_start_offset: None,
                high_watermark: None,
                isr: Vec::new(),
                target_replicas: p.target.clone().unwrap_or_default(),
            })
            .collect(),
        configs: topic.configs.clone().into_iter().collect(),
    }
}

/// Partitions grouped by topic, as the wire carries them.
pub fn partitions_to_wire<'a>(partitions: impl IntoIterator<Item = &'a TopicPartition>) -> Vec<v1::TopicPartitions> {
    v1::TopicPartitions::group(partitions.into_iter().map(|tp| (tp.topic.as_str(), tp.partition)))
}

pub fn partitions_from_wire(topics: Vec<v1::TopicPartitions>) -> BTreeSet<TopicPartition> {
    topics.into_iter().flat_map(|t| t.partitions.into_iter().map(move |p| TopicPartition::new(&t.topic, p))).collect()
}

pub fn committed_to_wire(tp: &TopicPartition, committed: &CommittedOffset) -> v1::CommittedOffset {
    v1::CommittedOffset {
        topic: tp.topic.clone(),
        partition: tp.partition,
        offset: committed.offset,
        metadata: committed.metadata.clone(),
        commit_timestamp_ms: committed.commit_timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// The producer counts a record as produced, the broker as stored: the two must agree, or
    /// the producer could build a batch the broker refuses.
    #[test]
    fn a_record_counts_the_same_on_the_wire_and_stored() {
        let wire = v1::Record {
            key: Some(Bytes::from_static(b"order-7")),
            value: Bytes::from(vec![7u8; 1000]),
            headers: vec![v1::Header { key: "trace".into(), value: Bytes::from_static(b"abc") }],
            timestamp_ms: 5,
        };
        let counted = eddy_proto::wire_record_size_bytes(&wire);
        assert_eq!(counted, 7 + 1000 + (5 + 3 + eddy_proto::HEADER_OVERHEAD_BYTES) + eddy_proto::RECORD_OVERHEAD_BYTES);
        assert_eq!(record_from_wire(wire, 0).size_bytes(), counted);
    }
}
