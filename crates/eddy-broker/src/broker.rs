//! A running Eddy node: the controller replica (on controller voters), the local partition
//! replicas, the heartbeat to the controller and the reconciler that makes local replicas match
//! the metadata.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use eddy_controller::{
    CONTROLLER_GROUP, Controller, ControllerClient, ControllerConfig, ControllerRaft, ControllerReply,
    ControllerRequest, ControllerStateMachine, ControllerTypes, HeartbeatRequest, HeartbeatResponse, LeaderReport,
};
use eddy_raft::transport::{Connector, GroupNetworkFactory, Peers, RaftRouter, RpcKind, handle_raft_rpc};
use eddy_storage::{KvStore, LogStore};
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::{Notify, watch};
use tonic::Status;

use crate::clock::Clock;
use crate::cluster_view::{ClusterView, ClusterWatch};
use crate::config::BrokerConfig;
use crate::coordinator::Coordinator;
use crate::replicas::LocalReplicas;

/// Why a broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("storage: {0}")]
    Storage(#[from] eddy_storage::StorageError),
    #[error("the Raft timing is invalid: {0}")]
    RaftConfig(#[from] openraft::ConfigError),
    #[error("the controller's Raft group stopped while starting: {0}")]
    Raft(#[from] openraft::error::Fatal<ControllerTypes>),
}

pub(crate) struct Inner {
    pub(crate) config: BrokerConfig,
    pub(crate) node_id: u64,
    /// Where clients reach this node.
    pub(crate) address: String,
    /// Where other brokers reach this node (its inter-broker listener).
    pub(crate) internal_address: String,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) seed: u64,
    pub(crate) peers: Arc<Peers>,
    pub(crate) controller: Option<Arc<Controller>>,
    pub(crate) controller_client: Arc<ControllerClient>,
    pub(crate) view: watch::Sender<Arc<ClusterView>>,
    pub(crate) replicas: Arc<LocalReplicas>,
    pub(crate) heartbeat_now: Arc<Notify>,
    pub(crate) stopping: watch::Sender<bool>,
    /// True once the node stops serving: open Subscribe streams end, so that the server's
    /// graceful shutdown, which waits for every open call, can finish.
    pub(crate) closing_streams: watch::Sender<bool>,
    pub(crate) coordinator: Arc<Coordinator>,
    /// Tombstoned groups whose local data this boot has already looked for (see reconcile).
    pub(crate) swept_tombstones: std::sync::Mutex<BTreeSet<u64>>,
    /// The answer to a node ping: the groups this node leads, as of the last quiesce round.
    pub(crate) ping_answer: std::sync::Mutex<bytes::Bytes>,
    /// Validation of produced records against the schema registry.
    pub(crate) schemas: Arc<crate::registry::SchemaValidator>,
    /// Authentication and authorization of client requests.
    pub(crate) auth: Arc<crate::auth::Auth>,
    /// The client quotas' buckets: one set per broker, shared by every service it serves.
    pub(crate) quotas: Arc<crate::quotas::Quotas>,
}

/// What a broker runs on. Production passes RocksDB, TCP, the system clock and a random seed; the
/// deterministic simulation passes its in-memory store, simulated TCP, simulated time and a seed
/// derived from the run's seed.
pub struct NodeEnv {
    pub kv: Arc<dyn KvStore>,
    pub connector: Arc<dyn Connector>,
    pub clock: Arc<dyn Clock>,
    /// Root of every random choice of the node's Raft groups (see [`eddy_raft::seeded`]).
    pub seed: u64,
}

/// One Raft group's state on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    pub group: u64,
    pub term: u64,
    /// This node is the group's leader in `term`.
    pub leading: bool,
    pub last_log_index: Option<u64>,
    pub committed_index: Option<u64>,
}

/// A running broker. Cheap to clone.
#[derive(Clone)]
pub struct Broker {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker").field("node_id", &self.inner.node_id).finish_non_exhaustive()
    }
}

