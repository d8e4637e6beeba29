//! The broker's errors and their one mapping to gRPC: a status code, a message, and a
//! google.rpc.ErrorInfo whose `reason` is the stable code clients act on.

use std::collections::HashMap;

use eddy_controller::ControllerError;
use eddy_groups::GroupError;
use tonic::Status;

pub use eddy_proto::ERROR_DOMAIN;
use eddy_proto::Reason;

/// Everything a client request can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("this broker does not lead {topic}/{partition}")]
    NotLeader { topic: String, partition: u32, leader_id: Option<u64>, leader_address: Option<String> },
    #[error("the leader of {topic}/{partition} is still catching up; retry shortly")]
    LeaderNotAvailable { topic: String, partition: u32 },
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    /// This broker cannot tell whether a topic or partition exists: it has not heard the
    /// controller's metadata since it started, or not for longer than the broker session.
    #[error("{}", metadata_not_ready_message(*synced_ms_ago))]
    MetadataNotReady { synced_ms_ago: Option<u64> },
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition { topic: String, partition: u32, count: u32 },
    #[error(
        "offset {offset} is out of range for {topic}/{partition}: the log holds [{log_start_offset}, {high_watermark})"
    )]
    OffsetOutOfRange { topic: String, partition: u32, offset: u64, log_start_offset: u64, high_watermark: u64 },
    #[error("record {index} of the batch is {size} bytes, above the limit of {limit} bytes")]
    RecordTooLarge { index: usize, size: usize, limit: u32 },
    #[error("the batch is {size} bytes, above the limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: u32 },
    #[error("the batch holds {count} records, above the limit of {limit} records; split it")]
    TooManyRecords { count: usize, limit: u32 },
    #[error("record {index} of the batch was refused by the topic's schema validation ({field}): {reason}")]
    SchemaValidation { index: usize, field: &'static str, reason: String },
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("authentication is required: {0}")]
    Unauthenticated(String),
    #[error("{principal} may not {operation} {resource_type} {resource:?}")]
    PermissionDenied { principal: String, operation: String, resource_type: String, resource: String },
    #[error("batch sequence {received} does not follow the producer's last one; expected {expected}")]
    OutOfOrderSequence { expected: u64, received: u64 },
    #[error("the producer was fenced by a newer epoch {current_epoch}")]
    ProducerFenced { current_epoch: u32 },
    #[error(
        "{topic}/{partition} holds no window for this producer (it expired or was evicted) and the batch does not start \
         one; re-initialize the producer"
    )]
    UnknownProducerId { topic: String, partition: u32 },
    #[error(
        "{topic}/{partition} has {in_sync} live, caught-up replicas; its min.insync.replicas is {required}, so an \
         acks=all produce is refused"
    )]
    NotEnoughReplicas { topic: String, partition: u32, in_sync: usize, required: u32 },
    #[error("the request timed out: {0}")]
    Timeout(String),
    /// The batch was appended but leadership changed (or the group stopped) before it
    /// committed: the next leader may or may not keep it.
    #[error("the outcome of the batch is unknown: {0}")]
    OutcomeUnknown(String),
    /// Reading the partition's records or indexes failed.
    #[error("reading {what} failed: {error}")]
    Storage { what: &'static str, error: String },
    /// A failure that is neither the request's nor storage's: the message says what.
    #[error("internal error: {0}")]
    Internal(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// A request refused at one of the broker's bounds (`limit` names it), before doing anything.
    #[error("the broker is at its limit of {limit}; retry after {retry_after_ms} ms")]
    Busy { limit: &'static str, retry_after_ms: u64 },
    #[error(transparent)]
    Controller(#[from] ControllerError),
    #[error("topic {0:?} is internal to the cluster: clients may read it, not {1} it")]
    InternalTopic(String, &'static str),
    #[error("this broker does not coordinate group {group_id:?}")]
    NotCoordinator { group_id: String, coordinator_id: Option<u64>, coordinator_address: Option<String> },
    #[error("the coordinator of group {group_id:?} is loading its groups; retry shortly")]
    CoordinatorLoading { group_id: String },
    #[error(transparent)]
    Group(#[from] GroupError),
}

impl BrokerError {
    /// The stable reason code; its row in [`Reason`]'s table gives the gRPC status code.
    pub fn code(&self) -> Reason {
        match self {
            BrokerError::NotLeader { .. } => Reason::NotLeader,
            BrokerError::LeaderNotAvailable { .. } => Reason::LeaderNotAvailable,
            BrokerError::UnknownTopic(_) => Reason::UnknownTopic,
            BrokerError::MetadataNotReady { .. } => Reason::MetadataNotReady,
            BrokerError::UnknownPartition { .. } => Reason::UnknownPartition,
            BrokerError::OffsetOutOfRange { .. } => Reason::OffsetOutOfRange,
            BrokerError::RecordTooLarge { .. } => Reason::RecordTooLarge,
            BrokerError::BatchTooLarge { .. } | BrokerError::TooManyRecords { .. } => Reason::BatchTooLarge,
            BrokerError::SchemaValidation { .. } => Reason::SchemaValidationFailed,
            BrokerError::InvalidRequest(_) => Reason::InvalidRequest,
            BrokerError::OutOfOrderSequence { .. } => Reason::OutOfOrderSequence,
            BrokerError::ProducerFenced { .. } => Reason::ProducerFenced,
            BrokerError::UnknownProducerId { .. } => Reason::UnknownProducerId,
            BrokerError::NotEnoughReplicas { .. } => Reason::NotEnoughReplicas,
            BrokerError::Timeout(_) => Reason::Timeout,
            BrokerError::OutcomeUnknown(_) => Reason::OutcomeUnknown,
            BrokerError::Storage { .. } => Reason::StorageError,
            BrokerError::Internal(_) => Reason::Internal,
            BrokerError::Busy { .. } => Reason::Busy,
            BrokerError::Unauthenticated(_) => Reason::Unauthenticated,
            BrokerError::PermissionDenied { .. } => Reason::PermissionDenied,
            BrokerError::ShuttingDown => Reason::ShuttingDown,
            BrokerError::Controller(e) => e.code(),
            BrokerError::InternalTopic(..) => Reason::InternalTopic,
            BrokerError::NotCoordinator { .. } => Reason::NotCoordinator,
            BrokerError::CoordinatorLoading { .. } => Reason::CoordinatorLoading,
            BrokerError::Group(e) => match e {
                GroupError::InvalidGroupId { .. } => Reason::InvalidGroupId,
                GroupError::InvalidRequest(_) => Reason::InvalidRequest,
                GroupError::UnknownMember { .. } => Reason::UnknownMember,
                GroupError::FencedMemberEpoch { .. } => Reason::FencedMemberEpoch,
                GroupError::StaleMemberEpoch { .. } => Reason::StaleMemberEpoch,
                GroupError::GroupNotEmpty { .. } => Reason::GroupNotEmpty,
                GroupError::GroupNotFound(_) => Reason::GroupNotFound,
                GroupError::NotAssigned { .. } => Reason::PartitionNotAssigned,
                GroupError::OffsetRegression { .. } => Reason::OffsetRegression,
            },
        }
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        match self {
            BrokerError::NotLeader { leader_id, leader_address, .. } => {
                if let Some(id) = leader_id {
                    m.insert("leader_id".into(), id.to_string());
                }
                if let Some(address) = leader_address {
                    m.insert("leader_address".into(), address.clone());
                }
            }
            BrokerError::OffsetOutOfRange { log_start_offset, high_watermark, .. } => {
                m.insert("log_start_offset".into(), log_start_offset.to_string());
                m.insert("high_watermark".into(), high_watermark.to_string());
            }
            BrokerError::NotCoordinator { coordinator_id, coordinator_address, .. } => {
                if let Some(id) = coordinator_id {
                    m.insert("coordinator_id".into(), id.to_string());
                }
                if let Some(address) = coordinator_address {
                    m.insert("coordinator_address".into(), address.clone());
                }
            }
            BrokerError::NotEnoughReplicas { in_sync, required, .. } => {
                m.insert("in_sync".into(), in_sync.to_string());
                m.insert("required".into(), required.to_string());
            }
            BrokerError::OutOfOrderSequence { expected, .. } => {
                m.insert("expected_sequence".into(), expected.to_string());
            }
            BrokerError::SchemaValidation { index, field, .. } => {
                m.insert("record_index".into(), index.to_string());
                m.insert("field".into(), field.to_string());
            }
            BrokerError::Busy { limit, retry_after_ms } => {
                m.insert("limit".into(), limit.to_string());
                m.insert("retry_after_ms".into(), retry_after_ms.to_string());
            }
            BrokerError::PermissionDenied { principal, operation, resource_type, resource } => {
                m.insert("principal".into(), principal.clone());
                m.insert("operation".into(), operation.clone());
                m.insert("resource_type".into(), resource_type.clone());
                m.insert("resource".into(), resource.clone());
            }
            _ => {}
        }
        m
    }
}

fn metadata_not_ready_message(synced_ms_ago: Option<u64>) -> String {
    match synced_ms_ago {
        None => "this broker has not received the cluster metadata yet; retry, or ask another broker".into(),
        Some(ms) => format!(
            "this broker last heard the cluster metadata {ms} ms ago and cannot tell whether it is current; retry, \
             or ask another broker"
        ),
    }
}

impl From<BrokerError> for Status {
    fn from(error: BrokerError) -> Status {
        eddy_proto::reason::status(error.code(), error.to_string(), error.metadata())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn not_leader_carries_the_leader() {
        let status: Status = BrokerError::NotLeader {
            topic: "t".into(),
            partition: 0,
            leader_id: Some(2),
            leader_address: Some("127.0.0.1:9093".into()),
        }
        .into();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "NOT_LEADER");
        assert_eq!(info.metadata["leader_address"], "127.0.0.1:9093");
    }
}
