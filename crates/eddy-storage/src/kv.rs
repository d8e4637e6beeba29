//! The key-value interface every Raft group on a node stores through.
//!
//! One implementation per node: RocksDB in production ([`crate::RocksKv`]) and an in-memory store
//! for the deterministic simulation ([`crate::MemKv`]) that can lose unsynced writes on a crash.
//! Writes are applied in call order and become durable in that order (a prefix of the written
//! batches survives any crash), which is what lets log appends, truncations and state-machine
//! updates of one group interleave safely.

use std::fmt;

use crate::error::StorageResult;

/// Column families. Keys in each start with the 8-byte big-endian Raft group id, so one group's
/// keys are contiguous and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Raft log entries: group id + log index -> encoded entry. For partitions this is the
    /// partition log itself: record payloads live only here.
    Log,
    /// Raft metadata: group id + tag -> vote, committed log id, last purged log id.
    RaftMeta,
    /// Partition offset index: group id + base offset -> (raft log index, record count).
    OffsetIndex,
    /// Partition time index: group id + max timestamp so far -> first offset with that timestamp.
    TimeIndex,
    /// State-machine state: group id + tag -> encoded state (applied log id, offsets, producers,
    /// controller metadata).
    State,
    /// Node-level facts (format version, node id): no group prefix.
    Node,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 6] = [Cf::Log, Cf::RaftMeta, Cf::OffsetIndex, Cf::TimeIndex, Cf::State, Cf::Node];

    /// The column family's name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Log => "raft_log",
            Cf::RaftMeta => "raft_meta",
            Cf::OffsetIndex => "offset_index",
            Cf::TimeIndex => "time_index",
            Cf::State => "state",
            Cf::Node => "node",
        }
    }
}

/// One write operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes every key in `[start, end)`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// An atomic group of writes: after a crash either all of it is there or none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put { cf, key, value });
    }

    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(Op::Delete { cf, key });
    }

    pub fn delete_range(&mut self, cf: Cf, start: Vec<u8>, end: Vec<u8>) {
        self.ops.push(Op::DeleteRange { cf, start, end });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Approximate payload size, for metrics and batching bounds.
    pub fn size_bytes(&self) -> usize {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => key.len() + value.len(),
                Op::Delete { key, .. } => key.len(),
                Op::DeleteRange { start, end, .. } => start.len() + end.len(),
            })
            .sum()
    }
}

/// Visits one key and its value during [`KvStore::scan`]: `Ok(true)` to go on, `Ok(false)` to
/// stop, an error to stop and fail the scan.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> StorageResult<bool> + 'a;

/// Called once a requested sync is done.
pub type SyncDone = Box<dyn FnOnce(StorageResult<()>) + Send + 'static>;

/// A node's ordered, crash-consistent key-value store.
///
/// `write` makes a batch visible at once, in call order, without waiting for the disk; `sync`
/// asks for everything written so far to reach stable storage and reports when it has. A crash
/// keeps a prefix of the written batches that includes every synced one. Many groups' syncs that
/// are pending at the same time are served by one fsync (group commit).
pub trait KvStore: Send + Sync + 'static {
    /// Reads one key.
    fn get(&self, cf: Cf, key: &[u8]) -> StorageResult<Option<Vec<u8>>>;

    /// Visits keys in `[start, end)` in ascending order until `visit` returns `Ok(false)`; an
    /// error from `visit` stops the scan and is returned.
    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> StorageResult<()>;

    /// The greatest key in `[start, end)`, with its value.
    fn last_in(&self, cf: Cf, start: &[u8], end: &[u8]) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>>;

    /// Applies a batch atomically. Visible to every reader on return; durable after a later sync.
    fn write(&self, batch: Batch) -> StorageResult<()>;

    /// Calls `done` once every batch written before this call is on stable storage.
    fn sync(&self, done: SyncDone);

    /// Whether reads may wait on disk I/O, so that large reads belong on a blocking thread pool.
    /// An in-memory store says no: its reads stay on the calling task, which also keeps the
    /// deterministic simulation on its single thread.
    fn reads_block(&self) -> bool {
        true
    }
}

/// Waits until everything written so far is durable.
pub async fn sync(kv: &dyn KvStore) -> StorageResult<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    kv.sync(Box::new(move |result| {
        // The receiver is gone only when the caller stopped waiting; nothing to report then.
        let _ = tx.send(result);
    }));
    rx.await.unwrap_or(Err(crate::error::StorageError::WriterStopped))
}

impl fmt::Debug for dyn KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KvStore")
    }
}

/// Helpers shared by the implementations and the stores above them.
pub mod keys {
    /// `group` as the 8-byte big-endian key prefix.
    pub fn group_prefix(group: u64) -> [u8; 8] {
        group.to_be_bytes()
    }

    /// `group` + `n`, both big-endian: ordered by group, then by n.
    pub fn group_u64(group: u64, n: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(16);
        key.extend_from_slice(&group.to_be_bytes());
        key.extend_from_slice(&n.to_be_bytes());
        key
    }

    /// `group` + a tag byte string.
    pub fn group_tag(group: u64, tag: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(8 + tag.len());
        key.extend_from_slice(&group.to_be_bytes());
        key.extend_from_slice(tag);
        key
    }

    /// First key after every key of `group`.
    pub fn group_end(group: u64) -> Vec<u8> {
        match group.checked_add(1) {
            Some(next) => next.to_be_bytes().to_vec(),
            None => vec![0xff; 9],
        }
    }

    /// Decodes the u64 that follows the 8-byte group prefix.
    pub fn suffix_u64(key: &[u8]) -> u64 {
        assert!(key.len() >= 16, "key too short for group + u64: {} bytes", key.len());
        let mut n = [0u8; 8];
        n.copy_from_slice(&key[8..16]);
        u64::from_be_bytes(n)
    }
}
