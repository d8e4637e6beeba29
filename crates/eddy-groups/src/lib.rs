//! Eddy's consumer groups (the KIP-848 protocol: the coordinator assigns, members reconcile).
//!
//! Start here, in this order:
//! - [`assignor`]: the sticky, balanced target assignment.
//! - [`state`]: a coordinator's [`Groups`] and the [`GroupRecord`]s, the only way it changes.
//! - [`protocol`]: the rules of heartbeats, commits, resets and deletions, as plans of records.
//! - [`codec`]: how records are stored in the offsets topic.
//!
//! Where the coordinator runs: groups are spread over the partitions of the internal topic
//! [`OFFSETS_TOPIC`] by [`shard_of`]; the leader of a group's partition coordinates it, writing
//! records to that partition and rebuilding its state from the partition's log when it becomes
//! leader (the broker's `coordinator` module). So group state and offsets are replicated by the
//! same Raft groups as any partition and survive what a partition survives.
//!
//! Architecture invariant: this crate is pure logic (no IO, no clock, no randomness): the same
//! records applied in the same order give the same state on every replica.

pub mod assignor;
pub mod codec;
pub mod error;
pub mod protocol;
pub mod state;

use serde::{Deserialize, Serialize};

pub use assignor::{Assignment, AssignmentSpec, assign};
pub use error::GroupError;
pub use protocol::{Commit, Heartbeat, HeartbeatAnswer, JOIN_EPOCH, LEAVE_EPOCH, Plan, validate_group_id};
pub use state::{CommittedOffset, Group, GroupPhase, GroupRecord, Groups, Member};

/// The internal topic holding every group's records, partitioned by [`shard_of`].
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Partitions of [`OFFSETS_TOPIC`] when a broker creates it (its `--offsets-partitions`).
pub const OFFSETS_PARTITIONS_DEFAULT: u32 = 6;
/// Longest group id accepted, in bytes.
pub const GROUP_ID_LEN_MAX: usize = 255;

/// A member missing heartbeats this long is removed (its `session_timeout_ms` when it sets none).
pub const SESSION_TIMEOUT_MS_DEFAULT: u64 = 10_000;
pub const SESSION_TIMEOUT_MS_MIN: u64 = 1_000;
pub const SESSION_TIMEOUT_MS_MAX: u64 = 300_000;
/// A member that has not given up revoked partitions this long is removed.
pub const REBALANCE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
pub const REBALANCE_TIMEOUT_MS_MIN: u64 = 1_000;
pub const REBALANCE_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// How often members heartbeat: this, or a third of the member's session timeout if shorter
/// (the coordinator tells each member).
pub const HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 1_000;

const _: () = assert!(HEARTBEAT_INTERVAL_MS_DEFAULT * 3 <= SESSION_TIMEOUT_MS_DEFAULT);
const _: () = assert!(SESSION_TIMEOUT_MS_MIN <= SESSION_TIMEOUT_MS_DEFAULT);
const _: () = assert!(SESSION_TIMEOUT_MS_DEFAULT <= SESSION_TIMEOUT_MS_MAX);

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: u32) -> Self {
        Self { topic: topic.to_string(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// The partition of [`OFFSETS_TOPIC`] that coordinates `group_id`, among `partitions`.
///
/// FNV-1a over the id's bytes: fixed forever, since changing it would move every group to a
/// partition that does not hold its records.
pub fn shard_of(group_id: &str, partitions: u32) -> u32 {
    assert!(partitions > 0, "the offsets topic has partitions");
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in group_id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Fixed values: a change here moves groups away from their records.
        assert_eq!(shard_of("", 6), (0xcbf2_9ce4_8422_2325u64 % 6) as u32);
        assert_eq!(shard_of("orders", 1), 0);
        let mut hits = [0u32; 6];
        for i in 0..600 {
            hits[shard_of(&format!("group-{i}"), 6) as usize] += 1;
        }
        assert!(hits.iter().all(|n| *n > 60), "{hits:?}");
    }
}
