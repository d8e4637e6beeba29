//! The public `eddy.v1.Groups` service: the group protocol, offsets and group admin, served by
//! each group's coordinator (see [`crate::coordinator`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use eddy_groups::{Commit, CommittedOffset, Group, Heartbeat, TopicPartition};
use eddy_proto::v1::{self, groups_server::Groups as GroupsService};
use tonic::{Request, Response, Status};

use crate::api::{EddyApi, reply};
use crate::broker::Broker;
use crate::clock::Clock;
use crate::cluster_view::{ClusterView, ClusterWatch};
use crate::convert;
use crate::coordinator::Coordinator;
use crate::error::BrokerError;
use eddy_auth::{Operation, Resource};

/// The groups API of one broker.
#[derive(Clone)]
pub struct GroupsApi {
    api: EddyApi,
    coordinator: Arc<Coordinator>,
    cluster: ClusterWatch,
    clock: Arc<dyn Clock>,
    node_id: u64,
}

impl std::fmt::Debug for GroupsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupsApi").field("node_id", &self.node_id).finish_non_exhaustive()
    }
}

impl GroupsApi {
    pub fn new(broker: &Broker) -> Self {
        Self {
            api: EddyApi::new(broker),
            coordinator: broker.coordinator(),
            cluster: broker.cluster_watch(),
            clock: broker.inner.clock.clone(),
            node_id: broker.node_id(),
        }
    }

    async fn heartbeat_inner(
        &self,
        request: v1::GroupHeartbeatRequest,
    ) -> Result<v1::GroupHeartbeatResponse, BrokerError> {
        let heartbeat = Heartbeat {
            group_id: request.group_id.clone(),
            member_id: request.member_id.clone(),
            member_epoch: request.member_epoch,
            client_id: request.client_id,
            subscriptions: request.subscription.map(|s| s.topics.into_iter().collect()),
            owned: request.owned.map(|o| convert::partitions_from_wire(o.partitions)),
            session_timeout_ms: u64::from(request.session_timeout_ms),
            rebalance_timeout_ms: u64::from(request.rebalance_timeout_ms),
        };
        let answer = self
            .coordinator
            .run(&request.group_id, |ctx| {
                let plan = ctx.groups.plan_heartbeat(&heartbeat, ctx.partition_counts)?;
                // A member heard from keeps its session (a joining one gets one once it is written).
                if let Some(member) =
                    ctx.groups.group(&heartbeat.group_id).and_then(|g| g.members.get(&heartbeat.member_id))
                    && plan.answer.member_epoch >= 0
                {
                    ctx.sessions.touch(&heartbeat.group_id, &member.member_id, member.session_timeout_ms);
                }
                Ok(plan)
            })
            .await?;
        Ok(v1::GroupHeartbeatResponse {
            member_id: request.member_id,
            member_epoch: answer.member_epoch,
            heartbeat_interval_ms: answer.heartbeat_interval_ms as u32,
            assignment: convert::partitions_to_wire(&answer.assignment),
        })
    }

    async fn commit_inner(&self, request: v1::CommitOffsetsRequest) -> Result<v1::CommitOffsetsResponse, BrokerError> {
        let commit_timestamp_ms = self.clock.now_ms();
        let commit = Commit {
            group_id: request.group_id.clone(),
            member_id: request.member_id,
            member_epoch: request.member_epoch,
            offsets: request
                .offsets
                .into_iter()
                .map(|o| {
                    let committed = CommittedOffset { offset: o.offset, metadata: o.metadata, commit_timestamp_ms };
                    (TopicPartition::new(&o.topic, o.partition), committed)
                })
                .collect(),
        };
        self.coordinator.run(&request.group_id, |ctx| ctx.groups.plan_commit(&commit)).await?;
        Ok(v1::CommitOffsetsResponse {})
    }

    async fn fetch_offsets_inner(
        &self,
        request: v1::FetchOffsetsRequest,
    ) -> Result<v1::FetchOffsetsResponse, BrokerError> {
        let wanted = convert::partitions_from_wire(request.partitions);
        let offsets = self
            .coordinator
            .read(&request.group_id, |groups| {
                groups
                    .offsets(&request.group_id)
                    .into_iter()
                    .flatten()
                    .filter(|(tp, _)| wanted.is_empty() || wanted.contains(*tp))
                    .map(|(tp, committed)| convert::committed_to_wire(tp, committed))
                    .collect()
            })
            .await?;
        Ok(v1::FetchOffsetsResponse { offsets })
    }

