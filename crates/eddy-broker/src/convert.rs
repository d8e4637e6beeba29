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

/// An ACL from the wire; INVALID_REQUEST naming the field that is missing or wrong.
pub fn acl_from_wire(acl: v1::Acl) -> Result<eddy_auth::AclBinding, crate::error::BrokerError> {
    let bad = |what: &str| crate::error::BrokerError::InvalidRequest(format!("an ACL needs {what}"));
    let principal = eddy_auth::Principal::parse(&acl.principal).map_err(|e| bad(&e.to_string()))?;
    if acl.name.is_empty() {
        return Err(bad("a resource name (or * for all)"));
    }
    Ok(eddy_auth::AclBinding {
        principal,
        resource_type: resource_type_from_wire(acl.resource_type).ok_or_else(|| bad("a resource type"))?,
        pattern: pattern_from_wire(acl.pattern_type).ok_or_else(|| bad("a pattern type"))?,
        name: acl.name,
        operation: operation_from_wire(acl.operation).ok_or_else(|| bad("an operation"))?,
        permission: permission_from_wire(acl.permission).ok_or_else(|| bad("a permission (allow or deny)"))?,
    })
}

/// An ACL filter from the wire: unset fields match anything.
pub fn acl_filter_from_wire(filter: v1::AclFilter) -> Result<eddy_auth::AclFilter, crate::error::BrokerError> {
    let principal = match filter.principal {
        Some(p) => Some(
            eddy_auth::Principal::parse(&p).map_err(|e| crate::error::BrokerError::InvalidRequest(e.to_string()))?,
        ),
        None => None,
    };
    Ok(eddy_auth::AclFilter {
        principal,
        resource_type: resource_type_from_wire(filter.resource_type),
        pattern: pattern_from_wire(filter.pattern_type),
        name: filter.name,
        operation: operation_from_wire(filter.operation),
        permission: permission_from_wire(filter.permission),
    })
}

pub fn acl_to_wire(acl: &eddy_auth::AclBinding) -> v1::Acl {
    use eddy_auth::{Operation, PatternType, Permission, ResourceType};
    v1::Acl {
        principal: acl.principal.to_string(),
        resource_type: match acl.resource_type {
            ResourceType::Topic => v1::AclResourceType::Topic,
            ResourceType::Group => v1::AclResourceType::Group,
            ResourceType::Cluster => v1::AclResourceType::Cluster,
            ResourceType::Subject => v1::AclResourceType::Subject,
        } as i32,
        pattern_type: match acl.pattern {
            PatternType::Literal => v1::AclPatternType::Literal,
            PatternType::Prefixed => v1::AclPatternType::Prefixed,
        } as i32,
        name: acl.name.clone(),
        operation: match acl.operation {
            Operation::Read => v1::AclOperation::Read,
            Operation::Write => v1::AclOperation::Write,
            Operation::Create => v1::AclOperation::Create,
            Operation::Delete => v1::AclOperation::Delete,
            Operation::Describe => v1::AclOperation::Describe,
            Operation::Alter => v1::AclOperation::Alter,
            Operation::All => v1::AclOperation::All,
        } as i32,
        permission: match acl.permission {
            Permission::Allow => v1::AclPermission::Allow,
            Permission::Deny => v1::AclPermission::Deny,
        } as i32,
    }
}

fn resource_type_from_wire(value: i32) -> Option<eddy_auth::ResourceType> {
    use eddy_auth::ResourceType;
    match v1::AclResourceType::try_from(value).ok()? {
        v1::AclResourceType::Topic => Some(ResourceType::Topic),
        v1::AclResourceType::Group => Some(ResourceType::Group),
        v1::AclResourceType::Cluster => Some(ResourceType::Cluster),
        v1::AclResourceType::Subject => Some(ResourceType::Subject),
        v1::AclResourceType::Unspecified => None,
    }
}

fn pattern_from_wire(value: i32) -> Option<eddy_auth::PatternType> {
    match v1::AclPatternType::try_from(value).ok()? {
        v1::AclPatternType::Literal => Some(eddy_auth::PatternType::Literal),
        v1::AclPatternType::Prefixed => Some(eddy_auth::PatternType::Prefixed),
        v1::AclPatternType::Unspecified => None,
    }
}

fn operation_from_wire(value: i32) -> Option<eddy_auth::Operation> {
    use eddy_auth::Operation;
    match v1::AclOperation::try_from(value).ok()? {
        v1::AclOperation::Read => Some(Operation::Read),
        v1::AclOperation::Write => Some(Operation::Write),
        v1::AclOperation::Create => Some(Operation::Create),
        v1::AclOperation::Delete => Some(Operation::Delete),
        v1::AclOperation::Describe => Some(Operation::Describe),
        v1::AclOperation::Alter => Some(Operation::Alter),
        v1::AclOperation::All => Some(Operation::All),
        v1::AclOperation::Unspecified => None,
    }
}

fn permission_from_wire(value: i32) -> Option<eddy_auth::Permission> {
    match v1::AclPermission::try_from(value).ok()? {
        v1::AclPermission::Allow => Some(eddy_auth::Permission::Allow),
        v1::AclPermission::Deny => Some(eddy_auth::Permission::Deny),
        v1::AclPermission::Unspecified => None,
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
