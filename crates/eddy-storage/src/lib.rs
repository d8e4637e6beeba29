//! Eddy's per-node storage.
//!
//! One key-value store per node ([`KvStore`]: RocksDB in production, [`MemKv`] in simulation)
//! holds every Raft group on the node in a few column families. On top of it: openraft's log
//! storage for any group ([`LogStore`]) and the partition offset/time indexes and state
//! ([`PartitionStore`]).
//!
//! Architecture invariant: this crate does no network I/O and knows nothing of gRPC.

pub mod codec;
pub mod error;
pub mod kv;
pub mod log_store;
pub mod mem;
pub mod node;
pub mod partition;
pub mod records;
#[cfg(feature = "rocksdb")]
pub mod rocks;

pub use error::{StorageError, StorageResult};
pub use kv::{Batch, Cf, KvStore};
pub use log_store::LogStore;
pub use mem::MemKv;
pub use partition::{IndexEntry, PartitionState, PartitionStore};
pub use records::{
    HEADER_OVERHEAD_BYTES, PartitionCommand, PartitionResponse, ProducerBatch, RECORD_OVERHEAD_BYTES, Record,
    RecordBatch,
};
#[cfg(feature = "rocksdb")]
pub use rocks::{GroupCommitConfig, RocksKv};
