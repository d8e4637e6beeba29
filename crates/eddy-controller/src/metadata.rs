//! The cluster metadata the controller replicates, and the commands that change it.
//!
//! Applying a command is a pure function of the metadata and the command (placement is decided
//! by the leader before it proposes), so every controller replica reaches the same metadata.

use std::collections::{BTreeMap, BTreeSet};

use eddy_schema::RegistryCommand;
use serde::{Deserialize, Serialize};

use crate::error::ControllerError;

/// Raft group id of the controller itself. Partition groups get ids from 1 up.
pub const CONTROLLER_GROUP: u64 = 0;

/// A broker the cluster knows of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: u64,
    /// Address (`host:port`) of the client listener: what clients are told to reach it at.
    pub address: String,
    /// Address (`host:port`) of the inter-broker listener, which alone serves the Raft
    /// transport and the controller RPCs: what other brokers reach it at.
    pub internal_address: String,
    /// The broker's rack (failure domain), when it declared one: a partition's replicas go to
    /// different racks where there are enough.
    pub rack: Option<String>,
    /// The controller has not heard from it within the session timeout: it gets no new
    /// replicas, and its replicas are replaced once it stays fenced for the replacement delay.
    pub fenced: bool,
    /// An operator asked for it to be drained: its replicas move to other brokers and it gets
    /// no new ones.
    pub decommissioning: bool,
}

impl BrokerInfo {
    /// A broker serving clients at `address` and other brokers at `internal_address`, live and
    /// in service.
    pub fn new(id: u64, address: impl Into<String>, internal_address: impl Into<String>) -> Self {
        Self {
            id,
            address: address.into(),
            internal_address: internal_address.into(),
            rack: None,
            fenced: false,
            decommissioning: false,
        }
    }

    /// Whether new replicas may go to it.
    pub fn in_service(&self) -> bool {
        !self.fenced && !self.decommissioning
    }
}

/// Where one partition lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    pub partition: u32,
    /// The partition's Raft group id, unique in the cluster and never reused.
    pub group_id: u64,
    /// Broker ids holding a replica (the Raft group's voters); the first is the preferred leader.
    pub replicas: Vec<u64>,
    /// A membership change under way: the replicas the partition moves to. The brokers added
    /// open a replica, which the partition's leader adds as a learner, lets catch up and then
    /// promotes in one joint-consensus change that also removes the brokers dropped; it then
    /// reports the change done and `replicas` becomes this.
    pub target: Option<Vec<u64>>,
}

impl PartitionInfo {
    /// Whether `broker` holds, or is to hold, a replica.
    pub fn hosted_by(&self, broker: u64) -> bool {
        self.replicas.contains(&broker) || self.target.as_ref().is_some_and(|t| t.contains(&broker))
    }
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
    /// The next producer id to hand out; ids are never reused.
    pub next_producer_id: u64,
    /// Producers initialized with a name, by id: the current epoch of each. An instance of an
    /// older epoch is fenced.
    pub named_producers: BTreeMap<u64, NamedProducer>,
    /// Brokers removed from a partition's replicas by a finished membership change, by group:
    /// the tombstones that allow those brokers to delete their replica's data (as
    /// `deleted_groups` for whole topics). A broker added back leaves the set.
    pub removed_replicas: BTreeMap<u64, BTreeSet<u64>>,
    /// Moves planned by a rebalance, by group, not started yet: the controller starts them a
    /// few at a time.
    pub planned_moves: BTreeMap<u64, Vec<u64>>,
    /// Users and ACLs.
    pub security: crate::security::SecurityState,
}

/// A producer initialized with a name (Kafka's `transactional.id`): every initialization with
/// the name bumps the epoch, fencing the previous instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedProducer {
    pub name: String,
    pub epoch: u32,
    /// The epoch a live instance held when it asked for `epoch` (`None` when a new instance
    /// took it): that instance's retry of the request gets `epoch` again instead of being
    /// fenced by its own first attempt.
    pub bumped_from: Option<u32>,
}

/// A producer id and epoch, as handed to a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdEpoch {
    pub producer_id: u64,
    pub epoch: u32,
}

/// Producer ids a broker takes from the controller at a time, to hand out to unnamed producers
/// without a controller write each (as Kafka's KIP-730 blocks).
pub const PRODUCER_ID_BLOCK: u64 = 1_000;

