//! The contract of [`KvStore`], as a test suite every implementation runs: RocksDB
//! ([`crate::RocksKv`]), the in-memory store ([`crate::MemKv`]) and the simulation's disk. An
//! implementation that passes it can carry every Raft group and partition of a node.
//!
//! Crash semantics are part of the contract where an implementation has them: after a crash, every
//! write that a completed sync covered is there, and what survives of the unsynced writes is a
//! prefix of them in write order (never a later write without an earlier one).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{StorageError, StorageResult};
use crate::kv::{Batch, Cf, KvStore};

/// A store under test.
pub trait Harness {
    /// The store as a node opens it. The suite drops every handle it got before it crashes the
    /// store.
    fn store(&mut self) -> Arc<dyn KvStore>;

    /// Loses power (or kills the process) and reopens the store. `false` when the implementation
    /// has no crash to test.
    fn crash(&mut self) -> bool;
}

/// Runs every case against fresh stores from `new_harness`.
pub fn run_all<H: Harness>(mut new_harness: impl FnMut() -> H) {
    reads_see_writes_per_column_family(&mut new_harness());
    batches_apply_in_order_and_at_once(&mut new_harness());
    scans_are_ordered_bounded_and_stoppable(&mut new_harness());
    scan_errors_stop_the_scan_and_are_returned(&mut new_harness());
    last_in_finds_the_greatest_key_below_the_end(&mut new_harness());
    delete_range_removes_exactly_the_range(&mut new_harness());
    every_sync_is_answered_once(&mut new_harness());
    crashes_keep_synced_writes_and_a_prefix_of_the_rest(&mut new_harness());
}

fn put(cf: Cf, key: &[u8], value: &[u8]) -> Batch {
    let mut batch = Batch::new();
    batch.put(cf, key.to_vec(), value.to_vec());
    batch
}

fn sync(kv: &dyn KvStore) {
    let (tx, rx) = std::sync::mpsc::channel();
    kv.sync(Box::new(move |result| tx.send(result.is_ok()).expect("the suite waits")));
    assert!(rx.recv().expect("a sync is answered"), "a sync failed");
}

fn keys(kv: &dyn KvStore, cf: Cf, start: &[u8], end: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    kv.scan(cf, start, end, &mut |key, _| {
        out.push(key.to_vec());
        Ok(true)
    })
    .expect("scan");
    out
}

/// Get sees the latest write of a key in its column family only; a delete removes it.
pub fn reads_see_writes_per_column_family(harness: &mut impl Harness) {
    let kv = harness.store();
    assert_eq!(kv.get(Cf::Log, b"k").unwrap(), None);
    kv.write(put(Cf::Log, b"k", b"1")).unwrap();
    kv.write(put(Cf::State, b"k", b"other")).unwrap();
    kv.write(put(Cf::Log, b"k", b"2")).unwrap();
    assert_eq!(kv.get(Cf::Log, b"k").unwrap().as_deref(), Some(&b"2"[..]), "the latest write wins");
    assert_eq!(kv.get(Cf::State, b"k").unwrap().as_deref(), Some(&b"other"[..]), "families are separate");
    let mut delete = Batch::new();
    delete.delete(Cf::Log, b"k".to_vec());
    kv.write(delete).unwrap();
    assert_eq!(kv.get(Cf::Log, b"k").unwrap(), None);
    assert!(kv.get(Cf::State, b"k").unwrap().is_some(), "a delete touches its family only");
}

