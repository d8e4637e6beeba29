//! Every reason code an Eddy request can fail with: one table, read by the broker (which status
//! to answer), the client (what to retry, whether a failed produce may have written), the CLI, the
//! simulation and the docs (the table in docs/api.md is generated from [`Reason::markdown_table`]
//! and a test keeps the two equal).
//!
//! A reason travels as the `reason` of the `google.rpc.ErrorInfo` in a gRPC status's details,
//! with domain [`ERROR_DOMAIN`]. Codes are an API: they are added, never renamed or reused.

use std::collections::HashMap;
use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of every Eddy error.
pub const ERROR_DOMAIN: &str = "eddy.dev";

/// A status carrying `reason` as its `google.rpc.ErrorInfo`, with `metadata` (the keys the
/// reason's table row names).
pub fn status(reason: Reason, message: impl Into<String>, metadata: HashMap<String, String>) -> Status {
    let details = ErrorDetails::with_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
    Status::with_error_details(reason.grpc_code(), message, details)
}

/// What is known of one reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReasonSpec {
    /// The stable code, as sent.
    pub code: &'static str,
    /// The gRPC status code a broker answers it with; `None` for failures the client detects
    /// itself without an answer.
    pub grpc: Option<Code>,
    /// Sending the same request again may succeed.
    pub retriable: bool,
    /// The request certainly changed nothing: it was refused before anything was written. A
    /// produce that failed with a definite reason may be resent even without idempotence.
    pub definite: bool,
    /// One sentence for operators and client authors.
    pub meaning: &'static str,
    /// The keys of the ErrorInfo metadata it carries, if any.
    pub details: &'static str,
}

/// A reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NotLeader,
    LeaderNotAvailable,
    UnknownTopic,
    UnknownPartition,
    MetadataNotReady,
    OffsetOutOfRange,
    RecordTooLarge,
    BatchTooLarge,
    SchemaValidationFailed,
    InvalidRequest,
    TopicAlreadyExists,
    InvalidTopicName,
    InvalidPartitions,
    InvalidReplicationFactor,
    InvalidConfig,
    NotEnoughReplicas,
    OutOfOrderSequence,
    ProducerFenced,
    UnknownProducerId,
    InternalTopic,
    NotCoordinator,
    CoordinatorLoading,
    InvalidGroupId,
    UnknownMember,
    UnknownBroker,
    FencedMemberEpoch,
    StaleMemberEpoch,
    PartitionNotAssigned,
    OffsetRegression,
    GroupNotEmpty,
    GroupNotFound,
    Timeout,
    OutcomeUnknown,
    NotController,
    ControllerUnavailable,
    ShuttingDown,
    StorageError,
    Internal,
    Unreachable,
    InvalidArgument,
    Busy,
    Unauthenticated,
    PermissionDenied,
    UnknownUser,
}

impl Reason {
    /// Every reason, in the order of the documented table.
    pub const ALL: [Reason; 44] = [
        Reason::NotLeader,
        Reason::LeaderNotAvailable,
        Reason::UnknownTopic,
        Reason::UnknownPartition,
        Reason::MetadataNotReady,
        Reason::OffsetOutOfRange,
        Reason::RecordTooLarge,
        Reason::BatchTooLarge,
        Reason::SchemaValidationFailed,
        Reason::InvalidRequest,
        Reason::TopicAlreadyExists,
        Reason::InvalidTopicName,
        Reason::InvalidPartitions,
        Reason::InvalidReplicationFactor,
        Reason::InvalidConfig,
        Reason::NotEnoughReplicas,
        Reason::OutOfOrderSequence,
        Reason::ProducerFenced,
        Reason::UnknownProducerId,
        Reason::InternalTopic,
        Reason::NotCoordinator,
        Reason::CoordinatorLoading,
        Reason::InvalidGroupId,
        Reason::UnknownMember,
        Reason::UnknownBroker,
        Reason::FencedMemberEpoch,
        Reason::StaleMemberEpoch,
        Reason::PartitionNotAssigned,
        Reason::OffsetRegression,
        Reason::GroupNotEmpty,
        Reason::GroupNotFound,
        Reason::Timeout,
        Reason::OutcomeUnknown,
        Reason::NotController,
        Reason::ControllerUnavailable,
        Reason::ShuttingDown,
        Reason::StorageError,
        Reason::Internal,
        Reason::Unreachable,
        Reason::InvalidArgument,
        Reason::Busy,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::UnknownUser,
    ];