    async fn list_groups_inner(&self) -> Result<v1::ListGroupsResponse, BrokerError> {
        let node_id = self.node_id;
        let shards = self
            .coordinator
            .each_local(|groups| {
                groups
                    .ids()
                    .into_iter()
                    .map(|id| v1::GroupSummary {
                        group_id: id.to_string(),
                        state: groups.phase(id).as_str().to_string(),
                        members: groups.group(id).map_or(0, |g| g.members.len() as u32),
                        coordinator_id: node_id,
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
        let mut groups: Vec<v1::GroupSummary> = shards.into_iter().flatten().collect();
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(v1::ListGroupsResponse { groups })
    }

    async fn describe_inner(
        &self,
        request: v1::DescribeGroupRequest,
    ) -> Result<v1::DescribeGroupResponse, BrokerError> {
        let group_id = request.group_id;
        let (phase, group, offsets) = self
            .coordinator
            .read(&group_id, |groups| {
                (groups.phase(&group_id), groups.group(&group_id).cloned(), groups.offsets(&group_id).cloned())
            })
            .await?;
        let group = group.unwrap_or_else(|| Group::new(&group_id));
        let offsets = offsets.unwrap_or_default();
        let view = self.cluster.current();
        let lags = self.lags(&view, &group, &offsets).await;
        let members = group
            .members
            .values()
            .map(|m| v1::MemberDescription {
                member_id: m.member_id.clone(),
                client_id: m.client_id.clone(),
                member_epoch: m.epoch,
                subscriptions: m.subscriptions.iter().cloned().collect(),
                assignment: convert::partitions_to_wire(&m.assigned),
                revoking: convert::partitions_to_wire(&m.revoking),
                target: convert::partitions_to_wire(group.target.get(&m.member_id).into_iter().flatten()),
                session_timeout_ms: m.session_timeout_ms as u32,
            })
            .collect();
        Ok(v1::DescribeGroupResponse {
            group: Some(v1::GroupDescription {
                group_id: group_id.clone(),
                state: phase.as_str().to_string(),
                group_epoch: group.epoch,
                assignment_epoch: group.assignment_epoch,
                members,
                offsets: lags,
                rebalances: group.rebalances,
                coordinator_id: self.node_id,
            }),
        })
    }

    /// Committed offset, end offset and lag of every partition of the subscribed topics and every
    /// partition with a committed offset.
    async fn lags(
        &self,
        view: &ClusterView,
        group: &Group,
        offsets: &BTreeMap<TopicPartition, CommittedOffset>,
    ) -> Vec<v1::PartitionLag> {
        let mut partitions: BTreeSet<TopicPartition> = offsets.keys().cloned().collect();
        for topic in group.members.values().flat_map(|m| m.subscriptions.iter()) {
            if let Some(info) = view.metadata.topics.get(topic) {
                partitions.extend(info.partitions.iter().map(|p| TopicPartition::new(topic, p.partition)));
            }
        }
        let queries = partitions.iter().map(|tp| {
            let request = v1::ListOffsetsRequest {
                topic: tp.topic.clone(),
                partition: tp.partition,
                spec: v1::OffsetSpec::Latest as i32,
                timestamp_ms: 0,
            };
            async move { self.api.list_offsets_at_leader(view, request).await.ok() }
        });
        let ends = futures::future::join_all(queries).await;
        partitions
            .iter()
            .zip(ends)
            .map(|(tp, end)| {
                let committed = offsets.get(tp);
                let end_offset = end.as_ref().map(|e| e.high_watermark);
                let from = committed.map(|c| c.offset).or(end.as_ref().map(|e| e.log_start_offset));
                v1::PartitionLag {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    committed_offset: committed.map(|c| c.offset),
                    end_offset,
                    lag: end_offset.zip(from).map(|(end, from)| end.saturating_sub(from)),
                    metadata: committed.map(|c| c.metadata.clone()).unwrap_or_default(),
                }
            })
            .collect()
    }

    async fn delete_inner(&self, request: v1::DeleteGroupRequest) -> Result<v1::DeleteGroupResponse, BrokerError> {
        let group_id = request.group_id;
        self.coordinator.run(&group_id, |ctx| ctx.groups.plan_delete_group(&group_id)).await?;
        Ok(v1::DeleteGroupResponse {})
    }

    async fn reset_inner(&self, request: v1::ResetOffsetsRequest) -> Result<v1::ResetOffsetsResponse, BrokerError> {
        let view = self.cluster.current();
        let topic = view.topic(&request.topic)?;
        let count = topic.partitions.len() as u32;
        let partitions: Vec<u32> =
            if request.partitions.is_empty() { (0..count).collect() } else { request.partitions.clone() };
        for p in &partitions {
            view.partition(&request.topic, *p)?;
        }
        let spec = match (request.offset, v1::OffsetSpec::try_from(request.spec)) {
            (Some(_), _) => v1::OffsetSpec::Latest,
            (None, Ok(v1::OffsetSpec::Unspecified)) | (None, Err(_)) => {
                return Err(BrokerError::InvalidRequest(
                    "say where to reset to: earliest, latest, a timestamp or an offset".into(),
                ));
            }
            (None, Ok(spec)) => spec,
        };
        let queries = partitions.iter().map(|p| {
            let request = v1::ListOffsetsRequest {
                topic: request.topic.clone(),
                partition: *p,
                spec: spec as i32,
                timestamp_ms: request.timestamp_ms,
            };
            self.api.list_offsets_at_leader(&view, request)
        });
        let commit_timestamp_ms = self.clock.now_ms();
        let mut targets = Vec::new();
        for (p, answer) in partitions.iter().zip(futures::future::join_all(queries).await) {
            let answer = answer?;
            let offset = match request.offset {
                // An exact offset is kept within the log, as Kafka's tools do.
                Some(offset) => offset.clamp(answer.log_start_offset, answer.high_watermark),
                None => answer.offset,
            };
            let committed = CommittedOffset { offset, metadata: String::new(), commit_timestamp_ms };
            targets.push((TopicPartition::new(&request.topic, *p), committed));
        }
        let group_id = request.group_id;
        self.coordinator.run(&group_id, |ctx| ctx.groups.plan_reset_offsets(&group_id, &targets)).await?;
        Ok(v1::ResetOffsetsResponse {
            offsets: targets.iter().map(|(tp, committed)| convert::committed_to_wire(tp, committed)).collect(),
        })
    }

    async fn find_coordinator_inner(
        &self,
        request: v1::FindCoordinatorRequest,
    ) -> Result<v1::FindCoordinatorResponse, BrokerError> {
        let location = self.coordinator.locate(&request.group_id).await?;
        match (location.leader_id, location.leader_address) {
            (Some(coordinator_id), Some(coordinator_address)) => Ok(v1::FindCoordinatorResponse {
                coordinator_id,
                coordinator_address,
                offsets_partition: location.offsets_partition,
            }),
            _ => Err(BrokerError::CoordinatorLoading { group_id: request.group_id }),
        }
    }
}

/// How often a broker exports the gauges of the groups it coordinates.
const GROUP_METRICS_INTERVAL: Duration = Duration::from_secs(5);

/// The labels of one exported group gauge: the group, and the partition for offset gauges.
type Exported = (String, Option<(String, u32)>);

impl GroupsApi {
    /// Exports, every [`GROUP_METRICS_INTERVAL`] until the broker stops, the members, rebalances,
    /// and per partition the committed offset, end offset and lag of every group this broker
    /// coordinates. Gauges of groups that moved elsewhere (or were deleted) are set to NaN.
    pub(crate) async fn export_metrics(self, mut stopping: watch::Receiver<bool>) {
        let mut exported: BTreeSet<Exported> = BTreeSet::new();
        loop {
            tokio::select! {
                biased;
                _ = stopping.changed() => return,
                _ = tokio::time::sleep(GROUP_METRICS_INTERVAL) => {}
            }
            let Ok(shards) = self
                .coordinator
                .each_local(|groups| {
                    let ids: Vec<String> = groups.ids().into_iter().map(str::to_string).collect();
                    ids.into_iter()
                        .map(|id| {
                            let group = groups.group(&id).cloned().unwrap_or_else(|| Group::new(&id));
                            let offsets = groups.offsets(&id).cloned().unwrap_or_default();
                            (group, offsets)
                        })
                        .collect::<Vec<_>>()
                })
                .await
            else {
                continue;
            };
            let view = self.cluster.current();
            let mut now: BTreeSet<Exported> = BTreeSet::new();
            for (group, offsets) in shards.into_iter().flatten() {
                let id = group.group_id.clone();
                metrics::gauge!("eddy_group_members", "group" => id.clone()).set(group.members.len() as f64);
                metrics::counter!("eddy_group_rebalances_total", "group" => id.clone()).absolute(group.rebalances);
                now.insert((id.clone(), None));
                for lag in self.lags(&view, &group, &offsets).await {
                    let labels =
                        [("group", id.clone()), ("topic", lag.topic.clone()), ("partition", lag.partition.to_string())];
                    let value = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
                    metrics::gauge!("eddy_group_committed_offset", &labels).set(value(lag.committed_offset));
                    metrics::gauge!("eddy_group_end_offset", &labels).set(value(lag.end_offset));
                    metrics::gauge!("eddy_group_lag", &labels).set(value(lag.lag));
                    now.insert((id.clone(), Some((lag.topic, lag.partition))));
                }
            }
            for (group, partition) in exported.difference(&now) {
                match partition {
                    None => metrics::gauge!("eddy_group_members", "group" => group.clone()).set(f64::NAN),
                    Some((topic, partition)) => {
                        let labels =
                            [("group", group.clone()), ("topic", topic.clone()), ("partition", partition.to_string())];
                        metrics::gauge!("eddy_group_committed_offset", &labels).set(f64::NAN);
                        metrics::gauge!("eddy_group_end_offset", &labels).set(f64::NAN);
                        metrics::gauge!("eddy_group_lag", &labels).set(f64::NAN);
                    }
                }
            }
            exported = now;
        }
    }
}

#[tonic::async_trait]
impl GroupsService for GroupsApi {
    async fn find_coordinator(
        &self,
        request: Request<v1::FindCoordinatorRequest>,
    ) -> Result<Response<v1::FindCoordinatorResponse>, Status> {
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Describe)?;
        self.api.admit(&caller).await;
        reply(self.find_coordinator_inner(request.into_inner()).await)
    }

    async fn heartbeat(
        &self,
        request: Request<v1::GroupHeartbeatRequest>,
    ) -> Result<Response<v1::GroupHeartbeatResponse>, Status> {
        // A member reads as the group, and must see the topics it subscribes to.
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Read)?;
        self.api.admit(&caller).await;
        for topic in request.get_ref().subscription.iter().flat_map(|s| &s.topics) {
            self.api.permit(&request, Resource::topic(topic), Operation::Describe)?;
        }
        reply(self.heartbeat_inner(request.into_inner()).await)
    }

    async fn commit_offsets(
        &self,
        request: Request<v1::CommitOffsetsRequest>,
    ) -> Result<Response<v1::CommitOffsetsResponse>, Status> {
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Read)?;
        self.api.admit(&caller).await;
        for offset in &request.get_ref().offsets {
            self.api.permit(&request, Resource::topic(&offset.topic), Operation::Read)?;
        }
        reply(self.commit_inner(request.into_inner()).await)
    }

    async fn fetch_offsets(
        &self,
        request: Request<v1::FetchOffsetsRequest>,
    ) -> Result<Response<v1::FetchOffsetsResponse>, Status> {
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Describe)?;
        self.api.admit(&caller).await;
        reply(self.fetch_offsets_inner(request.into_inner()).await)
    }

