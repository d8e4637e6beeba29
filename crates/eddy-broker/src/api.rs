//! The public `eddy.v1.Eddy` service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_controller::{ControllerReply, ControllerRequest, TopicConfig, is_internal_topic};
use eddy_partition::{PartitionCommand, PartitionResponse, Proposal, ProposeError, ReadLimits, RecordBatch, Replica};
use eddy_proto::v1::{self, eddy_server::Eddy};
use eddy_telemetry::{messaging, propagation};
use futures::Stream;
use opentelemetry::trace::TraceContextExt;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use eddy_controller::ControllerClient;
use eddy_proto::internal::RaftEnvelope;
use eddy_proto::internal::raft_transport_client::RaftTransportClient;
use eddy_raft::transport::{Peers, RpcKind};
use openraft::errors::ClientWriteError;

use crate::auth::{Auth, Caller};
use crate::broker::Broker;
use crate::clock::Clock;
use crate::cluster_view::{ClusterView, ClusterWatch};
use crate::config::BrokerConfig;
use crate::convert;
use crate::error::BrokerError;
use crate::fetch_gate::{FetchGate, WaitSlot};
use crate::producers::{self, ProducerIds};
use crate::quotas::{QuotaKind, Quotas, Throttle};
use crate::registry::SchemaValidator;
use crate::replicas::LocalReplicas;
use eddy_auth::{Operation, Principal, Resource};

use eddy_limits::{FETCH_BYTES_MAX, FETCH_RECORDS_MAX};
/// How long DescribeTopic waits for a partition leader's offsets.
const LEADER_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection a request came on (its peer's address), for per-connection bounds.
fn connection_of<T>(request: &Request<T>) -> Option<SocketAddr> {
    eddy_tls::peer_info(request).and_then(|p| p.remote).or_else(|| request.remote_addr())
}

/// How long a topic change made here waits for this broker's view to show it.
const OWN_WRITE_VISIBLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The client API. What it depends on is all here: the broker's configuration (limits, cluster
/// name, voters), the cluster view, the local replicas, the controller, the channels to other
/// brokers (DescribeTopic asks remote leaders), the clock (append timestamps), and whether
/// storage reads may block.
#[derive(Clone)]
pub struct EddyApi {
    config: Arc<BrokerConfig>,
    cluster: ClusterWatch,
    replicas: Arc<LocalReplicas>,
    controller: Arc<ControllerClient>,
    peers: Arc<Peers>,
    clock: Arc<dyn Clock>,
    reads_block: bool,
    producer_ids: Arc<ProducerIds>,
    fetch_gate: Arc<FetchGate>,
    schemas: Arc<SchemaValidator>,
    auth: Arc<Auth>,
    quotas: Arc<Quotas>,
    /// True once the node stops serving: subscriptions end.
    closing_streams: watch::Receiver<bool>,
}

impl std::fmt::Debug for EddyApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EddyApi").field("node_id", &self.config.node_id).finish_non_exhaustive()
    }
}

impl EddyApi {
    /// The API service over a running broker.
    pub fn new(broker: &Broker) -> Self {
        let inner = &broker.inner;
        Self {
            config: Arc::new(inner.config.clone()),
            cluster: broker.cluster_watch(),
            replicas: inner.replicas.clone(),
            controller: inner.controller_client.clone(),
            peers: inner.peers.clone(),
            clock: inner.clock.clone(),
            reads_block: inner.kv.reads_block(),
            producer_ids: Arc::new(ProducerIds::default()),
            fetch_gate: Arc::new(FetchGate::default()),
            schemas: inner.schemas.clone(),
            auth: inner.auth.clone(),
            quotas: inner.quotas.clone(),
            closing_streams: inner.closing_streams.subscribe(),
        }
    }

    /// The authenticator and authorizer.
    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The controller client (changes go through it).
    pub(crate) fn controller(&self) -> &ControllerClient {
        &self.controller
    }

    /// The cluster view.
    pub(crate) fn cluster(&self) -> &ClusterWatch {
        &self.cluster
    }

