//! Raft timing.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Raft timing for a group, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftTiming {
    pub heartbeat_interval_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        Self { heartbeat_interval_ms: 200, election_timeout_min_ms: 1000, election_timeout_max_ms: 2000 }
    }
}

/// How a group's Raft log is kept from growing for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compaction {
    /// The log is the partition log: only retention deletes from it. The state machine says
    /// when a snapshot exists that the log may be purged up to (the whole way: nothing is kept
    /// below it), and openraft never snapshots on its own.
    Retention,
    /// A snapshot of the state machine every `every` applied entries; the last `keep` entries
    /// below it stay, so a follower slightly behind catches up from the log.
    Snapshots { every: u64, keep: u64 },
}

impl RaftTiming {
    /// The openraft configuration for a group.
    pub fn openraft_config(
        &self,
        cluster_name: &str,
        compaction: Compaction,
    ) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
        let (snapshot_policy, max_in_snapshot_log_to_keep) = match compaction {
            Compaction::Retention => (openraft::SnapshotPolicy::Never, 0),
            Compaction::Snapshots { every, keep } => (openraft::SnapshotPolicy::LogsSinceLast(every), keep),
        };
        let config = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // A 3-replica group should not need a full RTT per 300 entries on a busy partition.
            max_payload_entries: 1024,
            snapshot_policy,
            max_in_snapshot_log_to_keep,
            purge_batch_size: 1,
            install_snapshot_timeout: 10_000,
            enable_pre_vote: Some(true),
            // A partition replica whose broker lost its disk comes back with an empty log. Its
            // leader then hears a conflict below what that follower had matched; openraft's
            // default treats that as a bug and panics the leader's Raft core, taking the
            // partition's leader down with it (tests/retention.rs hit it when the wiped
            // replica returned before the leader had purged past its old position). Allowed,
            // the leader starts that follower's replication over (entries or a snapshot). The
            // controller group keeps the default: its voters are configured, not replaced.
            allow_log_reversion: Some(matches!(compaction, Compaction::Retention)),
            // A leader that restarts must win a new election in a higher term, never resume its
            // old term. A leader sends entries before its own fsync; if power fails before it,
            // the restarted leader has lost them, and resuming the same term it would write
            // other entries at the same indexes with the same (term, index) ids, which a
            // follower that synced the first ones takes for a match and keeps: replicas diverge
            // and a committed record can be replaced (the crash filesystem test found it:
            // tests/crash_disk.rs, docs/testing.md). openraft restores leadership by default.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        Ok(Arc::new(config.validate()?))
    }
}