/// A batch's operations apply in order, and all of them are visible when `write` returns.
pub fn batches_apply_in_order_and_at_once(harness: &mut impl Harness) {
    let kv = harness.store();
    let mut batch = Batch::new();
    batch.put(Cf::Log, b"a".to_vec(), b"1".to_vec());
    batch.delete(Cf::Log, b"a".to_vec());
    batch.delete(Cf::Log, b"b".to_vec());
    batch.put(Cf::Log, b"b".to_vec(), b"2".to_vec());
    batch.put(Cf::Log, b"c".to_vec(), b"3".to_vec());
    batch.delete_range(Cf::Log, b"c".to_vec(), b"d".to_vec());
    batch.put(Cf::Log, b"c".to_vec(), b"4".to_vec());
    kv.write(batch).unwrap();
    assert_eq!(kv.get(Cf::Log, b"a").unwrap(), None, "put then delete");
    assert_eq!(kv.get(Cf::Log, b"b").unwrap().as_deref(), Some(&b"2"[..]), "delete then put");
    assert_eq!(kv.get(Cf::Log, b"c").unwrap().as_deref(), Some(&b"4"[..]), "range delete then put");
    kv.write(Batch::new()).unwrap();
}

/// A scan visits `[start, end)` in ascending byte order, stops when told, and may read the store
/// from inside the visitor.
pub fn scans_are_ordered_bounded_and_stoppable(harness: &mut impl Harness) {
    let kv = harness.store();
    let mut batch = Batch::new();
    for key in [&b"b"[..], b"a", b"c\x00", b"c", b"\xff", b"d"] {
        batch.put(Cf::OffsetIndex, key.to_vec(), key.to_vec());
    }
    batch.put(Cf::TimeIndex, b"b2".to_vec(), vec![]);
    kv.write(batch).unwrap();
    assert_eq!(
        keys(kv.as_ref(), Cf::OffsetIndex, b"a", b"d"),
        vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"c\x00".to_vec()]
    );
    assert_eq!(keys(kv.as_ref(), Cf::OffsetIndex, b"b", b"c"), vec![b"b".to_vec()], "the end is excluded");
    assert!(keys(kv.as_ref(), Cf::OffsetIndex, b"x", b"y").is_empty());
    assert!(keys(kv.as_ref(), Cf::OffsetIndex, b"c", b"c").is_empty(), "an empty range");
    assert_eq!(keys(kv.as_ref(), Cf::OffsetIndex, b"d", b"\xff\xff").len(), 2);

    let mut visited = 0;
    kv.scan(Cf::OffsetIndex, b"a", b"z", &mut |key, value| {
        assert_eq!(key, value);
        assert_eq!(kv.get(Cf::OffsetIndex, key)?.as_deref(), Some(value), "a visitor may read the store");
        visited += 1;
        Ok(visited < 2)
    })
    .unwrap();
    assert_eq!(visited, 2, "Ok(false) stops the scan");
}

/// An error from the visitor stops the scan and is the scan's result.
pub fn scan_errors_stop_the_scan_and_are_returned(harness: &mut impl Harness) {
    let kv = harness.store();
    let mut batch = Batch::new();
    for key in [b"a", b"b", b"c"] {
        batch.put(Cf::State, key.to_vec(), vec![]);
    }
    kv.write(batch).unwrap();
    let visited = AtomicUsize::new(0);
    let result: StorageResult<()> = kv.scan(Cf::State, b"a", b"z", &mut |key, _| {
        visited.fetch_add(1, Ordering::Relaxed);
        if key == b"b" { Err(StorageError::Corrupt("bad value under b".into())) } else { Ok(true) }
    });
    assert!(matches!(result, Err(StorageError::Corrupt(ref m)) if m == "bad value under b"), "{result:?}");
    assert_eq!(visited.load(Ordering::Relaxed), 2, "nothing is visited after the error");
}