/// Longest producer name accepted.
pub const PRODUCER_NAME_LEN_MAX: usize = 255;

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
    /// Replaces a topic's configs and adds partitions (one replica list each, placed by the
    /// leader), when the topic is still the one with `topic_id`.
    AlterTopic {
        name: String,
        topic_id: u64,
        configs: BTreeMap<String, String>,
        new_partitions: Vec<Vec<u64>>,
    },
    /// Takes the next `count` producer ids for a broker to hand out.
    AllocateProducerIds {
        count: u64,
    },
    /// Initializes the producer named `name`: a new id at epoch 0 the first time, else the next
    /// epoch of its id. `current`, when given, must be the name's current id and epoch (a live
    /// instance asking for a new epoch after a failure); an older one is fenced.
    InitNamedProducer {
        name: String,
        current: Option<ProducerIdEpoch>,
    },
    /// Fences (the session expired) or unfences (it heartbeats again) a broker.
    SetFenced {
        broker: u64,
        fenced: bool,
    },
    /// Starts draining a broker.
    Decommission {
        broker: u64,
    },
    /// Starts moving a partition to `target` (replacing any move under way or planned for it).
    Reassign {
        group: u64,
        target: Vec<u64>,
    },
    /// The partition's Raft group now has exactly `replicas` as voters: the move is done.
    CompleteReassignment {
        group: u64,
        replicas: Vec<u64>,
    },
    /// Replaces the moves planned by a rebalance.
    PlanMoves {
        moves: BTreeMap<u64, Vec<u64>>,
    },
    /// A change to the schema registry, applied to the registry beside the metadata (see
    /// `eddy_schema::registry`): it does not change the metadata or its version.
    Registry(RegistryCommand),
    /// A change to users or ACLs.
    Security(crate::security::SecurityCommand),
}

impl std::fmt::Display for ControllerCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControllerCommand::RegisterBroker(b) => {
                write!(f, "register-broker({} at {}, internal {})", b.id, b.address, b.internal_address)
            }
            ControllerCommand::CreateTopic { name, assignments, .. } => {
                write!(f, "create-topic({name}, {} partitions)", assignments.len())
            }
            ControllerCommand::DeleteTopic { name } => write!(f, "delete-topic({name})"),
            ControllerCommand::AlterTopic { name, new_partitions, .. } => {
                write!(f, "alter-topic({name}, +{} partitions)", new_partitions.len())
            }
            ControllerCommand::AllocateProducerIds { count } => write!(f, "allocate-producer-ids({count})"),
            ControllerCommand::InitNamedProducer { name, .. } => write!(f, "init-producer({name})"),
            ControllerCommand::SetFenced { broker, fenced } => write!(f, "set-fenced({broker}, {fenced})"),
            ControllerCommand::Decommission { broker } => write!(f, "decommission({broker})"),
            ControllerCommand::Reassign { group, target } => write!(f, "reassign(group {group} to {target:?})"),
            ControllerCommand::CompleteReassignment { group, replicas } => {
                write!(f, "complete-reassignment(group {group}: {replicas:?})")
            }
            ControllerCommand::PlanMoves { moves } => write!(f, "plan-moves({})", moves.len()),
            ControllerCommand::Security(command) => write!(f, "{command}"),
            ControllerCommand::Registry(command) => match command {
                RegistryCommand::Register { subject, schema, .. } => {
                    write!(f, "register-schema({subject}, {}, {} bytes)", schema.schema_type, schema.schema.len())
                }
                RegistryCommand::DeleteVersion { subject, version, permanent } => {
                    write!(f, "delete-schema-version({subject} {version}, permanent {permanent})")
                }
                RegistryCommand::DeleteSubject { subject, permanent } => {
                    write!(f, "delete-subject({subject}, permanent {permanent})")
                }
                RegistryCommand::SetCompatibility { subject, compatibility } => {
                    write!(f, "set-compatibility({}, {compatibility:?})", subject.as_deref().unwrap_or("global"))
                }
            },
        }
    }
}

/// The outcome of applying a [`ControllerCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    Done,
    TopicCreated(TopicInfo),
    /// Producer ids `first..first + count`.
    ProducerIds {
        first: u64,
        count: u64,
    },
    ProducerInitialized(ProducerIdEpoch),
    Registry(Result<eddy_schema::RegistryOutcome, eddy_schema::RegistryError>),
    /// The ACLs a security change deleted.
    AclsDeleted(Vec<eddy_auth::AclBinding>),
    Rejected(ControllerError),
}

