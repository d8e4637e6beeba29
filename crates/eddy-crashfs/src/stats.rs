//! What the filesystem did: how much it holds unsynced, synced and dropped.

/// Counters of one mounted filesystem since it was mounted, and its dirty figures now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Unsynced data bytes held now.
    pub dirty_bytes: u64,
    /// Files with unsynced state now.
    pub dirty_files: u64,
    /// fsync and fdatasync calls (and writes to files opened with O_SYNC or O_DSYNC).
    pub fsyncs: u64,
    /// Unsynced bytes written back to the backing directory.
    pub synced_bytes: u64,
    /// Times the bound on unsynced bytes forced every dirty file to be written back.
    pub forced_writebacks: u64,
    /// Power cuts.
    pub cuts: u64,
    /// Files whose unsynced state a power cut dropped.
    pub dropped_files: u64,
    /// Unsynced bytes a power cut dropped.
    pub dropped_bytes: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dirty_bytes={} dirty_files={} fsyncs={} synced_bytes={} forced_writebacks={} cuts={} dropped_files={} \
             dropped_bytes={}",
            self.dirty_bytes,
            self.dirty_files,
            self.fsyncs,
            self.synced_bytes,
            self.forced_writebacks,
            self.cuts,
            self.dropped_files,
            self.dropped_bytes
        )
    }
}
