//! openraft's log storage for any Raft group, over the node's [`KvStore`].
//!
//! Entries live in [`Cf::Log`] under `group id + index`; the vote, the committed log id and the
//! last purged log id under [`Cf::RaftMeta`]. Appends become visible at once and are reported
//! flushed to openraft only after the group-commit syncer has synced them; votes are synced before
//! `save_vote` returns.
//!
//! The entries appended but not yet known committed are also kept decoded in memory (the *tail*):
//! replication reads exactly those right after they are appended, and reading them back from
//! RocksDB (an iterator, a seek through the memtable and files, a decode per entry) was about a
//! tenth of a leader's CPU under produce load. The tail is bounded node-wide by
//! [`eddy_limits::RAFT_TAIL_CACHE_BYTES_MAX`]; past it, entries are not kept and reads go to
//! storage, which always holds every entry.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{LogIdOf, VoteOf};
use openraft::{OptionalSend, RaftTypeConfig};

use crate::codec::{decode, encode};
use crate::error::{StorageResult, corrupt};
use crate::kv::{self, Batch, Cf, KvStore, keys};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// Bytes held by every [`Tail`] of the process.
static TAIL_BYTES: AtomicUsize = AtomicUsize::new(0);

/// A group's newest entries, decoded, with their encoded sizes: consecutive, and always ending at
/// the group's last entry (when an entry cannot be kept, the tail is emptied instead).
struct Tail<E> {
    entries: VecDeque<(E, usize)>,
    bytes: usize,
    /// The committed index saved last.
    committed: Option<u64>,
}

impl<E> Tail<E> {
    fn pop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
            TAIL_BYTES.fetch_sub(size, Ordering::Relaxed);
        }
    }

    fn pop_back(&mut self) {
        if let Some((_, size)) = self.entries.pop_back() {
            self.bytes -= size;
            TAIL_BYTES.fetch_sub(size, Ordering::Relaxed);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        TAIL_BYTES.fetch_sub(self.bytes, Ordering::Relaxed);
        self.bytes = 0;
    }
}

impl<E> Drop for Tail<E> {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The log of one Raft group. Cheap to clone: every clone is a reader of the same log.
pub struct LogStore<C: RaftTypeConfig> {
    kv: Arc<dyn KvStore>,
    group: u64,
    tail: Arc<Mutex<Tail<C::Entry>>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self { kv: self.kv.clone(), group: self.group, tail: self.tail.clone() }
    }
}