impl ClusterMetadata {
    /// Applies a command at Raft index `index`.
    pub fn apply(&mut self, index: u64, command: &ControllerCommand) -> ControllerResponse {
        let response = match command {
            // The state machine applies these to the registry; they never reach the metadata.
            ControllerCommand::Registry(_) => {
                return ControllerResponse::Rejected(ControllerError::Unavailable(
                    "a registry command was applied to the metadata".into(),
                ));
            }
            ControllerCommand::RegisterBroker(broker) => {
                // A registration comes from the live broker itself: it is not fenced, and an
                // operator's decommissioning stands.
                let entry = self.brokers.entry(broker.id).or_insert_with(|| broker.clone());
                entry.address = broker.address.clone();
                entry.internal_address = broker.internal_address.clone();
                entry.rack = broker.rack.clone();
                entry.fenced = false;
                ControllerResponse::Done
            }
            ControllerCommand::SetFenced { broker, fenced } => match self.brokers.get_mut(broker) {
                Some(info) => {
                    info.fenced = *fenced;
                    ControllerResponse::Done
                }
                None => return ControllerResponse::Rejected(ControllerError::UnknownBroker(*broker)),
            },
            ControllerCommand::Decommission { broker } => match self.brokers.get_mut(broker) {
                Some(info) => {
                    info.decommissioning = true;
                    ControllerResponse::Done
                }
                None => return ControllerResponse::Rejected(ControllerError::UnknownBroker(*broker)),
            },
            ControllerCommand::Reassign { group, target } => {
                if let Some(unknown) = target.iter().find(|b| !self.brokers.contains_key(b)) {
                    return ControllerResponse::Rejected(ControllerError::UnknownBroker(*unknown));
                }
                let Some(partition) = self.partition_mut(*group) else {
                    return ControllerResponse::Rejected(ControllerError::UnknownGroup(*group));
                };
                partition.target = (partition.replicas != *target).then(|| target.clone());
                self.planned_moves.remove(group);
                ControllerResponse::Done
            }
            ControllerCommand::CompleteReassignment { group, replicas } => {
                let Some(partition) = self.partition_mut(*group) else {
                    return ControllerResponse::Rejected(ControllerError::UnknownGroup(*group));
                };
                let as_set = |v: &Vec<u64>| v.iter().copied().collect::<BTreeSet<u64>>();
                if partition.target.as_ref().map(as_set) != Some(as_set(replicas)) {
                    return ControllerResponse::Rejected(ControllerError::StaleReassignment(*group));
                }
                let target = partition.target.take().expect("checked above");
                let removed: Vec<u64> = partition.replicas.iter().copied().filter(|b| !target.contains(b)).collect();
                partition.replicas = target;
                let kept = partition.replicas.clone();
                let tombstones = self.removed_replicas.entry(*group).or_default();
                tombstones.extend(removed);
                tombstones.retain(|b| !kept.contains(b));
                if tombstones.is_empty() {
                    self.removed_replicas.remove(group);
                }
                ControllerResponse::Done
            }
            ControllerCommand::PlanMoves { moves } => {
                self.planned_moves = moves.clone();
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
                        target: None,
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
                for partition in &topic.partitions {
                    self.removed_replicas.remove(&partition.group_id);
                    self.planned_moves.remove(&partition.group_id);
                }
                self.deleted_groups.extend(topic.partitions.iter().map(|p| p.group_id));
                ControllerResponse::Done
            }
            ControllerCommand::AlterTopic { name, topic_id, configs, new_partitions } => {
                let Some(topic) = self.topics.get_mut(name).filter(|t| t.id == *topic_id) else {
                    return ControllerResponse::Rejected(ControllerError::UnknownTopic(name.clone()));
                };
                let first_group = self.next_group_id.max(CONTROLLER_GROUP + 1);
                let first_partition = topic.partitions.len() as u32;
                topic.partitions.extend(new_partitions.iter().enumerate().map(|(i, replicas)| PartitionInfo {
                    partition: first_partition + i as u32,
                    group_id: first_group + i as u64,
                    replicas: replicas.clone(),
                    target: None,
                }));
                topic.configs = configs.clone();
                let topic = topic.clone();
                self.next_group_id = first_group + new_partitions.len() as u64;
                ControllerResponse::TopicCreated(topic)
            }
            ControllerCommand::AllocateProducerIds { count } => {
                let first = self.take_producer_ids(*count);
                ControllerResponse::ProducerIds { first, count: *count }
            }
            ControllerCommand::InitNamedProducer { name, current } => match self.init_named_producer(name, *current) {
                Ok(initialized) => ControllerResponse::ProducerInitialized(initialized),
                Err(e) => return ControllerResponse::Rejected(e),
            },
            ControllerCommand::Security(command) => match self.security.apply(command) {
                Ok(deleted) => ControllerResponse::AclsDeleted(deleted),
                Err(e) => return ControllerResponse::Rejected(e),
            },
        };
        self.version = index;
        response
    }

