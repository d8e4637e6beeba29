//! The group coordinator: the leader of each partition of `__consumer_offsets` coordinates the
//! groups that [`eddy_groups::shard_of`] puts on it.
//!
//! A coordinator keeps its groups in memory ([`Groups`]), rebuilt from its partition's log
//! whenever it starts leading in a new term: it waits until its replica has applied every entry
//! of the log (so everything its predecessors committed is there), then applies every record.
//! Each request is planned against that state by the rules of [`eddy_groups::protocol`]; a plan
//! with records is written to the partition (one Raft entry, committed by a quorum) before its
//! records are applied and the request is answered. Requests to one partition are serialized.
//! A write that fails or whose outcome is unknown makes the coordinator rebuild before its next
//! request, from whatever the log holds by then.
//!
//! Sessions (when each member must heartbeat by) are not replicated: a new coordinator gives
//! every member a full session timeout from the moment it loaded, as Kafka does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_controller::{ClusterMetadata, ControllerClient, ControllerError, ControllerRequest};
use eddy_groups::{GroupError, GroupRecord, Groups, OFFSETS_TOPIC, Plan, codec, shard_of};
use eddy_partition::Replica;
use eddy_partition::{PartitionCommand, PartitionResponse, Proposal, ProposeError, ReadLimits, Record, RecordBatch};
use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::cluster_view::{ClusterView, ClusterWatch};
use crate::error::BrokerError;
use crate::replicas::{LocalReplicas, storage_read};

/// How long a coordinator write may take to commit.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often expired sessions are looked for.
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_millis(250);
/// Replication factor of the offsets topic when the cluster has enough brokers.
const OFFSETS_REPLICATION_FACTOR: u32 = 3;
/// How long a broker waits for the offsets topic it asked for to appear in its metadata.
const OFFSETS_TOPIC_VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// When each member of a loaded coordinator must next be heard from.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_member: BTreeMap<(String, String), Session>,
}

#[derive(Debug, Clone, Copy)]
struct Session {
    expires_at: Instant,
    /// Since when the member has partitions to give up, if it has.
    revoking_since: Option<Instant>,
}

impl Sessions {
    /// Extends a member's session after a heartbeat.
    pub(crate) fn touch(&mut self, group_id: &str, member_id: &str, session_timeout_ms: u64) {
        let expires_at = Instant::now() + Duration::from_millis(session_timeout_ms);
        let key = (group_id.to_string(), member_id.to_string());
        self.by_member.entry(key).or_insert(Session { expires_at, revoking_since: None }).expires_at = expires_at;
    }

    /// Brings one group's sessions in line with its members: new members get a full session,
    /// removed ones lose theirs, and the start of each revocation is noted.
    fn sync(&mut self, groups: &Groups, group_id: &str) {
        let now = Instant::now();
        let members = groups.group(group_id).map(|g| &g.members);
        self.by_member.retain(|(g, m), _| g != group_id || members.is_some_and(|ms| ms.contains_key(m)));
        for member in members.into_iter().flat_map(|ms| ms.values()) {
            let key = (group_id.to_string(), member.member_id.clone());
            let session = self.by_member.entry(key).or_insert(Session {
                expires_at: now + Duration::from_millis(member.session_timeout_ms),
                revoking_since: None,
            });
            session.revoking_since = match (member.revoking.is_empty(), session.revoking_since) {
                (true, _) => None,
                (false, since) => since.or(Some(now)),
            };
        }
    }

    /// Members to remove: silent past their session, or holding revoked partitions past their
    /// rebalance timeout.
    fn expired(&self, groups: &Groups) -> Vec<(String, String, &'static str)> {
        let now = Instant::now();
        let mut out = Vec::new();
        for ((group_id, member_id), session) in &self.by_member {
            let Some(member) = groups.group(group_id).and_then(|g| g.members.get(member_id)) else { continue };
            let rebalance_over = session
                .revoking_since
                .is_some_and(|since| now >= since + Duration::from_millis(member.rebalance_timeout_ms));
            if now >= session.expires_at {
                out.push((group_id.clone(), member_id.clone(), "session timeout"));
            } else if rebalance_over {
                out.push((group_id.clone(), member_id.clone(), "rebalance timeout"));
            }
        }
        out
    }
}

