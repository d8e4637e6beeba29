//! The broker's errors and their one mapping to gRPC: a status code, a message, and a
//! google.rpc.ErrorInfo whose `reason` is the stable code clients act on.

use std::collections::HashMap;

use eddy_controller::ControllerError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every Eddy error.
pub const ERROR_DOMAIN: &str = "eddy.dev";

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
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("batch sequence {received} does not follow the producer's last one; expected {expected}")]
    OutOfOrderSequence { expected: u64, received: u64 },
    #[error("the producer was fenced by a newer epoch {current_epoch}")]
    ProducerFenced { current_epoch: u32 },
    #[error("the request timed out: {0}")]
    Timeout(String),
    /// The batch was appended but leadership changed (or the group stopped) before it
    /// committed: the next leader may or may not keep it.
    #[error("the outcome of the batch is unknown: {0}")]
    OutcomeUnknown(String),
    #[error("storage failed: {0}")]
    Storage(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Controller(#[from] ControllerError),
}

impl BrokerError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            BrokerError::NotLeader { .. } => "NOT_LEADER",
            BrokerError::LeaderNotAvailable { .. } => "LEADER_NOT_AVAILABLE",
            BrokerError::UnknownTopic(_) => "UNKNOWN_TOPIC",
            BrokerError::MetadataNotReady { .. } => "METADATA_NOT_READY",
            BrokerError::UnknownPartition { .. } => "UNKNOWN_PARTITION",
            BrokerError::OffsetOutOfRange { .. } => "OFFSET_OUT_OF_RANGE",
            BrokerError::RecordTooLarge { .. } => "RECORD_TOO_LARGE",
            BrokerError::BatchTooLarge { .. } | BrokerError::TooManyRecords { .. } => "BATCH_TOO_LARGE",
            BrokerError::InvalidRequest(_) => "INVALID_REQUEST",
            BrokerError::OutOfOrderSequence { .. } => "OUT_OF_ORDER_SEQUENCE",
            BrokerError::ProducerFenced { .. } => "PRODUCER_FENCED",
            BrokerError::Timeout(_) => "TIMEOUT",
            BrokerError::OutcomeUnknown(_) => "OUTCOME_UNKNOWN",
            BrokerError::Storage(_) => "STORAGE_ERROR",
            BrokerError::ShuttingDown => "SHUTTING_DOWN",
            BrokerError::Controller(e) => e.code(),
        }
    }

    fn grpc_code(&self) -> Code {
        match self {
            BrokerError::NotLeader { .. }
            | BrokerError::LeaderNotAvailable { .. }
            | BrokerError::ShuttingDown
            | BrokerError::MetadataNotReady { .. }
            | BrokerError::OutcomeUnknown(_) => Code::Unavailable,
            BrokerError::UnknownTopic(_) | BrokerError::UnknownPartition { .. } => Code::NotFound,
            BrokerError::OffsetOutOfRange { .. } => Code::OutOfRange,
            BrokerError::RecordTooLarge { .. }
            | BrokerError::BatchTooLarge { .. }
            | BrokerError::TooManyRecords { .. }
            | BrokerError::InvalidRequest(_) => Code::InvalidArgument,
            BrokerError::OutOfOrderSequence { .. } | BrokerError::ProducerFenced { .. } => Code::FailedPrecondition,
            BrokerError::Timeout(_) => Code::DeadlineExceeded,
            BrokerError::Storage(_) => Code::Internal,
            BrokerError::Controller(e) => match e {
                ControllerError::TopicAlreadyExists(_) => Code::AlreadyExists,
                ControllerError::UnknownTopic(_) => Code::NotFound,
                ControllerError::InvalidTopicName { .. }
                | ControllerError::InvalidPartitions { .. }
                | ControllerError::InvalidReplicationFactor { .. }
                | ControllerError::InvalidConfig(_) => Code::InvalidArgument,
                ControllerError::NotController { .. } | ControllerError::Unavailable(_) => Code::Unavailable,
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
            BrokerError::OutOfOrderSequence { expected, .. } => {
                m.insert("expected_sequence".into(), expected.to_string());
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
        let details = ErrorDetails::with_error_info(error.code(), ERROR_DOMAIN, error.metadata());
        Status::with_error_details(error.grpc_code(), error.to_string(), details)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_leader_carries_the_leader() {
        let status: Status = BrokerError::NotLeader {
            topic: "t".into(),
            partition: 0,
            leader_id: Some(2),
            leader_address: Some("127.0.0.1:9093".into()),
        }
        .into();
        assert_eq!(status.code(), Code::Unavailable);
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!(info.reason, "NOT_LEADER");
        assert_eq!(info.metadata["leader_address"], "127.0.0.1:9093");
    }
}
