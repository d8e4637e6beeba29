//! The partition log's data: records, the commands a partition group replicates, and their
//! outcomes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One event as stored in a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the Unix epoch: the producer's create time, or the leader's append time.
    pub timestamp_ms: i64,
}

pub use eddy_proto::{HEADER_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES};

impl Record {
    /// Bytes the record occupies, as counted against size limits ([`eddy_proto::record_size_bytes`],
    /// the one definition the producer's batching shares).
    pub fn size_bytes(&self) -> usize {
        eddy_proto::record_size_bytes(
            self.key.as_ref().map_or(0, Bytes::len),
            self.value.len(),
            self.headers.iter().map(|(k, v)| (k.len(), v.len())),
        )
    }
}

/// The idempotent-producer identity of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub producer_id: u64,
    pub epoch: u32,
    /// Sequence of the batch's first record, per producer and partition.
    pub first_sequence: u64,
    /// How long the partition keeps the window of a producer that stopped writing, as
    /// configured on the leader that proposed the batch. It travels in the entry so that every
    /// replica expires producers alike (their windows decide offsets).
    pub idle_expiry_ms: u64,
}

/// A record batch: the payload of one Raft entry of a partition group. Written once, as the Raft
/// entry; the state machine only indexes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordBatch {
    pub records: Vec<Record>,
    pub producer: Option<ProducerBatch>,
    /// The proposing leader's clock (milliseconds since the Unix epoch): the partition's time,
    /// the same on every replica, which producer expiry is measured by.
    pub append_time_ms: i64,
    /// Append only at this offset: set on a batch whose offset its leader predicted and answered
    /// before the batch committed (ACKS_LEADER). Should the prediction miss (an earlier proposal
    /// of the leader was refused, say), the batch is not appended at all, which ACKS_LEADER
    /// allows, rather than stored at an offset other than the one acknowledged.
    pub expected_base_offset: Option<u64>,
}

impl RecordBatch {
    /// The bytes its records count against size limits and retention.
    pub fn size_bytes(&self) -> u64 {
        self.records.iter().map(|r| r.size_bytes() as u64).sum()
    }

    pub fn max_timestamp_ms(&self) -> i64 {
        self.records.iter().map(|r| r.timestamp_ms).max().unwrap_or(i64::MIN)
    }
}

/// What a partition group replicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionCommand {
    Append(RecordBatch),
    /// Moves the log start up to `log_start_offset` (retention): records below it are no longer
    /// readable on any replica, and the Raft entries holding only such records are purged once
    /// a snapshot covers them (see [`crate::state_machine`]). An offset at or below the current
    /// log start changes nothing; one past the high watermark trims to the high watermark.
    Trim {
        log_start_offset: u64,
    },
}

impl std::fmt::Display for PartitionCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionCommand::Append(batch) => write!(f, "append({} records)", batch.records.len()),
            PartitionCommand::Trim { log_start_offset } => write!(f, "trim(below {log_start_offset})"),
        }
    }
}

/// The outcome of applying a [`PartitionCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionResponse {
    /// The batch now occupies offsets `base_offset..base_offset + count`.
    Appended { base_offset: u64, count: u32 },
    /// The batch was appended before (an idempotent retry) at `base_offset`.
    Duplicate { base_offset: u64, count: u32 },
    /// The batch's sequence does not follow the producer's last one: it was not appended.
    OutOfOrderSequence { expected: u64, received: u64 },
    /// A newer epoch of this producer id exists: this one is fenced.
    ProducerFenced { current_epoch: u32 },
    /// The partition holds no window for this producer (it never wrote here, or its window
    /// expired or was evicted) and the batch does not start a new one (sequence 0): appending
    /// it could repeat or skip records, so the producer must re-initialize.
    UnknownProducerId,
    /// The batch expected another base offset ([`RecordBatch::expected_base_offset`]): it was not
    /// appended.
    PredictionMissed { expected: u64, next_offset: u64 },
    /// The log now starts at `log_start_offset`.
    Trimmed { log_start_offset: u64 },
    /// Nothing to answer (blank and membership entries).
    None,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record() -> impl Strategy<Value = Record> {
        let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from);
        (
            proptest::option::of(bytes(300)),
            bytes(70_000),
            proptest::collection::vec(("[a-z]{0,300}", bytes(300)), 0..4),
            any::<i64>(),
        )
            .prop_map(|(key, value, headers, timestamp_ms)| Record { key, value, headers, timestamp_ms })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// The size limits count at least what a batch's Raft entry takes on disk and on the wire.
        #[test]
        fn counted_size_bounds_the_encoding(records in proptest::collection::vec(record(), 0..40)) {
            let counted: usize = records.iter().map(Record::size_bytes).sum();
            for record in &records {
                prop_assert!(eddy_storage::codec::encode(record).len() <= record.size_bytes());
            }
            let batch = PartitionCommand::Append(RecordBatch { records, producer: None, append_time_ms: 0, expected_base_offset: None });
            // The batch adds a variant tag, a count and an optional producer: a few bytes.
            prop_assert!(eddy_storage::codec::encode(&batch).len() <= counted + RECORD_OVERHEAD_BYTES);
        }
    }
}