#[derive(Default)]
struct ShardState {
    /// The leader term the groups were loaded in; `None`: rebuild before use.
    term: Option<u64>,
    groups: Groups,
    sessions: Sessions,
}

/// What a coordinated request is run with: the groups to plan against, the sessions, and the
/// partition count of every topic.
pub(crate) struct Context<'a> {
    pub groups: &'a Groups,
    pub sessions: &'a mut Sessions,
    pub partition_counts: &'a BTreeMap<String, u32>,
}

/// The coordinator of every offsets partition this broker leads.
pub struct Coordinator {
    offsets_partitions: u32,
    cluster: ClusterWatch,
    replicas: Arc<LocalReplicas>,
    controller: Arc<ControllerClient>,
    clock: Arc<dyn Clock>,
    reads_block: bool,
    /// By the Raft group id of the offsets partition.
    shards: Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<ShardState>>>>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator").finish_non_exhaustive()
    }
}

/// Where a group is coordinated, as this broker sees it.
#[derive(Debug, Clone)]
pub struct CoordinatorLocation {
    pub offsets_partition: u32,
    pub group: u64,
    pub leader_id: Option<u64>,
    pub leader_address: Option<String>,
}

impl Coordinator {
    pub(crate) fn new(
        offsets_partitions: u32,
        cluster: ClusterWatch,
        replicas: Arc<LocalReplicas>,
        controller: Arc<ControllerClient>,
        clock: Arc<dyn Clock>,
        reads_block: bool,
    ) -> Self {
        Self { offsets_partitions, cluster, replicas, controller, clock, reads_block, shards: Mutex::default() }
    }

    /// Where `group_id` is coordinated, creating the offsets topic if the cluster has none yet.
    pub async fn locate(&self, group_id: &str) -> Result<CoordinatorLocation, BrokerError> {
        eddy_groups::validate_group_id(group_id)?;
        let view = self.offsets_view().await?;
        let topic = view.topic(OFFSETS_TOPIC)?;
        let offsets_partition = shard_of(group_id, topic.partitions.len() as u32);
        let group = topic.partitions[offsets_partition as usize].group_id;
        let leader_id = self.replicas.leader_of(&view, group);
        Ok(CoordinatorLocation {
            offsets_partition,
            group,
            leader_id,
            leader_address: leader_id.and_then(|id| view.address_of(id)),
        })
    }

