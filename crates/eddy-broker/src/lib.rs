//! An Eddy node. It wires storage, the partition Raft groups, the controller and the services:
//!
//! - [`Broker`]: starts the controller replica (on controller voters) and the heartbeat and reconcile
//!   loops that keep local partition replicas in line with the controller's metadata.
//! - [`api::EddyApi`]: the public `eddy.v1.Eddy` gRPC service.
//! - [`Broker::routes`]: every gRPC service of the node on one address.
//! - [`BrokerConfig`]: the typed, validated configuration.

pub mod api;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod cluster_view;
pub mod config;
pub mod convert;
pub mod coordinator;
pub mod error;
pub mod fetch_gate;
pub mod groups_api;
pub mod in_memory;
mod leader_balance;
pub mod metrics;
pub mod producers;
pub mod quiesce;
pub mod quotas;
mod reassign;
mod reconcile;
pub mod registry;
pub mod replicas;
mod retention;
pub mod security_api;
pub mod server;

pub use broker::{Broker, GroupStatus, NodeEnv, StartError};
pub use clock::{Clock, SystemClock};
pub use config::{
    AuthConfig, BrokerConfig, ConfigError, ControllerVoter, PrincipalQuota, QuotaConfig, QuotaLimits,
    parse_controller_voters,
};
pub use error::BrokerError;
pub use in_memory::InMemoryNode;
pub use server::server_builder;
