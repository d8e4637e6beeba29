//! Partition bookkeeping kept beside the Raft log: the offset and time indexes, and the state a
//! partition's state machine persists (next offset, producers' dedup windows).
//!
//! Record payloads are never copied here. Applying a batch writes one small offset-index entry
//! (base offset -> Raft log index, record count) and, when the batch raises the partition's
//! maximum timestamp, one time-index entry.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::error::StorageResult;
use crate::kv::{Batch, Cf, KvStore, keys};
use crate::records::{PartitionResponse, ProducerBatch};

/// Batches remembered per producer and partition to answer retries (as Kafka's five in-flight).
pub const PRODUCER_DEDUP_WINDOW_BATCHES: usize = 5;

/// Producers a partition remembers; past this, the one idle longest (lowest last offset) is
/// forgotten, and its next batch starts afresh.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

/// Where a batch's records live in the Raft log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub raft_index: u64,
    pub record_count: u32,
}

/// A batch remembered for deduplication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenBatch {
    pub first_sequence: u64,
    pub record_count: u32,
    pub base_offset: u64,
}

/// What a partition knows of one idempotent producer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub epoch: u32,
    /// The last batches appended, oldest first, at most [`PRODUCER_DEDUP_WINDOW_BATCHES`].
    pub recent: VecDeque<SeenBatch>,
}

impl ProducerState {
    /// The sequence the next batch must start with.
    pub fn next_sequence(&self) -> u64 {
        self.recent.back().map_or(0, |b| b.first_sequence + u64::from(b.record_count))
    }
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Accept,
    /// Already appended: answer with this response instead.
    Reject(PartitionResponse),
}

/// The persisted state of a partition's state machine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Offset the next appended record gets: the high watermark.
    pub next_offset: u64,
    /// Lowest offset still readable.
    pub log_start_offset: u64,
    /// Greatest record timestamp appended so far.
    pub max_timestamp_ms: Option<i64>,
    /// Idempotent producers' windows. Persisted one key per producer (only changed ones are
    /// written), not with the rest of the state.
    #[serde(skip)]
    pub producers: BTreeMap<u64, ProducerState>,
}

impl PartitionState {
    /// Checks an idempotent batch against the producer's window.
    pub fn check_sequence(&self, producer: &ProducerBatch, record_count: u32) -> SequenceCheck {
        let Some(state) = self.producers.get(&producer.producer_id) else {
            // A producer this partition has never seen (or forgot) starts a new window at any
            // sequence: after a restart of the producer, sequences begin at 0 again anyway.
            return SequenceCheck::Accept;
        };
        if producer.epoch < state.epoch {
            return SequenceCheck::Reject(PartitionResponse::ProducerFenced { current_epoch: state.epoch });
        }
        if producer.epoch > state.epoch {
            return SequenceCheck::Accept;
        }
        if let Some(seen) =
            state.recent.iter().find(|b| b.first_sequence == producer.first_sequence && b.record_count == record_count)
        {
            return SequenceCheck::Reject(PartitionResponse::Duplicate {
                base_offset: seen.base_offset,
                count: seen.record_count,
            });
        }
        let expected = state.next_sequence();
        if producer.first_sequence != expected {
            return SequenceCheck::Reject(PartitionResponse::OutOfOrderSequence {
                expected,
                received: producer.first_sequence,
            });
        }
        SequenceCheck::Accept
    }

    /// Records an appended idempotent batch. Returns the producer forgotten to stay within
    /// [`PRODUCERS_PER_PARTITION_MAX`], if any.
    pub fn remember(&mut self, producer: &ProducerBatch, record_count: u32, base_offset: u64) -> Option<u64> {
        let state = self.producers.entry(producer.producer_id).or_default();
        if producer.epoch != state.epoch {
            state.epoch = producer.epoch;
            state.recent.clear();
        }
        state.recent.push_back(SeenBatch { first_sequence: producer.first_sequence, record_count, base_offset });
        while state.recent.len() > PRODUCER_DEDUP_WINDOW_BATCHES {
            state.recent.pop_front();
        }
        if self.producers.len() <= PRODUCERS_PER_PARTITION_MAX {
            return None;
        }
        let idle = self
            .producers
            .iter()
            .min_by_key(|(_, p)| p.recent.back().map_or(0, |b| b.base_offset))
            .map(|(id, _)| *id)
            .expect("over the bound means not empty");
        self.producers.remove(&idle);
        Some(idle)
    }
}

