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

impl RaftTiming {
    /// The openraft configuration for a group. Partitions never snapshot or purge on their own:
    /// their Raft log is the partition log, so purging it is retention's decision, not Raft's.
    pub fn openraft_config(&self, cluster_name: &str) -> Result<Arc<openraft::Config>, openraft::ConfigError> {
        let config = openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // A 3-replica group should not need a full RTT per 300 entries on a busy partition.
            max_payload_entries: 1024,
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: u64::MAX,
            install_snapshot_timeout: 10_000,
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        Ok(Arc::new(config.validate()?))
    }
}
