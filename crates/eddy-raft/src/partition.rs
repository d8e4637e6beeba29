//! A partition's Raft group: its type config, its state machine and its reader.
//!
//! Appends arrive as Raft entries holding a [`RecordBatch`]. On apply, the state machine gives the
//! batch the next offsets (`base_offset = next_offset`), checks idempotent producers' sequences and
//! writes only an offset-index entry (base offset -> Raft index); the records stay in the Raft
//! entry. Reads by offset find the entry through the index.

use std::collections::BTreeMap;
use std::io::{self, Cursor};
use std::sync::Arc;

use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use eddy_storage::codec::{decode, encode};
use eddy_storage::kv::Batch;
use eddy_storage::partition::{ProducerState, SequenceCheck};
use eddy_storage::{
    IndexEntry, LogStore, PartitionCommand, PartitionResponse, PartitionState, PartitionStore, Record, StorageResult,
};

openraft::declare_raft_types!(
    /// Types of a partition's Raft group.
    pub PartitionTypes:
        D = PartitionCommand,
        R = PartitionResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = crate::RaftRuntime,
        // Standard Raft: at most one leader per term (the simulation checks it).
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// A partition's Raft handle.
pub type PartitionRaft = openraft::Raft<PartitionTypes, PartitionStateMachine>;

/// What readers need to know of the applied state, published on every apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionView {
    /// Every offset below is committed and readable.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// Persisted together with the index entries of every apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    applied: Option<LogIdOf<PartitionTypes>>,
    membership: StoredMembershipOf<PartitionTypes>,
    partition: PartitionState,
}

/// The state machine of one partition.
pub struct PartitionStateMachine {
    store: PartitionStore,
    current: Persisted,
    view: watch::Sender<PartitionView>,
    snapshot: Option<(SnapshotMetaOf<PartitionTypes>, Vec<u8>)>,
}

impl PartitionStateMachine {
    /// Opens the state machine of `group`, recovering its persisted state. The log is not
    /// replayed: openraft re-applies only entries after the persisted applied log id.
    pub fn open(store: PartitionStore) -> StorageResult<(Self, watch::Receiver<PartitionView>)> {
        let mut current: Persisted = store.load_state()?.unwrap_or_default();
        current.partition.producers = store.load_producers()?;
        let (view, rx) = watch::channel(view_of(&current.partition));
        Ok((Self { store, current, view, snapshot: None }, rx))
    }

    fn publish(&self) {
        let next = view_of(&self.current.partition);
        self.view.send_if_modified(|v| std::mem::replace(v, next) != next);
    }

    fn apply_command(&mut self, batch: &mut Batch, raft_index: u64, command: &PartitionCommand) -> PartitionResponse {
        let PartitionCommand::Append(records) = command;
        let count = u32::try_from(records.records.len()).expect("batch sizes are bounded far below u32");
        assert!(count > 0, "empty batches are refused before they reach the log");
        let state = &mut self.current.partition;
        if let Some(producer) = &records.producer
            && let SequenceCheck::Reject(response) = state.check_sequence(producer, count)
        {
            return response;
        }
        let entry = IndexEntry { raft_index, record_count: count };
        let base_offset = self.store.stage_append(batch, state, entry, records.max_timestamp_ms());
        if let Some(producer) = &records.producer {
            if let Some(forgotten) = state.remember(producer, count, base_offset) {
                self.store.stage_producer(batch, forgotten, None);
            }
            let window = state.producers.get(&producer.producer_id);
            self.store.stage_producer(batch, producer.producer_id, window);
        }
        PartitionResponse::Appended { base_offset, count }
    }
}

fn view_of(state: &PartitionState) -> PartitionView {
    PartitionView { high_watermark: state.next_offset, log_start_offset: state.log_start_offset }
}

