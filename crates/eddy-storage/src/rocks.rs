//! The RocksDB [`KvStore`]: one database per node, one column family per [`Cf`], and a
//! group-commit syncer thread.
//!
//! Writes go straight into RocksDB (memtable + WAL, no fsync), so they are visible at once and
//! ordered. Sync requests queue for the syncer thread, which takes every request pending, syncs the
//! WAL once, and completes them all: under load, many Raft groups' appends share one fsync.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use rocksdb::{ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options};

use crate::error::{StorageError, StorageResult};
use crate::kv::{Batch, Cf, KvStore, Op, SyncDone, Visitor};

/// Bounds of the group-commit syncer.
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitConfig {
    /// Sync requests waiting for the syncer; a full queue makes `sync` wait (backpressure).
    pub queue_depth_max: usize,
    /// Bytes each column family buffers in memory before RocksDB flushes them to a file.
    pub write_buffer_bytes: usize,
    /// Bytes of write-ahead log after which RocksDB flushes every column family, so old log
    /// files can go. Without it, the small column families (indexes, state) would keep the log
    /// of the partition data alive up to gigabytes, whatever retention deletes.
    pub wal_max_bytes: u64,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self { queue_depth_max: 65_536, write_buffer_bytes: 64 << 20, wal_max_bytes: 512 << 20 }
    }
}

/// Log entries at least this large are stored in RocksDB blob files rather than in its sorted
/// files (see [`RocksKv::open`]).
pub const LOG_BLOB_MIN_BYTES: u64 = 4 << 10;

/// RocksDB-backed store.
pub struct RocksKv {
    db: Arc<DB>,
    path: PathBuf,
    /// `None` only while dropping.
    syncs: Option<mpsc::SyncSender<SyncDone>>,
    syncer: Option<thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RocksKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksKv").field("path", &self.path).finish()
    }
}

