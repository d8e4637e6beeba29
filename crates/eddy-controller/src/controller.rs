//! The controller leader's logic: broker liveness, the partition leaders table, and topic
//! changes proposed through the controller's Raft group.
//!
//! Liveness and leadership are soft state, rebuilt by heartbeats within one session timeout
//! after a controller failover; only the metadata itself goes through Raft.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::ClientWriteError;
use tokio::sync::watch;
use tokio::time::Instant;

use eddy_schema::api::{self as schema_api, RegistryReply, RegistryRequest, Step};
use eddy_schema::{Registry, RegistryError};

use crate::error::ControllerError;
use crate::metadata::{
    BrokerInfo, ClusterMetadata, ControllerCommand, ControllerResponse, validate_producer_name, validate_topic_name,
};
use crate::placement::{place, rebalance, replacement};
use crate::rpc::{
    ControllerReply, ControllerRequest, ControllerResult, HeartbeatRequest, HeartbeatResponse, Leadership, Moves,
};
use crate::state_machine::ControllerRaft;
use crate::topic_config;

/// Controller limits and timeouts.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    /// A broker whose last heartbeat is older than this is dead.
    pub broker_session_timeout_ms: u64,
    /// Most partitions one topic may have.
    pub partitions_per_topic_max: u32,
    /// The brokers' record limit: the most a topic's `max.message.bytes` may be.
    pub record_size_max_bytes: u32,
    /// A broker fenced this long has its replicas replaced on other brokers.
    pub replica_replacement_delay_ms: u64,
    /// Most partition moves under way at once, cluster-wide.
    pub concurrent_moves_max: usize,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            broker_session_timeout_ms: 10_000,
            partitions_per_topic_max: 1_000,
            record_size_max_bytes: 1 << 20,
            replica_replacement_delay_ms: 30_000,
            concurrent_moves_max: 4,
        }
    }
}

#[derive(Debug, Default)]
struct Liveness {
    /// The Raft term this soft state belongs to; a new term starts it afresh.
    term: u64,
    /// When this controller started leading in `term`.
    since: Option<Instant>,
    last_seen: BTreeMap<u64, Instant>,
    /// Brokers that heartbeated this controller in `term`: only they are known alive. The others
    /// are reported alive for one session of grace after a failover, but get no new replicas.
    heard: BTreeSet<u64>,
    leaders: BTreeMap<u64, Leadership>,
    /// When this controller first saw each fenced broker fenced (in `term`).
    fenced_since: BTreeMap<u64, Instant>,
}