impl RaftStateMachine<PartitionTypes> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<PartitionTypes>>, StoredMembershipOf<PartitionTypes>), io::Error> {
        Ok((self.current.applied, self.current.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<PartitionTypes>, io::Error>> + Unpin + OptionalSend,
    {
        let mut batch = Batch::new();
        let mut responses = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = match &entry.payload {
                EntryPayload::Blank => PartitionResponse::None,
                EntryPayload::Normal(command) => self.apply_command(&mut batch, entry.log_id.index, command),
                EntryPayload::Membership(membership) => {
                    self.current.membership = openraft::StoredMembership::new(Some(entry.log_id), membership.clone());
                    PartitionResponse::None
                }
            };
            self.current.applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        self.store.stage_state(&mut batch, &self.current);
        self.store.kv().write(batch).map_err(|e| e.into_io())?;
        self.publish();
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        PartitionSnapshotBuilder { persisted: self.current.clone() }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<PartitionTypes>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let (mut partition, producers): (PartitionState, BTreeMap<u64, ProducerState>) =
            decode(&bytes, "partition snapshot").map_err(|e| e.into_io())?;
        partition.producers = producers;
        // The log below the snapshot is gone from this replica: nothing below the snapshot's next
        // offset can be read here any more.
        partition.log_start_offset = partition.next_offset;
        self.current = Persisted { applied: meta.last_log_id, membership: meta.last_membership.clone(), partition };
        let mut batch = Batch::new();
        self.store.stage_reset(&mut batch);
        self.store.stage_drop_producers(&mut batch);
        for (id, producer) in &self.current.partition.producers {
            self.store.stage_producer(&mut batch, *id, Some(producer));
        }
        self.store.stage_state(&mut batch, &self.current);
        self.store.kv().write(batch).map_err(|e| e.into_io())?;
        self.snapshot = Some((meta.clone(), bytes));
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<PartitionTypes, Self::SnapshotData>>, io::Error> {
        Ok(self
            .snapshot
            .as_ref()
            .map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Cursor::new(bytes.clone()) }))
    }
}

/// Builds a snapshot of a partition's state machine (its offsets and producer windows; the
/// records themselves stay in the log).
pub struct PartitionSnapshotBuilder {
    persisted: Persisted,
}

impl RaftSnapshotBuilder<PartitionTypes> for PartitionSnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<PartitionTypes, Self::SnapshotData>, io::Error> {
        let meta = openraft::SnapshotMeta {
            last_log_id: self.persisted.applied,
            last_membership: self.persisted.membership.clone(),
        };
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(encode(&(&self.persisted.partition, &self.persisted.partition.producers))),
        })
    }
}

/// Reads a partition's records by offset, from the index and the Raft log.
#[derive(Clone, Debug)]
pub struct PartitionReader {
    store: PartitionStore,
    log: LogStore<PartitionTypes>,
}

/// Bounds of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    pub max_records: usize,
    pub max_bytes: usize,
}

impl PartitionReader {
    pub fn new(store: PartitionStore, log: LogStore<PartitionTypes>) -> Self {
        Self { store, log }
    }

    /// Records from `offset` up to (excluding) `high_watermark`, within `limits`. At least one
    /// record is returned when one exists, whatever its size.
    pub fn read(&self, offset: u64, high_watermark: u64, limits: ReadLimits) -> StorageResult<Vec<(u64, Record)>> {
        let mut out = Vec::new();
        if offset >= high_watermark {
            return Ok(out);
        }
        let Some((first_base, _)) = self.store.batch_containing(offset)? else {
            return Ok(out);
        };
        let mut bytes = 0usize;
        let mut failure = None;
        self.store.scan_index(first_base, &mut |base, entry| {
            if base >= high_watermark {
                return false;
            }
            let batch = match self.batch_at(entry) {
                Ok(batch) => batch,
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            };
            for (i, record) in batch.into_iter().enumerate() {
                let at = base + i as u64;
                if at < offset {
                    continue;
                }
                if at >= high_watermark || out.len() >= limits.max_records {
                    return false;
                }
                let size = record.size_bytes();
                if !out.is_empty() && bytes + size > limits.max_bytes {
                    return false;
                }
                bytes += size;
                out.push((at, record));
            }
            true
        })?;
        failure.map_or(Ok(out), Err)
    }

