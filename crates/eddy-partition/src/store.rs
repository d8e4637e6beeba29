//! A partition's bookkeeping beside the Raft log, in the node's key-value store: the offset and
//! time indexes, and the state its state machine persists (next offset, producers' windows).
//!
//! Record payloads are never copied here. Applying a batch writes one small offset-index entry
//! (base offset -> Raft log index, record count) and, when the batch raises the partition's
//! maximum timestamp, one time-index entry.

use std::collections::BTreeMap;
use std::sync::Arc;

use eddy_storage::codec::{decode, encode};
use eddy_storage::kv::{Batch, Cf, KvStore, keys};
use eddy_storage::{StorageError, StorageResult};
use serde::{Deserialize, Serialize};

use crate::dedup::{PartitionState, ProducerState};

/// Where a batch's records live in the Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub raft_index: u64,
    pub record_count: u32,
    /// The batch's records' bytes as counted by retention ([`crate::RecordBatch::size_bytes`]).
    pub size_bytes: u64,
}

const STATE: &[u8] = b"partition";
const PRODUCER: &[u8] = b"producer/";
const SNAPSHOT: &[u8] = b"snapshot";

/// Reads and stages writes of one partition's index and state.
#[derive(Clone)]
pub struct PartitionStore {
    kv: Arc<dyn KvStore>,
    group: u64,
}

impl std::fmt::Debug for PartitionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionStore").field("group", &self.group).finish()
    }
}

impl PartitionStore {
    pub fn new(kv: Arc<dyn KvStore>, group: u64) -> Self {
        Self { kv, group }
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// Stages the index entries of a batch appended at `base_offset`.
    pub fn stage_append(
        &self,
        batch: &mut Batch,
        state: &mut PartitionState,
        entry: IndexEntry,
        batch_max_timestamp_ms: i64,
    ) -> u64 {
        let base_offset = state.next_offset;
        batch.put(Cf::OffsetIndex, keys::group_u64(self.group, base_offset), encode(&entry));
        if state.max_timestamp_ms.is_none_or(|max| batch_max_timestamp_ms > max) {
            // Keyed by the (non-negative) timestamp so that a seek finds the first batch at or
            // after a time; negative timestamps sort as 0.
            let ts_key = u64::try_from(batch_max_timestamp_ms).unwrap_or(0);
            batch.put(Cf::TimeIndex, keys::group_u64(self.group, ts_key), encode(&base_offset));
            state.max_timestamp_ms = Some(batch_max_timestamp_ms);
        }
        state.next_offset += u64::from(entry.record_count);
        state.retained_bytes += entry.size_bytes;
        base_offset
    }

    /// Stages the removal of the index entries of every batch wholly below `state`'s log start,
    /// subtracting their bytes from `state.retained_bytes`. The time index keeps one entry for
    /// what was removed: the greatest maximum timestamp removed now points at the first retained
    /// batch, so a time lookup still finds it (see [`crate::reader`]). Reads the store: whatever
    /// this apply staged before must be written first.
    pub fn stage_trim(&self, batch: &mut Batch, state: &mut PartitionState) -> StorageResult<()> {
        let mut first_retained = state.next_offset;
        self.scan_index(0, &mut |base, entry| {
            if base + u64::from(entry.record_count) > state.log_start_offset {
                first_retained = base;
                return Ok(false);
            }
            batch.delete(Cf::OffsetIndex, keys::group_u64(self.group, base));
            state.retained_bytes = state.retained_bytes.saturating_sub(entry.size_bytes);
            Ok(true)
        })?;
        let mut floor = None;
        self.kv.scan(
            Cf::TimeIndex,
            &keys::group_u64(self.group, 0),
            &keys::group_end(self.group),
            &mut |key, value| {
                if decode::<u64>(value, "time index entry")? >= first_retained {
                    return Ok(false);
                }
                batch.delete(Cf::TimeIndex, key.to_vec());
                floor = Some(keys::suffix_u64(key));
                Ok(true)
            },
        )?;
        if let Some(ts_key) = floor {
            batch.put(Cf::TimeIndex, keys::group_u64(self.group, ts_key), encode(&first_retained));
        }
        Ok(())
    }

    /// Stages a snapshot as the partition's current one (see [`crate::state_machine`]).
    pub fn stage_snapshot(&self, batch: &mut Batch, snapshot: &[u8]) {
        batch.put(Cf::State, keys::group_tag(self.group, SNAPSHOT), snapshot.to_vec());
    }

    /// The current snapshot, if the partition has one.
    pub fn load_snapshot(&self) -> StorageResult<Option<Vec<u8>>> {
        self.kv.get(Cf::State, &keys::group_tag(self.group, SNAPSHOT))
    }

    /// Stages the state itself (written together with the index entries of the same apply).
    pub fn stage_state<T: Serialize>(&self, batch: &mut Batch, state: &T) {
        batch.put(Cf::State, keys::group_tag(self.group, STATE), encode(state));
    }

    /// Loads the persisted state, if the partition has one.
    pub fn load_state<T: serde::de::DeserializeOwned>(&self) -> StorageResult<Option<T>> {
        match self.kv.get(Cf::State, &keys::group_tag(self.group, STATE))? {
            Some(bytes) => Ok(Some(decode(&bytes, "partition state")?)),
            None => Ok(None),
        }
    }

    /// Stages one producer's window (or its removal).
    pub fn stage_producer(&self, batch: &mut Batch, producer_id: u64, state: Option<&ProducerState>) {
        let mut key = keys::group_tag(self.group, PRODUCER);
        key.extend_from_slice(&producer_id.to_be_bytes());
        match state {
            Some(state) => batch.put(Cf::State, key, encode(state)),
            None => batch.delete(Cf::State, key),
        }
    }

    /// Stages the removal of every producer window (a snapshot replaces them).
    pub fn stage_drop_producers(&self, batch: &mut Batch) {
        let start = keys::group_tag(self.group, PRODUCER);
        let mut end = start.clone();
        *end.last_mut().expect("tag is not empty") += 1;
        batch.delete_range(Cf::State, start, end);
    }

    /// Loads every persisted producer window.
    pub fn load_producers(&self) -> StorageResult<BTreeMap<u64, ProducerState>> {
        let start = keys::group_tag(self.group, PRODUCER);
        let mut end = start.clone();
        *end.last_mut().expect("tag is not empty") += 1;
        let mut out = BTreeMap::new();
        self.kv.scan(Cf::State, &start, &end, &mut |key, value| {
            let id_bytes: [u8; 8] = key[start.len()..]
                .try_into()
                .map_err(|_| StorageError::Corrupt(format!("producer key of {} bytes", key.len())))?;
            out.insert(u64::from_be_bytes(id_bytes), decode::<ProducerState>(value, "producer state")?);
            Ok(true)
        })?;
        Ok(out)
    }

    /// The batch holding `offset`: the index entry with the greatest base offset <= `offset`.
    pub fn batch_containing(&self, offset: u64) -> StorageResult<Option<(u64, IndexEntry)>> {
        let start = keys::group_u64(self.group, 0);
        let end = keys::group_u64(self.group, offset.saturating_add(1));
        match self.kv.last_in(Cf::OffsetIndex, &start, &end)? {
            Some((key, value)) => {
                let base = keys::suffix_u64(&key);
                let entry: IndexEntry = decode(&value, "offset index entry")?;
                Ok(Some((base, entry)))
            }
            None => Ok(None),
        }
    }

    /// Visits index entries with base offset >= `from`, in order, until `visit` returns
    /// `Ok(false)` or an error.
    pub fn scan_index(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, IndexEntry) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        self.kv.scan(
            Cf::OffsetIndex,
            &keys::group_u64(self.group, from),
            &keys::group_end(self.group),
            &mut |key, value| visit(keys::suffix_u64(key), decode::<IndexEntry>(value, "offset index entry")?),
        )
    }

