//! The cluster metadata the controller replicates, and the commands that change it.
//!
//! Applying a command is a pure function of the metadata and the command (placement is decided
//! by the leader before it proposes), so every controller replica reaches the same metadata.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;

/// Raft group id of the controller itself. Partition groups get ids from 1 up.
pub const CONTROLLER_GROUP: u64 = 0;

/// A broker the cluster knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: u64,
    /// Address (`host:port`) serving both the client API and the node-to-node services.
    pub address: String,
}

/// Where one partition lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: u32,
    /// The partition's Raft group id, unique in the cluster and never reused.
    pub group_id: u64,
    /// Broker ids holding a replica; the first is the preferred leader.
    pub replicas: Vec<u64>,
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub id: u64,
    pub replication_factor: u32,
    pub partitions: Vec<PartitionInfo>,
    pub configs: BTreeMap<String, String>,
}

/// Everything the controller knows, as of `version` (the Raft index that last changed it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    pub version: u64,
    pub brokers: BTreeMap<u64, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
    pub next_group_id: u64,
    pub next_topic_id: u64,
    /// Groups of deleted topics: the tombstones that allow a broker to delete a replica's data.
    /// A broker deletes a replica only when its group is here, never because its topic is missing
    /// from the metadata it holds (which may be empty, stale, or rolled back).
    pub deleted_groups: BTreeSet<u64>,
}

/// A change to the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerCommand {
    RegisterBroker(BrokerInfo),
    CreateTopic {
        name: String,
        replication_factor: u32,
        /// One replica list per partition, chosen by the leader's placement.
        assignments: Vec<Vec<u64>>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
}

impl std::fmt::Display for ControllerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerCommand::RegisterBroker(b) => {
                write!(f, "register-broker({} at {})", b.id, b.address)
            }
            ControllerCommand::CreateTopic { name, assignments, .. } => {
                write!(f, "create-topic({name}, {} partitions)", assignments.len())
            }
            ControllerCommand::DeleteTopic { name } => write!(f, "delete-topic({name})"),
        }
    }
}

/// The outcome of applying a [`ControllerCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    Done,
    TopicCreated(TopicInfo),
    Rejected(ControllerError),
}

impl ClusterMetadata {
    /// Applies a command at Raft index `index`.
    pub fn apply(&mut self, index: u64, command: &ControllerCommand) -> ControllerResponse {
        let response = match command {
            ControllerCommand::RegisterBroker(broker) => {
                self.brokers.insert(broker.id, broker.clone());
                ControllerResponse::Done
            }
            ControllerCommand::CreateTopic { name, replication_factor, assignments, configs } => {
                if self.topics.contains_key(name) {
                    return ControllerResponse::Rejected(ControllerError::TopicAlreadyExists(name.clone()));
                }
                let first_group = self.next_group_id.max(CONTROLLER_GROUP + 1);
                let partitions = assignments
                    .iter()
                    .enumerate()
                    .map(|(i, replicas)| PartitionInfo {
                        partition: i as u32,
                        group_id: first_group + i as u64,
                        replicas: replicas.clone(),
                    })
                    .collect::<Vec<_>>();
                self.next_group_id = first_group + partitions.len() as u64;
                self.next_topic_id += 1;
                let topic = TopicInfo {
                    name: name.clone(),
                    id: self.next_topic_id,
                    replication_factor: *replication_factor,
                    partitions,
                    configs: configs.clone(),
                };
                self.topics.insert(name.clone(), topic.clone());
                ControllerResponse::TopicCreated(topic)
            }
            ControllerCommand::DeleteTopic { name } => {
                let Some(topic) = self.topics.remove(name) else {
                    return ControllerResponse::Rejected(ControllerError::UnknownTopic(name.clone()));
                };
                self.deleted_groups.extend(topic.partitions.iter().map(|p| p.group_id));
                ControllerResponse::Done
            }
        };
        self.version = index;
        response
    }

    /// Every partition, with its topic, whose replicas include `broker`.
    pub fn partitions_of(&self, broker: u64) -> impl Iterator<Item = (&TopicInfo, &PartitionInfo)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .filter(move |(_, p)| p.replicas.contains(&broker))
    }

    /// Number of replicas each broker holds.
    pub fn replica_counts(&self) -> BTreeMap<u64, u32> {
        let mut counts: BTreeMap<u64, u32> = self.brokers.keys().map(|id| (*id, 0)).collect();
        for topic in self.topics.values() {
            for partition in &topic.partitions {
                for replica in &partition.replicas {
                    *counts.entry(*replica).or_default() += 1;
                }
            }
        }
        counts
    }

    /// Number of preferred-leader (first) replicas each broker holds.
    pub fn preferred_leader_counts(&self) -> BTreeMap<u64, u32> {
        let mut counts: BTreeMap<u64, u32> = self.brokers.keys().map(|id| (*id, 0)).collect();
        for topic in self.topics.values() {
            for partition in &topic.partitions {
                if let Some(first) = partition.replicas.first() {
                    *counts.entry(*first).or_default() += 1;
                }
            }
        }
        counts
    }
}

/// Whether a topic is internal to the cluster (its name starts with `__`, as
/// `__consumer_offsets`): brokers create and write it; clients may only read it.
pub fn is_internal_topic(name: &str) -> bool {
    name.starts_with("__")
}

/// Longest topic name accepted (as Kafka).
pub const TOPIC_NAME_LEN_MAX: usize = 249;

/// Checks a topic name: 1 to 249 characters of ASCII letters, digits, '.', '_' and '-'.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.len() > TOPIC_NAME_LEN_MAX {
        Some(format!("it is longer than {TOPIC_NAME_LEN_MAX} characters"))
    } else if name == "." || name == ".." {
        Some("'.' and '..' are reserved".to_string())
    } else {
        name.chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("it contains {c:?}; use letters, digits, '.', '_' and '-'"))
    };
    match problem {
        Some(reason) => Err(ControllerError::InvalidTopicName { name: name.to_string(), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_assigns_fresh_group_ids_and_rejects_duplicates() {
        let mut md = ClusterMetadata::default();
        let create = |name: &str, n: usize| ControllerCommand::CreateTopic {
            name: name.into(),
            replication_factor: 1,
            assignments: vec![vec![1]; n],
            configs: BTreeMap::new(),
        };
        let ControllerResponse::TopicCreated(a) = md.apply(1, &create("a", 2)) else { panic!() };
        assert_eq!(a.partitions.iter().map(|p| p.group_id).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            md.apply(2, &create("a", 1)),
            ControllerResponse::Rejected(ControllerError::TopicAlreadyExists("a".into()))
        );
        md.apply(3, &ControllerCommand::DeleteTopic { name: "a".into() });
        assert_eq!(md.deleted_groups, BTreeSet::from([1, 2]), "a deletion leaves tombstones");
        let ControllerResponse::TopicCreated(b) = md.apply(4, &create("a", 1)) else { panic!() };
        assert_eq!(b.partitions[0].group_id, 3, "group ids are never reused");
        assert_eq!(md.version, 4);
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_created-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