    /// Who `request` comes from (UNAUTHENTICATED when authentication is on and it proves no
    /// one).
    pub(crate) fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let view = self.cluster.current();
        Ok(self.auth.authenticate(request, self.security(&view)?)?)
    }

    /// The users and ACLs to enforce: METADATA_NOT_READY (retriable) while authentication is on
    /// and this broker has not heard the cluster's metadata since it started, rather than
    /// refusing every user it does not know yet.
    fn security<'v>(&self, view: &'v ClusterView) -> Result<&'v eddy_controller::SecurityState, BrokerError> {
        match self.auth.is_on() {
            true => view.synced_metadata().map(|m| &m.security),
            false => Ok(&view.metadata.security),
        }
    }

    /// The caller of `request`, once it is allowed `operation` on `resource` (PERMISSION_DENIED
    /// otherwise).
    pub(crate) fn permit<T>(
        &self,
        request: &Request<T>,
        resource: Resource<'_>,
        operation: Operation,
    ) -> Result<Caller, Status> {
        let view = self.cluster.current();
        let security = self.security(&view)?;
        let caller = self.auth.authenticate(request, security)?;
        if let Err(denied) = self.auth.authorize(&caller, security, &resource, operation) {
            // A refusal is a request too: it counts against the caller's request rate, so a
            // client retrying what it may not do pays for it with its next requests' delays.
            self.quotas.charge(&caller.principal, &[(QuotaKind::Requests, 1)], &security.quotas);
            return Err(denied.into());
        }
        Ok(caller)
    }

    /// Charges `principal` each of `charges` under the quotas that apply to it (those set
    /// cluster-wide, as this broker knows them, and its configured ones).
    fn charge(&self, principal: &Principal, charges: &[(QuotaKind, u64)]) -> Throttle {
        let view = self.cluster.current();
        self.quotas.charge(principal, charges, &view.metadata.security.quotas)
    }

    /// Charges `caller` one request against its request-rate quota and waits out the throttle,
    /// if any, before the work starts: the answer comes that much later, as Kafka delays the
    /// answers of a client over its quota, and never as an error. Every client RPC calls it once
    /// it knows its caller, except Produce and Fetch, which charge their request with their
    /// bytes after the work (see [`Self::charge_after`]) so that their answer waits for the
    /// longer of the two. (Waiting before the work rather than after keeps each handler's shape;
    /// the client sees the same delay.) Requests refused by ACLs are charged by
    /// [`Self::permit`]; unauthenticated ones have no principal to charge.
    pub(crate) async fn admit(&self, caller: &Caller) {
        self.charge(&caller.principal, &[(QuotaKind::Requests, 1)]).wait().await;
    }

    /// Charges `principal` a produce or fetch of `bytes` and the request, waits out the
    /// throttle, and answers it (for the answer's `throttle_time_ms`).
    async fn charge_after(&self, principal: &Principal, kind: QuotaKind, bytes: usize) -> Throttle {
        let throttle = self.charge(principal, &[(kind, bytes as u64), (QuotaKind::Requests, 1)]);
        throttle.wait().await;
        throttle
    }

    /// The local replica of a partition when this broker leads it; NOT_LEADER otherwise.
    fn leader_replica(&self, view: &ClusterView, topic: &str, partition: u32) -> Result<Arc<Replica>, BrokerError> {
        let info = view.partition(topic, partition)?;
        let replica = self.replicas.get(info.group_id);
        if let Some(replica) = &replica
            && replica.leadership().is_self
        {
            return Ok(replica.clone());
        }
        Err(self.not_leader(view, topic, partition, info.group_id))
    }

    /// Like [`Self::leader_replica`], for reads: a new leader answers only once its high
    /// watermark covers everything its predecessors committed (LEADER_NOT_AVAILABLE until then).
    fn reading_leader(&self, view: &ClusterView, topic: &str, partition: u32) -> Result<Arc<Replica>, BrokerError> {
        let replica = self.leader_replica(view, topic, partition)?;
        if !replica.leadership().ready {
            return Err(BrokerError::LeaderNotAvailable { topic: topic.to_string(), partition });
        }
        Ok(replica)
    }

    /// NOT_LEADER for a partition, naming the leader when it is known.
    fn not_leader(&self, view: &ClusterView, topic: &str, partition: u32, group: u64) -> BrokerError {
        let leader_id = self.partition_leader(view, group);
        BrokerError::NotLeader {
            topic: topic.to_string(),
            partition,
            leader_id,
            leader_address: leader_id.and_then(|id| view.address_of(id)),
        }
    }

    /// A proposal the replica refused before appending it: nothing was written.
    fn refused(&self, e: ProposeError, view: &ClusterView, topic: &str, partition: u32, group: u64) -> BrokerError {
        match e {
            ProposeError::NotLeader => self.not_leader(view, topic, partition, group),
            ProposeError::Unsettled => BrokerError::LeaderNotAvailable { topic: topic.to_string(), partition },
            ProposeError::Stopped => BrokerError::ShuttingDown,
        }
    }

    /// The local replica of a partition, leader or follower; NOT_LEADER (naming the leader) when
    /// this broker holds none.
    fn any_replica(&self, view: &ClusterView, topic: &str, partition: u32) -> Result<Arc<Replica>, BrokerError> {
        let info = view.partition(topic, partition)?;
        match self.replicas.get(info.group_id) {
            Some(replica) => Ok(replica),
            None => self.leader_replica(view, topic, partition),
        }
    }

    /// The bounds of one read: the request's, clamped to the broker's maxima, or its defaults.
    fn read_limits(&self, max_records: u32, max_bytes: u32) -> ReadLimits {
        let config = &self.config;
        ReadLimits {
            max_records: match max_records {
                0 => config.fetch_max_records_default,
                n => n.min(FETCH_RECORDS_MAX),
            } as usize,
            max_bytes: match max_bytes {
                0 => config.fetch_max_bytes_default,
                n => n.min(FETCH_BYTES_MAX),
            } as usize,
        }
    }

    /// The offset `spec` names in `replica` (UNSPECIFIED is refused: the caller gives an offset).
    async fn offset_of(&self, replica: &Replica, spec: i32, timestamp_ms: i64) -> Result<u64, BrokerError> {
        let now = *replica.view.borrow();
        let spec = v1::OffsetSpec::try_from(spec)
            .map_err(|_| BrokerError::InvalidRequest(format!("unknown offset spec {spec}")))?;
        Ok(match spec {
            v1::OffsetSpec::Unspecified => {
                return Err(BrokerError::InvalidRequest(
                    "an offset spec (earliest, latest, timestamp) is required".into(),
                ));
            }
            v1::OffsetSpec::Earliest => now.log_start_offset,
            v1::OffsetSpec::Latest => now.high_watermark,
            v1::OffsetSpec::Timestamp => {
                let reader = replica.reader.clone();
                self.storage_read(move || reader.offset_for_timestamp(timestamp_ms, now.high_watermark))
                    .await?
                    .map_err(|e| BrokerError::Storage { what: "the partition's time index", error: e.to_string() })?
                    .max(now.log_start_offset)
            }
        })
    }

    fn partition_leader(&self, view: &ClusterView, group: u64) -> Option<u64> {
        self.replicas.leader_of(view, group)
    }

    async fn storage_read<T, F>(&self, read: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        crate::replicas::storage_read(self.reads_block, read).await
    }

    /// The `produce` span of a request when this broker exports spans: a child of the context in
    /// the request's metadata, else of the first record's.
    fn produce_trace(request: &Request<v1::ProduceRequest>) -> Option<messaging::Operation> {
        if !eddy_telemetry::exporting() {
            return None;
        }
        let mut parent = propagation::from_metadata(request.metadata());
        let body = request.get_ref();
        if !parent.span().span_context().is_valid()
            && let Some(first) = body.records.first()
        {
            parent = propagation::from_record_headers(first.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref())));
        }
        Some(messaging::broker_produce(&body.topic, body.partition, body.records.len(), &parent))
    }

    async fn produce_inner(
        &self,
        request: v1::ProduceRequest,
        trace: Option<&messaging::Operation>,
    ) -> Result<v1::ProduceResponse, BrokerError> {
        let started = Instant::now();
        // `append`: the checks and the entry in this leader's Raft log; `commit`: replicated to a
        // quorum, committed and applied.
        let mut append = trace.map(|t| messaging::broker_step("append", &request.topic, t));
        let config = &self.config;
        let view = self.cluster.current();
        if is_internal_topic(&request.topic) {
            return Err(BrokerError::InternalTopic(request.topic, "write"));
        }
        let acks = v1::Acks::try_from(request.acks)
            .map_err(|_| BrokerError::InvalidRequest(format!("unknown acks value {}", request.acks)))?;
        if request.records.is_empty() {
            return Err(BrokerError::InvalidRequest("a produce request needs at least one record".into()));
        }
        if request.records.len() > config.batch_records_max as usize {
            return Err(BrokerError::TooManyRecords { count: request.records.len(), limit: config.batch_records_max });
        }
        let topic_config = view.metadata.topics.get(&request.topic).map(|t| TopicConfig::of(&t.configs));
        let record_limit = topic_config
            .and_then(|c| c.max_message_bytes)
            .map_or(config.record_size_max_bytes, |topic_limit| topic_limit.min(config.record_size_max_bytes));
        let mut total = 0usize;
        let now_ms = self.clock.now_ms();
        let mut records = Vec::with_capacity(request.records.len());
        for (index, wire) in request.records.into_iter().enumerate() {
            let record = convert::record_from_wire(wire, now_ms);
            let size = record.size_bytes();
            if size > record_limit as usize {
                return Err(BrokerError::RecordTooLarge { index, size, limit: record_limit });
            }
            total += size;
            records.push(record);
        }
        if total > config.batch_size_max_bytes as usize {
            return Err(BrokerError::BatchTooLarge { size: total, limit: config.batch_size_max_bytes });
        }
        let idempotent = request.producer.is_some();
        let leader_ack = acks == v1::Acks::Leader;
        if leader_ack && idempotent {
            // As in Kafka: deduplication needs the quorum's answer, so idempotence needs ACKS_ALL.
            return Err(BrokerError::InvalidRequest(
                "an idempotent produce (with a producer identity) requires ACKS_ALL".into(),
            ));
        }
        if let Some(producer) = &request.producer {
            producers::check_not_fenced(&view.metadata, producer)?;
        }
        let replica = self.leader_replica(&view, &request.topic, request.partition)?;
        // Before anything is proposed: a refused batch leaves nothing behind.
        if let Some(topic_config) = &topic_config {
            self.schemas.check(&request.topic, topic_config, &records).await?;
        }
        let required = topic_config.map_or(1, |c| c.min_insync_replicas);
        // A quiesced group's acknowledgements are as old as its quiet spell: its leader lease has
        // lapsed (openraft refuses writes until a quorum acknowledges it again) and its in-sync
        // count is stale. One heartbeat round renews both.
        replica.wake(Duration::from_millis(config.raft.election_timeout_min_ms)).await;
        if !leader_ack && required > 1 {
            let max_lag = Duration::from_millis(config.broker_session_timeout_ms);
            let in_sync = replica.in_sync_replicas(max_lag).unwrap_or(0);
            if in_sync < required as usize {
                return Err(BrokerError::NotEnoughReplicas {
                    topic: request.topic,
                    partition: request.partition,
                    in_sync,
                    required,
                });
            }
        }
        let count = records.len();
        let command = PartitionCommand::Append(RecordBatch {
            records,
            producer: request.producer.map(|p| convert::producer_from_wire(p, config.producer_idle_expiry_ms)),
            append_time_ms: now_ms,
            // With ACKS_LEADER the sequencer sets it to the offset it predicts.
            expected_base_offset: None,
        });
        let timeout_ms = match request.timeout_ms {
            0 => config.produce_timeout_ms,
            n => n.min(config.produce_timeout_ms),
        };
        let timeout = Duration::from_millis(u64::from(timeout_ms));
        let commit_started = Instant::now();
        let proposal =
            Proposal { command, record_count: count as u64, idempotent, predict: leader_ack, settle_timeout: timeout };
        let proposed = replica.propose(proposal).await;
        if let Some(append) = append.take() {
            append.end();
        }
        let commit = trace.map(|t| messaging::broker_step("commit", &request.topic, t));
        let mut proposed =
            proposed.map_err(|e| self.refused(e, &view, &request.topic, request.partition, replica.group))?;
        if leader_ack {
            let predicted = proposed.predicted.expect("a prediction was asked for");
            // The answer goes now; the entry commits (or is lost with the leadership) later.
            let replica = replica.clone();
            tokio::spawn(async move {
                match proposed.outcome().await {
                    Ok(Ok(response)) => match response.data {
                        PartitionResponse::Appended { base_offset, .. } if base_offset == predicted => {}
                        PartitionResponse::PredictionMissed { next_offset, .. } => {
                            // Refused at apply rather than stored at another offset: lost, as
                            // ACKS_LEADER allows.
                            metrics::counter!("eddy_produce_leader_ack_lost_total").increment(1);
                            tracing::warn!(
                                group = replica.group,
                                predicted,
                                next_offset,
                                "an ACKS_LEADER batch was not appended: an earlier proposal was not"
                            );
                        }
                        other => {
                            metrics::counter!("eddy_produce_leader_ack_mispredictions_total").increment(1);
                            tracing::error!(
                                group = replica.group,
                                predicted,
                                ?other,
                                "ACKS_LEADER offset prediction did not hold"
                            );
                        }
                    },
                    other => {
                        metrics::counter!("eddy_produce_leader_ack_lost_total").increment(1);
                        tracing::warn!(
                            group = replica.group,
                            predicted,
                            outcome = ?other.map(|r| r.map(|_| ())),
                            "an ACKS_LEADER batch was lost with the leadership"
                        );
                    }
                }
            });
            crate::metrics::record_produce(&request.topic, count, total, started.elapsed());
            return Ok(v1::ProduceResponse {
                partition: request.partition,
                base_offset: predicted,
                record_count: count as u32,
                duplicate: false,
                throttle_time_ms: 0,
            });
        }
        // On a timeout the proposal stays counted by the sequencer until its entry is applied or
        // dropped (see `Proposed`), so ACKS_LEADER predictions keep counting the batch.
        let written = tokio::time::timeout(timeout, proposed.outcome())
            .await
            .map_err(|_| {
                BrokerError::Timeout(format!("the batch did not commit within {timeout_ms} ms; its outcome is unknown"))
            })?
            .map_err(|_| {
                BrokerError::OutcomeUnknown("the partition's Raft group stopped before the batch committed".into())
            })?;
        // Once Raft appended the entry, the batch may be in the log: losing the leadership then
        // leaves its fate to the next leader, so the answer is OUTCOME_UNKNOWN, never NOT_LEADER
        // (which promises that nothing was written). Only a refusal before the append is
        // definite.
        let response = match written {
            Ok(response) => {
                if let Some(commit) = commit {
                    commit.set_attribute(opentelemetry::KeyValue::new(
                        messaging::attributes::RAFT_INDEX,
                        response.log_id.index as i64,
                    ));
                    commit.end();
                }
                response.data
            }
            Err(e) => {
                return Err(match e {
                    // Refused before its entry was appended (this replica no longer leads, or its
                    // lease lapsed): nothing was written, and the batch may be sent again.
                    ClientWriteError::ForwardToLeader(forward) => match forward.leader_id {
                        Some(leader) if leader != config.node_id => BrokerError::NotLeader {
                            topic: request.topic,
                            partition: request.partition,
                            leader_id: Some(leader),
                            leader_address: view.address_of(leader),
                        },
                        _ => BrokerError::LeaderNotAvailable { topic: request.topic, partition: request.partition },
                    },
                    ClientWriteError::LogEntryDiscarded(forward) => BrokerError::OutcomeUnknown(format!(
                        "leadership of {}/{} moved (to {:?}) before the batch committed",
                        request.topic, request.partition, forward.leader_id
                    )),
                    // The group stopped (or failed): the entry may or may not commit later.
                    other => BrokerError::OutcomeUnknown(format!(
                        "the Raft group of {}/{} failed before the batch committed: {other}",
                        request.topic, request.partition
                    )),
                });
            }
        };
        crate::metrics::record_commit(commit_started.elapsed());
        let (base_offset, record_count, duplicate) = match response {
            PartitionResponse::Appended { base_offset, count } => (base_offset, count, false),
            PartitionResponse::Duplicate { base_offset, count } => (base_offset, count, true),
            PartitionResponse::OutOfOrderSequence { expected, received } => {
                return Err(BrokerError::OutOfOrderSequence { expected, received });
            }
            PartitionResponse::ProducerFenced { current_epoch } => {
                return Err(BrokerError::ProducerFenced { current_epoch });
            }
            PartitionResponse::UnknownProducerId => {
                return Err(BrokerError::UnknownProducerId { topic: request.topic, partition: request.partition });
            }
            other @ (PartitionResponse::PredictionMissed { .. }
            | PartitionResponse::Trimmed { .. }
            | PartitionResponse::None) => {
                return Err(BrokerError::Internal(format!("an ACKS_ALL batch was answered with {other:?}")));
            }
        };
        if !duplicate {
            crate::metrics::record_produce(&request.topic, count, total, started.elapsed());
        }
        Ok(v1::ProduceResponse {
            partition: request.partition,
            base_offset,
            record_count,
            duplicate,
            throttle_time_ms: 0,
        })
    }

    /// A fetch from the client connection at `connection` (unknown in the simulation).
    async fn fetch_inner(
        &self,
        request: v1::FetchRequest,
        connection: Option<SocketAddr>,
    ) -> Result<v1::FetchResponse, BrokerError> {
        let config = &self.config;
        let view = self.cluster.current();
        let replica = match request.read_from_follower {
            true => self.any_replica(&view, &request.topic, request.partition)?,
            false => self.reading_leader(&view, &request.topic, request.partition)?,
        };
        let limits = self.read_limits(request.max_records, request.max_bytes);
        let offset = request.offset;
        let mut views = replica.view.clone();
        let now = *views.borrow_and_update();
        let follower = request.read_from_follower && !replica.leadership().is_self;
        // A follower may trail the leader: past its high watermark it has nothing yet, which is
        // not an error.
        let beyond_end = offset > now.high_watermark && !follower;
        if offset < now.log_start_offset || beyond_end {
            return Err(BrokerError::OffsetOutOfRange {
                topic: request.topic,
                partition: request.partition,
                offset,
                log_start_offset: now.log_start_offset,
                high_watermark: now.high_watermark,
            });
        }
        let wait = request.max_wait_ms.min(config.fetch_wait_max_ms);
        if offset == now.high_watermark && wait > 0 {
            // Long poll: wake as soon as the partition grows past `offset`.
            let _slot = self.fetch_gate.wait_slot(connection)?;
            let _ = tokio::time::timeout(
                Duration::from_millis(u64::from(wait)),
                views.wait_for(|v| v.high_watermark > offset),
            )
            .await;
        }
        let now = *replica.view.borrow();
        let reader = replica.reader.clone();
        let high_watermark = now.high_watermark;
        // Held until the answer is built: what it reads counts against the broker's budget.
        let _reserved = self.fetch_gate.reserve_bytes(limits.max_bytes).await?;
        let records = self
            .storage_read(move || reader.read(offset, high_watermark, limits))
            .await?
            .map_err(|e| BrokerError::Storage { what: "the partition's records", error: e.to_string() })?;
        let after = *replica.view.borrow();
        if records.is_empty() && offset < after.log_start_offset {
            // Retention removed the records while they were read.
            return Err(BrokerError::OffsetOutOfRange {
                topic: request.topic,
                partition: request.partition,
                offset,
                log_start_offset: after.log_start_offset,
                high_watermark: after.high_watermark,
            });
        }
        let bytes: usize = records.iter().map(|(_, r)| r.size_bytes()).sum();
        crate::metrics::record_fetch(&request.topic, records.len(), bytes);
        Ok(v1::FetchResponse {
            partition: request.partition,
            records: records.into_iter().map(|(o, r)| convert::stored_record_to_wire(o, r)).collect(),
            high_watermark,
            log_start_offset: now.log_start_offset,
            throttle_time_ms: 0,
        })
    }

    /// Starts a subscription: checks the partition and the starting position, and takes a long
    /// poll's place for the subscription's whole life.
    async fn subscribe_inner(
        &self,
        request: v1::SubscribeRequest,
        connection: Option<SocketAddr>,
        principal: Principal,
    ) -> Result<Subscription, BrokerError> {
        let view = self.cluster.current();
        let (topic, partition) = (request.topic, request.partition);
        let replica = match request.read_from_follower {
            true => self.any_replica(&view, &topic, partition)?,
            false => self.reading_leader(&view, &topic, partition)?,
        };
        let next = match request.start {
            0 => request.offset,
            spec => self.offset_of(&replica, spec, request.timestamp_ms).await?,
        };
        let now = *replica.view.borrow();
        let follower = request.read_from_follower && !replica.leadership().is_self;
        if next < now.log_start_offset || (next > now.high_watermark && !follower) {
            return Err(BrokerError::OffsetOutOfRange {
                topic,
                partition,
                offset: next,
                log_start_offset: now.log_start_offset,
                high_watermark: now.high_watermark,
            });
        }
        Ok(Subscription {
            _slot: self.fetch_gate.wait_slot(connection)?,
            api: self.clone(),
            limits: self.read_limits(request.max_records, request.max_bytes),
            follower_reads: request.read_from_follower,
            replica,
            topic,
            partition,
            next,
            principal,
        })
    }

    /// ListOffsets at the partition's leader: this broker when it leads, else the leader it
    /// knows of (LEADER_NOT_AVAILABLE when none answers in time).
    pub(crate) async fn list_offsets_at_leader(
        &self,
        view: &ClusterView,
        request: v1::ListOffsetsRequest,
    ) -> Result<v1::ListOffsetsResponse, BrokerError> {
        let (topic, partition) = (request.topic.clone(), request.partition);
        let info = view.partition(&topic, partition)?;
        if self.replicas.get(info.group_id).is_some_and(|r| r.leadership().is_self) {
            return self.list_offsets_inner(request).await;
        }
        let unavailable = || BrokerError::LeaderNotAvailable { topic: topic.clone(), partition };
        // Asked over the inter-broker listener: brokers do not need client credentials.
        let address = self
            .partition_leader(view, info.group_id)
            .and_then(|id| self.peers.address_of(id))
            .ok_or_else(unavailable)?;
        let channel = self.peers.channel(&address).map_err(|_| unavailable())?;
        let mut client = RaftTransportClient::new(channel);
        let envelope = RaftEnvelope {
            group_id: 0,
            kind: RpcKind::NodeListOffsets as u32,
            payload: prost::Message::encode_to_vec(&request).into(),
        };
        let answer = match tokio::time::timeout(LEADER_QUERY_TIMEOUT, client.call(envelope)).await {
            Ok(Ok(answer)) => answer.into_inner(),
            Ok(Err(status)) => {
                tracing::debug!(topic, partition, %address, status = %status.message(), "a leader's ListOffsets failed");
                return Err(unavailable());
            }
            Err(_) => return Err(unavailable()),
        };
        <v1::ListOffsetsResponse as prost::Message>::decode(answer.payload).map_err(|e| {
            tracing::warn!(topic, partition, %address, error = %e, "a leader's ListOffsets answer is malformed");
            unavailable()
        })
    }

    pub(crate) async fn list_offsets_inner(
        &self,
        request: v1::ListOffsetsRequest,
    ) -> Result<v1::ListOffsetsResponse, BrokerError> {
        let view = self.cluster.current();
        let replica = self.reading_leader(&view, &request.topic, request.partition)?;
        let offset = self.offset_of(&replica, request.spec, request.timestamp_ms).await?;
        let now = *replica.view.borrow();
        let max_lag = Duration::from_millis(self.config.broker_session_timeout_ms);
        Ok(v1::ListOffsetsResponse {
            partition: request.partition,
            offset,
            high_watermark: now.high_watermark,
            log_start_offset: now.log_start_offset,
            in_sync_replicas: replica.in_sync_replica_ids(max_lag).unwrap_or_default(),
        })
    }

    /// Fills in each partition's leader and offsets, asking remote leaders concurrently.
    async fn describe(&self, view: &ClusterView, mut topic: v1::TopicDescription) -> v1::TopicDescription {
        let info = match view.metadata.topics.get(&topic.name) {
            Some(info) => info.clone(),
            None => return topic,
        };
        for (desc, p) in topic.partitions.iter_mut().zip(info.partitions.iter()) {
            let leader = self.partition_leader(view, p.group_id);
            desc.leader = leader;
            desc.leader_address = leader.and_then(|id| view.address_of(id)).unwrap_or_default();
            desc.target_replicas = p.target.clone().unwrap_or_default();
        }
        let queries = info.partitions.iter().map(|p| {
            let request = v1::ListOffsetsRequest {
                topic: info.name.clone(),
                partition: p.partition,
                spec: v1::OffsetSpec::Latest as i32,
                timestamp_ms: 0,
            };
            async move {
                let answer = self.list_offsets_at_leader(view, request).await.ok()?;
                Some((answer.log_start_offset, answer.high_watermark, answer.in_sync_replicas))
            }
        });
        let offsets = futures::future::join_all(queries).await;
        for (desc, found) in topic.partitions.iter_mut().zip(offsets) {
            if let Some((start, hw, isr)) = found {
                desc.log_start_offset = Some(start);
                desc.high_watermark = Some(hw);
                desc.isr = isr;
            }
        }
        topic
    }

    async fn create_topic_inner(
        &self,
        request: v1::CreateTopicRequest,
    ) -> Result<v1::CreateTopicResponse, BrokerError> {
        if is_internal_topic(&request.name) {
            return Err(BrokerError::InternalTopic(request.name, "create"));
        }
        let call = ControllerRequest::CreateTopic {
            name: request.name.clone(),
            partitions: request.partitions,
            replication_factor: request.replication_factor,
            configs: request.configs.into_iter().collect(),
        };
        let topic = match self.controller.call(&call).await? {
            ControllerReply::TopicCreated(topic) => topic,
            other => return Err(BrokerError::Internal(format!("the controller answered a create with {other:?}"))),
        };
        self.await_metadata(|view| view.metadata.topics.get(&topic.name).is_some_and(|t| t.id == topic.id)).await;
        Ok(v1::CreateTopicResponse { topic: Some(convert::topic_to_wire(&topic)) })
    }

    async fn alter_topic_inner(&self, request: v1::AlterTopicRequest) -> Result<v1::AlterTopicResponse, BrokerError> {
        if is_internal_topic(&request.name) {
            return Err(BrokerError::InternalTopic(request.name, "alter"));
        }
        let call = ControllerRequest::AlterTopic {
            name: request.name.clone(),
            set: request.set_configs.into_iter().collect(),
            delete: request.delete_configs,
            partitions: request.partitions,
        };
        let topic = match self.controller.call(&call).await? {
            ControllerReply::TopicAltered(topic) => topic,
            other => return Err(BrokerError::Internal(format!("the controller answered an alter with {other:?}"))),
        };
        self.await_metadata(|view| view.metadata.topics.get(&topic.name).is_some_and(|t| *t == topic)).await;
        Ok(v1::AlterTopicResponse { topic: Some(convert::topic_to_wire(&topic)) })
    }

    async fn delete_topic_inner(
        &self,
        request: v1::DeleteTopicRequest,
    ) -> Result<v1::DeleteTopicResponse, BrokerError> {
        if is_internal_topic(&request.name) {
            return Err(BrokerError::InternalTopic(request.name, "delete"));
        }
        let call = ControllerRequest::DeleteTopic { name: request.name.clone() };
        self.controller.call(&call).await?;
        self.await_metadata(|view| !view.metadata.topics.contains_key(&request.name)).await;
        Ok(v1::DeleteTopicResponse {})
    }

    /// Moves a partition's log start up to `before_offset` (rounded down to a batch boundary),
    /// through the partition's Raft log as retention does.
    async fn delete_records_inner(
        &self,
        request: v1::DeleteRecordsRequest,
    ) -> Result<v1::DeleteRecordsResponse, BrokerError> {
        if is_internal_topic(&request.topic) {
            return Err(BrokerError::InternalTopic(request.topic, "trim"));
        }
        let view = self.cluster.current();
        let replica = self.reading_leader(&view, &request.topic, request.partition)?;
        let now = *replica.view.borrow();
        let before = request.before_offset.unwrap_or(now.high_watermark);
        if before > now.high_watermark {
            return Err(BrokerError::OffsetOutOfRange {
                topic: request.topic,
                partition: request.partition,
                offset: before,
                log_start_offset: now.log_start_offset,
                high_watermark: now.high_watermark,
            });
        }
        let reader = replica.reader.clone();
        let target = self
            .storage_read(move || reader.batch_boundary_at_or_below(before))
            .await?
            .map_err(|e| BrokerError::Storage { what: "the partition's offset index", error: e.to_string() })?;
        let from = now.log_start_offset;
        if target <= from {
            return Ok(v1::DeleteRecordsResponse {
                partition: request.partition,
                log_start_offset: from,
                deleted_records: 0,
            });
        }
        let proposal = Proposal {
            command: PartitionCommand::Trim { log_start_offset: target },
            record_count: 0,
            idempotent: false,
            predict: false,
            settle_timeout: Duration::ZERO,
        };
        let mut proposed = replica
            .propose(proposal)
            .await
            .map_err(|e| self.refused(e, &view, &request.topic, request.partition, replica.group))?;
        let timeout_ms = self.config.produce_timeout_ms;
        let written = tokio::time::timeout(Duration::from_millis(u64::from(timeout_ms)), proposed.outcome())
            .await
            .map_err(|_| {
                BrokerError::Timeout(format!(
                    "the deletion did not commit within {timeout_ms} ms; its outcome is unknown"
                ))
            })?
            .map_err(|_| {
                BrokerError::OutcomeUnknown("the partition's Raft group stopped before the deletion committed".into())
            })?
            .map_err(|e| {
                BrokerError::OutcomeUnknown(format!(
                    "the Raft group of {}/{} did not commit the deletion: {e}",
                    request.topic, request.partition
                ))
            })?;
        let log_start_offset = match written.data {
            PartitionResponse::Trimmed { log_start_offset } => log_start_offset,
            other => return Err(BrokerError::Internal(format!("a deletion was answered with {other:?}"))),
        };
        tracing::info!(topic = %request.topic, partition = request.partition, from, to = log_start_offset, "records deleted on request");
        Ok(v1::DeleteRecordsResponse {
            partition: request.partition,
            log_start_offset,
            deleted_records: log_start_offset.saturating_sub(from),
        })
    }

    async fn init_producer_inner(
        &self,
        request: v1::InitProducerRequest,
    ) -> Result<v1::InitProducerResponse, BrokerError> {
        let view = self.cluster.current();
        let named = !request.producer_name.is_empty();
        let initialized = self.producer_ids.init(&self.controller, &view.metadata, request).await?;
        if named {
            // This broker fences the older instances from now on, not only from its next sync.
            self.await_metadata(|view| {
                view.metadata.producer_epoch(initialized.producer_id) >= Some(initialized.epoch)
            })
            .await;
        }
        Ok(v1::InitProducerResponse { producer_id: initialized.producer_id, epoch: initialized.epoch })
    }

    /// After a change this broker made through the controller, waits (bounded) until its own view
    /// shows it, so the same client's next request sees its own write.
    pub(crate) async fn await_metadata(&self, done: impl Fn(&ClusterView) -> bool) {
        self.cluster.refresh_until(OWN_WRITE_VISIBLE_TIMEOUT, done).await;
    }

    async fn rebalance_inner(
        &self,
        request: v1::RebalanceClusterRequest,
    ) -> Result<v1::RebalanceClusterResponse, BrokerError> {
        let call = match request.status_only {
            true => ControllerRequest::RebalanceStatus,
            false => ControllerRequest::Rebalance { dry_run: request.dry_run },
        };
        let moves = match self.controller.call(&call).await? {
            ControllerReply::Moves(moves) => moves,
            other => return Err(BrokerError::Internal(format!("the controller answered a rebalance with {other:?}"))),
        };
        if !request.status_only && !request.dry_run {
            self.await_metadata(|view| {
                moves.planned.keys().all(|g| {
                    view.metadata.planned_moves.contains_key(g)
                        || view.metadata.partition(*g).is_some_and(|(_, p)| p.target.is_some())
                })
            })
            .await;
        }
        let metadata = self.cluster.current().metadata.clone();
        let wire = |moves: &std::collections::BTreeMap<u64, (Vec<u64>, Vec<u64>)>| -> Vec<v1::PartitionMove> {
            moves
                .iter()
                .filter_map(|(group, (replicas, target))| {
                    let (topic, p) = metadata.partition(*group)?;
                    Some(v1::PartitionMove {
                        topic: topic.name.clone(),
                        partition: p.partition,
                        replicas: replicas.clone(),
                        target: target.clone(),
                    })
                })
                .collect()
        };
        Ok(v1::RebalanceClusterResponse { in_progress: wire(&moves.in_progress), planned: wire(&moves.planned) })
    }

    async fn decommission_inner(
        &self,
        request: v1::DecommissionBrokerRequest,
    ) -> Result<v1::DecommissionBrokerResponse, BrokerError> {
        let broker = request.broker_id;
        self.controller.call(&ControllerRequest::Decommission { broker }).await?;
        self.await_metadata(|view| view.metadata.brokers.get(&broker).is_some_and(|b| b.decommissioning)).await;
        Ok(v1::DecommissionBrokerResponse {})
    }

    fn describe_cluster_inner(&self) -> Result<v1::DescribeClusterResponse, BrokerError> {
        let view = self.cluster.current();
        let metadata = view.synced_metadata()?;
        let replica_counts = metadata.replica_counts();
        let voters = &self.config.controller_voters;
        let brokers = metadata
            .brokers
            .values()
            .map(|b| v1::BrokerDescription {
                id: b.id,
                address: b.address.clone(),
                alive: view.alive.contains(&b.id),
                state: match (b.decommissioning, view.alive.contains(&b.id) && !b.fenced) {
                    (true, _) => "decommissioning",
                    (false, true) => "alive",
                    (false, false) => "fenced",
                }
                .to_string(),
                rack: b.rack.clone(),
                leader_count: view.leaders.values().filter(|l| l.leader == b.id).count() as u32,
                replica_count: replica_counts.get(&b.id).copied().unwrap_or(0),
                controller_voter: voters.iter().any(|s| s.id == b.id),
            })
            .collect();
        let under_replicated = metadata
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .filter(|p| p.replicas.iter().any(|r| !view.alive.contains(r)))
            .count();
        Ok(v1::DescribeClusterResponse {
            controller_leader: view.controller_leader,
            brokers,
            cluster_id: self.config.cluster_name.clone(),
            under_replicated_partitions: under_replicated as u32,
        })
    }
}

