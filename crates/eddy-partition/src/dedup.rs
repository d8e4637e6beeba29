//! Idempotent producers: the window of recent batches a partition remembers per producer, and
//! the rule that decides whether an incoming batch is appended, answered as a duplicate, or
//! refused.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::records::{PartitionResponse, ProducerBatch};

/// Batches remembered per producer and partition to answer retries (as Kafka's five in-flight).
pub const PRODUCER_DEDUP_WINDOW_BATCHES: usize = 5;

/// Producers a partition remembers; past this, the one idle longest (lowest last offset) is
/// forgotten, and its next batch starts afresh.
pub const PRODUCERS_PER_PARTITION_MAX: usize = 10_000;

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
