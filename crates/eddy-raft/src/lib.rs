//! Eddy's multi-Raft layer: every partition is its own openraft group, all groups of a node share
//! one store and one transport.
//!
//! - [`transport`]: one tonic service for every group's Raft RPCs, one HTTP/2 channel per peer
//!   node, and the [`transport::Connector`] that the simulation swaps for simulated TCP.
//! - [`config`]: Raft timing shared by all groups.

pub mod config;
pub mod snapshot;
pub mod transport;

pub use config::{Compaction, RaftTiming};

/// The async runtime of every Raft group: tokio, with openraft's seeded RNG wrapper. Every random
/// choice a group makes (its election timeouts) is drawn from the seed it was created under (see
/// [`seeded`]), so the deterministic simulation replays a run exactly from its seed; production
/// nodes seed from the operating system ([`random_seed`]).
pub type RaftRuntime = openraft_rt::deterministic_rng::DeterministicRng<openraft_rt_tokio::TokioRuntime>;

/// Runs `f` (which creates a Raft group) under `seed`: the group's tasks, and the tasks they
/// spawn, draw their random numbers from it. A Raft group must be created inside this scope.
pub async fn seeded<F: std::future::Future>(seed: u64, f: F) -> F::Output {
    RaftRuntime::scope(seed, f).await
}

/// The seed of one group on a node: distinct groups (and nodes) get unrelated sequences.
pub fn group_seed(node_seed: u64, group: u64) -> u64 {
    // SplitMix64 of the pair.
    let mut z = node_seed ^ group.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seed from the operating system's randomness, for production nodes.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

/// Asserts that a state machine applies `next` after `applied`: applied log ids only grow. A
/// state machine that applied an entry twice, or out of order, has diverged from its log.
pub fn assert_applies_after<C: openraft::RaftTypeConfig>(
    applied: Option<&openraft::type_config::alias::LogIdOf<C>>,
    next: &openraft::type_config::alias::LogIdOf<C>,
) {
    assert!(Some(next) > applied, "entry {next} applied after {applied:?}: applied log ids only grow");
}