    /// The table row of this reason.
    pub const fn spec(self) -> ReasonSpec {
        const fn row(
            code: &'static str,
            grpc: Option<Code>,
            retriable: bool,
            definite: bool,
            meaning: &'static str,
            details: &'static str,
        ) -> ReasonSpec {
            ReasonSpec { code, grpc, retriable, definite, meaning, details }
        }
        use Code::*;
        match self {
            Reason::NotLeader => row(
                "NOT_LEADER",
                Some(Unavailable),
                true,
                true,
                "this broker does not lead the partition; retry at the leader",
                "`leader_id`, `leader_address` when known",
            ),
            Reason::LeaderNotAvailable => row(
                "LEADER_NOT_AVAILABLE",
                Some(Unavailable),
                true,
                true,
                "the partition's leader has not yet applied an entry of its term (it was just elected), its \
                 leader lease lapsed (no quorum acknowledged it lately), or earlier ACKS_LEADER proposals did \
                 not settle in time; retry shortly",
                "",
            ),
            Reason::UnknownTopic => row(
                "UNKNOWN_TOPIC",
                Some(NotFound),
                false,
                true,
                "the controller's committed metadata has no such topic (answered only by a broker whose \
                 metadata the controller confirmed within the broker session)",
                "",
            ),
            Reason::UnknownPartition => row(
                "UNKNOWN_PARTITION",
                Some(NotFound),
                false,
                true,
                "the topic has fewer partitions (same rule as `UNKNOWN_TOPIC`)",
                "",
            ),
            Reason::MetadataNotReady => row(
                "METADATA_NOT_READY",
                Some(Unavailable),
                true,
                true,
                "this broker cannot tell whether the topic exists: it has not received the controller's \
                 metadata since it started, or not within the broker session; retry, or ask another broker. \
                 `ListTopics` answers it too rather than a list that may be short, and `DescribeCluster` \
                 before the first metadata",
                "",
            ),
            Reason::OffsetOutOfRange => row(
                "OFFSET_OUT_OF_RANGE",
                Some(OutOfRange),
                false,
                true,
                "the offset is below the log start or above the high watermark",
                "`log_start_offset`, `high_watermark`",
            ),
            Reason::RecordTooLarge => row(
                "RECORD_TOO_LARGE",
                Some(InvalidArgument),
                false,
                true,
                "a record exceeds the record size limit",
                "",
            ),
            Reason::BatchTooLarge => row(
                "BATCH_TOO_LARGE",
                Some(InvalidArgument),
                false,
                true,
                "the batch exceeds the batch size or record count limit (the message names which)",
                "",
            ),
            Reason::SchemaValidationFailed => row(
                "SCHEMA_VALIDATION_FAILED",
                Some(InvalidArgument),
                false,
                true,
                "the topic validates records against the schema registry (`value.schema.validation`, \
                 `key.schema.validation`) and a record's key or value carries no registered schema id, one not \
                 registered under the subject its strategy names, or bytes that are not a value of that schema; \
                 nothing of the batch was appended",
                "`record_index`, `field` (key or value)",
            ),
            Reason::InvalidRequest => row(
                "INVALID_REQUEST",
                Some(InvalidArgument),
                false,
                true,
                "the request is malformed: e.g. an empty batch, an unknown enum value",
                "",
            ),
            Reason::TopicAlreadyExists => {
                row("TOPIC_ALREADY_EXISTS", Some(AlreadyExists), false, true, "a topic of that name exists", "")
            }
            Reason::InvalidTopicName => row(
                "INVALID_TOPIC_NAME",
                Some(InvalidArgument),
                false,
                true,
                "names are 1-249 characters of `[A-Za-z0-9._-]`",
                "",
            ),
            Reason::InvalidPartitions => row(
                "INVALID_PARTITIONS",
                Some(InvalidArgument),
                false,
                true,
                "the partition count is outside 1 to the configured maximum",
                "",
            ),
            Reason::InvalidReplicationFactor => row(
                "INVALID_REPLICATION_FACTOR",
                Some(InvalidArgument),
                false,
                true,
                "the replication factor must be at least 1 and at most the live brokers",
                "",
            ),
            Reason::InvalidConfig => {
                row("INVALID_CONFIG", Some(InvalidArgument), false, true, "a topic config is unknown or invalid", "")
            }
            Reason::NotEnoughReplicas => row(
                "NOT_ENOUGH_REPLICAS",
                Some(Unavailable),
                true,
                true,
                "fewer replicas of the partition are live and caught up than the topic's `min.insync.replicas`: the \
                 ACKS_ALL batch was refused before it was written",
                "`in_sync`, `required`",
            ),
            Reason::OutOfOrderSequence => row(
                "OUT_OF_ORDER_SEQUENCE",
                Some(FailedPrecondition),
                false,
                true,
                "an idempotent producer's batch does not follow its last one",
                "`expected_sequence`",
            ),
            Reason::ProducerFenced => row(
                "PRODUCER_FENCED",
                Some(FailedPrecondition),
                false,
                true,
                "a newer epoch of this producer id exists (another instance initialized with the same producer \
                 name, or this one re-initialized): this instance must stop",
                "",
            ),
            Reason::UnknownProducerId => row(
                "UNKNOWN_PRODUCER_ID",
                Some(FailedPrecondition),
                false,
                true,
                "the partition holds no deduplication window for this producer (it expired after \
                 `producer_idle_expiry_ms` idle, or was evicted) and the batch does not start one: \
                 re-initialize the producer (InitProducer) and send again from sequence 0",
                "",
            ),
            Reason::InternalTopic => row(
                "INTERNAL_TOPIC",
                Some(InvalidArgument),
                false,
                true,
                "the topic is internal to the cluster (names starting with `__`, such as `__consumer_offsets`): \
                 clients may read it but not create, delete or write it",
                "",
            ),
            Reason::NotCoordinator => row(
                "NOT_COORDINATOR",
                Some(Unavailable),
                true,
                true,
                "this broker does not coordinate the group (it does not lead the group's partition of \
                 `__consumer_offsets`); retry at the coordinator",
                "`coordinator_id`, `coordinator_address` when known",
            ),
            Reason::CoordinatorLoading => row(
                "COORDINATOR_LOADING",
                Some(Unavailable),
                true,
                true,
                "the coordinator is rebuilding its groups from its offsets partition (it was just elected, or \
                 an earlier write's outcome is not yet known); retry shortly",
                "",
            ),
            Reason::InvalidGroupId => row(
                "INVALID_GROUP_ID",
                Some(InvalidArgument),
                false,
                true,
                "group ids are 1-255 bytes without control characters",
                "",
            ),
            Reason::UnknownBroker => row(
                "UNKNOWN_BROKER",
                Some(NotFound),
                false,
                true,
                "no broker with that id is registered in the cluster",
                "",
            ),
            Reason::UnknownMember => row(
                "UNKNOWN_MEMBER",
                Some(NotFound),
                false,
                true,
                "the member is not in the group (it left, or its session expired and its partitions went to \
                 others); rejoin with member epoch 0. Also a commit from outside the group protocol to a group \
                 with members",
                "",
            ),
            Reason::FencedMemberEpoch => row(
                "FENCED_MEMBER_EPOCH",
                Some(FailedPrecondition),
                false,
                true,
                "the member's epoch is not the coordinator's: it is a zombie of an earlier incarnation; give up \
                 every partition and rejoin with member epoch 0",
                "",
            ),
            Reason::StaleMemberEpoch => row(
                "STALE_MEMBER_EPOCH",
                Some(FailedPrecondition),
                true,
                true,
                "a commit carried the member's previous epoch: heartbeat to learn the current one, then commit \
                 again if the member still owns the partitions",
                "",
            ),
            Reason::PartitionNotAssigned => row(
                "PARTITION_NOT_ASSIGNED",
                Some(FailedPrecondition),
                false,
                true,
                "a commit names a partition the member does not own",
                "",
            ),
            Reason::OffsetRegression => row(
                "OFFSET_REGRESSION",
                Some(FailedPrecondition),
                false,
                true,
                "a commit is below the group's committed offset: committed offsets never move back except by \
                 `ResetOffsets`",
                "",
            ),
            Reason::GroupNotEmpty => row(
                "GROUP_NOT_EMPTY",
                Some(FailedPrecondition),
                false,
                true,
                "the group has members: stop them (or wait for their sessions to expire) before resetting \
                 offsets or deleting it",
                "",
            ),
            Reason::GroupNotFound => {
                row("GROUP_NOT_FOUND", Some(NotFound), false, true, "the group has no members and no offsets", "")
            }
            Reason::Timeout => row(
                "TIMEOUT",
                Some(DeadlineExceeded),
                true,
                false,
                "the batch did not commit in time; its outcome is unknown (retry with the same producer identity). \
                 The client also reports its own deadline this way",
                "",
            ),
            Reason::OutcomeUnknown => row(
                "OUTCOME_UNKNOWN",
                Some(Unavailable),
                true,
                false,
                "the batch was appended but the leadership moved (or the group stopped) before it committed: the \
                 next leader may or may not keep it (retry with the same producer identity)",
                "",
            ),
            Reason::NotController => row(
                "NOT_CONTROLLER",
                Some(Unavailable),
                true,
                false,
                "the node asked is not the controller leader and could not forward the request",
                "",
            ),
            Reason::ControllerUnavailable => row(
                "CONTROLLER_UNAVAILABLE",
                Some(Unavailable),
                true,
                false,
                "the controller has no leader right now, or did not answer in time",
                "",
            ),
            Reason::ShuttingDown => {
                row("SHUTTING_DOWN", Some(Unavailable), true, true, "the partition's Raft group is stopping", "")
            }
            Reason::StorageError => row(
                "STORAGE_ERROR",
                Some(Internal),
                false,
                false,
                "the broker's storage failed while serving the request",
                "",
            ),
            Reason::Internal => row(
                "INTERNAL",
                Some(Internal),
                false,
                false,
                "the broker failed in a way that is neither the request's fault nor storage's (the message says \
                 what): a bug, or nodes of incompatible versions",
                "",
            ),
            Reason::Unreachable => row(
                "UNREACHABLE",
                None,
                true,
                false,
                "the client reached no broker, or lost the connection before an answer",
                "",
            ),
            Reason::InvalidArgument => {
                row("INVALID_ARGUMENT", None, false, true, "the client refused the input before sending anything", "")
            }
            Reason::Busy => row(
                "BUSY",
                Some(ResourceExhausted),
                true,
                true,
                "the broker is at one of its bounds (concurrent long polls, bytes of fetch answers in progress) and \
                 refused the request without doing it; retry after the time given",
                "`limit`, `retry_after_ms`",
            ),
            Reason::Unauthenticated => row(
                "UNAUTHENTICATED",
                Some(Unauthenticated),
                false,
                true,
                "authentication is on and the request carried no credentials the broker accepts (a user name and \
                 password, an API key, or a client certificate)",
                "",
            ),
            Reason::PermissionDenied => row(
                "PERMISSION_DENIED",
                Some(PermissionDenied),
                false,
                true,
                "the caller is authenticated but no ACL allows it this operation on this resource (or one denies it)",
                "`principal`, `operation`, `resource_type`, `resource`",
            ),
            Reason::UnknownUser => {
                row("UNKNOWN_USER", Some(NotFound), false, true, "no user with that name exists", "")
            }
        }
    }

