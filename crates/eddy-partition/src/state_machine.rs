//! A partition's Raft state machine.
//!
//! Appends arrive as Raft entries holding a [`RecordBatch`](crate::RecordBatch). On apply, the
//! state machine gives the batch the next offsets (`base_offset = next_offset`), checks idempotent
//! producers' sequences ([`crate::dedup`]) and writes only an offset-index entry (base offset ->
//! Raft index, [`crate::store`]); the records stay in the Raft entry: the Raft log is the
//! partition log. Reads by offset find the entry through the index ([`crate::reader`]).
//!
//! # Retention, snapshots and the log start
//!
//! Records leave the log only through [`PartitionCommand::Trim`], which the leader proposes when
//! the topic's retention says so: every replica moves its log start at the same entry. Raft
//! entries holding only records below the log start may then be purged, but Raft purges only
//! entries a snapshot covers, and a snapshot must never stand for records still retained: a
//! replica that installs it starts at the snapshot's next offset and gets every later record
//! from the entries after it. So a snapshot is not the state at the last applied entry but a
//! *checkpoint*: the state as it was after some earlier entry, taken as entries were applied and
//! kept in memory until the log start passes its next offset. Then it becomes the partition's
//! snapshot (persisted), and openraft purges the log up to its entry. A replica that needs
//! entries below the leader's purge point gets that snapshot (offsets, producer windows, clock)
//! and then the entries after it: exactly the retained records, at the same offsets.
//!
//! Checkpoints are taken at every trim and whenever the bytes appended since the last one pass
//! a sixteenth of the retained bytes (at least [`CHECKPOINT_BYTES_MIN`]), so the log holds at
//! most about a sixteenth more than retention asks for.

use std::collections::{BTreeMap, VecDeque};
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

/// Bytes appended between two checkpoints at least.
pub const CHECKPOINT_BYTES_MIN: u64 = 1 << 20;
/// Checkpoints a partition keeps waiting for the log start; past this, only trims take new ones
/// (replacing the newest).
const CHECKPOINTS_MAX: usize = 16;

/// What readers need to know of the applied state, published on every apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionView {
    /// Every offset below is committed and readable.
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Bytes of the records from the log start on, as retention counts them.
    pub retained_bytes: u64,
}

/// Persisted together with the index entries of every apply.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    applied: Option<LogIdOf<PartitionTypes>>,
    membership: StoredMembershipOf<PartitionTypes>,
    partition: PartitionState,
}

/// The partition's state after one entry, encoded as a snapshot would carry it.
struct Checkpoint {
    meta: SnapshotMetaOf<PartitionTypes>,
    next_offset: u64,
    bytes: Vec<u8>,
}

/// The state machine of one partition.
pub struct PartitionStateMachine {
    store: PartitionStore,
    current: Persisted,
    view: watch::Sender<PartitionView>,
    /// The partition's snapshot: the newest checkpoint the log start has passed, or the one
    /// installed from the leader. Shared with the builders handed to openraft.
    snapshot: CurrentSnapshot<PartitionTypes>,
    /// The last snapshot handed to openraft to build.
    built: Option<LogIdOf<PartitionTypes>>,
    /// Checkpoints not yet passed by the log start, oldest first.
    checkpoints: VecDeque<Checkpoint>,
    bytes_since_checkpoint: u64,
    /// The index of the partition's snapshot, published when a new one may be built and the
    /// log purged up to it.
    snapshot_index: watch::Sender<u64>,
}

impl PartitionStateMachine {
    /// Opens the state machine of `group`, recovering its persisted state. The log is not
    /// replayed: openraft re-applies only entries after the persisted applied log id.
    pub fn open(store: PartitionStore) -> StorageResult<(Self, watch::Receiver<PartitionView>)> {
        let mut current: Persisted = store.load_state()?.unwrap_or_default();
        current.partition.producers = store.load_producers()?;
        let snapshot = CurrentSnapshot::default();
        let mut snapshot_index = 0;
        if let Some(stored) = store.load_snapshot()? {
            let (meta, bytes): (SnapshotMetaOf<PartitionTypes>, Vec<u8>) = decode(&stored, "partition snapshot")?;
            snapshot_index = meta.last_log_id.as_ref().map_or(0, |id| id.index);
            snapshot.set(meta, bytes);
        }
        let (view, rx) = watch::channel(view_of(&current.partition));
        let machine = Self {
            store,
            current,
            view,
            snapshot,
            built: None,
            checkpoints: VecDeque::new(),
            bytes_since_checkpoint: 0,
            snapshot_index: watch::channel(snapshot_index).0,
        };
        Ok((machine, rx))
    }