    fn batch_at(&self, entry: IndexEntry) -> StorageResult<Vec<Record>> {
        let Some(raft_entry) = self.log.entry(entry.raft_index)? else {
            return Err(eddy_storage::StorageError::Corrupt(format!(
                "offset index points at missing raft entry {}",
                entry.raft_index
            )));
        };
        match raft_entry.payload {
            EntryPayload::Normal(PartitionCommand::Append(batch)) => {
                assert_eq!(
                    batch.records.len(),
                    entry.record_count as usize,
                    "index and entry disagree on record count"
                );
                Ok(batch.records)
            }
            other => Err(eddy_storage::StorageError::Corrupt(format!(
                "offset index points at a non-data raft entry {}: {other:?}",
                entry.raft_index
            ))),
        }
    }

    /// The first offset whose record's timestamp is >= `timestamp_ms`; `high_watermark` when
    /// there is none.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64, high_watermark: u64) -> StorageResult<u64> {
        // The time index names the first batch that raised the partition's running maximum
        // timestamp to `timestamp_ms` or beyond: every earlier record is older, and this batch
        // holds the answer.
        let Some(base) = self.store.first_batch_at_or_after(timestamp_ms)? else {
            return Ok(high_watermark);
        };
        if base >= high_watermark {
            return Ok(high_watermark);
        }
        let Some((found_base, entry)) = self.store.batch_containing(base)? else {
            return Ok(high_watermark);
        };
        let records = self.batch_at(entry)?;
        let position = records.iter().position(|r| r.timestamp_ms >= timestamp_ms);
        Ok(position.map_or(high_watermark, |i| found_base + i as u64))
    }
}

