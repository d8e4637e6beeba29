//! The partition replicas this broker hosts, by Raft group id: opened and removed by the
//! reconciler, looked up by the API service and the Raft transport.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use eddy_partition::Replica;

use crate::cluster_view::ClusterView;
use crate::error::BrokerError;

/// The local replicas. The lock is held only to look up or change the map, never across an await.
#[derive(Debug, Default)]
pub struct LocalReplicas {
    by_group: RwLock<BTreeMap<u64, Arc<Replica>>>,
}

impl LocalReplicas {
    /// The replica of `group`, if this broker hosts it.
    pub fn get(&self, group: u64) -> Option<Arc<Replica>> {
        self.by_group.read().expect("replicas lock").get(&group).cloned()
    }

    /// Every local replica, in group order.
    pub fn all(&self) -> Vec<Arc<Replica>> {
        self.by_group.read().expect("replicas lock").values().cloned().collect()
    }

    /// The groups of every local replica.
    pub fn groups(&self) -> Vec<u64> {
        self.by_group.read().expect("replicas lock").keys().copied().collect()
    }

    /// Who leads a Raft group: the local Raft's view when this broker hosts a replica, else the
    /// controller's table (only leaders that are alive).
    pub fn leader_of(&self, view: &ClusterView, group: u64) -> Option<u64> {
        match self.get(group) {
            Some(replica) => replica.leadership().leader,
            None => view.leaders.get(&group).map(|l| l.leader).filter(|id| view.alive.contains(id)),
        }
    }

    pub(crate) fn insert(&self, replica: Arc<Replica>) {
        let previous = self.by_group.write().expect("replicas lock").insert(replica.group, replica);
        assert!(previous.is_none(), "a group's replica was opened twice");
    }

    pub(crate) fn remove(&self, group: u64) -> Option<Arc<Replica>> {
        self.by_group.write().expect("replicas lock").remove(&group)
    }
}

/// Runs a storage read on the blocking pool when the store may wait on disk (`reads_block`),
/// inline otherwise.
pub(crate) async fn storage_read<T, F>(reads_block: bool, read: F) -> Result<T, BrokerError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if reads_block {
        tokio::task::spawn_blocking(read)
            .await
            .map_err(|e| BrokerError::Internal(format!("a storage read task failed: {e}")))
    } else {
        Ok(read())
    }
}
