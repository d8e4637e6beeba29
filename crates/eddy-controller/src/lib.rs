//! Eddy's metadata controller: a Raft group (group 0) on the controller voters that holds brokers,
//! topics and partition placement, tracks broker liveness and partition leaders, and answers
//! every broker's heartbeat with the metadata it needs to reconcile its local partitions.

pub mod client;
pub mod controller;
pub mod error;
pub mod metadata;
pub mod placement;
pub mod rpc;
pub mod security;
pub mod service;
pub mod state_machine;
pub mod topic_config;

pub use client::ControllerClient;
pub use controller::{Controller, ControllerConfig};
pub use error::ControllerError;
pub use metadata::{
    BrokerInfo, CONTROLLER_GROUP, ClusterMetadata, PRODUCER_ID_BLOCK, PartitionInfo, ProducerIdEpoch, TopicInfo,
    is_internal_topic, validate_producer_name,
};
pub use rpc::{
    ControllerReply, ControllerRequest, HeartbeatRequest, HeartbeatResponse, LeaderReport, Leadership, Moves,
};
pub use security::{SecurityCommand, SecurityState};
pub use service::ControllerRpcService;
pub use state_machine::{ControllerRaft, ControllerStateMachine, ControllerTypes};
pub use topic_config::TopicConfig;