    /// Takes `count` fresh producer ids; returns the first. Id 0 is never handed out.
    fn take_producer_ids(&mut self, count: u64) -> u64 {
        let first = self.next_producer_id.max(1);
        self.next_producer_id = first + count;
        first
    }

    fn init_named_producer(
        &mut self,
        name: &str,
        current: Option<ProducerIdEpoch>,
    ) -> Result<ProducerIdEpoch, ControllerError> {
        let existing = self.named_producers.iter().find(|(_, p)| p.name == name).map(|(id, p)| (*id, p.clone()));
        if let (Some((producer_id, known)), Some(current)) = (&existing, current) {
            if current.producer_id == *producer_id && known.bumped_from == Some(current.epoch) {
                // A retry of the request that already moved the name to its epoch.
                return Ok(ProducerIdEpoch { producer_id: *producer_id, epoch: known.epoch });
            }
            if current.producer_id != *producer_id || current.epoch != known.epoch {
                return Err(ControllerError::ProducerFenced {
                    producer_id: current.producer_id,
                    epoch: current.epoch,
                    current_epoch: known.epoch,
                });
            }
        }
        let next = match &existing {
            Some((producer_id, known)) if known.epoch < u32::MAX => {
                ProducerIdEpoch { producer_id: *producer_id, epoch: known.epoch + 1 }
            }
            // A name seen for the first time, or whose epochs are used up: a new id.
            _ => {
                if let Some((old, _)) = existing {
                    self.named_producers.remove(&old);
                }
                ProducerIdEpoch { producer_id: self.take_producer_ids(1), epoch: 0 }
            }
        };
        let bumped_from = current.filter(|c| c.producer_id == next.producer_id).map(|c| c.epoch);
        self.named_producers
            .insert(next.producer_id, NamedProducer { name: name.to_string(), epoch: next.epoch, bumped_from });
        Ok(next)
    }

    /// The current epoch of a named producer's id; `None` for an unnamed one (their ids belong
    /// to one instance, which bumps its own epochs).
    pub fn producer_epoch(&self, producer_id: u64) -> Option<u32> {
        self.named_producers.get(&producer_id).map(|p| p.epoch)
    }

    /// The partition of Raft group `group`, with its topic.
    pub fn partition(&self, group: u64) -> Option<(&TopicInfo, &PartitionInfo)> {
        self.topics.values().flat_map(|t| t.partitions.iter().map(move |p| (t, p))).find(|(_, p)| p.group_id == group)
    }

    fn partition_mut(&mut self, group: u64) -> Option<&mut PartitionInfo> {
        self.topics.values_mut().flat_map(|t| t.partitions.iter_mut()).find(|p| p.group_id == group)
    }