/// A handler's result as a gRPC answer (every service of the broker answers through it).
/// How long an idle subscription waits before it checks again that its replica still leads.
const SUBSCRIPTION_RECHECK: Duration = Duration::from_secs(1);

/// One Subscribe stream between its batches: where it is in the partition and what it reads from.
struct Subscription {
    api: EddyApi,
    replica: Arc<Replica>,
    topic: String,
    partition: u32,
    follower_reads: bool,
    /// The offset of the next record to push.
    next: u64,
    limits: ReadLimits,
    /// Who subscribed: each batch is charged to its fetch byte quota.
    principal: Principal,
    _slot: WaitSlot,
}

impl Subscription {
    /// The next batch of committed records, waiting for one to be committed; an error ends the
    /// subscription.
    async fn next_batch(&mut self) -> Result<v1::SubscribeResponse, BrokerError> {
        let mut views = self.replica.view.clone();
        let mut stopping = self.api.closing_streams.clone();
        loop {
            if *stopping.borrow_and_update() {
                return Err(BrokerError::ShuttingDown);
            }
            if !self.follower_reads && !self.replica.leadership().is_self {
                return Err(self.gone());
            }
            let now = *views.borrow_and_update();
            let out_of_range = || BrokerError::OffsetOutOfRange {
                topic: self.topic.clone(),
                partition: self.partition,
                offset: self.next,
                log_start_offset: now.log_start_offset,
                high_watermark: now.high_watermark,
            };
            if self.next < now.log_start_offset {
                return Err(out_of_range());
            }
            if self.next < now.high_watermark {
                let _reserved = self.api.fetch_gate.reserve_bytes(self.limits.max_bytes).await?;
                let (reader, offset, limits) = (self.replica.reader.clone(), self.next, self.limits);
                let records = self
                    .api
                    .storage_read(move || reader.read(offset, now.high_watermark, limits))
                    .await?
                    .map_err(|e| BrokerError::Storage { what: "the partition's records", error: e.to_string() })?;
                let Some((last, _)) = records.last() else {
                    // Retention removed the records while they were read: the next round says so.
                    continue;
                };
                self.next = last + 1;
                let bytes: usize = records.iter().map(|(_, r)| r.size_bytes()).sum();
                crate::metrics::record_fetch(&self.topic, records.len(), bytes);
                return Ok(v1::SubscribeResponse {
                    partition: self.partition,
                    records: records.into_iter().map(|(o, r)| convert::stored_record_to_wire(o, r)).collect(),
                    high_watermark: now.high_watermark,
                    log_start_offset: now.log_start_offset,
                    throttle_time_ms: 0,
                });
            }
            tokio::select! {
                changed = views.changed() => if changed.is_err() {
                    // The replica was closed: the partition moved off this broker or was deleted.
                    return Err(self.gone());
                },
                changed = stopping.changed() => if changed.is_err() {
                    return Err(BrokerError::ShuttingDown);
                },
                _ = tokio::time::sleep(SUBSCRIPTION_RECHECK) => {}
            }
        }
    }