impl Broker {
    /// Starts the broker's Raft groups and background tasks on `env`. Serving gRPC is the
    /// caller's job (see [`Broker::routes`]), so the simulation can serve it over simulated TCP.
    pub async fn start(config: BrokerConfig, env: NodeEnv) -> Result<Broker, StartError> {
        config.validate()?;
        let NodeEnv { kv, connector, clock, seed } = env;
        let node_id = config.node_id;
        let address = config.advertised_address();
        let internal_address = config.advertised_internal_address();
        let config_for_auth = config.clone();
        let peers = Arc::new(Peers::new(connector));
        let controller = if config.is_controller_voter() {
            Some(Arc::new(start_controller(&config, kv.clone(), peers.clone(), seed).await?))
        } else {
            None
        };
        let controller_client = Arc::new(ControllerClient::new(
            config.controller_voters.iter().map(|s| s.address.clone()).collect(),
            peers.clone(),
            Duration::from_millis(config.broker_session_timeout_ms / 2),
        ));
        let sync_valid_for = Duration::from_millis(config.broker_session_timeout_ms);
        let (view, _) = watch::channel(Arc::new(ClusterView::unsynced(sync_valid_for)));
        let (stopping, _) = watch::channel(false);
        let heartbeat_now = Arc::new(Notify::new());
        let replicas = Arc::new(LocalReplicas::default());
        let coordinator = Arc::new(Coordinator::new(
            config.offsets_partitions,
            ClusterWatch::new(view.subscribe(), heartbeat_now.clone()),
            replicas.clone(),
            controller_client.clone(),
            clock.clone(),
            kv.reads_block(),
        ));
        let inner = Arc::new(Inner {
            config,
            node_id,
            address,
            internal_address,
            kv,
            clock,
            seed,
            peers,
            controller,
            controller_client: controller_client.clone(),
            view,
            replicas,
            heartbeat_now,
            stopping,
            closing_streams: watch::channel(false).0,
            coordinator: coordinator.clone(),
            swept_tombstones: Default::default(),
            ping_answer: Default::default(),
            schemas: Arc::new(crate::registry::SchemaValidator::new(controller_client.clone())),
            auth: Arc::new(crate::auth::Auth::new(&config_for_auth)),
            quotas: Arc::new(crate::quotas::Quotas::new(&config_for_auth.quotas)),
        });
        tokio::spawn(coordinator.expire_members(inner.stopping.subscribe()));
        tokio::spawn(heartbeat_loop(inner.clone()));
        tokio::spawn(crate::reconcile::reconcile_loop(inner.clone()));
        tokio::spawn(crate::leader_balance::leader_balance_loop(inner.clone()));
        tokio::spawn(crate::retention::retention_loop(inner.clone()));
        tokio::spawn(crate::reassign::reassign_loop(inner.clone()));
        tokio::spawn(crate::quiesce::quiesce_loop(inner.clone()));
        if let Some(controller) = inner.controller.clone() {
            tokio::spawn(controller_tick_loop(controller, inner.stopping.subscribe()));
        }
        tracing::info!(
            node_id,
            address = %inner.address,
            internal_address = %inner.internal_address,
            voter = inner.controller.is_some(),
            "broker started"
        );
        Ok(Broker { inner })
    }

    /// The cluster's name (its configuration's `cluster_name`).
    pub fn cluster_name(&self) -> &str {
        &self.inner.config.cluster_name
    }

    /// The address this broker serves its client gRPC API at, as clients reach it.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The broker's authenticator and authorizer (the HTTP listener's too).
    pub fn auth(&self) -> &crate::auth::Auth {
        &self.inner.auth
    }

