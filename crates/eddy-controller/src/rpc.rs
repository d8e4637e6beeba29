//! Broker-to-controller messages (bincode inside the internal `ControllerRpc` service).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ControllerError;
use crate::metadata::{ClusterMetadata, ProducerIdEpoch, TopicInfo};

/// A partition leadership a broker reports: it leads `group` in `term`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderReport {
    pub group: u64,
    pub term: u64,
}

/// Who leads a group, as far as the controller knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leadership {
    pub leader: u64,
    pub term: u64,
}

/// A broker's periodic report to the controller leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub broker_id: u64,
    /// Where clients reach the broker.
    pub address: String,
    /// Where other brokers reach it (its inter-broker listener).
    pub internal_address: String,
    /// The broker's rack, if it declares one.
    pub rack: Option<String>,
    /// The metadata version the broker holds, and the controller term that served it; when the
    /// controller's differ, its metadata comes back in the response.
    pub metadata_version: u64,
    pub metadata_term: u64,
    /// Partition groups this broker currently leads.
    pub leading: Vec<LeaderReport>,
}

/// The controller leader's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {
    pub controller_leader: u64,
    /// The controller leader's Raft term. A broker takes metadata only from a term at least as
    /// new as the one it took its metadata from, so a deposed leader cannot roll it back.
    pub term: u64,
    /// The leader's metadata, present when its (term, version) differ from the broker's: newer,
    /// or older after a rollback of the controller's state, which the broker follows too.
    pub metadata: Option<Arc<ClusterMetadata>>,
    /// Brokers whose heartbeats are current.
    pub alive: BTreeSet<u64>,
    /// Known partition leaders, by group id.
    pub leaders: BTreeMap<u64, Leadership>,
}

/// What a broker asks of the controller leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    Heartbeat(HeartbeatRequest),
    CreateTopic {
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        name: String,
    },
    /// Sets (`set`) and removes (`delete`) topic configs, and raises the partition count.
    AlterTopic {
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        partitions: Option<u32>,
    },
    /// A block of fresh producer ids for the broker to hand out to unnamed producers.
    AllocateProducerIds {
        count: u64,
    },
    /// Initializes a named producer (see [`crate::metadata::ControllerCommand::InitNamedProducer`]).
    InitNamedProducer {
        name: String,
        current: Option<ProducerIdEpoch>,
    },
    /// From a partition's leader: its Raft group's voters are now `replicas`, the target of the
    /// partition's move.
    CompleteReassignment {
        group: u64,
        replicas: Vec<u64>,
    },
    /// Starts draining a broker.
    Decommission {
        broker: u64,
    },
    /// Plans the moves that even out replicas per broker and, unless `dry_run`, queues them.
    Rebalance {
        dry_run: bool,
    },
    /// The moves under way and queued.
    RebalanceStatus,
    /// A request to the schema registry, which the controller holds.
    Registry(eddy_schema::api::RegistryRequest),
    /// A change to users or ACLs; the reply is `AclsDeleted` (empty but for DeleteAcls).
    Security(crate::security::SecurityCommand),
}

/// Moves of partitions, by Raft group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moves {
    /// Moves under way: group -> (replicas, target).
    pub in_progress: BTreeMap<u64, (Vec<u64>, Vec<u64>)>,
    /// Moves queued, or planned by a dry run: group -> (replicas, target).
    pub planned: BTreeMap<u64, (Vec<u64>, Vec<u64>)>,
}

/// The controller leader's answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    Heartbeat(HeartbeatResponse),
    TopicCreated(TopicInfo),
    TopicDeleted,
    TopicAltered(TopicInfo),
    ProducerIds {
        first: u64,
        count: u64,
    },
    ProducerInitialized(ProducerIdEpoch),
    Done,
    Moves(Moves),
    Registry(eddy_schema::api::RegistryReply),
    /// The ACLs a security change deleted.
    AclsDeleted(Vec<eddy_auth::AclBinding>),
}

pub type ControllerResult = Result<ControllerReply, ControllerError>;
