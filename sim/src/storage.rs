//! A simulated node's disk: [`MemKv`] (which loses every unsynced write on a crash) behind the
//! same [`KvStore`] trait as RocksDB, plus the deliberate durability bug the checker must catch.

use std::sync::Arc;

use eddy_storage::kv::{Batch, Cf, KvStore, SyncDone, Visitor};
use eddy_storage::{MemKv, StorageResult};

/// One node's store. It outlives the node's software: a crash drops every task of the host and
/// then [`SimDisk::crash`] throws away what was not synced; the restarted node opens it again.
#[derive(Debug, Clone)]
pub struct SimDisk {
    mem: Arc<MemKv>,
    skip_fsync: bool,
}

impl SimDisk {
    /// A fresh disk. With `skip_fsync`, syncs report success without making anything durable:
    /// the bug a storage engine has when it acknowledges before its fsync.
    pub fn new(skip_fsync: bool) -> Self {
        Self { mem: Arc::new(MemKv::new()), skip_fsync }
    }

    /// Power loss: every write not yet synced is gone.
    pub fn crash(&self) {
        self.mem.crash();
    }

    /// The store a node opens.
    pub fn store(&self) -> Arc<dyn KvStore> {
        Arc::new(self.clone())
    }
}

impl KvStore for SimDisk {
    fn get(&self, cf: Cf, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.mem.get(cf, key)
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> StorageResult<()> {
        self.mem.scan(cf, start, end, visit)
    }

    fn last_in(&self, cf: Cf, start: &[u8], end: &[u8]) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        self.mem.last_in(cf, start, end)
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        self.mem.write(batch)
    }

    fn sync(&self, done: SyncDone) {
        if self.skip_fsync {
            done(Ok(()));
        } else {
            self.mem.sync(done);
        }
    }

    fn reads_block(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl eddy_storage::conformance::Harness for SimDisk {
        fn store(&mut self) -> Arc<dyn KvStore> {
            SimDisk::store(self)
        }

        fn crash(&mut self) -> bool {
            SimDisk::crash(self);
            true
        }
    }

    #[test]
    fn conforms_to_the_kv_store_contract() {
        eddy_storage::conformance::run_all(|| SimDisk::new(false));
    }

    /// The suite can fail: the disk that acknowledges syncs without making anything durable
    /// breaks the crash contract.
    #[test]
    #[should_panic(expected = "lost in a crash")]
    fn a_disk_that_skips_fsync_breaks_the_contract() {
        eddy_storage::conformance::run_all(|| SimDisk::new(true));
    }

    #[test]
    fn skipping_fsync_loses_acknowledged_writes_on_crash() {
        for (skip, survives) in [(false, true), (true, false)] {
            let disk = SimDisk::new(skip);
            let mut batch = Batch::new();
            batch.put(Cf::Log, b"k".to_vec(), b"v".to_vec());
            disk.write(batch).unwrap();
            disk.sync(Box::new(|r| r.unwrap()));
            disk.crash();
            assert_eq!(disk.get(Cf::Log, b"k").unwrap().is_some(), survives, "skip_fsync = {skip}");
        }
    }
}
