//! Why a group request was refused.

use crate::TopicPartition;

/// A refused group request. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("group id {group_id:?} is invalid: {reason}")]
    InvalidGroupId { group_id: String, reason: &'static str },
    #[error("{0}")]
    InvalidRequest(String),
    #[error("member {member_id:?} is not a member of group {group_id:?} (it left or its session expired): rejoin")]
    UnknownMember { group_id: String, member_id: String },
    #[error(
        "member {member_id:?} of group {group_id:?} sent epoch {sent} but is at epoch {current}: it was fenced; rejoin with epoch 0"
    )]
    FencedMemberEpoch { group_id: String, member_id: String, sent: i64, current: u64 },
    #[error(
        "member {member_id:?} of group {group_id:?} sent epoch {sent} but is at epoch {current}: heartbeat, then retry"
    )]
    StaleMemberEpoch { group_id: String, member_id: String, sent: i64, current: u64 },
    #[error("group {group_id:?} has {members} members: stop them (or wait for their sessions to expire) first")]
    GroupNotEmpty { group_id: String, members: usize },
    #[error("group {0:?} does not exist")]
    GroupNotFound(String),
    #[error("member {member_id:?} of group {group_id:?} does not own {partition}")]
    NotAssigned { group_id: String, member_id: String, partition: TopicPartition },
    #[error(
        "group {group_id:?} committed offset {committed} for {partition}; {requested} would move it back (only `eddy group reset-offsets` does that)"
    )]
    OffsetRegression { group_id: String, partition: TopicPartition, committed: u64, requested: u64 },
}
