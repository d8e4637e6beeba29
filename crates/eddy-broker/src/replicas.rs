//! The partition replicas this broker hosts, by Raft group id: opened and removed by the
//! reconciler, looked up by the API service and the Raft transport.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use eddy_partition::Replica;

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

    pub(crate) fn insert(&self, replica: Arc<Replica>) {
        let previous = self.by_group.write().expect("replicas lock").insert(replica.group, replica);
        assert!(previous.is_none(), "a group's replica was opened twice");
    }

    pub(crate) fn remove(&self, group: u64) -> Option<Arc<Replica>> {
        self.by_group.write().expect("replicas lock").remove(&group)
    }
}