    /// Changes whenever the partition gets a snapshot that openraft may build and purge the log
    /// up to (see [`crate::replica`]).
    pub fn snapshot_index(&self) -> watch::Receiver<u64> {
        self.snapshot_index.subscribe()
    }

    fn publish(&self) {
        let next = view_of(&self.current.partition);
        self.view.send_if_modified(|v| std::mem::replace(v, next) != next);
    }

    fn apply_command(
        &mut self,
        batch: &mut Batch,
        raft_index: u64,
        command: &PartitionCommand,
    ) -> io::Result<PartitionResponse> {
        let records = match command {
            PartitionCommand::Append(records) => records,
            PartitionCommand::Trim { log_start_offset } => return self.apply_trim(batch, *log_start_offset),
        };
        let count = u32::try_from(records.records.len()).expect("batch sizes are bounded far below u32");
        assert!(count > 0, "empty batches are refused before they reach the log");
        let state = &mut self.current.partition;
        state.advance_clock(records.append_time_ms);
        if let Some(expected) = records.expected_base_offset
            && expected != state.next_offset
        {
            return Ok(PartitionResponse::PredictionMissed { expected, next_offset: state.next_offset });
        }
        if let Some(producer) = &records.producer {
            for expired in state.expire_idle(producer.idle_expiry_ms) {
                self.store.stage_producer(batch, expired, None);
            }
            if let SequenceCheck::Reject(response) = state.check_sequence(producer, count) {
                return Ok(response);
            }
        }
        let entry = IndexEntry { raft_index, record_count: count, size_bytes: records.size_bytes() };
        self.bytes_since_checkpoint += entry.size_bytes;
        let base_offset = self.store.stage_append(batch, state, entry, records.max_timestamp_ms());
        if let Some(producer) = &records.producer {
            if let Some(forgotten) = state.remember(producer, count, base_offset) {
                self.store.stage_producer(batch, forgotten, None);
            }
            let window = state.producers.get(&producer.producer_id);
            self.store.stage_producer(batch, producer.producer_id, window);
        }
        Ok(PartitionResponse::Appended { base_offset, count })
    }

    /// Moves the log start, drops the index entries below it, and makes the newest checkpoint
    /// it passed the partition's snapshot.
    fn apply_trim(&mut self, batch: &mut Batch, log_start_offset: u64) -> io::Result<PartitionResponse> {
        let state = &mut self.current.partition;
        let target = log_start_offset.min(state.next_offset);
        if target > state.log_start_offset {
            // The trim reads the index: what this apply staged so far goes to the store first,
            // with the state as of the previous entry, so the store stays consistent.
            self.store.stage_state(batch, &self.current);
            self.store.kv().write(std::mem::take(batch)).map_err(|e| e.into_io())?;
            let state = &mut self.current.partition;
            state.log_start_offset = target;
            self.store.stage_trim(batch, state).map_err(|e| e.into_io())?;
            let mut passed = None;
            while self.checkpoints.front().is_some_and(|c| c.next_offset <= target) {
                passed = self.checkpoints.pop_front();
            }
            if let Some(checkpoint) = passed {
                self.store.stage_snapshot(batch, &encode(&(&checkpoint.meta, &checkpoint.bytes)));
                self.snapshot.set(checkpoint.meta, checkpoint.bytes);
            }
        }
        Ok(PartitionResponse::Trimmed { log_start_offset: self.current.partition.log_start_offset })
    }

    /// Takes a checkpoint of the state as applied now, after a trim or once enough bytes were
    /// appended since the last one.
    fn maybe_checkpoint(&mut self, trimmed: bool) {
        let state = &self.current.partition;
        let due = self.bytes_since_checkpoint >= CHECKPOINT_BYTES_MIN.max(state.retained_bytes / 16)
            && self.checkpoints.len() < CHECKPOINTS_MAX;
        if !(trimmed || due) || self.checkpoints.back().is_some_and(|c| c.next_offset == state.next_offset) {
            return;
        }
        if self.checkpoints.len() >= CHECKPOINTS_MAX {
            self.checkpoints.pop_back();
        }
        self.bytes_since_checkpoint = 0;
        self.checkpoints.push_back(Checkpoint {
            meta: openraft::SnapshotMeta {
                last_log_id: self.current.applied,
                last_membership: self.current.membership.clone(),
            },
            next_offset: state.next_offset,
            bytes: snapshot_bytes(state),
        });
    }