/// Builds the shared handles of a partition group over the node's store.
pub fn open_partition(
    kv: Arc<dyn eddy_storage::KvStore>,
    group: u64,
) -> StorageResult<(LogStore<PartitionTypes>, PartitionStateMachine, PartitionReader, watch::Receiver<PartitionView>)> {
    let log = LogStore::new(kv.clone(), group);
    let store = PartitionStore::new(kv, group);
    let (sm, view) = PartitionStateMachine::open(store.clone())?;
    Ok((log.clone(), sm, PartitionReader::new(store, log), view))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use eddy_storage::{MemKv, ProducerBatch, RecordBatch};
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::{Entry, LogId};
    use proptest::prelude::*;

    use super::*;

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    fn record(value: String, ts: i64) -> Record {
        Record { key: None, value: Bytes::from(value), headers: vec![], timestamp_ms: ts }
    }

    /// Appends `command` at `index` to the log and applies it, as a follower would.
    async fn append_apply(
        log: &mut LogStore<PartitionTypes>,
        sm: &mut PartitionStateMachine,
        index: u64,
        command: PartitionCommand,
    ) {
        let entry = Entry {
            log_id: LogId::new(openraft::vote::leader_id_std::CommittedLeaderId::new(1), index),
            payload: EntryPayload::Normal(command),
        };
        let (tx, rx) = PartitionTypes::oneshot();
        log.append([entry.clone()], IOFlushed::signal(tx)).await.unwrap();
        rx.await.unwrap().unwrap();
        sm.apply(futures::stream::iter([Ok((entry, None))])).await.unwrap();
    }

    proptest! {
        /// Offsets are dense, every record is read back at its offset, retried idempotent
        /// batches take no offsets, time lookups find the first record at or after a time, and
        /// a reopened state machine (after a crash) agrees with its index.
        #[test]
        fn offsets_reads_and_recovery(
            sizes in prop::collection::vec(1usize..5, 1..30),
            retry_every in 2usize..5,
            probes in prop::collection::vec(0u64..200, 1..10),
        ) {
            block_on(async {
                let kv: Arc<dyn eddy_storage::KvStore> = Arc::new(MemKv::new());
                let (mut log, mut sm, reader, view) = open_partition(kv.clone(), 9).unwrap();
                let mut expected: Vec<(String, i64)> = Vec::new();
                let mut index = 1;
                let mut sequence = 0u64;
                for (b, size) in sizes.iter().enumerate() {
                    let records: Vec<Record> = (0..*size).map(|i| record(format!("b{b}-r{i}"), (b * 10 + i) as i64)).collect();
                    let batch = RecordBatch { records: records.clone(), producer: Some(ProducerBatch { producer_id: 5, epoch: 0, first_sequence: sequence }) };
                    append_apply(&mut log, &mut sm, index, PartitionCommand::Append(batch.clone())).await;
                    index += 1;
                    if b % retry_every == 0 {
                        // A retried batch is a duplicate: it is in the log but gets no offsets.
                        append_apply(&mut log, &mut sm, index, PartitionCommand::Append(batch)).await;
                        index += 1;
                    }
                    sequence += *size as u64;
                    expected.extend(records.into_iter().map(|r| (String::from_utf8(r.value.to_vec()).unwrap(), r.timestamp_ms)));
                }
                let hw = view.borrow().high_watermark;
                prop_assert_eq!(hw, expected.len() as u64);
                let all = reader.read(0, hw, ReadLimits { max_records: usize::MAX, max_bytes: usize::MAX }).unwrap();
                let got: Vec<(u64, String)> = all.iter().map(|(o, r)| (*o, String::from_utf8(r.value.to_vec()).unwrap())).collect();
                let want: Vec<(u64, String)> = expected.iter().enumerate().map(|(i, (v, _))| (i as u64, v.clone())).collect();
                prop_assert_eq!(got, want);
                for probe in &probes {
                    let offset = probe % (hw + 1);
                    let part = reader.read(offset, hw, ReadLimits { max_records: 3, max_bytes: usize::MAX }).unwrap();
                    prop_assert_eq!(part.first().map(|(o, _)| *o), (offset < hw).then_some(offset));
                    prop_assert!(part.len() <= 3);
                    let ts = *probe as i64;
                    let want = expected.iter().position(|(_, t)| *t >= ts).map_or(hw, |p| p as u64);
                    prop_assert_eq!(reader.offset_for_timestamp(ts, hw).unwrap(), want);
                }
                // Reopen from storage: the state and index agree, and the producer window survived.
                drop(sm);
                let (_, mut sm2, _, view2) = open_partition(kv.clone(), 9).unwrap();
                prop_assert_eq!(view2.borrow().high_watermark, hw);
                let (applied, _) = sm2.applied_state().await.unwrap();
                prop_assert_eq!(applied.map(|l| l.index), Some(index - 1));
                let retry = RecordBatch { records: vec![record("x".into(), 0)], producer: Some(ProducerBatch { producer_id: 5, epoch: 0, first_sequence: sequence - *sizes.last().unwrap() as u64 }) };
                let verdict = sm2.current.partition.check_sequence(retry.producer.as_ref().unwrap(), *sizes.last().unwrap() as u32);
                let is_duplicate = matches!(verdict, SequenceCheck::Reject(PartitionResponse::Duplicate { .. }));
                prop_assert!(is_duplicate, "the last batch is still recognised after reopening");
                let _ = &mut sm2;
                Ok(())
            })?;
        }
    }

    #[test]
    fn crash_keeps_state_and_index_consistent() {
        block_on(async {
            let mem = Arc::new(MemKv::new());
            let kv: Arc<dyn eddy_storage::KvStore> = mem.clone();
            let (mut log, mut sm, _, _) = open_partition(kv.clone(), 3).unwrap();
            for i in 1..=5u64 {
                let batch = RecordBatch { records: vec![record(format!("v{i}"), 1)], producer: None };
                append_apply(&mut log, &mut sm, i, PartitionCommand::Append(batch)).await;
            }
            // The last apply's state write was not synced (appends sync only the log up to
            // them); a crash may lose it, but state and index stay consistent.
            mem.crash();
            let (_, sm2, reader, view) = open_partition(kv, 3).unwrap();
            let hw = view.borrow().high_watermark;
            assert_eq!(hw, 4, "the state as of the last sync (before append 5)");
            let read = reader.read(0, u64::MAX, ReadLimits { max_records: usize::MAX, max_bytes: usize::MAX }).unwrap();
            assert_eq!(read.len() as u64, hw, "no index entry beyond the recovered high watermark");
            drop(sm2);
        });
    }
}