    /// Base offset of the first batch whose maximum timestamp is >= `timestamp_ms`.
    pub fn first_batch_at_or_after(&self, timestamp_ms: i64) -> StorageResult<Option<u64>> {
        let ts_key = u64::try_from(timestamp_ms).unwrap_or(0);
        let mut found = None;
        self.kv.scan(
            Cf::TimeIndex,
            &keys::group_u64(self.group, ts_key),
            &keys::group_end(self.group),
            &mut |_, value| {
                found = Some(decode::<u64>(value, "time index entry")?);
                Ok(false)
            },
        )?;
        Ok(found)
    }

    /// Drops every index entry, for a snapshot installed in place of the log: the partition
    /// starts at `state.next_offset`, and one time-index entry keeps its maximum timestamp there.
    pub fn stage_reset(&self, batch: &mut Batch, state: &PartitionState) {
        for cf in [Cf::OffsetIndex, Cf::TimeIndex] {
            batch.delete_range(cf, keys::group_prefix(self.group).to_vec(), keys::group_end(self.group));
        }
        if let Some(max) = state.max_timestamp_ms {
            let ts_key = u64::try_from(max).unwrap_or(0);
            batch.put(Cf::TimeIndex, keys::group_u64(self.group, ts_key), encode(&state.next_offset));
        }
    }
}

/// Whether this node holds anything of `group` (its Raft log or metadata, or its state).
pub fn has_data(kv: &dyn KvStore, group: u64) -> StorageResult<bool> {
    for cf in [Cf::RaftMeta, Cf::Log, Cf::State] {
        if kv.last_in(cf, &keys::group_prefix(group), &keys::group_end(group))?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes everything a partition group keeps on this node, in one batch: its Raft log and
/// metadata, index entries, state and producer windows (its replica was removed from this node).
pub fn destroy(kv: &dyn KvStore, group: u64) -> StorageResult<()> {
    let mut batch = Batch::new();
    eddy_storage::log_store::stage_destroy(&mut batch, group);
    for cf in [Cf::OffsetIndex, Cf::TimeIndex, Cf::State] {
        batch.delete_range(cf, keys::group_prefix(group).to_vec(), keys::group_end(group));
    }
    kv.write(batch)
}