    /// Every partition, with its topic, where `broker` holds or is to hold a replica (its
    /// replicas, or the target of a move under way).
    pub fn hosted_by(&self, broker: u64) -> impl Iterator<Item = (&TopicInfo, &PartitionInfo)> {
        self.topics
            .values()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .filter(move |(_, p)| p.hosted_by(broker))
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

/// Checks a producer name: 1 to 255 characters, none of them control characters.
pub fn validate_producer_name(name: &str) -> Result<(), ControllerError> {
    let problem = if name.is_empty() {
        Some("it is empty".to_string())
    } else if name.chars().count() > PRODUCER_NAME_LEN_MAX {
        Some(format!("it is longer than {PRODUCER_NAME_LEN_MAX} characters"))
    } else {
        name.chars().find(|c| c.is_control()).map(|c| format!("it contains the control character {c:?}"))
    };
    match problem {
        Some(reason) => Err(ControllerError::InvalidProducerName { name: name.to_string(), reason }),
        None => Ok(()),
    }
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
    fn alter_replaces_configs_and_appends_partitions() {
        let mut md = ClusterMetadata::default();
        let create = ControllerCommand::CreateTopic {
            name: "a".into(),
            replication_factor: 1,
            assignments: vec![vec![1]; 2],
            configs: BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
        };
        let ControllerResponse::TopicCreated(a) = md.apply(1, &create) else { panic!() };
        let alter = |topic_id| ControllerCommand::AlterTopic {
            name: "a".into(),
            topic_id,
            configs: BTreeMap::from([("min.insync.replicas".to_string(), "1".to_string())]),
            new_partitions: vec![vec![2], vec![3]],
        };
        let ControllerResponse::TopicCreated(altered) = md.apply(2, &alter(a.id)) else { panic!() };
        assert_eq!(altered.configs.keys().collect::<Vec<_>>(), ["min.insync.replicas"], "configs are replaced whole");
        let placed: Vec<(u32, u64, Vec<u64>)> =
            altered.partitions.iter().map(|p| (p.partition, p.group_id, p.replicas.clone())).collect();
        assert_eq!(placed, vec![(0, 1, vec![1]), (1, 2, vec![1]), (2, 3, vec![2]), (3, 4, vec![3])]);
        assert_eq!(md.next_group_id, 5);
        // An alter planned for a topic that was deleted and created again meanwhile is refused.
        md.apply(3, &ControllerCommand::DeleteTopic { name: "a".into() });
        md.apply(4, &create);
        assert_eq!(md.apply(5, &alter(a.id)), ControllerResponse::Rejected(ControllerError::UnknownTopic("a".into())));
    }

    #[test]
    fn producer_ids_are_unique_and_names_fence_older_instances() {
        let mut md = ClusterMetadata::default();
        let ControllerResponse::ProducerIds { first, count } =
            md.apply(1, &ControllerCommand::AllocateProducerIds { count: 1000 })
        else {
            panic!()
        };
        assert_eq!((first, count), (1, 1000), "id 0 is never handed out");
        let init = |name: &str, current| ControllerCommand::InitNamedProducer { name: name.into(), current };
        let ControllerResponse::ProducerInitialized(a0) = md.apply(2, &init("orders", None)) else { panic!() };
        assert_eq!(a0, ProducerIdEpoch { producer_id: 1001, epoch: 0 });
        // A second instance with the name: the same id, the next epoch.
        let ControllerResponse::ProducerInitialized(a1) = md.apply(3, &init("orders", None)) else { panic!() };
        assert_eq!(a1, ProducerIdEpoch { producer_id: 1001, epoch: 1 });
        assert_eq!(md.producer_epoch(1001), Some(1));
        // The first instance asking for a new epoch after a failure is told it is fenced.
        assert_eq!(
            md.apply(4, &init("orders", Some(a0))),
            ControllerResponse::Rejected(ControllerError::ProducerFenced {
                producer_id: 1001,
                epoch: 0,
                current_epoch: 1
            })
        );
        let ControllerResponse::ProducerInitialized(a2) = md.apply(5, &init("orders", Some(a1))) else { panic!() };
        assert_eq!(a2.epoch, 2);
        // Its retry (the answer was lost) gets the same epoch, not a fence by its own request.
        assert_eq!(md.apply(6, &init("orders", Some(a1))), ControllerResponse::ProducerInitialized(a2));
        let ControllerResponse::ProducerIds { first, .. } =
            md.apply(7, &ControllerCommand::AllocateProducerIds { count: 10 })
        else {
            panic!()
        };
        assert_eq!(first, 1002, "ids never repeat");
        assert_eq!(md.producer_epoch(first), None, "unnamed ids have no epoch here");
        // Epochs used up: the name moves to a new id.
        md.named_producers.get_mut(&1001).unwrap().epoch = u32::MAX;
        let ControllerResponse::ProducerInitialized(b) = md.apply(8, &init("orders", None)) else { panic!() };
        assert_eq!(b, ProducerIdEpoch { producer_id: 1012, epoch: 0 });
        assert_eq!(md.named_producers.len(), 1);
    }

    #[test]
    fn producer_names() {
        assert!(validate_producer_name("order-service/instance 1").is_ok());
        assert!(validate_producer_name("").is_err());
        assert!(validate_producer_name("a\nb").is_err());
        assert!(validate_producer_name(&"é".repeat(256)).is_err());
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
