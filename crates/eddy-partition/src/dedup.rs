//! Idempotent producers: the window of recent batches a partition remembers per producer, and
//! the rule that decides whether an incoming batch is appended, answered as a duplicate, or
//! refused.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::records::{PartitionResponse, ProducerBatch};

pub use eddy_limits::{PRODUCER_DEDUP_WINDOW_BATCHES, PRODUCERS_PER_PARTITION_MAX};

/// How long a partition keeps the window of a producer that stopped writing, by default (as
/// Kafka's `producer.id.expiration.ms`): one day.
pub const PRODUCER_IDLE_EXPIRY_MS_DEFAULT: u64 = 24 * 60 * 60 * 1000;

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
    /// The partition's clock when the producer last appended.
    pub last_append_ms: i64,
}

impl ProducerState {
    /// The sequence the next batch must start with.
    pub fn next_sequence(&self) -> u64 {
        self.recent.back().map_or(0, |b| b.first_sequence + u64::from(b.record_count))
    }

    fn expired(&self, clock_ms: i64, idle_expiry_ms: u64) -> bool {
        let idle = clock_ms.saturating_sub(self.last_append_ms);
        idle >= 0 && idle as u64 >= idle_expiry_ms
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
    /// Bytes of the batches still indexed (those not wholly below the log start), as retention
    /// counts them.
    pub retained_bytes: u64,
    /// Greatest record timestamp appended so far.
    pub max_timestamp_ms: Option<i64>,
    /// The partition's clock: the greatest append time of the entries applied so far. It never
    /// goes back (a new leader's clock may be behind its predecessor's), and every replica has
    /// the same one at the same entry.
    pub clock_ms: i64,
    /// When (by `clock_ms`) the windows of idle producers are next looked through for expiry.
    pub next_expiry_scan_ms: i64,
    /// Idempotent producers' windows. Persisted one key per producer (only changed ones are
    /// written), not with the rest of the state.
    #[serde(skip)]
    pub producers: BTreeMap<u64, ProducerState>,
}

impl PartitionState {
    /// Moves the partition's clock to an entry's append time (never back).
    pub fn advance_clock(&mut self, append_time_ms: i64) {
        self.clock_ms = self.clock_ms.max(append_time_ms);
    }

    /// Checks an idempotent batch against the producer's window.
    pub fn check_sequence(&self, producer: &ProducerBatch, record_count: u32) -> SequenceCheck {
        let known =
            self.producers.get(&producer.producer_id).filter(|p| !p.expired(self.clock_ms, producer.idle_expiry_ms));
        let Some(state) = known else {
            // No window: only a batch that starts one (sequence 0, as a producer's first batch
            // of an epoch does) is appended. Any other could repeat a batch appended before the
            // window was forgotten, or follow a gap: the producer must re-initialize.
            return match producer.first_sequence {
                0 => SequenceCheck::Accept,
                _ => SequenceCheck::Reject(PartitionResponse::UnknownProducerId),
            };
        };
        if producer.epoch < state.epoch {
            return SequenceCheck::Reject(PartitionResponse::ProducerFenced { current_epoch: state.epoch });
        }
        if producer.epoch > state.epoch {
            // A new epoch starts its sequences afresh.
            return match producer.first_sequence {
                0 => SequenceCheck::Accept,
                received => SequenceCheck::Reject(PartitionResponse::OutOfOrderSequence { expected: 0, received }),
            };
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
        let clock_ms = self.clock_ms;
        let state = self.producers.entry(producer.producer_id).or_default();
        if producer.epoch != state.epoch || state.expired(clock_ms, producer.idle_expiry_ms) {
            state.epoch = producer.epoch;
            state.recent.clear();
        }
        state.last_append_ms = clock_ms;
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
            .min_by_key(|(_, p)| (p.last_append_ms, p.recent.back().map_or(0, |b| b.base_offset)))
            .map(|(id, _)| *id)
            .expect("over the bound means not empty");
        self.producers.remove(&idle);
        Some(idle)
    }

    /// Forgets the producers idle for `idle_expiry_ms` or longer, when a look is due (about ten
    /// times per expiry period, by the partition's clock). Returns the ids forgotten. An expired
    /// window is already treated as absent by [`Self::check_sequence`]; this frees its memory.
    /// It runs at the same entries on every replica (it depends only on the applied entries), so
    /// replicas keep the same windows.
    pub fn expire_idle(&mut self, idle_expiry_ms: u64) -> Vec<u64> {
        if self.clock_ms < self.next_expiry_scan_ms {
            return Vec::new();
        }
        let every = (idle_expiry_ms / 10).clamp(1_000, 60_000);
        self.next_expiry_scan_ms = self.clock_ms.saturating_add(every as i64);
        let clock_ms = self.clock_ms;
        let expired: Vec<u64> =
            self.producers.iter().filter(|(_, p)| p.expired(clock_ms, idle_expiry_ms)).map(|(id, _)| *id).collect();
        for id in &expired {
            self.producers.remove(id);
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn producer(id: u64, epoch: u32, seq: u64) -> ProducerBatch {
        ProducerBatch { producer_id: id, epoch, first_sequence: seq, idle_expiry_ms: 10_000 }
    }

    #[test]
    fn a_window_is_started_only_at_sequence_zero() {
        let mut state = PartitionState::default();
        assert_eq!(
            state.check_sequence(&producer(1, 0, 7), 1),
            SequenceCheck::Reject(PartitionResponse::UnknownProducerId),
            "a batch in the middle of a window nobody remembers could repeat or skip records"
        );
        assert_eq!(state.check_sequence(&producer(1, 0, 0), 2), SequenceCheck::Accept);
        state.remember(&producer(1, 0, 0), 2, 0);
        assert_eq!(
            state.check_sequence(&producer(1, 1, 5), 1),
            SequenceCheck::Reject(PartitionResponse::OutOfOrderSequence { expected: 0, received: 5 }),
            "a new epoch starts at 0"
        );
        assert_eq!(state.check_sequence(&producer(1, 1, 0), 1), SequenceCheck::Accept);
    }

    #[test]
    fn idle_producers_expire_by_the_partition_clock() {
        let mut state = PartitionState::default();
        state.advance_clock(1_000);
        state.remember(&producer(1, 0, 0), 2, 0);
        state.advance_clock(5_000);
        state.remember(&producer(2, 0, 0), 1, 2);
        // Nine seconds idle of ten: producer 1 continues its window.
        state.advance_clock(10_999);
        assert_eq!(state.check_sequence(&producer(1, 0, 2), 1), SequenceCheck::Accept);
        // The clock never goes back, whatever a new leader's clock says.
        state.advance_clock(3_000);
        assert_eq!(state.clock_ms, 10_999);
        state.advance_clock(11_000);
        assert_eq!(
            state.check_sequence(&producer(1, 0, 2), 1),
            SequenceCheck::Reject(PartitionResponse::UnknownProducerId),
            "an expired window is gone even before the scan frees it"
        );
        assert_eq!(
            state.check_sequence(&producer(1, 0, 0), 2),
            SequenceCheck::Accept,
            "and a new window starts at 0, even at the expired window's epoch"
        );
        assert_eq!(state.expire_idle(10_000), vec![1]);
        assert!(state.expire_idle(10_000).is_empty(), "the next scan waits for the clock");
        assert!(state.producers.contains_key(&2));
        state.advance_clock(16_000);
        assert_eq!(state.expire_idle(10_000), vec![2]);
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
