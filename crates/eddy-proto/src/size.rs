//! The size a record counts against limits, defined once: the broker checks
//! `record_size_max_bytes` and `batch_size_max_bytes` with it, and the producer fills batches
//! with it, so a producer never builds a batch the broker refuses as too large.

use crate::v1;

/// Bytes charged for every record on top of its key, value and headers. At least what the
/// record's stored encoding adds to them (key option tag, three length prefixes of at most 5
/// bytes for lengths below 4 GiB, a timestamp of at most 9), so a batch's Raft entry is never
/// larger than the size the limits counted, however small its records are.
pub const RECORD_OVERHEAD_BYTES: usize = 32;
/// Bytes charged for every header on top of its name and value (their two length prefixes).
pub const HEADER_OVERHEAD_BYTES: usize = 16;

const _: () = assert!(RECORD_OVERHEAD_BYTES >= 1 + 3 * 5 + 9);
const _: () = assert!(HEADER_OVERHEAD_BYTES >= 2 * 5);

/// The counted size of a record with a key of `key_bytes` (0 without a key), a value of
/// `value_bytes`, and headers of (name, value) lengths.
pub fn record_size_bytes(
    key_bytes: usize,
    value_bytes: usize,
    headers: impl IntoIterator<Item = (usize, usize)>,
) -> usize {
    key_bytes
        + value_bytes
        + headers.into_iter().map(|(name, value)| name + value + HEADER_OVERHEAD_BYTES).sum::<usize>()
        + RECORD_OVERHEAD_BYTES
}

/// The counted size of a record as produced.
pub fn wire_record_size_bytes(record: &v1::Record) -> usize {
    record_size_bytes(
        record.key.as_ref().map_or(0, |k| k.len()),
        record.value.len(),
        record.headers.iter().map(|h| (h.key.len(), h.value.len())),
    )
}