    async fn list_groups(
        &self,
        request: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        // Only the groups the caller may see.
        let caller = self.api.caller(&request)?;
        self.api.admit(&caller).await;
        let mut answer = self.list_groups_inner().await?;
        let view = self.cluster.current();
        answer.groups.retain(|g| {
            self.api.auth().allows(&caller, &view.metadata.security, &Resource::group(&g.group_id), Operation::Describe)
        });
        Ok(Response::new(answer))
    }

    async fn describe_group(
        &self,
        request: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::DescribeGroupResponse>, Status> {
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Describe)?;
        self.api.admit(&caller).await;
        reply(self.describe_inner(request.into_inner()).await)
    }

    async fn delete_group(
        &self,
        request: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Delete)?;
        self.api.admit(&caller).await;
        reply(self.delete_inner(request.into_inner()).await)
    }

    async fn reset_offsets(
        &self,
        request: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        // As Kafka's AlterConsumerGroupOffsets: READ on the group and on the topic.
        let caller = self.api.permit(&request, Resource::group(&request.get_ref().group_id), Operation::Read)?;
        self.api.admit(&caller).await;
        self.api.permit(&request, Resource::topic(&request.get_ref().topic), Operation::Read)?;
        reply(self.reset_inner(request.into_inner()).await)
    }
}
