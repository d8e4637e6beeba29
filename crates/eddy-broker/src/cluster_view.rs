//! What this broker knows of the cluster: the metadata the controller replicated, which brokers
//! are alive and who leads each partition. Refreshed by every heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::{ClusterMetadata, Leadership, PartitionInfo, TopicInfo};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::error::BrokerError;

/// A snapshot of the cluster as this broker sees it.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub metadata: Arc<ClusterMetadata>,
    /// The controller term that served `metadata` (0 before the first answer).
    pub metadata_term: u64,
    /// When the controller leader last confirmed that `metadata` is its own; `None` until the
    /// first answer of this boot.
    pub synced_at: Option<Instant>,
    /// How long a confirmation stays good: past it, the controller may have changed the metadata
    /// without this broker hearing of it.
    pub sync_valid_for: Duration,
    pub alive: BTreeSet<u64>,
    pub leaders: BTreeMap<u64, Leadership>,
    pub controller_leader: Option<u64>,
}

impl ClusterView {
    /// The view of a broker that has not heard from the controller yet.
    pub fn unsynced(sync_valid_for: Duration) -> Self {
        Self { sync_valid_for, ..Self::default() }
    }

    /// Whether the metadata is known to match the controller's committed metadata, as of less
    /// than `sync_valid_for` ago. Only then may "no such topic" be answered from it.
    pub fn is_current(&self) -> bool {
        self.synced_at.is_some_and(|at| at.elapsed() <= self.sync_valid_for)
    }

    /// METADATA_NOT_READY when the metadata is not current, so an answer of absence is not
    /// trusted; `absent` otherwise.
    fn absent_or_not_ready(&self, absent: BrokerError) -> BrokerError {
        if self.is_current() { absent } else { self.not_ready() }
    }

    fn not_ready(&self) -> BrokerError {
        BrokerError::MetadataNotReady { synced_ms_ago: self.synced_at.map(|at| at.elapsed().as_millis() as u64) }
    }

    /// The topic; UNKNOWN_TOPIC only when current metadata has no such topic (the controller's
    /// committed metadata lacks it), METADATA_NOT_READY when this broker cannot tell.
    pub fn topic(&self, name: &str) -> Result<&TopicInfo, BrokerError> {
        self.metadata
            .topics
            .get(name)
            .ok_or_else(|| self.absent_or_not_ready(BrokerError::UnknownTopic(name.to_string())))
    }

    /// The partition, or UNKNOWN_TOPIC / UNKNOWN_PARTITION / METADATA_NOT_READY as for
    /// [`Self::topic`].
    pub fn partition(&self, topic: &str, partition: u32) -> Result<&PartitionInfo, BrokerError> {
        let info = self.topic(topic)?;
        info.partitions.get(partition as usize).ok_or_else(|| {
            self.absent_or_not_ready(BrokerError::UnknownPartition {
                topic: topic.to_string(),
                partition,
                count: info.partitions.len() as u32,
            })
        })
    }

    /// The metadata, for an answer that lists what exists (topics): METADATA_NOT_READY unless
    /// current, so a list is never short for lack of knowledge.
    pub fn current_metadata(&self) -> Result<&ClusterMetadata, BrokerError> {
        match self.is_current() {
            true => Ok(&self.metadata),
            false => Err(self.not_ready()),
        }
    }

    /// The metadata as last heard, for describing the cluster as this broker sees it (useful
    /// when it is cut off from the controller): METADATA_NOT_READY only before the first answer.
    pub fn synced_metadata(&self) -> Result<&ClusterMetadata, BrokerError> {
        match self.synced_at {
            Some(_) => Ok(&self.metadata),
            None => Err(BrokerError::MetadataNotReady { synced_ms_ago: None }),
        }
    }

    /// A broker's client address (what clients are told to reach it at).
    pub fn address_of(&self, broker: u64) -> Option<String> {
        self.metadata.brokers.get(&broker).map(|b| b.address.clone())
    }
}

/// What request handlers know of the cluster: the current view, a way to wait for a newer one,
/// and a way to ask for one now (a heartbeat to the controller).
#[derive(Debug, Clone)]
pub struct ClusterWatch {
    views: watch::Receiver<Arc<ClusterView>>,
    heartbeat_now: Arc<Notify>,
}

impl ClusterWatch {
    pub(crate) fn new(views: watch::Receiver<Arc<ClusterView>>, heartbeat_now: Arc<Notify>) -> Self {
        Self { views, heartbeat_now }
    }

    /// The view as of now.
    pub fn current(&self) -> Arc<ClusterView> {
        self.views.borrow().clone()
    }

    /// Asks for a heartbeat now and waits up to `timeout` for a view in which `done` holds (after
    /// a metadata change this broker made, so the same client's next request sees its write).
    pub async fn refresh_until(&self, timeout: Duration, done: impl Fn(&ClusterView) -> bool) {
        let mut views = self.views.clone();
        self.heartbeat_now.notify_one();
        let _ = tokio::time::timeout(timeout, views.wait_for(|v| done(v))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_proto::Reason;

    fn metadata_with_topic() -> Arc<ClusterMetadata> {
        let mut metadata = ClusterMetadata { version: 7, ..ClusterMetadata::default() };
        metadata.topics.insert(
            "t".into(),
            TopicInfo {
                name: "t".into(),
                id: 1,
                replication_factor: 1,
                partitions: vec![PartitionInfo { partition: 0, group_id: 1, replicas: vec![1], target: None }],
                configs: BTreeMap::new(),
            },
        );
        Arc::new(metadata)
    }

    #[test]
    fn absence_is_reported_only_from_current_metadata() {
        let mut view = ClusterView::unsynced(Duration::from_secs(6));
        assert_eq!(view.topic("t").unwrap_err().code(), Reason::MetadataNotReady, "never synced");
        assert_eq!(view.synced_metadata().unwrap_err().code(), Reason::MetadataNotReady);
        assert_eq!(view.current_metadata().unwrap_err().code(), Reason::MetadataNotReady);

        view.metadata = metadata_with_topic();
        view.synced_at = Some(Instant::now());
        assert!(view.topic("t").is_ok());
        assert_eq!(view.topic("u").unwrap_err().code(), Reason::UnknownTopic);
        assert_eq!(view.partition("t", 1).unwrap_err().code(), Reason::UnknownPartition);

        view.synced_at = Some(Instant::now() - Duration::from_secs(7));
        assert!(view.topic("t").is_ok(), "a known topic is still served from stale metadata");
        assert_eq!(view.topic("u").unwrap_err().code(), Reason::MetadataNotReady, "stale");
        assert_eq!(view.partition("t", 1).unwrap_err().code(), Reason::MetadataNotReady, "stale");
        assert_eq!(view.current_metadata().unwrap_err().code(), Reason::MetadataNotReady, "stale");
        assert!(view.synced_metadata().is_ok(), "describing needs one sync, not a current one");
    }
}
