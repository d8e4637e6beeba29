//! Records read straight from a stored Raft entry, decoding only what a read returns.
//!
//! A data entry is one produce batch: up to [`eddy_limits::BATCH_RECORDS_MAX_LIMIT`] records and
//! megabytes of payload. A fetch from the middle of it used to decode the whole entry, every
//! payload copied into its own buffer, to return a few records. Here the entry's stored bytes are
//! walked record by record: a record before the read's offset costs its length prefixes, and a
//! record returned shares the entry's buffer (its key, value and header values are slices of it,
//! no copy).
//!
//! The walk follows the encoding of [`crate::PartitionTypes`]'s entries under
//! [`eddy_storage::codec`] (bincode's standard configuration over serde): the entry's log id,
//! the variant of its payload (`EntryPayload::Normal`), the variant of the command
//! ([`PartitionCommand::Append`]), then the [`RecordBatch`](crate::RecordBatch) fields, its
//! record count and records first. [`RecordRef`] mirrors [`Record`] field for field; the tests
//! hold the two decodings to the same answers.

use bytes::Bytes;
use eddy_storage::codec::decode_prefix;
use eddy_storage::{StorageError, StorageResult};
use openraft::type_config::alias::LogIdOf;
use serde::Deserialize;

use crate::PartitionTypes;
use crate::records::Record;

/// `EntryPayload::Normal`'s variant index (after `Blank`).
const ENTRY_PAYLOAD_NORMAL: u32 = 1;
/// [`crate::PartitionCommand::Append`]'s variant index.
const COMMAND_APPEND: u32 = 0;

/// A record as stored, borrowing from the entry's bytes: [`Record`]'s serde layout.
#[derive(Deserialize)]
struct RecordRef<'a> {
    #[serde(borrow)]
    key: Option<&'a [u8]>,
    value: &'a [u8],
    #[serde(borrow)]
    headers: Vec<(&'a str, &'a [u8])>,
    timestamp_ms: i64,
}

/// The records of one stored data entry.
pub(crate) struct StoredBatch {
    raw: Bytes,
    /// Where the first record starts in `raw`.
    records_at: usize,
    count: usize,
    raft_index: u64,
}

/// One record of a [`StoredBatch`], not yet copied out.
pub(crate) struct StoredRecord<'a> {
    raw: &'a Bytes,
    record: RecordRef<'a>,
}

impl StoredBatch {
    /// Reads the head of the entry at `raft_index`, stored as `raw`: corrupt when it is not a
    /// data entry.
    pub(crate) fn open(raw: Bytes, raft_index: u64) -> StorageResult<StoredBatch> {
        type Head = (LogIdOf<PartitionTypes>, u32, u32, u64);
        let ((_, payload, command, count), records_at) = decode_prefix::<Head>(&raw, "raft log entry")?;
        if payload != ENTRY_PAYLOAD_NORMAL || command != COMMAND_APPEND {
            return Err(StorageError::Corrupt(format!(
                "offset index points at a non-data raft entry {raft_index} (payload variant {payload}, command \
                 variant {command})"
            )));
        }
        let count = usize::try_from(count)
            .map_err(|_| StorageError::Corrupt(format!("raft entry {raft_index} claims {count} records")))?;
        Ok(StoredBatch { raw, records_at, count, raft_index })
    }

    /// How many records the entry holds.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Calls `visit` with each record in order (its index in the batch and the record), until it
    /// returns `false` or the records end.
    pub(crate) fn visit(
        &self,
        visit: &mut dyn FnMut(usize, StoredRecord<'_>) -> StorageResult<bool>,
    ) -> StorageResult<()> {
        let mut at = self.records_at;
        for i in 0..self.count {
            let rest = self.raw.get(at..).unwrap_or_default();
            let (record, used) = decode_prefix::<RecordRef<'_>>(rest, "stored record")
                .map_err(|e| StorageError::Corrupt(format!("raft entry {}, record {i}: {e}", self.raft_index)))?;
            at += used;
            if !visit(i, StoredRecord { raw: &self.raw, record })? {
                break;
            }
        }
        Ok(())
    }
}

/// Every record of the stored data entry `raw`, read by the walk a fetch uses: for the fuzz
/// targets, which hold it to the full decoding on bytes no replica wrote.
pub fn stored_records(raw: Bytes) -> StorageResult<Vec<Record>> {
    let batch = StoredBatch::open(raw, 0)?;
    // The count is the entry's claim, not what it holds: reserving it would let a few corrupt
    // bytes ask for gigabytes.
    let mut records = Vec::new();
    batch.visit(&mut |_, record| {
        records.push(record.to_record());
        Ok(true)
    })?;
    Ok(records)
}

impl StoredRecord<'_> {
    pub(crate) fn timestamp_ms(&self) -> i64 {
        self.record.timestamp_ms
    }

