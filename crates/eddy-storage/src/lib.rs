//! Eddy's per-node storage.
//!
//! One key-value store per node ([`KvStore`]: RocksDB in production, [`MemKv`] in tests, the
//! simulation's crashable disk) holds every Raft group on the node in a few column families. On
//! top of it, openraft's log storage for any group ([`LogStore`]).
//!
//! Architecture invariant: this crate holds bytes under keys and Raft log entries, nothing more.
//! It knows no partition, record, offset, producer or topic (those belong to `eddy-partition`,
//! which keeps its indexes and state through [`KvStore`]), does no network I/O and knows nothing
//! of gRPC. It depends on no other Eddy crate.

pub mod codec;
pub mod conformance;
pub mod error;
pub mod kv;
pub mod log_store;
pub mod mem;
pub mod node;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use error::{StorageError, StorageResult};
pub use kv::{Batch, Cf, KvStore, Visitor};
pub use log_store::LogStore;
pub use mem::MemKv;
#[cfg(feature = "rocksdb")]
pub use rocks::{GroupCommitConfig, RocksKv};
