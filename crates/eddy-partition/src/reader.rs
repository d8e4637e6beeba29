//! Reads a partition's records by offset and by time, from its index and the Raft log (each
//! entry's stored bytes walked, not decoded whole: [`crate::stored`]).

use std::sync::Arc;

use eddy_storage::{KvStore, LogStore, StorageError, StorageResult};
use tokio::sync::watch;

use crate::PartitionTypes;
use crate::records::Record;
use crate::state_machine::{PartitionStateMachine, PartitionView};
use crate::store::{IndexEntry, PartitionStore};
use crate::stored::StoredBatch;

/// Reads a partition's records by offset, from the index and the Raft log.
#[derive(Clone, Debug)]
pub struct PartitionReader {
    store: PartitionStore,
    log: LogStore<PartitionTypes>,
    view: watch::Receiver<PartitionView>,
}

/// A topic's retention, as the leader enforces it ([`PartitionReader::retention_point`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Batches whose records are all older than this (by record timestamp) are deleted.
    pub ms: Option<u64>,
    /// The oldest batches are deleted while the rest still holds this many bytes.
    pub bytes: Option<u64>,
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl PartitionReader {
    pub fn new(store: PartitionStore, log: LogStore<PartitionTypes>, view: watch::Receiver<PartitionView>) -> Self {
        Self { store, log, view }
    }

    /// Records from `offset` up to (excluding) `high_watermark`, within `limits`. At least one
    /// record is returned when one exists, whatever its size. Fewer (none) are returned when
    /// retention removes them while they are read: the caller sees the log start past them.
    pub fn read(&self, offset: u64, high_watermark: u64, limits: ReadLimits) -> StorageResult<Vec<(u64, Record)>> {
        let mut out = Vec::new();
        if offset >= high_watermark {
            return Ok(out);
        }
        let Some((first_base, _)) = self.store.batch_containing(offset)? else {
            return Ok(out);
        };
        let mut bytes = 0usize;
        self.store.scan_index(first_base, &mut |base, entry| {
            if base >= high_watermark {
                return Ok(false);
            }
            let Some(batch) = self.batch_or_trimmed(base, entry)? else {
                return Ok(false);
            };
            // Records before `offset` cost only their length prefixes (see `crate::stored`).
            let mut more = true;
            batch.visit(&mut |i, record| {
                let at = base + i as u64;
                if at < offset {
                    return Ok(true);
                }
                if at >= high_watermark || out.len() >= limits.max_records {
                    more = false;
                    return Ok(false);
                }
                let size = record.size_bytes();
                if !out.is_empty() && bytes + size > limits.max_bytes {
                    more = false;
                    return Ok(false);
                }
                bytes += size;
                out.push((at, record.to_record()));
                Ok(true)
            })?;
            Ok(more)
        })?;
        Ok(out)
    }

    /// The batch at `base`, or `None` when retention removed it since its index entry was read.
    fn batch_or_trimmed(&self, base: u64, entry: IndexEntry) -> StorageResult<Option<StoredBatch>> {
        match self.batch_at(entry) {
            Err(_) if base < self.view.borrow().log_start_offset => Ok(None),
            other => other.map(Some),
        }
    }

    fn batch_at(&self, entry: IndexEntry) -> StorageResult<StoredBatch> {
        let Some(raw) = self.log.entry_bytes(entry.raft_index)? else {
            return Err(StorageError::Corrupt(format!(
                "offset index points at missing raft entry {}",
                entry.raft_index
            )));
        };
        let batch = StoredBatch::open(raw, entry.raft_index)?;
        // Both come from disk: a disagreement is corrupt data, not a broken invariant.
        if batch.len() != entry.record_count as usize {
            return Err(StorageError::Corrupt(format!(
                "raft entry {} holds {} records where the offset index says {}",
                entry.raft_index,
                batch.len(),
                entry.record_count
            )));
        }
        Ok(batch)
    }

    /// The first offset whose record's timestamp is >= `timestamp_ms`; `high_watermark` when
    /// there is none.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64, high_watermark: u64) -> StorageResult<u64> {
        // The time index names the first batch that raised the partition's running maximum
        // timestamp to `timestamp_ms` or beyond: every earlier record is older, and that batch
        // holds a record at least as new. The one exception is the entry retention leaves for
        // what it removed (`PartitionStore::stage_trim`): it points at the first retained batch,
        // from which the answer is found by reading on.
        let Some(base) = self.store.first_batch_at_or_after(timestamp_ms)? else {
            return Ok(high_watermark);
        };
        if base >= high_watermark {
            return Ok(high_watermark);
        }
        let Some((found_base, _)) = self.store.batch_containing(base)? else {
            return Ok(high_watermark);
        };
        let mut answer = high_watermark;
        self.store.scan_index(found_base, &mut |base, entry| {
            if base >= high_watermark {
                return Ok(false);
            }
            let Some(batch) = self.batch_or_trimmed(base, entry)? else {
                return Ok(true);
            };
            let mut found = None;
            batch.visit(&mut |i, record| {
                if record.timestamp_ms() >= timestamp_ms {
                    found = Some(i);
                }
                Ok(found.is_none())
            })?;
            match found {
                Some(i) => {
                    answer = base + i as u64;
                    Ok(false)
                }
                None => Ok(true),
            }
        })?;
        Ok(answer)
    }

    /// The first offset of the batch holding `offset`: where a deletion of the records below
    /// `offset` may move the log start (trims move it to batch boundaries). `offset` itself at
    /// or above the high watermark, or below the log start (nothing of it is left to split).
    pub fn batch_boundary_at_or_below(&self, offset: u64) -> StorageResult<u64> {
        let view = *self.view.borrow();
        if offset >= view.high_watermark || offset <= view.log_start_offset {
            return Ok(offset);
        }
        Ok(self.store.batch_containing(offset)?.map_or(offset, |(base, _)| base))
    }

    /// Where the log should start under `retention` at `now_ms` (the leader's clock): the first
    /// batch retention keeps. `None` when nothing is to be deleted.
    pub fn retention_point(&self, retention: Retention, now_ms: i64) -> StorageResult<Option<u64>> {
        let view = *self.view.borrow();
        let mut start = view.log_start_offset;
        if let Some(ms) = retention.ms {
            let cutoff = now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX));
            // Batches before the first whose running maximum timestamp reaches the cutoff hold
            // only older records.
            let keep_from = self.store.first_batch_at_or_after(cutoff)?.unwrap_or(view.high_watermark);
            start = start.max(keep_from.min(view.high_watermark));
        }
        if let Some(limit) = retention.bytes {
            let mut rest = view.retained_bytes;
            let mut keep_from = start;
            self.store.scan_index(view.log_start_offset, &mut |base, entry| {
                let end = base + u64::from(entry.record_count);
                if end > view.high_watermark || rest.saturating_sub(entry.size_bytes) < limit {
                    return Ok(false);
                }
                rest -= entry.size_bytes;
                keep_from = end;
                Ok(true)
            })?;
            start = start.max(keep_from);
        }
        Ok((start > view.log_start_offset).then_some(start))
    }
}

/// Builds the shared handles of a partition group over the node's store.
pub fn open_partition(
    kv: Arc<dyn KvStore>,
    group: u64,
) -> StorageResult<(LogStore<PartitionTypes>, PartitionStateMachine, PartitionReader, watch::Receiver<PartitionView>)> {
    let log = LogStore::new(kv.clone(), group);
    let store = PartitionStore::new(kv, group);
    let (sm, view) = PartitionStateMachine::open(store.clone())?;
    Ok((log.clone(), sm, PartitionReader::new(store, log, view.clone()), view))
}
