//! What this broker knows of the cluster: the metadata the controller replicated, which brokers
//! are alive and who leads each partition. Refreshed by every heartbeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use eddy_controller::{ClusterMetadata, Leadership, PartitionInfo, TopicInfo};

use crate::error::BrokerError;

/// A snapshot of the cluster as this broker sees it.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub metadata: Arc<ClusterMetadata>,
    pub alive: BTreeSet<u64>,
    pub leaders: BTreeMap<u64, Leadership>,
    pub controller_leader: Option<u64>,
}

impl ClusterView {
    /// The topic, or UNKNOWN_TOPIC.
    pub fn topic(&self, name: &str) -> Result<&TopicInfo, BrokerError> {
        self.metadata.topics.get(name).ok_or_else(|| BrokerError::UnknownTopic(name.to_string()))
    }

    /// The partition, or UNKNOWN_TOPIC / UNKNOWN_PARTITION.
    pub fn partition(&self, topic: &str, partition: u32) -> Result<&PartitionInfo, BrokerError> {
        let info = self.topic(topic)?;
        info.partitions.get(partition as usize).ok_or(BrokerError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            count: info.partitions.len() as u32,
        })
    }

    /// A broker's address.
    pub fn address_of(&self, broker: u64) -> Option<String> {
        self.metadata.brokers.get(&broker).map(|b| b.address.clone())
    }
}