    /// The address of this broker's inter-broker listener, as other brokers reach it.
    pub fn internal_address(&self) -> &str {
        &self.inner.internal_address
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The current cluster view.
    pub fn view(&self) -> Arc<ClusterView> {
        self.inner.view.borrow().clone()
    }

    /// The cluster view for request handlers: current, awaited, refreshed.
    pub fn cluster_watch(&self) -> ClusterWatch {
        ClusterWatch::new(self.inner.view.subscribe(), self.inner.heartbeat_now.clone())
    }

    /// The group coordinator of the offsets partitions this broker leads.
    pub fn coordinator(&self) -> Arc<Coordinator> {
        self.inner.coordinator.clone()
    }

    /// The partition replicas this broker hosts.
    pub fn replicas(&self) -> &Arc<LocalReplicas> {
        &self.inner.replicas
    }

    /// The Raft state of every group on this node (the controller group first), as its metrics
    /// show it now. The simulation's checker samples it to verify one leader per term.
    pub fn raft_status(&self) -> Vec<GroupStatus> {
        fn status<C: openraft::RaftTypeConfig<NodeId = u64, Term = u64>>(
            group: u64,
            metrics: &openraft::RaftMetrics<C>,
        ) -> GroupStatus {
            GroupStatus {
                group,
                term: metrics.current_term,
                leading: metrics.state == openraft::ServerState::Leader,
                last_log_index: metrics.last_log_index,
                committed_index: metrics.local_committed.as_ref().map(|id| id.index),
            }
        }
        let mut out = Vec::new();
        if let Some(controller) = &self.inner.controller {
            out.push(status(CONTROLLER_GROUP, &controller.raft().metrics().borrow_watched()));
        }
        for replica in self.inner.replicas.all() {
            out.push(status(replica.group, &replica.raft.metrics().borrow_watched()));
        }
        out
    }

    /// Ends every open Subscribe stream (with SHUTTING_DOWN) and refuses new ones: call it when
    /// the node stops serving, before the gRPC server waits for the open calls to finish.
    pub fn close_streams(&self) {
        self.inner.closing_streams.send_replace(true);
    }

    /// Stops background tasks and every local Raft group.
    pub async fn shutdown(&self) {
        self.close_streams();
        self.inner.stopping.send_replace(true);
        for replica in self.inner.replicas.all() {
            if let Err(e) = replica.raft.shutdown().await {
                tracing::warn!(group = replica.group, error = %e, "partition raft shutdown failed");
            }
        }
        if let Some(controller) = &self.inner.controller
            && let Err(e) = controller.raft().shutdown().await
        {
            tracing::warn!(error = %e, "controller raft shutdown failed");
        }
        // Make everything written so far durable before the process exits.
        if let Err(e) = eddy_storage::kv::sync(self.inner.kv.as_ref()).await {
            tracing::warn!(error = %e, "final sync failed");
        }
    }
}

async fn start_controller(
    config: &BrokerConfig,
    kv: Arc<dyn KvStore>,
    peers: Arc<Peers>,
    seed: u64,
) -> Result<Controller, StartError> {
    let (sm, metadata) = ControllerStateMachine::open(kv.clone())?;
    let registry = sm.registry();
    let log = LogStore::<ControllerTypes>::new(kv, CONTROLLER_GROUP);
    let raft_config = config.raft.openraft_config(
        "eddy-controller",
        eddy_raft::Compaction::Snapshots {
            every: config.controller_snapshot_entries,
            keep: config.controller_snapshot_entries / 10,
        },
    )?;
    let network = GroupNetworkFactory::new(peers, CONTROLLER_GROUP);
    let created = ControllerRaft::new(config.node_id, raft_config, network, log, sm);
    let raft = eddy_raft::seeded(eddy_raft::group_seed(seed, CONTROLLER_GROUP), created).await?;
    if !raft.is_initialized().await? {
        // Every voter initializes with the same voter set, which openraft allows: the controller
        // forms as soon as a majority of voters is up, whichever they are.
        let members: BTreeMap<u64, BasicNode> =
            config.controller_voters.iter().map(|s| (s.id, BasicNode { addr: s.address.clone() })).collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::debug!(error = %e, "controller initialize skipped");
        }
    }
    let controller_config = ControllerConfig {
        broker_session_timeout_ms: config.broker_session_timeout_ms,
        partitions_per_topic_max: config.partitions_per_topic_max,
        record_size_max_bytes: config.record_size_max_bytes,
        replica_replacement_delay_ms: config.replica_replacement_delay_ms,
        concurrent_moves_max: config.partition_moves_max as usize,
    };
    Ok(Controller::new(raft, metadata, registry, controller_config))
}

