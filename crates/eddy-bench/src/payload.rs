//! Record payloads: random bytes (so neither system's storage compresses them away), optionally
//! stamped with the record's sequence number and scheduled send time so a consumer can time and
//! check what it receives.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use rand::RngCore;

/// Bytes of the stamp at the front of a stamped payload: sequence (u64 LE), then the scheduled
/// send time in nanoseconds after the run's epoch (u64 LE).
pub const STAMP_BYTES: usize = 16;
/// Random bytes payloads are cut from; a payload starts at a different offset of it each time.
const TEMPLATE_BYTES: usize = 1 << 20;

/// Makes the payloads of one run.
#[derive(Debug, Clone)]
pub struct Payloads {
    template: Bytes,
    size_bytes: usize,
    stamped: bool,
}

impl Payloads {
    /// Payloads of `size_bytes` each; `stamped` ones carry a [`Stamp`] (which needs
    /// `size_bytes >= STAMP_BYTES`).
    pub fn new(size_bytes: usize, stamped: bool) -> Payloads {
        assert!(!stamped || size_bytes >= STAMP_BYTES, "a stamped payload holds at least {STAMP_BYTES} bytes");
        let mut template = vec![0u8; TEMPLATE_BYTES + size_bytes];
        rand::rng().fill_bytes(&mut template);
        Payloads { template: Bytes::from(template), size_bytes, stamped }
    }

    /// The payload of record `sequence`, due at `due_after_epoch`. Unstamped payloads share the
    /// template's memory (no copy).
    pub fn make(&self, sequence: u64, due_after_epoch: Duration) -> Bytes {
        let start = (sequence.wrapping_mul(4099) % TEMPLATE_BYTES as u64) as usize;
        let body = self.template.slice(start..start + self.size_bytes);
        if !self.stamped {
            return body;
        }
        let mut out = BytesMut::with_capacity(self.size_bytes);
        out.put_u64_le(sequence);
        out.put_u64_le(due_after_epoch.as_nanos().min(u128::from(u64::MAX)) as u64);
        out.put_slice(&body[STAMP_BYTES..]);
        debug_assert_eq!(out.len(), self.size_bytes);
        out.freeze()
    }
}

/// What a stamped payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The record's sequence number in the run (0, 1, 2, ...).
    pub sequence: u64,
    /// When the record was due to be sent.
    pub due: Instant,
}

impl Stamp {
    /// Reads the stamp of a payload made with `epoch`; `None` when it is too short to hold one.
    pub fn read(payload: &[u8], epoch: Instant) -> Option<Stamp> {
        let sequence = Self::sequence_of(payload)?;
        let due_nanos = u64::from_le_bytes(payload.get(8..16)?.try_into().ok()?);
        Some(Stamp { sequence, due: epoch + Duration::from_nanos(due_nanos) })
    }

    /// The sequence number of a stamped payload.
    pub fn sequence_of(payload: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(payload.get(0..8)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_as_written() {
        let epoch = Instant::now();
        let payloads = Payloads::new(1024, true);
        let payload = payloads.make(77, Duration::from_micros(1_500));
        assert_eq!(payload.len(), 1024);
        let stamp = Stamp::read(&payload, epoch).expect("stamped");
        assert_eq!(stamp.sequence, 77);
        assert_eq!(stamp.due, epoch + Duration::from_micros(1_500));
    }

    #[test]
    fn unstamped_payloads_have_the_size_and_differ() {
        let payloads = Payloads::new(128, false);
        let (a, b) = (payloads.make(0, Duration::ZERO), payloads.make(1, Duration::ZERO));
        assert_eq!((a.len(), b.len()), (128, 128));
        assert_ne!(a, b);
    }
}
