//! Side-by-side benchmarks of Eddy and NATS JetStream (issue 11).
//!
//! One workload engine ([`engine`]) runs the workloads ([`workload`]: W1 latency, W2 throughput,
//! W3 end to end, W4 catch-up, W5 failover) against a [`Driver`]: [`EddyDriver`] (the
//! `eddy-client` producer and fetches) or, with the `nats` feature, [`nats::NatsDriver`]
//! (`async-nats` JetStream). Each run is reported as one JSON line ([`RunReport`]): records/s,
//! MB/s, latency percentiles from HDR histograms, and the CPU time of the servers, of the client
//! and of everything else on the machine ([`cpu`]).
//!
//! Invariants:
//! - The engine never knows which system it drives: anything system-specific lives in a
//!   driver, so both systems run the same code path for the same workload.
//! - Latency is measured from each record's scheduled send time, never from when it was
//!   actually sent (no coordinated omission; see [`engine`]).
//! - A record that is not acknowledged is counted, never retried by the engine: retries are
//!   the client library's business (Eddy's idempotent producer retries; JetStream's publish
//!   does not).
//!
//! `eddy bench produce|consume` is this engine with the Eddy driver; `scripts/bench-vs-nats`
//! runs the `eddy-bench` binary against both systems in alternation.

#[cfg(feature = "nats")]
pub mod cli;
pub mod compare;
pub mod cpu;
pub mod driver;
pub mod eddy;
pub mod engine;
pub mod error;
pub mod latency;
#[cfg(feature = "nats")]
pub mod nats;
pub mod payload;
pub mod workload;

pub use driver::{AckFuture, Driver, Position, Publisher, Reader, StreamSpec, System};
pub use eddy::{EddyDriver, EddyOptions};
pub use error::{BenchError, BenchResult};
pub use workload::{RunReport, RunSpec, Workload};