    /// The cluster view, once it holds the offsets topic (asking the controller to create it
    /// when the current metadata has none).
    async fn offsets_view(&self) -> Result<Arc<ClusterView>, BrokerError> {
        let view = self.cluster.current();
        if view.metadata.topics.contains_key(OFFSETS_TOPIC) {
            return Ok(view);
        }
        // Absent from current metadata: the cluster has none. (When this broker cannot tell,
        // METADATA_NOT_READY, and nothing is created.)
        if let Err(e) = view.topic(OFFSETS_TOPIC)
            && !matches!(e, BrokerError::UnknownTopic(_))
        {
            return Err(e);
        }
        let brokers = view.alive.len().max(1) as u32;
        let call = ControllerRequest::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.offsets_partitions,
            replication_factor: OFFSETS_REPLICATION_FACTOR.min(brokers),
            configs: BTreeMap::new(),
        };
        match self.controller.call(&call).await {
            Ok(_) | Err(ControllerError::TopicAlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(partitions = self.offsets_partitions, "created the offsets topic");
        self.cluster
            .refresh_until(OFFSETS_TOPIC_VISIBLE_TIMEOUT, |view| view.metadata.topics.contains_key(OFFSETS_TOPIC))
            .await;
        let view = self.cluster.current();
        view.topic(OFFSETS_TOPIC)?;
        Ok(view)
    }

    /// Runs one request for `group_id` at its coordinator: plans it against the loaded groups,
    /// writes the plan's records, applies them, and answers.
    pub(crate) async fn run<T>(
        &self,
        group_id: &str,
        plan: impl FnOnce(Context<'_>) -> Result<Plan<T>, GroupError>,
    ) -> Result<T, BrokerError> {
        let location = self.locate(group_id).await?;
        let (replica, mut state) = self.loaded(&location, group_id).await?;
        let partition_counts = partition_counts(&self.cluster.current().metadata);
        let ShardState { groups, sessions, .. } = &mut *state;
        let Plan { records, answer } = plan(Context { groups, sessions, partition_counts: &partition_counts })?;
        if records.is_empty() {
            // An answer from memory alone (a steady heartbeat, an unchanged commit, a read) is
            // given only once a quorum confirms this leadership: a deposed leader that does not
            // know it yet holds state its successor has moved past.
            let term = state.term;
            let confirmed = replica.raft.ensure_linearizable(openraft::raft::ReadPolicy::ReadIndex).await.is_ok();
            let leadership = replica.leadership();
            if !confirmed || !leadership.is_self || Some(leadership.term) != term {
                state.term = None;
                return Err(location.not_coordinator(group_id));
            }
            return Ok(answer);
        }
        if let Err(e) = self.write(&replica, &records).await {
            // The records may or may not be in the log: rebuild from it before the next request.
            state.term = None;
            return Err(match e {
                WriteError::NotLeader => location.not_coordinator(group_id),
                WriteError::Failed(e) => e,
            });
        }
        tracing::debug!(group = group_id, term = ?state.term, ?records, "group records written");
        for record in &records {
            state.groups.apply(record);
        }
        let ShardState { groups, sessions, .. } = &mut *state;
        for group in records.iter().map(GroupRecord::group).collect::<BTreeSet<_>>() {
            sessions.sync(groups, group);
        }
        Ok(answer)
    }

    /// Reads the groups of `group_id`'s coordinator with `f`.
    pub(crate) async fn read<T>(&self, group_id: &str, f: impl FnOnce(&Groups) -> T) -> Result<T, BrokerError> {
        self.run(group_id, |ctx| Ok(Plan { records: Vec::new(), answer: f(ctx.groups) })).await
    }

    /// `f` of the groups of every offsets partition this broker leads (loading them if needed).
    pub(crate) async fn each_local<T>(&self, mut f: impl FnMut(&Groups) -> T) -> Result<Vec<T>, BrokerError> {
        let view = self.cluster.current();
        let Some(topic) = view.metadata.topics.get(OFFSETS_TOPIC) else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for partition in &topic.partitions {
            let leading = self.replicas.get(partition.group_id).is_some_and(|r| r.leadership().is_self);
            if !leading {
                continue;
            }
            let location = CoordinatorLocation {
                offsets_partition: partition.partition,
                group: partition.group_id,
                leader_id: None,
                leader_address: None,
            };
            let (_, state) = self.loaded(&location, "").await?;
            out.push(f(&state.groups));
        }
        Ok(out)
    }

    /// The local offsets partition of `location`, with its groups loaded for the current term.
    async fn loaded(
        &self,
        location: &CoordinatorLocation,
        group_id: &str,
    ) -> Result<(Arc<Replica>, OwnedMutexGuard<ShardState>), BrokerError> {
        let replica = self.replicas.get(location.group).ok_or_else(|| location.not_coordinator(group_id))?;
        let shard = self.shards.lock().expect("shards lock").entry(location.group).or_default().clone();
        let mut state = shard.lock_owned().await;
        let leadership = replica.leadership();
        if !leadership.is_self {
            return Err(location.not_coordinator(group_id));
        }
        if !(leadership.ready && leadership.log_applied) {
            return Err(BrokerError::CoordinatorLoading { group_id: group_id.to_string() });
        }
        if state.term != Some(leadership.term) {
            self.load(&replica, &mut state).await?;
            state.term = Some(leadership.term);
            tracing::info!(
                offsets_partition = location.offsets_partition,
                term = leadership.term,
                groups = state.groups.ids().len(),
                "coordinator loaded its groups"
            );
        }
        Ok((replica, state))
    }

    async fn load(&self, replica: &Arc<Replica>, state: &mut ShardState) -> Result<(), BrokerError> {
        let view = *replica.view.borrow();
        let mut groups = Groups::default();
        let mut offset = view.log_start_offset;
        while offset < view.high_watermark {
            let reader = replica.reader.clone();
            let limits = ReadLimits {
                max_records: eddy_limits::GROUP_LOAD_RECORDS_MAX,
                max_bytes: eddy_limits::GROUP_LOAD_BYTES_MAX,
            };
            let records = storage_read(self.reads_block, move || reader.read(offset, view.high_watermark, limits))
                .await?
                .map_err(|e| BrokerError::Storage { what: "the offsets partition", error: e.to_string() })?;
            if records.is_empty() {
                return Err(BrokerError::Internal(format!(
                    "the offsets partition returned nothing at offset {offset} below its high watermark {}",
                    view.high_watermark
                )));
            }
            for (at, record) in records {
                let decoded = codec::decode(&record.value)
                    .map_err(|e| BrokerError::Internal(format!("offset {at} of the offsets partition: {e}")))?;
                groups.apply(&decoded);
                offset = at + 1;
            }
        }
        let mut sessions = Sessions::default();
        for group_id in groups.ids() {
            sessions.sync(&groups, group_id);
        }
        state.groups = groups;
        state.sessions = sessions;
        Ok(())
    }

    async fn write(&self, replica: &Replica, records: &[GroupRecord]) -> Result<(), WriteError> {
        let timestamp_ms = self.clock.now_ms();
        let batch = RecordBatch {
            records: records
                .iter()
                .map(|r| {
                    let (key, value) = codec::encode(r);
                    Record { key: Some(key), value, headers: Vec::new(), timestamp_ms }
                })
                .collect(),
            producer: None,
            append_time_ms: timestamp_ms,
            expected_base_offset: None,
        };
        let proposal = Proposal {
            command: PartitionCommand::Append(batch),
            record_count: records.len() as u64,
            idempotent: false,
            predict: false,
            settle_timeout: Duration::ZERO,
        };
        let mut proposed = replica.propose(proposal).await.map_err(|e| match e {
            ProposeError::NotLeader => WriteError::NotLeader,
            ProposeError::Stopped => WriteError::Failed(BrokerError::ShuttingDown),
            ProposeError::Unsettled => {
                WriteError::Failed(BrokerError::Internal("an unpredicted write was held".into()))
            }
        })?;
        let unknown = |what: String| WriteError::Failed(BrokerError::OutcomeUnknown(what));
        let written = tokio::time::timeout(WRITE_TIMEOUT, proposed.outcome())
            .await
            .map_err(|_| WriteError::Failed(BrokerError::Timeout("the group change did not commit in time".into())))?
            .map_err(|_| unknown("the offsets partition stopped before the group change committed".into()))?
            .map_err(|e| unknown(format!("the group change may not have committed: {e}")))?;
        match written.data {
            PartitionResponse::Appended { .. } => Ok(()),
            other => Err(WriteError::Failed(BrokerError::Internal(format!("a group change was answered {other:?}")))),
        }
    }

    /// Removes members whose sessions or rebalance timeouts ran out, until the broker stops.
    pub(crate) async fn expire_members(self: Arc<Self>, mut stopping: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                biased;
                _ = stopping.changed() => return,
                _ = tokio::time::sleep(EXPIRY_SCAN_INTERVAL) => {}
            }
            let expired: Vec<(String, String, &'static str)> = {
                let shards: Vec<_> = self.shards.lock().expect("shards lock").values().cloned().collect();
                let mut out = Vec::new();
                for shard in shards {
                    let state = shard.lock().await;
                    if state.term.is_some() {
                        out.extend(state.sessions.expired(&state.groups));
                    }
                }
                out
            };
            for (group_id, member_id, why) in expired {
                let removed = self
                    .run(&group_id, |ctx| {
                        let still =
                            ctx.sessions.expired(ctx.groups).iter().any(|(g, m, _)| *g == group_id && *m == member_id);
                        if !still {
                            return Ok(Plan { records: Vec::new(), answer: false });
                        }
                        let plan = ctx.groups.plan_remove_member(&group_id, &member_id, ctx.partition_counts);
                        Ok(Plan { records: plan.records, answer: true })
                    })
                    .await;
                match removed {
                    Ok(true) => tracing::info!(group = %group_id, member = %member_id, why, "removed a group member"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::debug!(group = %group_id, member = %member_id, error = %e, "member removal failed")
                    }
                }
            }
        }
    }
}

/// The partition count of every topic.
fn partition_counts(metadata: &ClusterMetadata) -> BTreeMap<String, u32> {
    metadata.topics.values().map(|t| (t.name.clone(), t.partitions.len() as u32)).collect()
}

impl CoordinatorLocation {
    fn not_coordinator(&self, group_id: &str) -> BrokerError {
        BrokerError::NotCoordinator {
            group_id: group_id.to_string(),
            coordinator_id: self.leader_id,
            coordinator_address: self.leader_address.clone(),
        }
    }
}

enum WriteError {
    NotLeader,
    Failed(BrokerError),
}
