//! The latest snapshot of a group's state machine, shared between the state machine and the
//! snapshot builders it hands out.
//!
//! openraft asks a state machine for a builder, builds the snapshot with it (possibly on another
//! task), and then expects `get_current_snapshot` to return what was built: the builder stores its
//! result here. A snapshot installed from the leader goes here too.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::RaftTypeConfig;
use openraft::storage::{RaftSnapshotBuilder, Snapshot};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};

/// A snapshot's metadata and encoded bytes.
type Stored<C> = (SnapshotMetaOf<C>, Arc<Vec<u8>>);

/// A group's current snapshot.
pub struct CurrentSnapshot<C: RaftTypeConfig> {
    slot: Arc<Mutex<Option<Stored<C>>>>,
}

impl<C: RaftTypeConfig> Clone for CurrentSnapshot<C> {
    fn clone(&self) -> Self {
        Self { slot: self.slot.clone() }
    }
}

impl<C: RaftTypeConfig> Default for CurrentSnapshot<C> {
    fn default() -> Self {
        Self { slot: Arc::default() }
    }
}

impl<C: RaftTypeConfig> CurrentSnapshot<C> {
    /// Replaces the current snapshot.
    pub fn set(&self, meta: SnapshotMetaOf<C>, bytes: Vec<u8>) {
        *self.slot.lock().expect("snapshot lock") = Some((meta, Arc::new(bytes)));
    }

    /// The current snapshot, if one was built or installed.
    pub fn get(&self) -> Option<SnapshotOf<C, Cursor<Vec<u8>>>> {
        let slot = self.slot.lock().expect("snapshot lock");
        slot.as_ref().map(|(meta, bytes)| Snapshot { meta: meta.clone(), snapshot: Cursor::new(bytes.to_vec()) })
    }

    /// The current snapshot's metadata.
    pub fn get_meta(&self) -> Option<SnapshotMetaOf<C>> {
        self.slot.lock().expect("snapshot lock").as_ref().map(|(meta, _)| meta.clone())
    }

    /// A builder of the snapshot of a state machine that has applied up to `last_log_id` under
    /// `last_membership`, whose state encodes to `bytes`: building it makes it the current one.
    pub fn builder(
        &self,
        last_log_id: Option<LogIdOf<C>>,
        last_membership: StoredMembershipOf<C>,
        bytes: Vec<u8>,
    ) -> SnapshotBuilder<C> {
        SnapshotBuilder { meta: openraft::SnapshotMeta { last_log_id, last_membership }, bytes, current: self.clone() }
    }
}

/// Builds a snapshot whose state was encoded when the builder was made (the state machine's state
/// at that moment), and keeps it as the group's [`CurrentSnapshot`].
pub struct SnapshotBuilder<C: RaftTypeConfig> {
    meta: SnapshotMetaOf<C>,
    bytes: Vec<u8>,
    current: CurrentSnapshot<C>,
}

impl<C: RaftTypeConfig> SnapshotBuilder<C> {
    /// What the snapshot will be of.
    pub fn meta(&self) -> &SnapshotMetaOf<C> {
        &self.meta
    }
}

impl<C: RaftTypeConfig> RaftSnapshotBuilder<C> for SnapshotBuilder<C> {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Self::SnapshotData>, std::io::Error> {
        let bytes = std::mem::take(&mut self.bytes);
        self.current.set(self.meta.clone(), bytes.clone());
        Ok(Snapshot { meta: self.meta.clone(), snapshot: Cursor::new(bytes) })
    }
}