    /// The bytes it counts against read limits ([`Record::size_bytes`]).
    pub(crate) fn size_bytes(&self) -> usize {
        eddy_proto::record_size_bytes(
            self.record.key.map_or(0, <[u8]>::len),
            self.record.value.len(),
            self.record.headers.iter().map(|(k, v)| (k.len(), v.len())),
        )
    }

    /// The record, its payloads sharing the entry's buffer.
    pub(crate) fn to_record(&self) -> Record {
        Record {
            key: self.record.key.map(|k| self.raw.slice_ref(k)),
            value: self.raw.slice_ref(self.record.value),
            headers: self.record.headers.iter().map(|(k, v)| (k.to_string(), self.raw.slice_ref(v))).collect(),
            timestamp_ms: self.record.timestamp_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::vote::leader_id_std::CommittedLeaderId;
    use openraft::{Entry, EntryPayload, LogId};
    use proptest::prelude::*;

    use super::*;
    use crate::records::{PartitionCommand, ProducerBatch, RecordBatch};

    fn stored(index: u64, payload: EntryPayload<PartitionCommand, u64, openraft::BasicNode>) -> Bytes {
        let entry = Entry { log_id: LogId::new(CommittedLeaderId::new(7), index), payload };
        Bytes::from(eddy_storage::codec::encode(&entry))
    }

    fn records_of(batch: &StoredBatch, skip: usize) -> Vec<Record> {
        let mut out = Vec::new();
        batch
            .visit(&mut |i, r| {
                if i >= skip {
                    out.push(r.to_record());
                }
                Ok(true)
            })
            .unwrap();
        out
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(("[a-z]{0,8}", proptest::collection::vec(any::<u8>(), 0..20)), 0..3),
            any::<i64>(),
        )
            .prop_map(|(key, value, headers, timestamp_ms)| Record {
                key: key.map(Bytes::from),
                value: Bytes::from(value),
                headers: headers.into_iter().map(|(k, v)| (k, Bytes::from(v))).collect(),
                timestamp_ms,
            })
    }

    proptest! {
        /// Whatever the records, the walk reads what a full decode reads, from any record on,
        /// sizes included.
        #[test]
        fn the_walk_reads_what_the_full_decode_reads(
            records in proptest::collection::vec(record(), 0..20),
            index in 1u64..u64::MAX,
            idempotent in any::<bool>(),
            expected in proptest::option::of(any::<u64>()),
            skip in 0usize..25,
        ) {
            let batch = RecordBatch {
                records: records.clone(),
                producer: idempotent.then_some(ProducerBatch {
                    producer_id: 9,
                    epoch: 2,
                    first_sequence: 40,
                    idle_expiry_ms: 1000,
                }),
                append_time_ms: 1_700_000_000_000,
                expected_base_offset: expected,
            };
            let raw = stored(index, EntryPayload::Normal(PartitionCommand::Append(batch)));
            let walked = StoredBatch::open(raw, index).unwrap();
            prop_assert_eq!(walked.len(), records.len());
            prop_assert_eq!(records_of(&walked, skip), records.iter().skip(skip).cloned().collect::<Vec<_>>());
            let mut sizes = Vec::new();
            walked.visit(&mut |_, r| { sizes.push((r.size_bytes(), r.timestamp_ms())); Ok(true) }).unwrap();
            prop_assert_eq!(sizes, records.iter().map(|r| (r.size_bytes(), r.timestamp_ms)).collect::<Vec<_>>());
        }
    }

    #[test]
    fn entries_without_records_are_refused_as_corrupt() {
        let blank = stored(3, EntryPayload::Blank);
        assert!(matches!(StoredBatch::open(blank, 3), Err(StorageError::Corrupt(_))));
        let trim = stored(4, EntryPayload::Normal(PartitionCommand::Trim { log_start_offset: 10 }));
        assert!(matches!(StoredBatch::open(trim, 4), Err(StorageError::Corrupt(_))));
    }

    #[test]
    fn a_cut_entry_is_corrupt_not_a_panic() {
        let record = Record { key: None, value: Bytes::from_static(b"payload"), headers: vec![], timestamp_ms: 5 };
        let batch =
            RecordBatch { records: vec![record; 3], producer: None, append_time_ms: 1, expected_base_offset: None };
        let raw = stored(5, EntryPayload::Normal(PartitionCommand::Append(batch)));
        let cut = StoredBatch::open(raw.slice(..raw.len() - 12), 5).unwrap();
        let mut seen = 0;
        let result = cut.visit(&mut |_, _| {
            seen += 1;
            Ok(true)
        });
        assert!(matches!(result, Err(StorageError::Corrupt(_))), "{seen} records read from a cut entry");
    }
}
