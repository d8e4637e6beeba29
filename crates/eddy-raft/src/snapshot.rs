//! The latest snapshot of a group's state machine, shared between the state machine and the
//! snapshot builders it hands out.
//!
//! openraft asks a state machine for a builder, builds the snapshot with it (possibly on another
//! task), and then expects `get_current_snapshot` to return what was built: the builder stores its
//! result here. A snapshot installed from the leader goes here too.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::RaftTypeConfig;
use openraft::storage::Snapshot;
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf};

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

    /// Stores a snapshot just built and returns it.
    pub fn keep(&self, meta: SnapshotMetaOf<C>, bytes: Vec<u8>) -> SnapshotOf<C, Cursor<Vec<u8>>> {
        self.set(meta.clone(), bytes.clone());
        Snapshot { meta, snapshot: Cursor::new(bytes) }
    }
}