const STATE: &[u8] = b"partition";
const PRODUCER: &[u8] = b"producer/";

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
        base_offset
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
        let mut failure = None;
        self.kv.scan(Cf::State, &start, &end, &mut |key, value| {
            let id_bytes: [u8; 8] = match key[start.len()..].try_into() {
                Ok(b) => b,
                Err(_) => {
                    failure = Some(crate::error::corrupt("producer key length"));
                    return false;
                }
            };
            match decode::<ProducerState>(value, "producer state") {
                Ok(state) => {
                    out.insert(u64::from_be_bytes(id_bytes), state);
                    true
                }
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        failure.map_or(Ok(out), Err)
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

    /// Visits index entries with base offset >= `from`, in order, until `visit` returns false.
    pub fn scan_index(&self, from: u64, visit: &mut dyn FnMut(u64, IndexEntry) -> bool) -> StorageResult<()> {
        let mut failure = None;
        self.kv.scan(
            Cf::OffsetIndex,
            &keys::group_u64(self.group, from),
            &keys::group_end(self.group),
            &mut |key, value| match decode::<IndexEntry>(value, "offset index entry") {
                Ok(entry) => visit(keys::suffix_u64(key), entry),
                Err(e) => {
                    failure = Some(e);
                    false
                }
            },
        )?;
        failure.map_or(Ok(()), Err)
    }

    /// Base offset of the first batch whose maximum timestamp is >= `timestamp_ms`.
    pub fn first_batch_at_or_after(&self, timestamp_ms: i64) -> StorageResult<Option<u64>> {
        let ts_key = u64::try_from(timestamp_ms).unwrap_or(0);
        let mut found = None;
        let mut failure = None;
        self.kv.scan(
            Cf::TimeIndex,
            &keys::group_u64(self.group, ts_key),
            &keys::group_end(self.group),
            &mut |_, value| {
                match decode::<u64>(value, "time index entry") {
                    Ok(base) => found = Some(base),
                    Err(e) => failure = Some(e),
                }
                false
            },
        )?;
        failure.map_or(Ok(found), Err)
    }

    /// Drops index entries below `offset` (after a snapshot moved the log start past them).
    pub fn stage_reset(&self, batch: &mut Batch) {
        for cf in [Cf::OffsetIndex, Cf::TimeIndex] {
            batch.delete_range(cf, keys::group_prefix(self.group).to_vec(), keys::group_end(self.group));
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn producer(id: u64, epoch: u32, seq: u64) -> ProducerBatch {
        ProducerBatch { producer_id: id, epoch, first_sequence: seq }
    }

    #[test]
    fn retry_is_a_duplicate_and_gap_is_rejected() {
        let mut state = PartitionState::default();
        let p = producer(1, 0, 0);
        assert_eq!(state.check_sequence(&p, 3), SequenceCheck::Accept);
        assert_eq!(state.remember(&p, 3, 100), None);
        assert_eq!(
            state.check_sequence(&p, 3),
            SequenceCheck::Reject(PartitionResponse::Duplicate { base_offset: 100, count: 3 })
        );
        assert_eq!(
            state.check_sequence(&producer(1, 0, 5), 1),
            SequenceCheck::Reject(PartitionResponse::OutOfOrderSequence { expected: 3, received: 5 })
        );
        assert_eq!(state.check_sequence(&producer(1, 0, 3), 1), SequenceCheck::Accept);
        assert_eq!(state.remember(&producer(1, 1, 0), 1, 200), None);
        assert_eq!(
            state.check_sequence(&producer(1, 0, 4), 1),
            SequenceCheck::Reject(PartitionResponse::ProducerFenced { current_epoch: 1 })
        );
    }

    proptest! {
        /// Sending batches in order, each possibly retried, appends every batch exactly once.
        #[test]
        fn retries_never_append_twice(sizes in prop::collection::vec(1u32..5, 1..40), retries in prop::collection::vec(0usize..3, 40)) {
            let mut state = PartitionState::default();
            let mut seq = 0u64;
            let mut appended = 0u64;
            for (i, size) in sizes.iter().enumerate() {
                let p = producer(9, 0, seq);
                for attempt in 0..=retries[i] {
                    match state.check_sequence(&p, *size) {
                        SequenceCheck::Accept => {
                            prop_assert_eq!(attempt, 0, "only the first attempt appends");
                            prop_assert_eq!(state.remember(&p, *size, appended), None);
                            appended += u64::from(*size);
                        }
                        SequenceCheck::Reject(PartitionResponse::Duplicate { count, .. }) => prop_assert_eq!(count, *size),
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                seq += u64::from(*size);
            }
            prop_assert_eq!(appended, sizes.iter().map(|s| u64::from(*s)).sum::<u64>());
        }
    }
}