/// The controller on a controller voter.
pub struct Controller {
    raft: ControllerRaft,
    metadata: watch::Receiver<Arc<ClusterMetadata>>,
    registry: watch::Receiver<Arc<Registry>>,
    /// Held while a registry write is planned and proposed: writes check compatibility
    /// against the state they see, so they go one at a time.
    registry_writes: tokio::sync::Mutex<()>,
    config: ControllerConfig,
    liveness: Mutex<Liveness>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Controller {
    pub fn new(
        raft: ControllerRaft,
        metadata: watch::Receiver<Arc<ClusterMetadata>>,
        registry: watch::Receiver<Arc<Registry>>,
        config: ControllerConfig,
    ) -> Self {
        let registry_writes = tokio::sync::Mutex::new(());
        Self { raft, metadata, registry, registry_writes, config, liveness: Mutex::new(Liveness::default()) }
    }

    pub fn raft(&self) -> &ControllerRaft {
        &self.raft
    }

    /// The metadata as this replica has applied it.
    pub fn metadata(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.metadata.clone()
    }

    /// Serves one request; only the leader does.
    pub async fn handle(&self, request: ControllerRequest) -> ControllerResult {
        let term = self.ensure_leader()?;
        match request {
            ControllerRequest::Heartbeat(heartbeat) => self.heartbeat(term, heartbeat).await,
            ControllerRequest::CreateTopic { name, partitions, replication_factor, configs } => {
                self.create_topic(term, name, partitions, replication_factor, configs).await
            }
            ControllerRequest::DeleteTopic { name } => {
                if !self.metadata.borrow().topics.contains_key(&name) {
                    return Err(ControllerError::UnknownTopic(name));
                }
                match self.propose(ControllerCommand::DeleteTopic { name }).await? {
                    ControllerResponse::Rejected(e) => Err(e),
                    _ => Ok(ControllerReply::TopicDeleted),
                }
            }
            ControllerRequest::AlterTopic { name, set, delete, partitions } => {
                self.alter_topic(term, name, set, delete, partitions).await
            }
            ControllerRequest::AllocateProducerIds { count } => {
                let count = count.clamp(1, crate::metadata::PRODUCER_ID_BLOCK);
                match self.propose(ControllerCommand::AllocateProducerIds { count }).await? {
                    ControllerResponse::ProducerIds { first, count } => {
                        Ok(ControllerReply::ProducerIds { first, count })
                    }
                    ControllerResponse::Rejected(e) => Err(e),
                    other => Err(ControllerError::Unavailable(format!("unexpected controller response {other:?}"))),
                }
            }
            ControllerRequest::InitNamedProducer { name, current } => {
                validate_producer_name(&name)?;
                match self.propose(ControllerCommand::InitNamedProducer { name, current }).await? {
                    ControllerResponse::ProducerInitialized(p) => Ok(ControllerReply::ProducerInitialized(p)),
                    ControllerResponse::Rejected(e) => Err(e),
                    other => Err(ControllerError::Unavailable(format!("unexpected controller response {other:?}"))),
                }
            }
            ControllerRequest::CompleteReassignment { group, replicas } => {
                self.done(ControllerCommand::CompleteReassignment { group, replicas }).await
            }
            ControllerRequest::Decommission { broker } => {
                if !self.metadata.borrow().brokers.contains_key(&broker) {
                    return Err(ControllerError::UnknownBroker(broker));
                }
                tracing::info!(broker, "decommissioning broker");
                self.done(ControllerCommand::Decommission { broker }).await
            }
            ControllerRequest::Rebalance { dry_run } => self.rebalance(term, dry_run).await,
            ControllerRequest::RebalanceStatus => Ok(ControllerReply::Moves(moves_of(&self.metadata.borrow()))),
            ControllerRequest::Registry(request) => self.registry(request).await.map(ControllerReply::Registry),
            ControllerRequest::Security(command) => {
                tracing::info!(target: "eddy::audit", change = %command, "security change proposed");
                match self.propose(ControllerCommand::Security(command)).await? {
                    ControllerResponse::Rejected(e) => Err(e),
                    ControllerResponse::AclsDeleted(deleted) => Ok(ControllerReply::AclsDeleted(deleted)),
                    _ => Ok(ControllerReply::AclsDeleted(Vec::new())),
                }
            }
        }
    }

    /// Serves a schema registry request: a read from the registry this leader applied, a write
    /// planned against it and proposed. A write planned against a registry that changed before
    /// it applied (another leader's write) is planned again.
    async fn registry(&self, request: RegistryRequest) -> Result<RegistryReply, ControllerError> {
        /// Plans of one write: a conflict needs a write by another leader between plan and apply.
        const ATTEMPTS_MAX: usize = 5;
        let _writing = if request.is_write() { Some(self.registry_writes.lock().await) } else { None };
        let mut last = None;
        for _ in 0..ATTEMPTS_MAX {
            let registry = self.registry.borrow().clone();
            let command = match schema_api::plan(&registry, &request).map_err(ControllerError::Registry)? {
                Step::Answer(reply) => return Ok(reply),
                Step::Propose(command) => command,
            };
            match self.propose(ControllerCommand::Registry(command)).await? {
                ControllerResponse::Registry(Ok(outcome)) => return Ok(schema_api::reply_of(&request, outcome)),
                ControllerResponse::Registry(Err(e @ RegistryError::Conflict { .. })) => last = Some(e),
                ControllerResponse::Registry(Err(e)) => return Err(ControllerError::Registry(e)),
                ControllerResponse::Rejected(e) => return Err(e),
                other => return Err(ControllerError::Unavailable(format!("unexpected controller response {other:?}"))),
            }
        }
        Err(ControllerError::Registry(last.unwrap_or_else(|| RegistryError::Store("no attempt made".into()))))
    }

    /// Proposes `command`, answering `Done` or its rejection.
    async fn done(&self, command: ControllerCommand) -> ControllerResult {
        match self.propose(command).await? {
            ControllerResponse::Rejected(e) => Err(e),
            _ => Ok(ControllerReply::Done),
        }
    }

    /// Brokers that heartbeated this controller within the session and are in service (not
    /// fenced, not being drained): where replicas may go.
    fn eligible(&self, term: u64, metadata: &ClusterMetadata) -> Vec<u64> {
        self.with_liveness(term, |liveness, now| {
            self.alive(liveness, now)
                .into_iter()
                .filter(|id| liveness.heard.contains(id))
                .filter(|id| metadata.brokers.get(id).is_some_and(BrokerInfo::in_service))
                .collect()
        })
    }

    async fn rebalance(&self, term: u64, dry_run: bool) -> ControllerResult {
        let metadata = self.metadata.borrow().clone();
        let eligible = self.eligible(term, &metadata);
        let racks = metadata.brokers.iter().map(|(id, b)| (*id, b.rack.clone())).collect();
        let plan = rebalance(&metadata, &eligible, &racks);
        let mut moves = moves_of(&metadata);
        moves.planned = plan
            .iter()
            .filter_map(|(group, target)| {
                metadata.partition(*group).map(|(_, p)| (*group, (p.replicas.clone(), target.clone())))
            })
            .collect();
        if !dry_run {
            tracing::info!(moves = plan.len(), "rebalance planned");
            self.done(ControllerCommand::PlanMoves { moves: plan }).await?;
        }
        Ok(ControllerReply::Moves(moves))
    }

    /// The leader's periodic work: fences brokers whose session expired, and starts moves (a
    /// fenced broker's replicas after the replacement delay, a draining broker's replicas, then
    /// the moves a rebalance planned), at most `concurrent_moves_max` under way at once.
    pub async fn tick(&self) {
        let Ok(term) = self.ensure_leader() else { return };
        let metadata = self.metadata.borrow().clone();
        let delay = Duration::from_millis(self.config.replica_replacement_delay_ms);
        let (expired, learning, replace) = self.with_liveness(term, |liveness, now| {
            let alive = self.alive(liveness, now);
            let learning = liveness.since.is_some_and(|since| now.duration_since(since) < self.session_timeout());
            let expired: Vec<u64> =
                metadata.brokers.values().filter(|b| !b.fenced && !alive.contains(&b.id)).map(|b| b.id).collect();
            liveness.fenced_since.retain(|id, _| metadata.brokers.get(id).is_some_and(|b| b.fenced));
            for broker in metadata.brokers.values().filter(|b| b.fenced) {
                liveness.fenced_since.entry(broker.id).or_insert(now);
            }
            let mut replace: BTreeSet<u64> = liveness
                .fenced_since
                .iter()
                .filter(|(_, since)| now.duration_since(**since) >= delay)
                .map(|(id, _)| *id)
                .collect();
            replace.extend(metadata.brokers.values().filter(|b| b.decommissioning).map(|b| b.id));
            (expired, learning, replace)
        });
        if !learning {
            for broker in expired {
                tracing::warn!(broker, "broker session expired: fencing it");
                if let Err(e) = self.propose(ControllerCommand::SetFenced { broker, fenced: true }).await {
                    tracing::debug!(broker, error = %e, "fencing failed");
                    return;
                }
            }
        }
        let eligible = self.eligible(term, &metadata);
        let live: BTreeSet<u64> = eligible.iter().copied().collect();
        let racks: BTreeMap<u64, Option<String>> =
            metadata.brokers.iter().map(|(id, b)| (*id, b.rack.clone())).collect();
        let mut counts: BTreeMap<u64, u32> = metadata.brokers.keys().map(|id| (*id, 0)).collect();
        let mut moving = 0;
        for (_, p) in metadata.topics.values().flat_map(|t| t.partitions.iter().map(move |p| (t, p))) {
            moving += usize::from(p.target.is_some());
            for b in p.target.as_ref().unwrap_or(&p.replicas) {
                *counts.entry(*b).or_default() += 1;
            }
        }
        let mut slots = self.config.concurrent_moves_max.saturating_sub(moving);
        let mut starts: Vec<(u64, Vec<u64>)> = Vec::new();
        for (topic, p) in metadata.topics.values().flat_map(|t| t.partitions.iter().map(move |p| (t, p))) {
            if slots == 0 {
                break;
            }
            let hosts = p.target.clone().unwrap_or_else(|| p.replicas.clone());
            // A move under way is redone only when a broker it adds left service.
            let leaving: Vec<u64> = match &p.target {
                Some(target) => {
                    target.iter().copied().filter(|b| !p.replicas.contains(b) && replace.contains(b)).collect()
                }
                None => p.replicas.iter().copied().filter(|b| replace.contains(b)).collect(),
            };
            if leaving.is_empty() {
                continue;
            }
            // Never below a majority of live voters: the change could not commit anyway.
            let live_voters = p.replicas.iter().filter(|b| live.contains(b)).count();
            if live_voters <= p.replicas.len() / 2 {
                continue;
            }
            let mut target = hosts.clone();
            for gone in leaving {
                if let Some(new) = replacement(&target, gone, &eligible, &counts, &racks) {
                    *counts.entry(new).or_default() += 1;
                    target.iter_mut().filter(|b| **b == gone).for_each(|b| *b = new);
                }
            }
            if target != hosts {
                tracing::info!(topic = %topic.name, partition = p.partition, from = ?p.replicas, to = ?target, "moving a partition off brokers out of service");
                if p.target.is_none() {
                    slots -= 1;
                }
                starts.push((p.group_id, target));
            }
        }
        for (group, target) in &metadata.planned_moves {
            if slots == 0 {
                break;
            }
            if metadata.partition(*group).is_some_and(|(_, p)| p.target.is_none())
                && !starts.iter().any(|(g, _)| g == group)
            {
                starts.push((*group, target.clone()));
                slots -= 1;
            }
        }
        for (group, target) in starts {
            if let Err(e) = self.propose(ControllerCommand::Reassign { group, target }).await {
                tracing::debug!(group, error = %e, "starting a move failed");
                return;
            }
        }
    }

    /// Returns the current term when this node leads the controller group and has applied its
    /// log up to an entry of that term. A new leader's state machine may still lack entries its
    /// predecessors committed until then: answering from it would hand brokers metadata older
    /// than what they hold, or a topic list missing topics that exist.
    fn ensure_leader(&self) -> Result<u64, ControllerError> {
        let metrics = self.raft.metrics().borrow_watched().clone();
        if metrics.current_leader == Some(metrics.id) && metrics.state.is_leader() {
            let applied_term = metrics.last_applied.as_ref().map(|id| id.leader_id.term);
            if applied_term != Some(metrics.current_term) {
                return Err(ControllerError::Unavailable(
                    "the new controller leader is still applying its log; retry shortly".into(),
                ));
            }
            return Ok(metrics.current_term);
        }
        let leader_address = metrics
            .current_leader
            .and_then(|id| metrics.membership_config.membership().get_node(&id).map(|n| n.addr.clone()));
        Err(ControllerError::NotController { leader_id: metrics.current_leader, leader_address })
    }

    async fn propose(&self, command: ControllerCommand) -> Result<ControllerResponse, ControllerError> {
        match self.raft.client_write(command).await {
            Ok(response) => Ok(response.data),
            Err(e) => match e.forward_to_leader() {
                Some(forward) => Err(ControllerError::NotController {
                    leader_id: forward.leader_id,
                    leader_address: forward.leader_node.as_ref().map(|n| n.addr.clone()),
                }),
                None => match e.api_error() {
                    Some(ClientWriteError::ChangeMembershipError(m)) => {
                        Err(ControllerError::Unavailable(m.to_string()))
                    }
                    _ => Err(ControllerError::Unavailable(e.to_string())),
                },
            },
        }
    }

    /// Runs `f` on the liveness state of `term`, starting it afresh (every registered broker
    /// given one session of grace) when the term changed.
    fn with_liveness<T>(&self, term: u64, f: impl FnOnce(&mut Liveness, Instant) -> T) -> T {
        let now = Instant::now();
        let mut liveness = self.liveness.lock().expect("liveness lock");
        if liveness.term != term {
            let registered: Vec<u64> = self.metadata.borrow().brokers.keys().copied().collect();
            *liveness = Liveness {
                term,
                since: Some(now),
                last_seen: registered.into_iter().map(|id| (id, now)).collect(),
                heard: BTreeSet::new(),
                leaders: BTreeMap::new(),
                fenced_since: BTreeMap::new(),
            };
        }
        f(&mut liveness, now)
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.config.broker_session_timeout_ms)
    }

