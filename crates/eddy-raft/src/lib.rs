//! Eddy's multi-Raft layer: every partition is its own openraft group, all groups of a node share
//! one store and one transport.
//!
//! - [`partition`]: the partition type config, its state machine (which assigns offsets and writes
//!   only index entries: the Raft log is the partition log) and its reader.
//! - [`transport`]: one tonic service for every group's Raft RPCs, one HTTP/2 channel per peer
//!   node, and the [`transport::Connector`] that the simulation swaps for simulated TCP.
//! - [`config`]: Raft timing shared by all groups.

pub mod config;
pub mod partition;
pub mod transport;

pub use config::RaftTiming;

/// The async runtime of every Raft group: tokio, and with the `deterministic` feature tokio with
/// openraft's seeded RNG wrapper, so a simulation run is reproducible from its seed.
#[cfg(not(feature = "deterministic"))]
pub type RaftRuntime = openraft_rt_tokio::TokioRuntime;
/// The async runtime of every Raft group: tokio, and with the `deterministic` feature tokio with
/// openraft's seeded RNG wrapper, so a simulation run is reproducible from its seed.
#[cfg(feature = "deterministic")]
pub type RaftRuntime = openraft_rt::deterministic_rng::DeterministicRng<openraft_rt_tokio::TokioRuntime>;
pub use partition::{PartitionRaft, PartitionReader, PartitionStateMachine, PartitionTypes, PartitionView};