    /// Charges a batch to the subscriber's fetch byte quota and holds it back for the throttle,
    /// as a fetch's answer is (but without charging a request: the subscription is one). A node
    /// that stops serving ends the wait, so shutdown is not delayed by it.
    async fn throttle(&self, batch: &mut v1::SubscribeResponse) {
        let bytes = prost::Message::encoded_len(batch) as u64;
        let throttle = self.api.charge(&self.principal, &[(QuotaKind::FetchBytes, bytes)]);
        batch.throttle_time_ms = throttle.delay_ms();
        let mut stopping = self.api.closing_streams.clone();
        tokio::select! {
            _ = throttle.wait() => {}
            _ = stopping.wait_for(|closing| *closing) => {}
        }
    }

    /// Why this broker no longer serves the subscription: the topic is gone, or another broker
    /// leads the partition now.
    fn gone(&self) -> BrokerError {
        let view = self.api.cluster.current();
        match view.partition(&self.topic, self.partition) {
            Ok(_) => self.api.not_leader(&view, &self.topic, self.partition, self.replica.group),
            Err(e) => e,
        }
    }
}

/// Links to the distinct trace contexts the fetched records carry (at most
/// [`messaging::LINKS_MAX`]).
fn fetched_links(records: &[v1::StoredRecord]) -> Vec<opentelemetry::trace::Link> {
    let mut seen: Vec<opentelemetry::trace::SpanContext> = Vec::new();
    for record in records {
        if seen.len() >= messaging::LINKS_MAX {
            break;
        }
        let headers = record.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref()));
        if let Some(carried) = propagation::record_span_context(headers)
            && !seen.contains(&carried)
        {
            seen.push(carried);
        }
    }
    seen.into_iter().map(opentelemetry::trace::Link::with_context).collect()
}

