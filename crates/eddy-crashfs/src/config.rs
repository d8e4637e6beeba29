//! The filesystem's bounds and settings, checked before mounting.

use std::time::Duration;

use crate::error::CrashFsError;

/// The smallest accepted `dirty_bytes_max`: above the largest write the kernel sends in one
/// FUSE request (256 pages of 4 KiB), so one write never exceeds the bound on its own.
pub const DIRTY_BYTES_MAX_MIN: u64 = 4 << 20;

/// Settings of one mounted crash filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashFsConfig {
    /// Unsynced data bytes held over every file. A write that would pass it first writes every
    /// dirty file back (see `PageCache::write`); memory use is bounded by it.
    pub dirty_bytes_max: u64,
    /// Files and directories open at once through the filesystem; more are refused (ENFILE).
    pub open_handles_max: usize,
    /// How long the kernel may cache names and attributes. All changes go through the
    /// filesystem, so caching is safe; it only saves round trips.
    pub attr_ttl_ms: u64,
    /// Threads serving FUSE requests.
    pub threads: usize,
}

impl Default for CrashFsConfig {
    fn default() -> Self {
        Self { dirty_bytes_max: 256 << 20, open_handles_max: 4_096, attr_ttl_ms: 1_000, threads: 2 }
    }
}

impl CrashFsConfig {
    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<(), CrashFsError> {
        let bad = |field: &'static str, reason: String| Err(CrashFsError::Config { field, reason });
        if self.dirty_bytes_max < DIRTY_BYTES_MAX_MIN {
            return bad("dirty_bytes_max", format!("must be at least {DIRTY_BYTES_MAX_MIN} bytes"));
        }
        if self.open_handles_max == 0 {
            return bad("open_handles_max", "must be at least 1".into());
        }
        if !(1..=64).contains(&self.threads) {
            return bad("threads", "must be from 1 to 64".into());
        }
        if self.attr_ttl_ms > 60_000 {
            return bad("attr_ttl_ms", "must be at most 60000".into());
        }
        Ok(())
    }

    /// `attr_ttl_ms` as a duration.
    pub fn attr_ttl(&self) -> Duration {
        Duration::from_millis(self.attr_ttl_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_valid_and_errors_name_the_field() {
        CrashFsConfig::default().validate().unwrap();
        let small = CrashFsConfig { dirty_bytes_max: 1, ..CrashFsConfig::default() };
        assert!(matches!(small.validate(), Err(CrashFsError::Config { field: "dirty_bytes_max", .. })));
        let threads = CrashFsConfig { threads: 0, ..CrashFsConfig::default() };
        assert!(matches!(threads.validate(), Err(CrashFsError::Config { field: "threads", .. })));
    }
}