    /// Brokers with a current heartbeat.
    fn alive(&self, liveness: &Liveness, now: Instant) -> BTreeSet<u64> {
        liveness
            .last_seen
            .iter()
            .filter(|(_, seen)| now.duration_since(**seen) <= self.session_timeout())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Confirms that a quorum still follows this leader before it answers from its state: a
    /// controller that restarted resumes the leadership of its last term from its stored vote,
    /// and would otherwise hand brokers the metadata it had before it went down while the others
    /// have moved on (a topic deleted meanwhile came back on the restarted broker for a moment).
    async fn confirm_leadership(&self) -> Result<(), ControllerError> {
        use openraft::raft::ReadPolicy;
        if self.raft.ensure_linearizable(ReadPolicy::LeaseRead).await.is_ok() {
            return Ok(());
        }
        self.raft
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::Unavailable(format!("the controller cannot confirm its leadership: {e}")))
    }

    async fn heartbeat(&self, term: u64, request: HeartbeatRequest) -> ControllerResult {
        self.confirm_leadership().await?;
        let registered = self.metadata.borrow().brokers.get(&request.broker_id).cloned();
        let current = registered.as_ref().is_some_and(|b| {
            b.address == request.address
                && b.internal_address == request.internal_address
                && b.rack == request.rack
                && !b.fenced
        });
        if !current {
            let mut broker =
                BrokerInfo::new(request.broker_id, request.address.clone(), request.internal_address.clone());
            broker.rack = request.rack.clone();
            match &registered {
                Some(known) if known.fenced => {
                    tracing::info!(broker = broker.id, "a fenced broker is back: unfencing it")
                }
                _ => {
                    tracing::info!(
                        broker = broker.id,
                        address = %broker.address,
                        internal_address = %broker.internal_address,
                        rack = ?broker.rack,
                        "registering broker"
                    )
                }
            }
            self.propose(ControllerCommand::RegisterBroker(broker)).await?;
        }
        let (alive, leaders) = self.with_liveness(term, |liveness, now| {
            liveness.last_seen.insert(request.broker_id, now);
            liveness.heard.insert(request.broker_id);
            let reported: BTreeSet<u64> = request.leading.iter().map(|r| r.group).collect();
            // A group this broker led but no longer reports has lost that leader.
            liveness.leaders.retain(|group, l| l.leader != request.broker_id || reported.contains(group));
            for report in &request.leading {
                let newer = liveness.leaders.get(&report.group).is_none_or(|known| report.term >= known.term);
                if newer {
                    liveness.leaders.insert(report.group, Leadership { leader: request.broker_id, term: report.term });
                }
            }
            let alive = self.alive(liveness, now);
            let leaders: BTreeMap<u64, Leadership> =
                liveness.leaders.iter().filter(|(_, l)| alive.contains(&l.leader)).map(|(g, l)| (*g, *l)).collect();
            (alive, leaders)
        });
        let metadata = self.metadata.borrow().clone();
        let differs = metadata.version != request.metadata_version || term != request.metadata_term;
        let metadata = differs.then_some(metadata);
        let controller_leader = *self.raft.node_id();
        Ok(ControllerReply::Heartbeat(HeartbeatResponse { controller_leader, term, metadata, alive, leaders }))
    }

