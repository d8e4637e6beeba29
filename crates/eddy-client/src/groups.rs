//! Group calls: each goes to the group's coordinator, found with FindCoordinator and followed
//! through NOT_COORDINATOR hints, retried on retriable reasons until the retry deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use eddy_proto::Reason;
use eddy_proto::v1::{self, groups_client::GroupsClient};

use crate::client::{Backoff, Client};
use crate::credentials::Transport;
use crate::error::{ClientError, ClientResult};

/// Coordinator addresses by group id.
#[derive(Debug, Default)]
pub(crate) struct Coordinators(Mutex<HashMap<String, String>>);

impl Client {
    pub(crate) fn groups_stub(&self, address: &str) -> ClientResult<GroupsClient<Transport>> {
        Ok(GroupsClient::new(self.transport(address)?)
            .max_decoding_message_size(self.config().message_size_max_bytes)
            .max_encoding_message_size(self.config().message_size_max_bytes))
    }

    /// The coordinator of `group_id`, as any broker names it.
    pub async fn find_coordinator(&self, group_id: &str) -> ClientResult<v1::FindCoordinatorResponse> {
        let request = v1::FindCoordinatorRequest { group_id: group_id.to_string() };
        self.any_broker_groups(|mut c| {
            let r = request.clone();
            async move { c.find_coordinator(r).await }
        })
        .await
    }

    /// Runs `call` at the coordinator of `group_id`.
    pub(crate) async fn on_coordinator<T, F, Fut>(&self, group_id: &str, mut call: F) -> ClientResult<T>
    where
        F: FnMut(GroupsClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut backoff = Backoff::new(self.config());
        loop {
            let known = self.coordinators.0.lock().expect("lock").get(group_id).cloned();
            let address = match known {
                Some(address) => Ok(address),
                None => self.find_coordinator(group_id).await.map(|found| found.coordinator_address),
            };
            let error = match address {
                Ok(address) => {
                    match tokio::time::timeout(self.config().request_timeout, call(self.groups_stub(&address)?)).await {
                        Ok(Ok(response)) => {
                            self.coordinators.0.lock().expect("lock").insert(group_id.to_string(), address);
                            return Ok(response.into_inner());
                        }
                        Ok(Err(status)) => ClientError::from_status(&status),
                        Err(_) => ClientError::Timeout(format!("no answer from {address} for group {group_id:?}")),
                    }
                }
                Err(e) => e,
            };
            {
                let mut coordinators = self.coordinators.0.lock().expect("lock");
                match error.detail("coordinator_address") {
                    Some(hint) => {
                        coordinators.insert(group_id.to_string(), hint.to_string());
                    }
                    None => {
                        coordinators.remove(group_id);
                    }
                }
            }
            if !error.is_retriable() {
                return Err(error);
            }
            tracing::debug!(group_id, error = %error, "retrying at the group coordinator");
            if !backoff.wait().await {
                return Err(error);
            }
        }
    }

    async fn any_broker_groups<T, F, Fut>(&self, mut call: F) -> ClientResult<T>
    where
        F: FnMut(GroupsClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.any_address(|address| {
            let stub = self.groups_stub(address);
            let call = stub.map(&mut call);
            async move { call?.await.map_err(|s| ClientError::from_status(&s)).map(tonic::Response::into_inner) }
        })
        .await
    }

    /// One group heartbeat (the [`crate::Consumer`] sends them; exposed for custom members).
    pub async fn group_heartbeat(
        &self,
        request: v1::GroupHeartbeatRequest,
    ) -> ClientResult<v1::GroupHeartbeatResponse> {
        let group_id = request.group_id.clone();
        self.on_coordinator(&group_id, |mut c| {
            let r = request.clone();
            async move { c.heartbeat(r).await }
        })
        .await
    }

    /// Commits offsets (the next offset to consume, per partition).
    pub async fn commit_offsets(&self, request: v1::CommitOffsetsRequest) -> ClientResult<()> {
        let group_id = request.group_id.clone();
        self.on_coordinator(&group_id, |mut c| {
            let r = request.clone();
            async move { c.commit_offsets(r).await }
        })
        .await
        .map(|_| ())
    }

    /// The group's committed offsets for `partitions` (all of them when empty).
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Vec<v1::TopicPartitions>,
    ) -> ClientResult<Vec<v1::CommittedOffset>> {
        let request = v1::FetchOffsetsRequest { group_id: group_id.to_string(), partitions };
        let response = self
            .on_coordinator(group_id, |mut c| {
                let r = request.clone();
                async move { c.fetch_offsets(r).await }
            })
            .await?;
        Ok(response.offsets)
    }

    /// Every group in the cluster: each broker lists the groups it coordinates.
    pub async fn list_groups(&self) -> ClientResult<Vec<v1::GroupSummary>> {
        let cluster = self.describe_cluster().await?;
        let mut groups = BTreeMap::new();
        for broker in cluster.brokers.iter().filter(|b| b.alive) {
            let mut stub = self.groups_stub(&broker.address)?;
            match tokio::time::timeout(self.config().request_timeout, stub.list_groups(v1::ListGroupsRequest {})).await
            {
                Ok(Ok(response)) => {
                    for group in response.into_inner().groups {
                        groups.insert(group.group_id.clone(), group);
                    }
                }
                Ok(Err(status)) => return Err(ClientError::from_status(&status)),
                Err(_) => {
                    return Err(ClientError::answer(
                        Reason::Timeout,
                        format!("broker {} did not list its groups in time", broker.id),
                    ));
                }
            }
        }
        Ok(groups.into_values().collect())
    }

    pub async fn describe_group(&self, group_id: &str) -> ClientResult<v1::GroupDescription> {
        let request = v1::DescribeGroupRequest { group_id: group_id.to_string() };
        let response = self
            .on_coordinator(group_id, |mut c| {
                let r = request.clone();
                async move { c.describe_group(r).await }
            })
            .await?;
        response.group.ok_or_else(|| ClientError::answer(Reason::Internal, "the broker described no group".into()))
    }

    /// Deletes a group without members (GROUP_NOT_EMPTY otherwise) and its offsets.
    pub async fn delete_group(&self, group_id: &str) -> ClientResult<()> {
        let request = v1::DeleteGroupRequest { group_id: group_id.to_string() };
        self.on_coordinator(group_id, |mut c| {
            let r = request.clone();
            async move { c.delete_group(r).await }
        })
        .await
        .map(|_| ())
    }

    /// Moves a group's offsets for a topic (the group must have no members).
    pub async fn reset_offsets(&self, request: v1::ResetOffsetsRequest) -> ClientResult<Vec<v1::CommittedOffset>> {
        let group_id = request.group_id.clone();
        let response = self
            .on_coordinator(&group_id, |mut c| {
                let r = request.clone();
                async move { c.reset_offsets(r).await }
            })
            .await?;
        Ok(response.offsets)
    }
}