/// How often the controller leader looks for brokers to fence and partitions to move.
const CONTROLLER_TICK: Duration = Duration::from_millis(500);

async fn controller_tick_loop(controller: Arc<Controller>, stopping: watch::Receiver<bool>) {
    every(stopping, CONTROLLER_TICK, || controller.tick()).await;
}

/// Runs `round` every `interval` (the first one interval from now) until the broker stops: the
/// loop of every periodic task of a broker.
pub(crate) async fn every<F, Fut>(mut stopping: watch::Receiver<bool>, interval: Duration, mut round: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        tokio::select! {
            biased;
            _ = stopping.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        round().await;
    }
}

/// How often the per-partition gauges are refreshed: a few per scrape interval, not every
/// heartbeat (five gauges for each of a thousand partitions twice a second was a third of an idle
/// broker's CPU once idle groups stopped ticking).
const GAUGES_INTERVAL: Duration = Duration::from_secs(2);

async fn heartbeat_loop(inner: Arc<Inner>) {
    let interval = Duration::from_millis(inner.config.heartbeat_interval_ms);
    let mut stopping = inner.stopping.subscribe();
    let mut failures = 0u32;
    let mut last_gauges: Option<tokio::time::Instant> = None;
    loop {
        let leading: Vec<LeaderReport> = inner
            .replicas
            .all()
            .iter()
            .filter_map(|r| {
                let l = r.leadership();
                l.is_self.then_some(LeaderReport { group: r.group, term: l.term })
            })
            .collect();
        let current = inner.view.borrow().clone();
        let request = ControllerRequest::Heartbeat(HeartbeatRequest {
            broker_id: inner.node_id,
            address: inner.address.clone(),
            internal_address: inner.internal_address.clone(),
            rack: inner.config.rack.clone(),
            metadata_version: current.metadata.version,
            metadata_term: current.metadata_term,
            leading: leading.clone(),
        });
        match inner.controller_client.call(&request).await {
            Ok(ControllerReply::Heartbeat(response)) => {
                failures = 0;
                if let Some(view) = next_view(&current, response) {
                    if view.metadata.version != current.metadata.version || current.synced_at.is_none() {
                        let book = view.metadata.brokers.values().map(|b| (b.id, b.internal_address.clone())).collect();
                        inner.peers.set_addresses(book);
                    }
                    inner.view.send_replace(Arc::new(view));
                }
            }
            Ok(other) => tracing::warn!(?other, "unexpected heartbeat reply"),
            Err(e) => {
                failures += 1;
                // Log the first failure and then every 20th, not every interval.
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(error = %e, failures, "heartbeat to controller failed");
                } else {
                    tracing::debug!(error = %e, failures, "heartbeat to controller failed");
                }
            }
        }
        if last_gauges.is_none_or(|at| at.elapsed() >= GAUGES_INTERVAL) {
            crate::metrics::record_broker_gauges(&inner, leading.len());
            last_gauges = Some(tokio::time::Instant::now());
        }
        tokio::select! {
            biased;
            _ = stopping.changed() => return,
            _ = inner.heartbeat_now.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// The view after a heartbeat answer, or `None` when the answer must be ignored: it came from a
/// controller leader of an older term than the one this broker's metadata came from (a deposed
/// leader that does not know it yet, whose metadata may lack the newest changes).
///
/// Otherwise the controller's metadata is taken whatever its version, lower ones included: the
/// leader answers only once it has applied its whole log, so a lower version means the
/// controller's state itself was rolled back (a majority of controller voters lost their disks),
/// and a broker that kept its newer copy would ignore the controller for good. Taking it is safe
/// because a broker deletes a replica only on a tombstone, never for a topic it no longer sees.
fn next_view(current: &ClusterView, response: HeartbeatResponse) -> Option<ClusterView> {
    if response.term < current.metadata_term {
        tracing::debug!(term = response.term, ours = current.metadata_term, "ignoring a deposed controller's answer");
        return None;
    }
    let metadata = match response.metadata {
        Some(theirs) => {
            if theirs.version < current.metadata.version {
                tracing::warn!(
                    ours = current.metadata.version,
                    theirs = theirs.version,
                    term = response.term,
                    "the controller serves older metadata than this broker holds; following the controller"
                );
            }
            theirs
        }
        None => current.metadata.clone(),
    };
    Some(ClusterView {
        metadata,
        metadata_term: response.term,
        synced_at: Some(tokio::time::Instant::now()),
        sync_valid_for: current.sync_valid_for,
        alive: response.alive,
        leaders: response.leaders,
        controller_leader: Some(response.controller_leader),
    })
}

/// Routes Raft RPCs to the local group they address.
pub(crate) struct GroupRouter {
    pub(crate) broker: Broker,
    /// Answers node-to-node ListOffsets queries; made once, not per query.
    pub(crate) api: crate::api::EddyApi,
}

#[tonic::async_trait]
impl RaftRouter for GroupRouter {
    async fn dispatch(
        &self,
        group: u64,
        kind: RpcKind,
        payload: bytes::Bytes,
        sender: Option<u64>,
    ) -> Result<Vec<u8>, Status> {
        if kind == RpcKind::NodePing {
            return Ok(self.broker.inner.ping_answer.lock().expect("ping answer lock").to_vec());
        }
        if kind == RpcKind::NodeListOffsets {
            use prost::Message as _;
            let request = eddy_proto::v1::ListOffsetsRequest::decode(payload)
                .map_err(|e| Status::invalid_argument(format!("malformed ListOffsets: {e}")))?;
            let answer = self.api.list_offsets_inner(request).await?;
            return Ok(answer.encode_to_vec());
        }
        if group == CONTROLLER_GROUP {
            let Some(controller) = &self.broker.inner.controller else {
                return Err(Status::not_found("this node is not a controller voter"));
            };
            return handle_raft_rpc(controller.raft(), kind, &payload, sender).await;
        }
        let Some(replica) = self.broker.inner.replicas.get(group) else {
            return Err(Status::not_found(format!("group {group} is not hosted here (yet)")));
        };
        handle_raft_rpc(&replica.raft, kind, &payload, sender).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use eddy_controller::ClusterMetadata;

    use super::*;

    fn answer(term: u64, version: Option<u64>) -> HeartbeatResponse {
        HeartbeatResponse {
            controller_leader: 1,
            term,
            metadata: version.map(|version| Arc::new(ClusterMetadata { version, ..ClusterMetadata::default() })),
            alive: BTreeSet::from([1]),
            leaders: BTreeMap::new(),
        }
    }

    fn holding(term: u64, version: u64) -> ClusterView {
        ClusterView {
            metadata: Arc::new(ClusterMetadata { version, ..ClusterMetadata::default() }),
            metadata_term: term,
            ..ClusterView::unsynced(Duration::from_secs(6))
        }
    }

    #[test]
    fn newer_metadata_is_taken_and_confirms_the_view() {
        let view = next_view(&holding(3, 10), answer(3, Some(12))).expect("taken");
        assert_eq!((view.metadata_term, view.metadata.version), (3, 12));
        assert!(view.is_current());
        let view = next_view(&view, answer(3, None)).expect("a confirmation");
        assert_eq!(view.metadata.version, 12, "no metadata in the answer keeps ours");
        assert!(view.is_current());
    }

    #[test]
    fn a_rolled_back_controller_is_followed() {
        // A later term serving a lower version: the controller's state went back; follow it
        // rather than ignore the controller for good.
        let view = next_view(&holding(3, 10), answer(4, Some(6))).expect("taken");
        assert_eq!((view.metadata_term, view.metadata.version), (4, 6));
    }

    #[test]
    fn a_deposed_controller_is_ignored() {
        assert!(next_view(&holding(5, 10), answer(4, Some(12))).is_none());
        assert!(next_view(&holding(5, 10), answer(4, None)).is_none());
    }
}