impl<C: RaftTypeConfig> Debug for LogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("group", &self.group).finish()
    }
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    pub fn new(kv: Arc<dyn KvStore>, group: u64) -> Self {
        Self { kv, group, tail: Arc::new(Mutex::new(Tail { entries: VecDeque::new(), bytes: 0, committed: None })) }
    }

    fn tail(&self) -> std::sync::MutexGuard<'_, Tail<C::Entry>> {
        self.tail.lock().expect("log tail lock")
    }

    /// Entries `[start, end)` from the tail, within `bytes_max` (at least one); `None` when the
    /// tail does not hold `start`.
    fn tail_entries(&self, start: u64, end: u64, bytes_max: usize) -> Option<Vec<C::Entry>> {
        let tail = self.tail();
        let first = tail.entries.front()?.0.index();
        let last = tail.entries.back()?.0.index();
        if start < first || start > last {
            return None;
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (entry, size) in tail.entries.range((start - first) as usize..) {
            if entry.index() >= end || (!out.is_empty() && bytes + size > bytes_max) {
                break;
            }
            bytes += size;
            out.push(entry.clone());
        }
        Some(out)
    }

    /// Keeps appended entries in the tail, or empties it when they do not follow it or the
    /// node's budget has no room.
    fn keep_in_tail(&self, appended: Vec<(C::Entry, usize)>) {
        let mut tail = self.tail();
        let follows = match (tail.entries.back(), appended.first()) {
            (Some((last, _)), Some((first, _))) => first.index() == last.index() + 1,
            _ => true,
        };
        let size: usize = appended.iter().map(|(_, s)| s).sum();
        let room = TAIL_BYTES.load(Ordering::Relaxed) + size <= eddy_limits::RAFT_TAIL_CACHE_BYTES_MAX;
        if !follows || !room {
            tail.clear();
            return;
        }
        TAIL_BYTES.fetch_add(size, Ordering::Relaxed);
        tail.bytes += size;
        tail.entries.extend(appended);
    }

    pub fn group(&self) -> u64 {
        self.group
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, tag: &[u8]) -> StorageResult<Option<T>> {
        match self.kv.get(Cf::RaftMeta, &keys::group_tag(self.group, tag))? {
            Some(bytes) => Ok(Some(decode(&bytes, "raft metadata")?)),
            None => Ok(None),
        }
    }

    /// Reads one entry by index.
    pub fn entry(&self, index: u64) -> StorageResult<Option<C::Entry>> {
        match self.kv.get(Cf::Log, &keys::group_u64(self.group, index))? {
            Some(bytes) => Ok(Some(decode(&bytes, "raft log entry")?)),
            None => Ok(None),
        }
    }

    /// The stored encoding of the entry at `index` ([`crate::codec`]), for a reader that decodes
    /// only the part it needs.
    pub fn entry_bytes(&self, index: u64) -> StorageResult<Option<bytes::Bytes>> {
        Ok(self.kv.get(Cf::Log, &keys::group_u64(self.group, index))?.map(bytes::Bytes::from))
    }

    /// Entries `[start, end)`, stopping before the one that would take the encoded total past
    /// `bytes_max` (the first entry is returned whatever its size).
    fn entries(&self, start: u64, end: u64, bytes_max: usize) -> StorageResult<Vec<C::Entry>> {
        if let Some(entries) = self.tail_entries(start, end, bytes_max) {
            return Ok(entries);
        }
        let mut out = Vec::new();
        let mut bytes = 0usize;
        self.kv.scan(
            Cf::Log,
            &keys::group_u64(self.group, start),
            &keys::group_u64(self.group, end),
            &mut |_, value| {
                if !out.is_empty() && bytes + value.len() > bytes_max {
                    return Ok(false);
                }
                bytes += value.len();
                out.push(decode::<C::Entry>(value, "raft log entry")?);
                Ok(true)
            },
        )?;
        Ok(out)
    }
}

/// Stages the deletion of a group's Raft log and metadata (vote, committed and purged ids), for a
/// group removed from this node. The owner of the group's other keys stages theirs in the same
/// batch.
pub fn stage_destroy(batch: &mut Batch, group: u64) {
    for cf in [Cf::Log, Cf::RaftMeta] {
        batch.delete_range(cf, keys::group_prefix(group).to_vec(), keys::group_end(group));
    }
}

pub use eddy_limits::REPLICATION_BYTES_MAX;

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    /// `entries` as read, checked to have no holes: indexes must be consecutive. Paired with the
    /// assertion in `append`: the log is written without holes, so a hole read back is corrupt
    /// data.
    fn consecutive(&self, entries: Vec<C::Entry>) -> Result<Vec<C::Entry>, io::Error> {
        for pair in entries.windows(2) {
            if pair[1].index() != pair[0].index() + 1 {
                return Err(corrupt(format!(
                    "raft log of group {} has a hole between {} and {}",
                    self.group,
                    pair[0].index(),
                    pair[1].index()
                ))
                .into_io());
            }
        }
        Ok(entries)
    }
}