    /// The stable code, as sent.
    pub const fn as_str(self) -> &'static str {
        self.spec().code
    }

    /// The reason of a code; `None` for a code this build does not know (from a newer broker).
    pub fn from_code(code: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == code)
    }

    /// The gRPC status code a broker answers it with; `Internal` for client-side reasons.
    pub const fn grpc_code(self) -> Code {
        match self.spec().grpc {
            Some(code) => code,
            None => Code::Internal,
        }
    }

    /// Sending the same request again may succeed.
    pub const fn is_retriable(self) -> bool {
        self.spec().retriable
    }

    /// The request certainly changed nothing.
    pub const fn is_definite(self) -> bool {
        self.spec().definite
    }

    /// The documented table (docs/api.md holds a copy that a test keeps equal).
    pub fn markdown_table() -> String {
        let mut out = String::from(
            "| reason | gRPC code | retriable | definite | meaning | details (ErrorInfo metadata) |\n\
             |--------|-----------|-----------|----------|---------|------------------------------|\n",
        );
        for reason in Reason::ALL {
            let spec = reason.spec();
            let grpc = spec.grpc.map_or("(client)".to_string(), grpc_name);
            let yes_no = |b: bool| if b { "yes" } else { "no" };
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} |\n",
                spec.code,
                grpc,
                yes_no(spec.retriable),
                yes_no(spec.definite),
                spec.meaning,
                spec.details
            ));
        }
        out
    }
}