    /// A builder of the partition's snapshot when retention made a new one. With `force`
    /// (openraft asks so only at start-up, when the log was purged and no snapshot exists, which
    /// the persisted snapshot rules out), a snapshot of the state as applied now, as openraft's
    /// contract has it: a replica installing that one would start at the next offset.
    fn builder(&mut self, force: bool) -> Option<SnapshotBuilder<PartitionTypes>> {
        if force {
            let state = &self.current.partition;
            if state.log_start_offset < state.next_offset {
                tracing::warn!(
                    group = self.store.group(),
                    log_start_offset = state.log_start_offset,
                    next_offset = state.next_offset,
                    "a snapshot of the whole state was required: a replica installing it holds no record below its next offset"
                );
            }
            self.built = self.current.applied;
            return Some(self.snapshot.builder(
                self.current.applied,
                self.current.membership.clone(),
                snapshot_bytes(state),
            ));
        }
        let snapshot = self.snapshot.get()?;
        if self.built == snapshot.meta.last_log_id {
            return None;
        }
        self.built = snapshot.meta.last_log_id;
        Some(self.snapshot.builder(
            snapshot.meta.last_log_id,
            snapshot.meta.last_membership,
            snapshot.snapshot.into_inner(),
        ))
    }
}

/// `state` as a snapshot carries it: a replica installing it holds no record below its next
/// offset, so its log starts there.
fn snapshot_bytes(state: &PartitionState) -> Vec<u8> {
    let mut at = state.clone();
    at.producers = BTreeMap::new();
    at.log_start_offset = at.next_offset;
    at.retained_bytes = 0;
    encode(&(&at, &state.producers))
}

