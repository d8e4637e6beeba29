//! A partition's Raft group: its type config, its state machine and its reader.
//!
//! Appends arrive as Raft entries holding a [`RecordBatch`]. On apply, the state machine gives the
//! batch the next offsets (`base_offset = next_offset`), checks idempotent producers' sequences and
//! writes only an offset-index entry (base offset -> Raft index); the records stay in the Raft
//! entry. Reads by offset find the entry through the index.

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
use eddy_storage::partition::SequenceCheck;
use eddy_storage::{
    IndexEntry, LogStore, PartitionCommand, PartitionResponse, PartitionState, PartitionStore,
    Record, StorageResult,
};

openraft::declare_raft_types!(
    /// Types of a partition's Raft group.
    pub PartitionTypes:
        D = PartitionCommand,
        R = PartitionResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
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
        let current: Persisted = store.load_state()?.unwrap_or_default();
        let (view, rx) = watch::channel(view_of(&current.partition));
        Ok((
            Self {
                store,
                current,
                view,
                snapshot: None,
            },
            rx,
        ))
    }

    fn publish(&self) {
        let next = view_of(&self.current.partition);
        self.view
            .send_if_modified(|v| std::mem::replace(v, next) != next);
    }

    fn apply_command(
        &mut self,
        batch: &mut Batch,
        raft_index: u64,
        command: &PartitionCommand,
    ) -> PartitionResponse {
        let PartitionCommand::Append(records) = command;
        let count =
            u32::try_from(records.records.len()).expect("batch sizes are bounded far below u32");
        assert!(
            count > 0,
            "empty batches are refused before they reach the log"
        );
        let state = &mut self.current.partition;
        if let Some(producer) = &records.producer {
            if let SequenceCheck::Reject(response) = state.check_sequence(producer, count) {
                return response;
            }
        }
        let entry = IndexEntry {
            raft_index,
            record_count: count,
        };
        let base_offset = self
            .store
            .stage_append(batch, state, entry, records.max_timestamp_ms());
        if let Some(producer) = &records.producer {
            state.remember(producer, count, base_offset);
        }
        PartitionResponse::Appended { base_offset, count }
    }
}

fn view_of(state: &PartitionState) -> PartitionView {
    PartitionView {
        high_watermark: state.next_offset,
        log_start_offset: state.log_start_offset,
    }
}

impl RaftStateMachine<PartitionTypes> for PartitionStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = PartitionSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogIdOf<PartitionTypes>>,
            StoredMembershipOf<PartitionTypes>,
        ),
        io::Error,
    > {
        Ok((self.current.applied, self.current.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<PartitionTypes>, io::Error>>
            + Unpin
            + OptionalSend,
    {
        let mut batch = Batch::new();
        let mut responses = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let response = match &entry.payload {
                EntryPayload::Blank => PartitionResponse::None,
                EntryPayload::Normal(command) => {
                    self.apply_command(&mut batch, entry.log_id.index, command)
                }
                EntryPayload::Membership(membership) => {
                    self.current.membership =
                        openraft::StoredMembership::new(Some(entry.log_id), membership.clone());
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
        PartitionSnapshotBuilder {
            persisted: self.current.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<PartitionTypes>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let mut partition: PartitionState =
            decode(&bytes, "partition snapshot").map_err(|e| e.into_io())?;
        // The log below the snapshot is gone from this replica: nothing below the snapshot's next
        // offset can be read here any more.
        partition.log_start_offset = partition.next_offset;
        self.current = Persisted {
            applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            partition,
        };
        let mut batch = Batch::new();
        self.store.stage_reset(&mut batch);
        self.store.stage_state(&mut batch, &self.current);
        self.store.kv().write(batch).map_err(|e| e.into_io())?;
        self.snapshot = Some((meta.clone(), bytes));
        self.publish();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<PartitionTypes, Self::SnapshotData>>, io::Error> {
        Ok(self.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Cursor::new(bytes.clone()),
        }))
    }
}

/// Builds a snapshot of a partition's state machine (its offsets and producer windows; the
/// records themselves stay in the log).
pub struct PartitionSnapshotBuilder {
    persisted: Persisted,
}

impl RaftSnapshotBuilder<PartitionTypes> for PartitionSnapshotBuilder {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<PartitionTypes, Self::SnapshotData>, io::Error> {
        let meta = openraft::SnapshotMeta {
            last_log_id: self.persisted.applied,
            last_membership: self.persisted.membership.clone(),
        };
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(encode(&self.persisted.partition)),
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
    pub fn read(
        &self,
        offset: u64,
        high_watermark: u64,
        limits: ReadLimits,
    ) -> StorageResult<Vec<(u64, Record)>> {
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
    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
        high_watermark: u64,
    ) -> StorageResult<u64> {
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
) -> StorageResult<(
    LogStore<PartitionTypes>,
    PartitionStateMachine,
    PartitionReader,
    watch::Receiver<PartitionView>,
)> {
    let log = LogStore::new(kv.clone(), group);
    let store = PartitionStore::new(kv, group);
    let (sm, view) = PartitionStateMachine::open(store.clone())?;
    Ok((log.clone(), sm, PartitionReader::new(store, log), view))
}
