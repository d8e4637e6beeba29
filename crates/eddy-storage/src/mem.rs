//! An in-memory [`KvStore`] for the deterministic simulation and unit tests.
//!
//! It keeps two images: `live` (what readers see) and `durable` (what survives a crash). A write
//! lands in `live`; a sync makes every earlier write durable, like a WAL fsync. [`MemKv::crash`]
//! throws away everything not yet synced, which is what a power loss does to RocksDB with
//! point-in-time WAL recovery.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

use crate::error::StorageResult;
use crate::kv::{Batch, Cf, KvStore, Op, SyncDone, Visitor};

type Tables = BTreeMap<(Cf, Vec<u8>), Vec<u8>>;

#[derive(Debug, Default)]
struct Images {
    live: Tables,
    durable: Tables,
    /// Batches applied to `live` since the last sync, in order.
    unsynced: Vec<Batch>,
}

/// In-memory store that models fsync.
#[derive(Debug, Default)]
pub struct MemKv {
    images: Mutex<Images>,
}

fn apply(tables: &mut Tables, batch: &Batch) {
    for op in &batch.ops {
        match op {
            Op::Put { cf, key, value } => {
                tables.insert((*cf, key.clone()), value.clone());
            }
            Op::Delete { cf, key } => {
                tables.remove(&(*cf, key.clone()));
            }
            Op::DeleteRange { cf, start, end } => {
                let doomed: Vec<_> =
                    tables.range((*cf, start.clone())..(*cf, end.clone())).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    tables.remove(&key);
                }
            }
        }
    }
}

impl MemKv {
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a crash: every write not yet synced is lost.
    pub fn crash(&self) {
        let mut images = self.images.lock().expect("mem kv lock");
        images.live = images.durable.clone();
        images.unsynced.clear();
    }

    /// Number of writes that a crash now would lose.
    pub fn unsynced_batches(&self) -> usize {
        self.images.lock().expect("mem kv lock").unsynced.len()
    }
}

impl KvStore for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        Ok(self.images.lock().expect("mem kv lock").live.get(&(cf, key.to_vec())).cloned())
    }

    fn scan(&self, cf: Cf, start: &[u8], end: &[u8], visit: &mut Visitor<'_>) -> StorageResult<()> {
        // Copy out the range first so `visit` may call back into the store.
        let items: Vec<(Vec<u8>, Vec<u8>)> = {
            let images = self.images.lock().expect("mem kv lock");
            images
                .live
                .range((cf, start.to_vec())..(cf, end.to_vec()))
                .map(|((_, k), v)| (k.clone(), v.clone()))
                .collect()
        };
        for (key, value) in &items {
            if !visit(key, value)? {
                break;
            }
        }
        Ok(())
    }

    fn last_in(&self, cf: Cf, start: &[u8], end: &[u8]) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        let images = self.images.lock().expect("mem kv lock");
        let found = images
            .live
            .range((Bound::Included((cf, start.to_vec())), Bound::Excluded((cf, end.to_vec()))))
            .next_back()
            .map(|((_, k), v)| (k.clone(), v.clone()));
        Ok(found)
    }

    fn write(&self, batch: Batch) -> StorageResult<()> {
        let mut images = self.images.lock().expect("mem kv lock");
        apply(&mut images.live, &batch);
        images.unsynced.push(batch);
        Ok(())
    }

    fn sync(&self, done: SyncDone) {
        {
            let mut images = self.images.lock().expect("mem kv lock");
            let pending = std::mem::take(&mut images.unsynced);
            for batch in &pending {
                apply(&mut images.durable, batch);
            }
        }
        done(Ok(()));
    }

    fn reads_block(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str) -> Batch {
        let mut b = Batch::new();
        b.put(Cf::Log, key.as_bytes().to_vec(), b"v".to_vec());
        b
    }

    struct Harness(std::sync::Arc<MemKv>);

    impl crate::conformance::Harness for Harness {
        fn store(&mut self) -> std::sync::Arc<dyn KvStore> {
            self.0.clone()
        }

        fn crash(&mut self) -> bool {
            self.0.crash();
            true
        }
    }

    #[test]
    fn conforms_to_the_kv_store_contract() {
        crate::conformance::run_all(|| Harness(Default::default()));
    }

    #[test]
    fn crash_loses_only_unsynced_suffix() {
        let kv = MemKv::new();
        kv.write(put("a")).unwrap();
        kv.write(put("b")).unwrap();
        kv.sync(Box::new(|r| r.unwrap()));
        kv.write(put("c")).unwrap();
        assert!(kv.get(Cf::Log, b"c").unwrap().is_some());
        kv.crash();
        assert!(kv.get(Cf::Log, b"a").unwrap().is_some(), "a was synced");
        assert!(kv.get(Cf::Log, b"b").unwrap().is_some());
        assert!(kv.get(Cf::Log, b"c").unwrap().is_none(), "c was never synced");
    }
}