fn view_of(state: &PartitionState) -> PartitionView {
    PartitionView {
        high_watermark: state.next_offset,
        log_start_offset: state.log_start_offset,
        retained_bytes: state.retained_bytes,
    }
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
        // With spans exported: an `apply` span per traced batch, on every replica, a child of the
        // producer's span its records carry, ended once the batch is written.
        let mut applied_spans = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            if eddy_telemetry::exporting()
                && let EntryPayload::Normal(PartitionCommand::Append(records)) = &entry.payload
                && let Some(first) = records.records.first()
            {
                let carried = eddy_telemetry::propagation::from_record_headers(
                    first.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())),
                );
                if opentelemetry::trace::TraceContextExt::has_active_span(&carried) {
                    applied_spans.push(eddy_telemetry::messaging::replica_apply(
                        self.store.group(),
                        entry.log_id.index,
                        records.records.len(),
                        &carried,
                    ));
                }
            }
            eddy_raft::assert_applies_after::<PartitionTypes>(self.current.applied.as_ref(), &entry.log_id);
            let start = self.current.partition.log_start_offset;
            let response = match &entry.payload {
                EntryPayload::Blank => PartitionResponse::None,
                EntryPayload::Normal(command) => self.apply_command(&mut batch, entry.log_id.index, command)?,
                EntryPayload::Membership(membership) => {
                    self.current.membership = openraft::StoredMembership::new(Some(entry.log_id), membership.clone());
                    PartitionResponse::None
                }
            };
            self.current.applied = Some(entry.log_id);
            self.maybe_checkpoint(self.current.partition.log_start_offset != start);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        self.store.stage_state(&mut batch, &self.current);
        self.store.kv().write(batch).map_err(|e| e.into_io())?;
        for span in applied_spans {
            span.end();
        }
        self.publish();
        for (responder, response) in responses {
            responder.send(response);
        }
        if let Some(id) = self.snapshot.get_meta().and_then(|m| m.last_log_id) {
            self.snapshot_index.send_if_modified(|i| std::mem::replace(i, id.index) != id.index);
        }
        Ok(())
    }

    async fn try_create_snapshot_builder(&mut self, force: bool) -> Option<Self::SnapshotBuilder> {
        self.builder(force)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.builder(true).expect("a forced builder always exists")
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
        // A snapshot starts the log at its next offset (`snapshot_bytes`); the records after it
        // arrive as the entries after the snapshot.
        debug_assert_eq!(partition.log_start_offset, partition.next_offset);
        self.current = Persisted { applied: meta.last_log_id, membership: meta.last_membership.clone(), partition };
        let mut batch = Batch::new();
        self.store.stage_reset(&mut batch, &self.current.partition);
        self.store.stage_drop_producers(&mut batch);
        for (id, producer) in &self.current.partition.producers {
            self.store.stage_producer(&mut batch, *id, Some(producer));
        }
        self.store.stage_state(&mut batch, &self.current);
        self.store.stage_snapshot(&mut batch, &encode(&(meta, &bytes)));
        self.store.kv().write(batch).map_err(|e| e.into_io())?;
        // Durable before openraft answers the leader, which counts this replica as holding
        // everything up to the snapshot from then on (see the controller's install_snapshot).
        eddy_storage::kv::sync(&**self.store.kv()).await.map_err(|e| e.into_io())?;
        self.snapshot.set(meta.clone(), bytes);
        self.built = meta.last_log_id;
        self.checkpoints.clear();
        self.bytes_since_checkpoint = 0;
        tracing::info!(
            group = self.store.group(),
            last_log_id = ?meta.last_log_id,
            log_start_offset = self.current.partition.log_start_offset,
            "installed a partition snapshot: the log starts at its next offset"
        );
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
    use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage};
    use openraft::type_config::TypeConfigExt;
    use openraft::{Entry, LogId};
    use proptest::prelude::*;

    use super::*;
    use crate::reader::{PartitionReader, ReadLimits, Retention, open_partition};
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

    /// A model partition's history: batches of (value, timestamp) records with a producer, and
    /// trims.
    #[derive(Debug, Clone)]
    enum Step {
        Append(Vec<(usize, i64)>),
        /// Trim to the base of the batch this many batches back from the end (or everything).
        Trim(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => prop::collection::vec((0usize..3000, 0i64..100), 1..4).prop_map(Step::Append),
            1 => (0usize..6).prop_map(Step::Trim),
        ]
    }

    fn all_records(reader: &PartitionReader, view: PartitionView) -> Vec<(u64, Record)> {
        let everything = ReadLimits { max_records: usize::MAX, max_bytes: usize::MAX };
        reader.read(view.log_start_offset, view.high_watermark, everything).unwrap()
    }

    proptest! {
        /// Trims move the log start to a batch boundary and drop exactly the records below it;
        /// the snapshot retention makes never stands for a retained record: a new replica that
        /// installs it and applies the entries after it holds exactly the retained records, at
        /// the same offsets, byte-identical, with the same producer windows; and time lookups
        /// answer from the retained records only.
        #[test]
        fn retention_keeps_history_through_snapshots(steps in prop::collection::vec(step(), 1..40)) {
            block_on(async {
                let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
                let (mut log, mut sm, reader, view) = open_partition(kv, 9).unwrap();
                let mut index = 1;
                let mut bases: Vec<u64> = Vec::new();
                let mut sequence = 0u64;
                let mut model: Vec<(u64, i64)> = Vec::new(); // (offset, timestamp) of every record
                for (n, step) in steps.iter().enumerate() {
                    let command = match step {
                        Step::Append(records) => {
                            bases.push(view.borrow().high_watermark);
                            let records: Vec<Record> = records.iter().enumerate()
                                .map(|(i, (len, ts))| record(format!("{n}-{i}-{}", "x".repeat(*len)), *ts))
                                .collect();
                            let count = records.len() as u64;
                            let producer = ProducerBatch { producer_id: 5, epoch: 0, first_sequence: sequence, idle_expiry_ms: u64::MAX };
                            sequence += count;
                            for r in &records {
                                model.push((model.len() as u64, r.timestamp_ms));
                            }
                            PartitionCommand::Append(RecordBatch { records, producer: Some(producer), append_time_ms: n as i64, expected_base_offset: None })
                        }
                        Step::Trim(back) => {
                            let to = bases.len().checked_sub(*back).and_then(|i| bases.get(i)).copied()
                                .unwrap_or(view.borrow().high_watermark);
                            PartitionCommand::Trim { log_start_offset: to }
                        }
                    };
                    append_apply(&mut log, &mut sm, index, command).await;
                    index += 1;
                }
                let leader = *view.borrow();
                let retained = all_records(&reader, leader);
                prop_assert_eq!(retained.first().map(|(o, _)| *o).unwrap_or(leader.high_watermark), leader.log_start_offset);
                prop_assert_eq!(retained.len() as u64, leader.high_watermark - leader.log_start_offset);
                prop_assert!(leader.log_start_offset == leader.high_watermark || bases.contains(&leader.log_start_offset));
                let bytes: u64 = retained.iter().map(|(_, r)| r.size_bytes() as u64).sum();
                prop_assert_eq!(leader.retained_bytes, bytes);
                for probe in [0i64, 17, 50, 99, 100] {
                    let want = model.iter().find(|(o, ts)| *o >= leader.log_start_offset && *ts >= probe).map_or(leader.high_watermark, |(o, _)| *o);
                    prop_assert_eq!(reader.offset_for_timestamp(probe, leader.high_watermark).unwrap().max(leader.log_start_offset), want, "time lookup {}", probe);
                }

                // A new replica: the snapshot (if retention made one), then the entries after it.
                let snapshot = sm.builder(false);
                let mut from = 1;
                let kv2: Arc<dyn KvStore> = Arc::new(MemKv::new());
                let (mut log2, mut sm2, reader2, view2) = open_partition(kv2, 9).unwrap();
                if let Some(mut builder) = snapshot {
                    use openraft::storage::RaftSnapshotBuilder;
                    let built = builder.build_snapshot().await.unwrap();
                    let at = built.meta.last_log_id.unwrap().index;
                    let decoded: (PartitionState, BTreeMap<u64, ProducerState>) = decode(built.snapshot.get_ref(), "test").unwrap();
                    prop_assert!(decoded.0.next_offset <= leader.log_start_offset, "the snapshot stands for no retained record");
                    sm2.install_snapshot(&built.meta, built.snapshot).await.unwrap();
                    from = at + 1;
                }
                let entries = log.try_get_log_entries(from..index).await.unwrap();
                for entry in entries {
                    let (tx, rx) = PartitionTypes::oneshot();
                    log2.append([entry.clone()], IOFlushed::signal(tx)).await.unwrap();
                    rx.await.unwrap().unwrap();
                    sm2.apply(futures::stream::iter([Ok((entry, None))])).await.unwrap();
                }
                let follower = *view2.borrow();
                prop_assert_eq!(follower, leader);
                prop_assert_eq!(all_records(&reader2, follower), retained);
                prop_assert_eq!(&sm2.current.partition.producers, &sm.current.partition.producers);
                Ok(())
            })?;
        }
    }

    #[test]
    fn retention_point_follows_time_and_bytes() {
        block_on(async {
            let kv: Arc<dyn KvStore> = Arc::new(MemKv::new());
            let (mut log, mut sm, reader, view) = open_partition(kv, 4).unwrap();
            // Ten batches of two 100-byte values, timestamps 10, 20, ... 100.
            for i in 1..=10u64 {
                let records = (0..2).map(|_| record("v".repeat(100), i as i64 * 10)).collect();
                let batch = RecordBatch { records, producer: None, append_time_ms: 0, expected_base_offset: None };
                append_apply(&mut log, &mut sm, i, PartitionCommand::Append(batch)).await;
            }
            let batch_bytes = view.borrow().retained_bytes / 10;
            let point = |ms, bytes, now| reader.retention_point(Retention { ms, bytes }, now).unwrap();
            assert_eq!(point(None, None, 1_000), None);
            assert_eq!(point(Some(1_000), None, 1_000), None, "nothing older than 0");
            assert_eq!(point(Some(50), None, 100), Some(8), "batches of 10..=40 are older than 50");
            assert_eq!(point(Some(0), None, 1_000), Some(20), "everything is older");
            assert_eq!(point(None, Some(batch_bytes * 3), 0), Some(14), "keeps three batches");
            assert_eq!(point(None, Some(batch_bytes * 3 - 1), 0), Some(14), "keeps at least the limit");
            assert_eq!(point(None, Some(1), 0), Some(18), "keeps the last batch");
            assert_eq!(point(Some(50), Some(batch_bytes * 3), 100), Some(14), "the stricter wins");
            append_apply(&mut log, &mut sm, 11, PartitionCommand::Trim { log_start_offset: 14 }).await;
            assert_eq!(view.borrow().log_start_offset, 14);
            assert_eq!(view.borrow().retained_bytes, batch_bytes * 3);
            assert_eq!(point(Some(50), Some(batch_bytes * 3), 100), None, "already there");
            // A trim below the log start changes nothing; past the end trims to the end.
            append_apply(&mut log, &mut sm, 12, PartitionCommand::Trim { log_start_offset: 2 }).await;
            assert_eq!(view.borrow().log_start_offset, 14);
            append_apply(&mut log, &mut sm, 13, PartitionCommand::Trim { log_start_offset: 99 }).await;
            assert_eq!((view.borrow().log_start_offset, view.borrow().retained_bytes), (20, 0));
            // The checkpoint taken at the first trim (after entry 11, next offset 20) is passed:
            // it is the snapshot, offered once.
            let built = sm.builder(false).map(|b| b.meta().last_log_id.map(|id| id.index));
            assert_eq!(built, Some(Some(11)));
            assert!(sm.builder(false).is_none());
        });
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
