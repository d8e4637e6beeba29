//! Controller errors. They travel between nodes (bincode) and reach clients as gRPC statuses
//! with the reason code from [`ControllerError::code`].

use eddy_proto::Reason;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("invalid partition count {requested}: it must be between 1 and {max}")]
    InvalidPartitions { requested: u32, max: u32 },
    #[error("invalid partition count {requested}: a topic's partitions can only be added to (it has {current})")]
    PartitionsDecrease { requested: u32, current: u32 },
    #[error("invalid replication factor {requested}: it must be between 1 and the {live_brokers} live brokers")]
    InvalidReplicationFactor { requested: u32, live_brokers: u32 },
    #[error("invalid topic config: {0}")]
    InvalidConfig(String),
    #[error("invalid producer name {name:?}: {reason}")]
    InvalidProducerName { name: String, reason: String },
    #[error("producer {producer_id} epoch {epoch} was fenced: the current epoch is {current_epoch}")]
    ProducerFenced { producer_id: u64, epoch: u32, current_epoch: u32 },
    #[error("broker {0} is not registered in the cluster")]
    UnknownBroker(u64),
    #[error("no partition has Raft group {0}")]
    UnknownGroup(u64),
    #[error("the move of partition group {0} changed meanwhile")]
    StaleReassignment(u64),
    #[error("this node is not the controller leader")]
    NotController { leader_id: Option<u64>, leader_address: Option<String> },
    #[error("the controller is unavailable: {0}")]
    Unavailable(String),
    #[error("user {0:?} does not exist")]
    UnknownUser(String),
    /// A request the controller cannot carry out as asked (a bound reached, a bad value).
    #[error("{0}")]
    Invalid(String),
    /// The schema registry refused the request (its own error codes reach HTTP clients).
    #[error(transparent)]
    Registry(eddy_schema::RegistryError),
}

impl ControllerError {
    /// The stable reason code clients see.
    pub fn code(&self) -> Reason {
        match self {
            ControllerError::TopicAlreadyExists(_) => Reason::TopicAlreadyExists,
            ControllerError::UnknownTopic(_) => Reason::UnknownTopic,
            ControllerError::InvalidTopicName { .. } => Reason::InvalidTopicName,
            ControllerError::InvalidPartitions { .. } | ControllerError::PartitionsDecrease { .. } => {
                Reason::InvalidPartitions
            }
            ControllerError::InvalidReplicationFactor { .. } => Reason::InvalidReplicationFactor,
            ControllerError::InvalidConfig(_) => Reason::InvalidConfig,
            ControllerError::InvalidProducerName { .. } => Reason::InvalidRequest,
            ControllerError::ProducerFenced { .. } => Reason::ProducerFenced,
            ControllerError::UnknownBroker(_) => Reason::UnknownBroker,
            ControllerError::UnknownGroup(_) | ControllerError::StaleReassignment(_) => Reason::InvalidRequest,
            ControllerError::NotController { .. } => Reason::NotController,
            ControllerError::Unavailable(_) => Reason::ControllerUnavailable,
            ControllerError::UnknownUser(_) => Reason::UnknownUser,
            ControllerError::Invalid(_) => Reason::InvalidRequest,
            ControllerError::Registry(e) if e.http_status() >= 500 => Reason::ControllerUnavailable,
            ControllerError::Registry(_) => Reason::InvalidRequest,
        }
    }
}
