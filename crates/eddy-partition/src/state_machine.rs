//! A partition's Raft state machine.
//!
//! Appends arrive as Raft entries holding a [`RecordBatch`](crate::RecordBatch). On apply, the
//! state machine gives the batch the next offsets (`base_offset = next_offset`), checks idempotent
//! producers' sequences ([`crate::dedup`]) and writes only an offset-index entry (base offset ->
//! Raft index, [`crate::store`]); the records stay in the Raft entry: the Raft log is the
//! partition log. Reads by offset find the entry through the index ([`crate::reader`]).

use std::collections::BTreeMap;
use std::io::{self, Cursor};

use eddy_raft::snapshot::{CurrentSnapshot, SnapshotBuilder};
use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use eddy_storage::StorageResult;
use eddy_storage::codec::{decode, encode};
use eddy_storage::kv::Batch;

use crate::PartitionTypes;
use crate::dedup::{PartitionState, ProducerState, SequenceCheck};
use crate::records::{PartitionCommand, PartitionResponse};
use crate::store::{IndexEntry, PartitionStore};

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
    /// The latest snapshot built or installed; shared with the builders, which store what
    /// they build here so that `get_current_snapshot` returns it.
    snapshot: CurrentSnapshot<PartitionTypes>,
}

impl PartitionStateMachine {
    /// Opens the state machine of `group`, recovering its persisted state. The log is not
    /// replayed: openraft re-applies only entries after the persisted applied log id.
    pub fn open(store: PartitionStore) -> StorageResult<(Self, watch::Receiver<PartitionView>)> {
        let mut current: Persisted = store.load_state()?.unwrap_or_default();
        current.partition.producers = store.load_producers()?;
        let (view, rx) = watch::channel(view_of(&current.partition));
        Ok((Self { store, current, view, snapshot: CurrentSnapshot::default() }, rx))
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
        state.advance_clock(records.append_time_ms);
        if let Some(expected) = records.expected_base_offset
            && expected != state.next_offset
        {
            return PartitionResponse::PredictionMissed { expected, next_offset: state.next_offset };
        }
        if let Some(producer) = &records.producer {
            for expired in state.expire_idle(producer.idle_expiry_ms) {
                self.store.stage_producer(batch, expired, None);
            }
            if let SequenceCheck::Reject(response) = state.check_sequence(producer, count) {
                return response;
            }
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
    type SnapshotBuilder = SnapshotBuilder<PartitionTypes>;

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
            eddy_raft::assert_applies_after::<PartitionTypes>(self.current.applied.as_ref(), &entry.log_id);
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
        // Its offsets and producer windows; the records themselves stay in the log.
        self.snapshot.builder(
            self.current.applied,
            self.current.membership.clone(),
            encode(&(&self.current.partition, &self.current.partition.producers)),
        )
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
        self.snapshot.set(meta.clone(), bytes);
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<PartitionTypes, Self::SnapshotData>>, io::Error> {
        Ok(self.snapshot.get())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use eddy_storage::{KvStore, LogStore, MemKv};
    use openraft::storage::{IOFlushed, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::{Entry, LogId};
    use proptest::prelude::*;

    use super::*;
    use crate::reader::{ReadLimits, open_partition};
    use crate::records::{ProducerBatch, Record, RecordBatch};

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
                let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
                let (mut log, mut sm, reader, view) = open_partition(kv.clone(), 9).unwrap();
                let mut expected: Vec<(String, i64)> = Vec::new();
                let mut index = 1;
                let mut sequence = 0u64;
                for (b, size) in sizes.iter().enumerate() {
                    let records: Vec<Record> = (0..*size).map(|i| record(format!("b{b}-r{i}"), (b * 10 + i) as i64)).collect();
                    let batch = RecordBatch { records: records.clone(), producer: Some(ProducerBatch { producer_id: 5, epoch: 0, first_sequence: sequence, idle_expiry_ms: 60_000 }), append_time_ms: b as i64, expected_base_offset: None };
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
                let retry = RecordBatch { records: vec![record("x".into(), 0)], producer: Some(ProducerBatch { producer_id: 5, epoch: 0, first_sequence: sequence - *sizes.last().unwrap() as u64, idle_expiry_ms: 60_000 }), append_time_ms: 0, expected_base_offset: None };
                let verdict = sm2.current.partition.check_sequence(retry.producer.as_ref().unwrap(), *sizes.last().unwrap() as u32);
                let is_duplicate = matches!(verdict, SequenceCheck::Reject(PartitionResponse::Duplicate { .. }));
                prop_assert!(is_duplicate, "the last batch is still recognised after reopening");
                let _ = &mut sm2;
                Ok(())
            })?;
        }
    }

    #[test]
    fn a_batch_is_appended_at_its_expected_offset_or_not_at_all() {
        block_on(async {
            let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
            let (mut log, mut sm, reader, view) = open_partition(kv, 4).unwrap();
            let batch = |value: &str, expected| {
                PartitionCommand::Append(RecordBatch {
                    records: vec![record(value.into(), 1)],
                    producer: None,
                    append_time_ms: 0,
                    expected_base_offset: expected,
                })
            };
            append_apply(&mut log, &mut sm, 1, batch("a", Some(0))).await;
            // Predicted past a batch that never reached the log: not appended.
            append_apply(&mut log, &mut sm, 2, batch("c", Some(2))).await;
            append_apply(&mut log, &mut sm, 3, batch("b", None)).await;
            assert_eq!(view.borrow().high_watermark, 2);
            let read = reader.read(0, 2, ReadLimits { max_records: 10, max_bytes: usize::MAX }).unwrap();
            let values: Vec<_> = read.iter().map(|(o, r)| (*o, r.value.clone())).collect();
            assert_eq!(values, vec![(0, Bytes::from("a")), (1, Bytes::from("b"))]);
        });
    }

    #[test]
    fn crash_keeps_state_and_index_consistent() {
        block_on(async {
            let mem = Arc::new(MemKv::new());
            let kv: Arc<dyn KvStore> = mem.clone();
            let (mut log, mut sm, _, _) = open_partition(kv.clone(), 3).unwrap();
            for i in 1..=5u64 {
                let batch = RecordBatch {
                    records: vec![record(format!("v{i}"), 1)],
                    producer: None,
                    append_time_ms: 0,
                    expected_base_offset: None,
                };
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
