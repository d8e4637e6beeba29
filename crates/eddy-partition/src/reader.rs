//! Reads a partition's records by offset and by time, from its index and the Raft log.

use std::sync::Arc;

use eddy_storage::{KvStore, LogStore, StorageError, StorageResult};
use openraft::EntryPayload;
use tokio::sync::watch;

use crate::PartitionTypes;
use crate::records::{PartitionCommand, Record};
use crate::state_machine::{PartitionStateMachine, PartitionView};
use crate::store::{IndexEntry, PartitionStore};

/// Reads a partition's records by offset, from the index and the Raft log.
#[derive(Clone, Debug)]
pub struct PartitionReader {
    store: PartitionStore,
    log: LogStore<PartitionTypes>,
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl PartitionReader {
    pub fn new(store: PartitionStore, log: LogStore<PartitionTypes>) -> Self {
        Self { store, log }
    }

    /// Records from `offset` up to (excluding) `high_watermark`, within `limits`. At least one
    /// record is returned when one exists, whatever its size.
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
            for (i, record) in self.batch_at(entry)?.into_iter().enumerate() {
                let at = base + i as u64;
                if at < offset {
                    continue;
                }
                if at >= high_watermark || out.len() >= limits.max_records {
                    return Ok(false);
                }
                let size = record.size_bytes();
                if !out.is_empty() && bytes + size > limits.max_bytes {
                    return Ok(false);
                }
                bytes += size;
                out.push((at, record));
            }
            Ok(true)
        })?;
        Ok(out)
    }

    fn batch_at(&self, entry: IndexEntry) -> StorageResult<Vec<Record>> {
        let Some(raft_entry) = self.log.entry(entry.raft_index)? else {
            return Err(StorageError::Corrupt(format!(
                "offset index points at missing raft entry {}",
                entry.raft_index
            )));
        };
        match raft_entry.payload {
            EntryPayload::Normal(PartitionCommand::Append(batch)) => {
                // Both come from disk: a disagreement is corrupt data, not a broken invariant.
                if batch.records.len() != entry.record_count as usize {
                    return Err(StorageError::Corrupt(format!(
                        "raft entry {} holds {} records where the offset index says {}",
                        entry.raft_index,
                        batch.records.len(),
                        entry.record_count
                    )));
                }
                Ok(batch.records)
            }
            other => Err(StorageError::Corrupt(format!(
                "offset index points at a non-data raft entry {}: {other:?}",
                entry.raft_index
            ))),
        }
    }

    /// The first offset whose record's timestamp is >= `timestamp_ms`; `high_watermark` when
    /// there is none.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64, high_watermark: u64) -> StorageResult<u64> {
        // The time index names the first batch that raised the partition's running maximum
        // timestamp to `timestamp_ms` or beyond: every earlier record is older, and this batch
        // holds the answer.
        let Some(base) = self.store.first_batch_at_or_after(timestamp_ms)? else {
            return Ok(high_watermark);
        };
        if base >= high_watermark {
            return Ok(high_watermark);
        }
        let Some((found_base, entry)) = self.store.batch_containing(base)? else {
            return Ok(high_watermark);
        };
        let records = self.batch_at(entry)?;
        let position = records.iter().position(|r| r.timestamp_ms >= timestamp_ms);
        Ok(position.map_or(high_watermark, |i| found_base + i as u64))
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
    Ok((log.clone(), sm, PartitionReader::new(store, log), view))
}