    async fn create_topic(
        &self,
        term: u64,
        name: String,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> ControllerResult {
        validate_topic_name(&name)?;
        if partitions == 0 || partitions > self.config.partitions_per_topic_max {
            return Err(ControllerError::InvalidPartitions {
                requested: partitions,
                max: self.config.partitions_per_topic_max,
            });
        }
        let metadata = self.metadata.borrow().clone();
        if metadata.topics.contains_key(&name) {
            return Err(ControllerError::TopicAlreadyExists(name));
        }
        topic_config::validate(&configs, replication_factor, self.config.record_size_max_bytes)?;
        let assignments = self.place(term, &metadata, partitions, replication_factor)?;
        let command = ControllerCommand::CreateTopic { name, replication_factor, assignments, configs };
        match self.propose(command).await? {
            ControllerResponse::TopicCreated(topic) => Ok(ControllerReply::TopicCreated(topic)),
            ControllerResponse::Rejected(e) => Err(e),
            other => Err(ControllerError::Unavailable(format!("unexpected controller response {other:?}"))),
        }
    }

    /// Replicas for `partitions` new partitions on the live brokers, balanced against the
    /// replicas and preferred leaders each already holds.
    fn place(
        &self,
        term: u64,
        metadata: &ClusterMetadata,
        partitions: u32,
        replication_factor: u32,
    ) -> Result<Vec<Vec<u64>>, ControllerError> {
        let (live, learning) = self.with_liveness(term, |liveness, now| {
            let live: Vec<u64> = self
                .alive(liveness, now)
                .into_iter()
                .filter(|id| liveness.heard.contains(id) && metadata.brokers.contains_key(id))
                .collect();
            let learning = liveness.since.is_some_and(|since| now.duration_since(since) < self.session_timeout());
            (live, learning)
        });
        if learning && (live.len() as u32) < replication_factor {
            // Right after a failover not every live broker has heartbeated yet: retriable.
            return Err(ControllerError::Unavailable(format!(
                "the controller is still learning which brokers are alive ({} so far); retry shortly",
                live.len()
            )));
        }
        place(&live, partitions, replication_factor, &metadata.replica_counts(), &metadata.preferred_leader_counts())
    }

    /// Changes a topic's configs (`set` added or replaced, `delete` back to their defaults) and
    /// raises its partition count to `partitions`.
    async fn alter_topic(
        &self,
        term: u64,
        name: String,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        partitions: Option<u32>,
    ) -> ControllerResult {
        let metadata = self.metadata.borrow().clone();
        let topic = metadata.topics.get(&name).ok_or_else(|| ControllerError::UnknownTopic(name.clone()))?;
        topic_config::validate(&set, topic.replication_factor, self.config.record_size_max_bytes)?;
        if let Some(key) = delete.iter().find(|k| !topic_config::KEYS.iter().any(|(known, _)| known == k)) {
            return Err(ControllerError::InvalidConfig(format!("unknown topic config {key:?}")));
        }
        let mut configs = topic.configs.clone();
        for key in &delete {
            configs.remove(key);
        }
        configs.extend(set);
        let current = topic.partitions.len() as u32;
        let added = match partitions {
            None => 0,
            Some(p) if p < current => return Err(ControllerError::PartitionsDecrease { requested: p, current }),
            Some(p) if p > self.config.partitions_per_topic_max => {
                return Err(ControllerError::InvalidPartitions {
                    requested: p,
                    max: self.config.partitions_per_topic_max,
                });
            }
            Some(p) => p - current,
        };
        let new_partitions = match added {
            0 => Vec::new(),
            n => self.place(term, &metadata, n, topic.replication_factor)?,
        };
        let command = ControllerCommand::AlterTopic { name, topic_id: topic.id, configs, new_partitions };
        match self.propose(command).await? {
            ControllerResponse::TopicCreated(topic) => Ok(ControllerReply::TopicAltered(topic)),
            ControllerResponse::Rejected(e) => Err(e),
            other => Err(ControllerError::Unavailable(format!("unexpected controller response {other:?}"))),
        }
    }
}

/// The moves under way and queued in `metadata`.
pub fn moves_of(metadata: &ClusterMetadata) -> Moves {
    let mut moves = Moves::default();
    for topic in metadata.topics.values() {
        for p in &topic.partitions {
            if let Some(target) = &p.target {
                moves.in_progress.insert(p.group_id, (p.replicas.clone(), target.clone()));
            }
            if let Some(target) = metadata.planned_moves.get(&p.group_id) {
                moves.planned.insert(p.group_id, (p.replicas.clone(), target.clone()));
            }
        }
    }
    moves
}