/// The canonical upper-case name of a gRPC code (`NOT_FOUND`).
fn grpc_name(code: Code) -> String {
    let camel = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let codes: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(codes.len(), Reason::ALL.len(), "two reasons share a code");
        for reason in Reason::ALL {
            assert_eq!(Reason::from_code(reason.as_str()), Some(reason));
            assert!(reason.as_str().chars().all(|c| c.is_ascii_uppercase() || c == '_'), "{reason}");
        }
        assert_eq!(Reason::from_code("SOMETHING_NEWER"), None);
        assert_eq!(grpc_name(Code::FailedPrecondition), "FAILED_PRECONDITION");
    }

    #[test]
    fn what_is_retried_is_never_mistaken_for_a_final_answer() {
        // An answer given before anything was written is definite; the ones a retry may repair
        // and that say nothing of the write are exactly the unknown outcomes.
        for reason in [Reason::Timeout, Reason::OutcomeUnknown, Reason::Unreachable] {
            assert!(reason.is_retriable() && !reason.is_definite(), "{reason}");
        }
        for reason in [Reason::NotLeader, Reason::LeaderNotAvailable, Reason::MetadataNotReady, Reason::ShuttingDown] {
            assert!(reason.is_retriable() && reason.is_definite(), "{reason}");
        }
    }

    /// docs/api.md holds the table between two markers. Run with `EDDY_BLESS=1` to rewrite it.
    #[test]
    fn docs_hold_the_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
        let docs = std::fs::read_to_string(path).expect("docs/api.md");
        let (begin, end) = ("<!-- reasons:begin (generated from eddy_proto::Reason) -->\n", "<!-- reasons:end -->");
        let start = docs.find(begin).expect("the begin marker") + begin.len();
        let stop = docs.find(end).expect("the end marker");
        let table = Reason::markdown_table();
        if docs[start..stop] != table {
            if std::env::var_os("EDDY_BLESS").is_some() {
                std::fs::write(path, format!("{}{table}{}", &docs[..start], &docs[stop..])).expect("write docs");
            } else {
                panic!("docs/api.md's reason table differs from eddy_proto::Reason; rerun with EDDY_BLESS=1");
            }
        }
    }
}
