//! The controller's Raft state machine: the whole [`ClusterMetadata`], persisted after every
//! apply (it is small: brokers, topics and replica lists) and published on a watch channel; and
//! beside it the schema [`Registry`], persisted under its own key only when it changes (it can
//! be larger, and changes rarely) and published on its own channel.

use std::io::{self, Cursor};
use std::sync::Arc;

use eddy_raft::snapshot::{CurrentSnapshot, SnapshotBuilder};
use futures::TryStreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use eddy_schema::Registry;
use eddy_storage::StorageResult;
use eddy_storage::codec::{decode, encode};
use eddy_storage::kv::{Batch, Cf, KvStore, keys};

use crate::metadata::{CONTROLLER_GROUP, ClusterMetadata, ControllerCommand, ControllerResponse};

openraft::declare_raft_types!(
    /// Types of the controller's Raft group.
    pub ControllerTypes:
        D = ControllerCommand,
        R = ControllerResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        AsyncRuntime = eddy_raft::RaftRuntime,
        // Standard Raft: at most one leader per term (the simulation checks it).
        LeaderId = openraft::impls::leader_id_std::LeaderId<u64, u64>,
);

/// The controller's Raft handle.
pub type ControllerRaft = openraft::Raft<ControllerTypes, ControllerStateMachine>;

const STATE: &[u8] = b"controller";
const REGISTRY: &[u8] = b"registry";

/// A snapshot of the controller's state, as built.
#[derive(Serialize)]
struct SnapshotOut<'a> {
    metadata: &'a ClusterMetadata,
    registry: &'a Registry,
}

/// A snapshot of the controller's state, as installed (the same fields as [`SnapshotOut`]).
#[derive(Deserialize)]
struct SnapshotIn {
    metadata: ClusterMetadata,
    registry: Registry,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Persisted {
    applied: Option<LogIdOf<ControllerTypes>>,
    membership: StoredMembershipOf<ControllerTypes>,
    metadata: ClusterMetadata,
}

/// The controller's state machine.
pub struct ControllerStateMachine {
    kv: Arc<dyn KvStore>,
    current: Persisted,
    published: watch::Sender<Arc<ClusterMetadata>>,
    registry: Registry,
    published_registry: watch::Sender<Arc<Registry>>,
    /// The latest snapshot built or installed; shared with the builders, which store what
    /// they build here so that `get_current_snapshot` returns it.
    snapshot: CurrentSnapshot<ControllerTypes>,
}

impl ControllerStateMachine {
    /// Opens the state machine, recovering the persisted metadata.
    pub fn open(kv: Arc<dyn KvStore>) -> StorageResult<(Self, watch::Receiver<Arc<ClusterMetadata>>)> {
        let current: Persisted = match kv.get(Cf::State, &keys::group_tag(CONTROLLER_GROUP, STATE))? {
            Some(bytes) => decode(&bytes, "controller state")?,
            None => Persisted::default(),
        };
        let registry: Registry = match kv.get(Cf::State, &keys::group_tag(CONTROLLER_GROUP, REGISTRY))? {
            Some(bytes) => decode(&bytes, "schema registry")?,
            None => Registry::default(),
        };
        let (published, rx) = watch::channel(Arc::new(current.metadata.clone()));
        let (published_registry, _) = watch::channel(Arc::new(registry.clone()));
        let snapshot = CurrentSnapshot::default();
        Ok((Self { kv, current, published, registry, published_registry, snapshot }, rx))
    }

    /// The schema registry as this replica has applied it.
    pub fn registry(&self) -> watch::Receiver<Arc<Registry>> {
        self.published_registry.subscribe()
    }

    /// Writes the applied state, and the registry too when `registry` (it changed).
    fn persist(&self, registry: bool) -> io::Result<()> {
        let mut batch = Batch::new();
        batch.put(Cf::State, keys::group_tag(CONTROLLER_GROUP, STATE), encode(&self.current));
        if registry {
            batch.put(Cf::State, keys::group_tag(CONTROLLER_GROUP, REGISTRY), encode(&self.registry));
        }
        self.kv.write(batch).map_err(|e| e.into_io())
    }
}

impl RaftStateMachine<ControllerTypes> for ControllerStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = SnapshotBuilder<ControllerTypes>;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<ControllerTypes>>, StoredMembershipOf<ControllerTypes>), io::Error> {
        Ok((self.current.applied, self.current.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: futures::Stream<Item = Result<EntryResponder<ControllerTypes>, io::Error>> + Unpin + OptionalSend,
    {
        let mut responses = Vec::new();
        let mut changed = false;
        let mut registry_changed = false;
        while let Some((entry, responder)) = entries.try_next().await? {
            eddy_raft::assert_applies_after::<ControllerTypes>(self.current.applied.as_ref(), &entry.log_id);
            let response = match &entry.payload {
                EntryPayload::Blank => ControllerResponse::Done,
                EntryPayload::Normal(ControllerCommand::Registry(command)) => {
                    let outcome = self.registry.apply(entry.log_id.index, command);
                    registry_changed |= outcome.is_ok();
                    ControllerResponse::Registry(outcome)
                }
                EntryPayload::Normal(command) => {
                    changed = true;
                    self.current.metadata.apply(entry.log_id.index, command)
                }
                EntryPayload::Membership(membership) => {
                    self.current.membership = openraft::StoredMembership::new(Some(entry.log_id), membership.clone());
                    ControllerResponse::Done
                }
            };
            self.current.applied = Some(entry.log_id);
            if let Some(responder) = responder {
                responses.push((responder, response));
            }
        }
        self.persist(registry_changed)?;
        if changed {
            self.published.send_replace(Arc::new(self.current.metadata.clone()));
        }
        if registry_changed {
            self.published_registry.send_replace(Arc::new(self.registry.clone()));
        }
        for (responder, response) in responses {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let state = SnapshotOut { metadata: &self.current.metadata, registry: &self.registry };
        self.snapshot.builder(self.current.applied, self.current.membership.clone(), encode(&state))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<ControllerTypes>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let bytes = snapshot.into_inner();
        let SnapshotIn { metadata, registry } = decode(&bytes, "controller snapshot").map_err(|e| e.into_io())?;
        self.current = Persisted { applied: meta.last_log_id, membership: meta.last_membership.clone(), metadata };
        self.registry = registry;
        self.persist(true)?;
        // Durable before openraft answers the leader: the leader counts this follower as holding
        // everything up to the snapshot from then on, and a crash that lost the install would
        // revert the follower's log below what it was counted for (simulation seed 1288 in a
        // debug build: openraft's assertion that a follower's log never reverts).
        eddy_storage::kv::sync(&*self.kv).await.map_err(|e| e.into_io())?;
        self.published.send_replace(Arc::new(self.current.metadata.clone()));
        self.published_registry.send_replace(Arc::new(self.registry.clone()));
        self.snapshot.set(meta.clone(), bytes);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<ControllerTypes, Self::SnapshotData>>, io::Error> {
        Ok(self.snapshot.get())
    }
}