impl RocksKv {
    /// Opens (creating if needed) the database under `path` and starts its syncer thread.
    pub fn open(path: &Path, config: GroupCommitConfig) -> StorageResult<Self> {
        std::fs::create_dir_all(path)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // Recover to the last consistent point of the WAL: a prefix of the written batches.
        opts.set_wal_recovery_mode(rocksdb::DBRecoveryMode::PointInTime);
        opts.set_max_total_wal_size(config.wal_max_bytes);
        let cfs = Cf::ALL.iter().map(|cf| {
            let mut cf_opts = Options::default();
            // Record payloads are the producers' business to compress (most arrive compressed or
            // as compact binary): LZ4 over them cost CPU at every flush, compaction and read for
            // little space. The small column families keep it.
            let compression = match cf {
                Cf::Log => rocksdb::DBCompressionType::None,
                _ => rocksdb::DBCompressionType::Lz4,
            };
            cf_opts.set_compression_type(compression);
            cf_opts.set_write_buffer_size(config.write_buffer_bytes);
            if *cf == Cf::Log {
                // Entries of several groups share the column family, so every flushed file
                // overlaps the others and compaction would rewrite the payloads again and again
                // (a 1 KiB record cost 8 bytes of disk writes per replica's byte over three
                // partitions). Entries of a few KiB or more go to blob files at flush instead:
                // compaction then moves only their keys and references, and a blob file goes
                // once every entry in it is purged (garbage collection moves the live ones out of
                // the oldest files, so one slow partition does not pin the others' space).
                cf_opts.set_enable_blob_files(true);
                cf_opts.set_min_blob_size(LOG_BLOB_MIN_BYTES);
                cf_opts.set_blob_compression_type(rocksdb::DBCompressionType::None);
                cf_opts.set_enable_blob_gc(true);
            }
            ColumnFamilyDescriptor::new(cf.name(), cf_opts)
        });
        let db = Arc::new(DB::open_cf_descriptors(&opts, path, cfs)?);
        let (syncs, rx) = mpsc::sync_channel(config.queue_depth_max);
        let syncer_db = db.clone();
        let skip_sync = planted_fault_skip_wal_sync();
        let syncer = thread::Builder::new()
            .name("eddy-group-commit".into())
            .spawn(move || syncer_loop(&syncer_db, &rx, skip_sync))?;
        Ok(Self { db, path: path.to_path_buf(), syncs: Some(syncs), syncer: Some(syncer) })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RocksKv {
    /// Stops the syncer (after it served every queued sync) so the database is closed when this
    /// returns and the directory can be opened again.
    fn drop(&mut self) {
        drop(self.syncs.take());
        if let Some(syncer) = self.syncer.take()
            && syncer.join().is_err()
        {
            tracing::error!("group-commit syncer panicked");
        }
    }
}

fn cf_handle(db: &DB, cf: Cf) -> &rocksdb::ColumnFamily {
    db.cf_handle(cf.name()).expect("every column family is created at open")
}

/// The environment variable that plants the test fault of `planted_fault_skip_wal_sync`.
pub const FAULT_SKIP_WAL_SYNC_ENV: &str = "EDDY_FAULT_SKIP_WAL_SYNC";

/// A planted bug, for tests only: with `EDDY_FAULT_SKIP_WAL_SYNC=1` in a debug build, the
/// group-commit syncer reports every sync done without fsyncing the WAL, so acknowledged writes
/// live only in the page cache. `tests/crash_disk.rs` runs with it to prove that its crash
/// filesystem and checker catch a missing fsync. Release builds never read the variable.
fn planted_fault_skip_wal_sync() -> bool {
    #[cfg(debug_assertions)]
    {
        let planted = std::env::var_os(FAULT_SKIP_WAL_SYNC_ENV).is_some_and(|v| v == "1");
        if planted {
            tracing::error!(
                env = FAULT_SKIP_WAL_SYNC_ENV,
                "PLANTED FAULT ON: the WAL is never fsynced and syncs are acknowledged anyway; acknowledged \
                 writes WILL be lost on power loss (a test-only bug, absent from release builds)"
            );
        }
        planted
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

fn syncer_loop(db: &DB, rx: &mpsc::Receiver<SyncDone>, skip_sync: bool) {
    let mut waiting: Vec<SyncDone> = Vec::new();
    while let Ok(first) = rx.recv() {
        waiting.push(first);
        // Everyone who asked before this fsync starts is served by it.
        while let Ok(next) = rx.try_recv() {
            waiting.push(next);
        }
        let started = Instant::now();
        // The planted fault writes the WAL buffer out without the fsync.
        let result = db.flush_wal(!skip_sync);
        metrics::histogram!("eddy_storage_fsync_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("eddy_storage_fsyncs_total").increment(1);
        metrics::histogram!("eddy_storage_syncs_per_fsync").record(waiting.len() as f64);
        match result {
            Ok(()) => waiting.drain(..).for_each(|done| done(Ok(()))),
            Err(e) => {
                tracing::error!(error = %e, waiting = waiting.len(), "WAL sync failed");
                let message = e.to_string();
                waiting.drain(..).for_each(|done| done(Err(StorageError::Io(std::io::Error::other(message.clone())))));
            }
        }
    }
    tracing::debug!("group-commit syncer stopped");
}

impl KvStore for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.db.get_cf(cf_handle(&self.db, cf), key)?)
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> StorageResult<()> {
        let iter = self.db.iterator_cf(cf_handle(&self.db, cf), IteratorMode::From(start, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if key.as_ref() >= end || !visit(&key, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn last_in(&self, cf: Cf, start: &[u8], end: &[u8]) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        let mut iter = self.db.raw_iterator_cf(cf_handle(&self.db, cf));
        iter.seek_for_prev(end);
        while iter.valid() {
            let key = iter.key().expect("valid iterator has a key");
            if key < start {
                return Ok(None);
            }
            if key < end {
                let value = iter.value().expect("valid iterator has a value");
                return Ok(Some((key.to_vec(), value.to_vec())));
            }
            iter.prev();
        }
        iter.status()?;
        Ok(None)
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        let mut rocks = rocksdb::WriteBatch::default();
        for op in &batch.ops {
            match op {
                Op::Put { cf, key, value } => rocks.put_cf(cf_handle(&self.db, *cf), key, value),
                Op::Delete { cf, key } => rocks.delete_cf(cf_handle(&self.db, *cf), key),
                Op::DeleteRange { cf, start, end } => rocks.delete_range_cf(cf_handle(&self.db, *cf), start, end),
            }
        }
        Ok(self.db.write(rocks)?)
    }

    fn sync(&self, done: SyncDone) {
        let Some(syncs) = &self.syncs else {
            return done(Err(StorageError::WriterStopped));
        };
        if let Err(mpsc::SendError(done)) = syncs.send(done) {
            done(Err(StorageError::WriterStopped));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RocksDB in a temporary directory; a crash kills the store (without the clean shutdown
    /// of a process exit) and opens the directory again.
    struct Harness {
        dir: tempfile::TempDir,
        kv: Option<Arc<RocksKv>>,
    }

    impl crate::conformance::Harness for Harness {
        fn store(&mut self) -> Arc<dyn KvStore> {
            let kv = self
                .kv
                .get_or_insert_with(|| Arc::new(RocksKv::open(self.dir.path(), GroupCommitConfig::default()).unwrap()));
            kv.clone()
        }

        fn crash(&mut self) -> bool {
            let kv = self.kv.take().expect("a store was opened");
            let kv = Arc::try_unwrap(kv).unwrap_or_else(|_| panic!("the suite still holds the store"));
            drop(kv);
            true
        }
    }

    #[test]
    fn conforms_to_the_kv_store_contract() {
        crate::conformance::run_all(|| Harness { dir: tempfile::tempdir().unwrap(), kv: None });
    }

    #[test]
    fn write_sync_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let kv = RocksKv::open(dir.path(), GroupCommitConfig::default()).unwrap();
            let mut batch = Batch::new();
            for i in 0..10u64 {
                batch.put(Cf::Log, crate::kv::keys::group_u64(7, i), vec![i as u8]);
            }
            kv.write(batch).unwrap();
            let (tx, rx) = mpsc::channel();
            kv.sync(Box::new(move |r| tx.send(r.is_ok()).unwrap()));
            assert!(rx.recv().unwrap());
            let last = kv.last_in(Cf::Log, &7u64.to_be_bytes(), &crate::kv::keys::group_end(7)).unwrap();
            assert_eq!(last.unwrap().1, vec![9]);
        }
        let kv = RocksKv::open(dir.path(), GroupCommitConfig::default()).unwrap();
        let mut seen = Vec::new();
        kv.scan(Cf::Log, &crate::kv::keys::group_u64(7, 3), &crate::kv::keys::group_u64(7, 6), &mut |_, v| {
            seen.push(v[0]);
            Ok(true)
        })
        .unwrap();
        assert_eq!(seen, vec![3, 4, 5]);
    }
}