pub(crate) fn reply<T>(result: Result<T, BrokerError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl Eddy for EddyApi {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Write)?;
        let trace = Self::produce_trace(&request);
        let request = request.into_inner();
        let topic = request.topic.clone();
        // What the request cost, charged whatever its outcome: a refused batch was sent too.
        let bytes = prost::Message::encoded_len(&request);
        let mut result = self.produce_inner(request, trace.as_ref()).await;
        if let Err(e) = &result {
            crate::metrics::record_error("produce", &topic, e.code());
        }
        if let Some(trace) = trace {
            trace.end_with(&result, |e| e.code().as_str().to_string());
        }
        let throttle = self.charge_after(&caller.principal, QuotaKind::ProduceBytes, bytes).await;
        if let Ok(answer) = &mut result {
            answer.throttle_time_ms = throttle.delay_ms();
        }
        reply(result)
    }

    async fn fetch(&self, request: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Read)?;
        let connection = connection_of(&request);
        let started = std::time::SystemTime::now();
        let parent = eddy_telemetry::exporting().then(|| propagation::from_metadata(request.metadata()));
        let request = request.into_inner();
        let (topic, partition, offset) = (request.topic.clone(), request.partition, request.offset);
        let mut result = self.fetch_inner(request, connection).await;
        if let Err(e) = &result {
            crate::metrics::record_error("fetch", &topic, e.code());
        }
        if let Some(parent) = parent {
            let records = result.as_ref().map_or(&[][..], |r| r.records.as_slice());
            // Only fetches that returned something, or that a traced consumer made: an idle
            // long poll every half second is no event.
            if !records.is_empty() || parent.span().span_context().is_valid() {
                let links = fetched_links(records);
                let trace = messaging::broker_fetch(&topic, partition, offset, records.len(), &parent, links, started);
                trace.end_with(&result, |e| e.code().as_str().to_string());
            }
        }
        // Charged with what the answer carries, after the work, as Kafka does.
        let bytes = result.as_ref().map_or(0, prost::Message::encoded_len);
        let throttle = self.charge_after(&caller.principal, QuotaKind::FetchBytes, bytes).await;
        if let Ok(answer) = &mut result {
            answer.throttle_time_ms = throttle.delay_ms();
        }
        reply(result)
    }

    async fn list_offsets(
        &self,
        request: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Describe)?;
        self.admit(&caller).await;
        reply(self.list_offsets_inner(request.into_inner()).await)
    }

    type SubscribeStream = std::pin::Pin<Box<dyn Stream<Item = Result<v1::SubscribeResponse, Status>> + Send>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Read)?;
        self.admit(&caller).await;
        let connection = connection_of(&request);
        let request = request.into_inner();
        let topic = request.topic.clone();
        let subscription = self.subscribe_inner(request, connection, caller.principal).await.inspect_err(|e| {
            crate::metrics::record_error("subscribe", &topic, e.code());
        })?;
        // The next batch is read only when tonic asks for it, which it does once the connection
        // has room for the last one: a subscriber that stops reading stops the reads.
        let batches = futures::stream::unfold(Some(subscription), |subscription| async move {
            let mut subscription = subscription?;
            match subscription.next_batch().await {
                Ok(mut batch) => {
                    subscription.throttle(&mut batch).await;
                    Some((Ok(batch), Some(subscription)))
                }
                Err(e) => Some((Err(Status::from(e)), None)),
            }
        });
        Ok(Response::new(Box::pin(batches)))
    }

    async fn alter_topic(
        &self,
        request: Request<v1::AlterTopicRequest>,
    ) -> Result<Response<v1::AlterTopicResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().name), Operation::Alter)?;
        self.admit(&caller).await;
        reply(self.alter_topic_inner(request.into_inner()).await)
    }

    async fn create_topic(
        &self,
        request: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        // As Kafka: CREATE on the cluster, or on the topic's name.
        let caller = self.caller(&request)?;
        self.admit(&caller).await;
        let view = self.cluster.current();
        let security = &view.metadata.security;
        if !self.auth.allows(&caller, security, &Resource::cluster(), Operation::Create) {
            self.auth.authorize(&caller, security, &Resource::topic(&request.get_ref().name), Operation::Create)?;
        }
        reply(self.create_topic_inner(request.into_inner()).await)
    }

    async fn delete_topic(
        &self,
        request: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().name), Operation::Delete)?;
        self.admit(&caller).await;
        reply(self.delete_topic_inner(request.into_inner()).await)
    }

    async fn delete_records(
        &self,
        request: Request<v1::DeleteRecordsRequest>,
    ) -> Result<Response<v1::DeleteRecordsResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Delete)?;
        self.admit(&caller).await;
        let request = request.into_inner();
        let topic = request.topic.clone();
        let result = self.delete_records_inner(request).await;
        if let Err(e) = &result {
            crate::metrics::record_error("delete_records", &topic, e.code());
        }
        reply(result)
    }

    async fn list_topics(
        &self,
        request: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        // Only the topics the caller may see.
        let caller = self.caller(&request)?;
        self.admit(&caller).await;
        let view = self.cluster.current();
        let security = &view.metadata.security;
        let topics = view
            .current_metadata()
            .map_err(Status::from)?
            .topics
            .values()
            .filter(|t| self.auth.allows(&caller, security, &Resource::topic(&t.name), Operation::Describe))
            .map(|t| v1::TopicSummary {
                name: t.name.clone(),
                partitions: t.partitions.len() as u32,
                replication_factor: t.replication_factor,
            })
            .collect();
        Ok(Response::new(v1::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let caller = self.permit(&request, Resource::topic(&request.get_ref().name), Operation::Describe)?;
        self.admit(&caller).await;
        let view = self.cluster.current();
        let name = request.into_inner().name;
        let topic = view.topic(&name).map(convert::topic_to_wire).map_err(Status::from)?;
        let topic = self.describe(&view, topic).await;
        Ok(Response::new(v1::DescribeTopicResponse { topic: Some(topic) }))
    }

    async fn describe_cluster(
        &self,
        request: Request<v1::DescribeClusterRequest>,
    ) -> Result<Response<v1::DescribeClusterResponse>, Status> {
        // Clients find the brokers with it: any authenticated caller may (as Kafka's Metadata).
        let caller = self.caller(&request)?;
        self.admit(&caller).await;
        reply(self.describe_cluster_inner())
    }

    async fn init_producer(
        &self,
        request: Request<v1::InitProducerRequest>,
    ) -> Result<Response<v1::InitProducerResponse>, Status> {
        // What it writes is checked per topic at produce.
        let caller = self.caller(&request)?;
        self.admit(&caller).await;
        reply(self.init_producer_inner(request.into_inner()).await)
    }

    async fn rebalance_cluster(
        &self,
        request: Request<v1::RebalanceClusterRequest>,
    ) -> Result<Response<v1::RebalanceClusterResponse>, Status> {
        let caller = self.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.admit(&caller).await;
        reply(self.rebalance_inner(request.into_inner()).await)
    }

    async fn decommission_broker(
        &self,
        request: Request<v1::DecommissionBrokerRequest>,
    ) -> Result<Response<v1::DecommissionBrokerResponse>, Status> {
        let caller = self.permit(&request, Resource::cluster(), Operation::Alter)?;
        self.admit(&caller).await;
        reply(self.decommission_inner(request.into_inner()).await)
    }
}