fn index_range(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&n) => n,
        Bound::Excluded(&n) => n.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&n) => n.saturating_add(1),
        Bound::Excluded(&n) => n,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, io::Error> {
        let (start, end) = index_range(&range);
        self.consecutive(self.entries(start, end, usize::MAX).map_err(|e| e.into_io())?)
    }

    /// What replication sends in one AppendEntries: at most [`REPLICATION_BYTES_MAX`] of
    /// entries (at least one). Without a bound, one request could carry `max_payload_entries`
    /// entries of the largest batch each: gigabytes that no timeout lets through.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<C::Entry>, io::Error> {
        self.consecutive(self.entries(start, end, REPLICATION_BYTES_MAX).map_err(|e| e.into_io())?)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        self.meta(VOTE).map_err(|e| e.into_io())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let purged: Option<LogIdOf<C>> = self.meta(PURGED).map_err(|e| e.into_io())?;
        let last = self
            .kv
            .last_in(Cf::Log, &keys::group_prefix(self.group), &keys::group_end(self.group))
            .map_err(|e| e.into_io())?;
        let last_log_id = match last {
            Some((_, bytes)) => {
                let entry: C::Entry = decode(&bytes, "raft log entry").map_err(|e| e.into_io())?;
                Some(entry.log_id())
            }
            None => purged.clone(),
        };
        Ok(LogState { last_purged_log_id: purged, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        let mut batch = Batch::new();
        batch.put(Cf::RaftMeta, keys::group_tag(self.group, VOTE), encode(vote));
        self.kv.write(batch).map_err(|e| e.into_io())?;
        kv::sync(self.kv.as_ref()).await.map_err(|e| e.into_io())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        if let Some(committed) = &committed {
            // What is committed has been replicated to a quorum; the entries just committed are
            // read once more, by the state machine applying them, so entries leave the tail one
            // commit later. A follower still missing them, or a slow apply, reads storage.
            let mut tail = self.tail();
            if let Some(previous) = tail.committed.replace(committed.index()) {
                while tail.entries.front().is_some_and(|(e, _)| e.index() <= previous) {
                    tail.pop_front();
                }
            }
        }
        let mut batch = Batch::new();
        batch.put(Cf::RaftMeta, keys::group_tag(self.group, COMMITTED), encode(&committed));
        self.kv.write(batch).map_err(|e| e.into_io())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.meta::<Option<LogIdOf<C>>>(COMMITTED).map_err(|e| e.into_io())?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = Batch::new();
        let mut previous: Option<u64> = None;
        let mut appended = Vec::new();
        for entry in entries {
            // Paired with the check in `consecutive`: written without holes, read back without.
            assert!(
                previous.is_none_or(|p| entry.index() == p + 1),
                "group {}: appended entry {} does not follow {previous:?}",
                self.group,
                entry.index()
            );
            previous = Some(entry.index());
            let encoded = encode(&entry);
            appended.push((entry, encoded.len()));
            batch.put(Cf::Log, keys::group_u64(self.group, appended.last().expect("pushed").0.index()), encoded);
        }
        metrics::counter!("eddy_raft_log_appended_bytes_total").increment(batch.size_bytes() as u64);
        if let Err(e) = self.kv.write(batch) {
            self.tail().clear();
            return Err(e.into_io());
        }
        self.keep_in_tail(appended);
        self.kv.sync(Box::new(move |result| callback.io_completed(result.map_err(|e| e.into_io()))));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let from = last_log_id.as_ref().map_or(0, |id| id.index() + 1);
        {
            let mut tail = self.tail();
            while tail.entries.back().is_some_and(|(e, _)| e.index() >= from) {
                tail.pop_back();
            }
        }
        let mut batch = Batch::new();
        batch.delete_range(Cf::Log, keys::group_u64(self.group, from), keys::group_end(self.group));
        self.kv.write(batch).map_err(|e| e.into_io())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        {
            let mut tail = self.tail();
            while tail.entries.front().is_some_and(|(e, _)| e.index() <= log_id.index()) {
                tail.pop_front();
            }
        }
        // The purge marker goes first (same atomic batch), so the log never looks like it has a hole.
        let mut batch = Batch::new();
        batch.put(Cf::RaftMeta, keys::group_tag(self.group, PURGED), encode(&log_id));
        batch.delete_range(Cf::Log, keys::group_u64(self.group, 0), keys::group_u64(self.group, log_id.index() + 1));
        self.kv.write(batch).map_err(|e| e.into_io())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::{Entry, EntryPayload, LogId};
    use proptest::prelude::*;

    use super::*;
    use crate::MemKv;

    openraft::declare_raft_types!(
        pub TestTypes: D = String, R = String, NodeId = u64, Node = openraft::BasicNode,
    );

    type TestLog = LogStore<TestTypes>;

    fn entry(
        term: u64,
        index: u64,
    ) -> Entry<openraft::impls::leader_id_adv::LeaderId<u64, u64>, EntryPayload<String, u64, openraft::BasicNode>> {
        Entry {
            log_id: LogId::new(openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 }, index),
            payload: EntryPayload::Normal(format!("t{term}-i{index}")),
        }
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    /// Appends and waits for the flush callback.
    async fn append(log: &mut TestLog, entries: Vec<<TestTypes as RaftTypeConfig>::Entry>) {
        let (tx, rx) = TestTypes::oneshot();
        log.append(entries, IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Append(u64),
        TruncateAfter(u64),
        Purge(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (1u64..6).prop_map(Op::Append),
            1 => (0u64..30).prop_map(Op::TruncateAfter),
            1 => (0u64..30).prop_map(Op::Purge),
        ]
    }

    proptest! {
        /// Any sequence of appends, truncations and purges leaves the log equal to a model, both
        /// as read and after a crash (everything acknowledged flushed survives).
        #[test]
        fn log_matches_model(ops in prop::collection::vec(op(), 1..40)) {
            block_on(async {
                let kv = Arc::new(MemKv::new());
                let mut log = TestLog::new(kv.clone(), 42);
                let mut model: BTreeMap<u64, String> = BTreeMap::new();
                let mut purged: Option<u64> = None;
                // What a crash must keep: the log as of the last sync (every append syncs all
                // writes before it, truncations and purges included).
                let mut synced = (model.clone(), purged);
                let mut term = 1;
                for op in &ops {
                    match *op {
                        Op::Append(n) => {
                            term += 1;
                            let next = model.keys().next_back().map(|i| i + 1).or(purged.map(|p| p + 1)).unwrap_or(1);
                            let entries: Vec<_> = (next..next + n).map(|i| entry(term, i)).collect();
                            for e in &entries {
                                if let EntryPayload::Normal(d) = &e.payload { model.insert(e.log_id.index, d.clone()); }
                            }
                            append(&mut log, entries).await;
                            synced = (model.clone(), purged);
                        }
                        Op::TruncateAfter(k) => {
                            // openraft never truncates at or below the purge point or committed data;
                            // only truncate inside the present log.
                            if let Some(&last) = model.keys().next_back()
                                && k >= purged.unwrap_or(0) && k < last {
                                    let keep = model.get(&k).map(|_| LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 0, node_id: 1 }, k));
                                    log.truncate_after(keep).await.unwrap();
                                    model.retain(|i, _| *i <= k);
                                }
                        }
                        Op::Purge(k) => {
                            if model.contains_key(&k) {
                                log.purge(entry(0, k).log_id).await.unwrap();
                                model.retain(|i, _| *i > k);
                                purged = Some(k);
                            }
                        }
                    }
                    let state = log.get_log_state().await.unwrap();
                    let expected_last = model.keys().next_back().copied().or(purged);
                    prop_assert_eq!(state.last_log_id.map(|l| l.index), expected_last);
                    prop_assert_eq!(state.last_purged_log_id.map(|l| l.index), purged);
                    let read: Vec<(u64, String)> = log.try_get_log_entries(0..u64::MAX).await.unwrap()
                        .into_iter()
                        .map(|e| (e.log_id.index, match e.payload { EntryPayload::Normal(d) => d, _ => String::new() }))
                        .collect();
                    prop_assert_eq!(read, model.clone().into_iter().collect::<Vec<_>>());
                }
                kv.crash();
                let mut reopened = TestLog::new(kv.clone(), 42);
                let after: Vec<u64> = reopened.try_get_log_entries(0..u64::MAX).await.unwrap().iter().map(|e| e.log_id.index).collect();
                prop_assert_eq!(after, synced.0.keys().copied().collect::<Vec<_>>());
                let state = reopened.get_log_state().await.unwrap();
                prop_assert_eq!(state.last_purged_log_id.map(|l| l.index), synced.1);
                Ok(())
            })?;
        }
    }

    #[test]
    fn vote_is_durable_and_groups_are_isolated() {
        block_on(async {
            let kv = Arc::new(MemKv::new());
            let mut a = TestLog::new(kv.clone(), 1);
            let mut b = TestLog::new(kv.clone(), 2);
            let vote = openraft::Vote::new(7, 3);
            a.save_vote(&vote).await.unwrap();
            append(&mut b, vec![entry(1, 1), entry(1, 2)]).await;
            kv.crash();
            assert_eq!(a.read_vote().await.unwrap(), Some(vote));
            assert_eq!(a.get_log_state().await.unwrap().last_log_id, None);
            assert_eq!(b.try_get_log_entries(..).await.unwrap().len(), 2);
            assert_eq!(b.read_vote().await.unwrap(), None);
            let mut batch = Batch::new();
            stage_destroy(&mut batch, 2);
            kv.write(batch).unwrap();
            assert!(b.try_get_log_entries(..).await.unwrap().is_empty());
            assert_eq!(a.read_vote().await.unwrap(), Some(vote));
        });
    }

    #[test]
    fn the_tail_serves_entries_until_they_are_committed_and_applied() {
        block_on(async {
            let kv = Arc::new(MemKv::new());
            let mut log = TestLog::new(kv.clone(), 9);
            append(&mut log, (1..=4).map(|i| entry(1, i)).collect()).await;
            // Take the entries from under the log: whatever is still read comes from the tail.
            let mut batch = Batch::new();
            batch.delete_range(Cf::Log, keys::group_prefix(9).to_vec(), keys::group_end(9));
            kv.write(batch).unwrap();
            let indexes = |entries: Vec<<TestTypes as RaftTypeConfig>::Entry>| {
                entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>()
            };
            assert_eq!(indexes(log.try_get_log_entries(2..10).await.unwrap()), vec![2, 3, 4]);
            assert_eq!(indexes(log.limited_get_log_entries(1, 3).await.unwrap()), vec![1, 2]);
            // Entries just committed stay for the state machine, which reads them to apply them,
            log.save_committed(Some(entry(1, 2).log_id)).await.unwrap();
            assert_eq!(indexes(log.try_get_log_entries(1..5).await.unwrap()), vec![1, 2, 3, 4]);
            // and leave the tail at the next commit: reads of them go to storage.
            log.save_committed(Some(entry(1, 3).log_id)).await.unwrap();
            assert_eq!(indexes(log.try_get_log_entries(3..5).await.unwrap()), vec![3, 4]);
            assert!(log.try_get_log_entries(1..3).await.unwrap().is_empty(), "read from storage");
            // A truncation takes entries out of the tail too.
            log.truncate_after(Some(entry(1, 3).log_id)).await.unwrap();
            assert_eq!(indexes(log.try_get_log_entries(3..10).await.unwrap()), vec![3]);
        });
    }

    #[test]
    fn replication_reads_are_bounded_in_bytes() {
        block_on(async {
            let kv = Arc::new(MemKv::new());
            let mut log = TestLog::new(kv.clone(), 7);
            let big = |index: u64| Entry {
                log_id: LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, index),
                payload: EntryPayload::Normal("x".repeat(REPLICATION_BYTES_MAX / 3)),
            };
            // One entry larger than the bound, then five of a third of it.
            let mut entries = vec![Entry {
                log_id: LogId::new(openraft::impls::leader_id_adv::LeaderId { term: 1, node_id: 1 }, 1),
                payload: EntryPayload::Normal("y".repeat(REPLICATION_BYTES_MAX + 1)),
            }];
            entries.extend((2..=6).map(big));
            append(&mut log, entries).await;
            let first = log.limited_get_log_entries(1, 7).await.unwrap();
            assert_eq!(first.len(), 1, "an entry above the bound still goes, alone");
            let rest = log.limited_get_log_entries(2, 7).await.unwrap();
            assert_eq!(rest.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![2, 3]);
            assert_eq!(log.try_get_log_entries(1..7).await.unwrap().len(), 6, "unlimited reads are whole");
        });
    }
}
