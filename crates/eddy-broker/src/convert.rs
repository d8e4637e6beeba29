//! Conversions between the wire types of `eddy.v1` and the broker's domain types, in one place.

use eddy_controller::TopicInfo;
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

pub fn producer_from_wire(producer: v1::ProducerIdentity) -> ProducerBatch {
    ProducerBatch { producer_id: producer.producer_id, epoch: producer.epoch, first_sequence: producer.first_sequence }
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
            })
            .collect(),
        configs: topic.configs.clone().into_iter().collect(),
    }
}