/// `last_in` is the greatest key in `[start, end)`.
pub fn last_in_finds_the_greatest_key_below_the_end(harness: &mut impl Harness) {
    let kv = harness.store();
    assert_eq!(kv.last_in(Cf::RaftMeta, b"a", b"z").unwrap(), None);
    let mut batch = Batch::new();
    for key in [b"b", b"d", b"f"] {
        batch.put(Cf::RaftMeta, key.to_vec(), key.to_vec());
    }
    kv.write(batch).unwrap();
    let last = |start: &[u8], end: &[u8]| kv.last_in(Cf::RaftMeta, start, end).unwrap().map(|(k, _)| k);
    assert_eq!(last(b"a", b"z"), Some(b"f".to_vec()));
    assert_eq!(last(b"a", b"f"), Some(b"d".to_vec()), "the end is excluded");
    assert_eq!(last(b"c", b"e"), Some(b"d".to_vec()));
    assert_eq!(last(b"e", b"f"), None);
    assert_eq!(last(b"g", b"z"), None);
    assert_eq!(kv.last_in(Cf::RaftMeta, b"d", b"e").unwrap(), Some((b"d".to_vec(), b"d".to_vec())), "with its value");
}

/// A range delete removes `[start, end)` of its family and nothing else.
pub fn delete_range_removes_exactly_the_range(harness: &mut impl Harness) {
    let kv = harness.store();
    let mut batch = Batch::new();
    for key in [b"a", b"b", b"c", b"d"] {
        batch.put(Cf::Log, key.to_vec(), vec![]);
        batch.put(Cf::State, key.to_vec(), vec![]);
    }
    kv.write(batch).unwrap();
    let mut delete = Batch::new();
    delete.delete_range(Cf::Log, b"b".to_vec(), b"d".to_vec());
    kv.write(delete).unwrap();
    assert_eq!(keys(kv.as_ref(), Cf::Log, b"", b"\xff"), vec![b"a".to_vec(), b"d".to_vec()]);
    assert_eq!(keys(kv.as_ref(), Cf::State, b"", b"\xff").len(), 4, "other families are untouched");
}

/// Every sync is answered exactly once, with success, also with nothing to sync and many at once.
pub fn every_sync_is_answered_once(harness: &mut impl Harness) {
    let kv = harness.store();
    sync(kv.as_ref());
    let answered = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..50u8 {
        kv.write(put(Cf::Log, &[i], &[i])).unwrap();
        let answered = answered.clone();
        let tx = tx.clone();
        kv.sync(Box::new(move |result| {
            answered.fetch_add(1, Ordering::SeqCst);
            tx.send(result.is_ok()).expect("the suite waits");
        }));
    }
    for _ in 0..50 {
        assert!(rx.recv().expect("every sync is answered"), "a sync failed");
    }
    assert_eq!(answered.load(Ordering::SeqCst), 50);
}

/// After a crash: everything a completed sync covered is there; of the later writes, a prefix.
pub fn crashes_keep_synced_writes_and_a_prefix_of_the_rest(harness: &mut impl Harness) {
    let kv = harness.store();
    for i in 0..10u8 {
        kv.write(put(Cf::Log, &[i], &[i])).unwrap();
        if i == 4 {
            sync(kv.as_ref());
        }
    }
    // Overwrites and deletes of synced keys, unsynced: a crash may undo them, only in order.
    let mut delete = Batch::new();
    delete.delete(Cf::Log, vec![0]);
    kv.write(delete).unwrap();
    drop(kv);
    if !harness.crash() {
        return;
    }
    let kv = harness.store();
    for i in 1..=4u8 {
        assert_eq!(kv.get(Cf::Log, &[i]).unwrap(), Some(vec![i]), "synced write {i} lost in a crash");
    }
    let survived: Vec<bool> = (5..10u8).map(|i| kv.get(Cf::Log, &[i]).unwrap().is_some()).collect();
    let deleted = kv.get(Cf::Log, &[0]).unwrap().is_none();
    let mut writes = survived.clone();
    writes.push(deleted);
    assert!(
        writes.windows(2).all(|w| w[0] || !w[1]),
        "the unsynced writes that survived are not a prefix of them: {writes:?}"
    );
    if !deleted {
        assert_eq!(kv.get(Cf::Log, &[0]).unwrap(), Some(vec![0]), "synced write 0 lost in a crash");
    }
}
