//! Eddy's deterministic simulation.
//!
//! The unmodified node code — controller, partition Raft groups, transport, gRPC API — and the
//! real client library run on [turmoil] hosts: simulated TCP, simulated time, one thread. Every
//! random choice comes from the run's seed: turmoil's network (latencies, losses), tokio's
//! scheduler (seeded through `--cfg tokio_unstable`), openraft's election timeouts (its
//! deterministic RNG wrapper, seeded per node and boot) and the fault schedule. One seed is
//! therefore one exact execution, replayable with `eddy-sim --seed N`.
//!
//! - [`run`]: one seeded run: the cluster, the workload, the fault driver.
//! - [`faults`]: the fault schedule drawn from the seed.
//! - [`workload`]: producers, consumers and the final reader, recording into the [`history`].
//! - [`checker`]: one module per property, over the whole history.
//! - [`storage`]: the simulated disk (loses unsynced writes on a crash).
//! - [`net`]: gRPC over simulated TCP.
//! - [`clock`]: simulated `Instant`/`SystemTime` for libraries that read the clock themselves.
//!
//! [turmoil]: https://docs.rs/turmoil

pub mod checker;
pub mod clock;
pub mod faults;
pub mod history;
pub mod net;
pub mod run;
pub mod storage;
pub mod workload;

pub use run::{Bug, Options, Report, Summary, run};
