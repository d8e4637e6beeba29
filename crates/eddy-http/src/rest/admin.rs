//! Administration over HTTP: topics, the cluster, consumer groups.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::Gateway;
use super::model::{CreateTopicBody, Group, GroupSummary, Topic, TopicSummary};
use crate::problem::{Problem, ProblemDetails};

use axum::Json;
type JsonBody<T> = Result<axum::Json<T>, axum::extract::rejection::JsonRejection>;

/// Lists the topics.
#[utoipa::path(get, path = "/topics", tag = "topics",
    responses((status = 200, description = "The topics", body = Vec<TopicSummary>)))]
pub async fn list_topics(State(gateway): State<Gateway>) -> Result<Json<Vec<TopicSummary>>, Problem> {
    let topics = gateway.client.list_topics().await?;
    Ok(Json(
        topics
            .into_iter()
            .map(|t| TopicSummary { name: t.name, partitions: t.partitions, replication_factor: t.replication_factor })
            .collect(),
    ))
}

/// Creates a topic.
#[utoipa::path(post, path = "/topics", tag = "topics", request_body = CreateTopicBody,
    responses(
        (status = 201, description = "Created", body = Topic),
        (status = 400, description = "Invalid name, partitions, replication factor or config", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The topic exists", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Not enough brokers, or no controller", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn create_topic(
    State(gateway): State<Gateway>,
    body: JsonBody<CreateTopicBody>,
) -> Result<(StatusCode, Json<Topic>), Problem> {
    let axum::Json(body) = body?;
    gateway
        .client
        .create_topic_with_configs(&body.name, body.partitions, body.replication_factor, body.configs)
        .await?;
    let topic = gateway.client.describe_topic(&body.name).await?;
    Ok((StatusCode::CREATED, Json(topic.into())))
}

/// Describes a topic: configs, partitions, leaders, replicas and offsets.
#[utoipa::path(get, path = "/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic")),
    responses(
        (status = 200, description = "The topic", body = Topic),
        (status = 404, description = "Unknown topic", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn describe_topic(State(gateway): State<Gateway>, Path(topic): Path<String>) -> Result<Json<Topic>, Problem> {
    Ok(Json(gateway.client.describe_topic(&topic).await?.into()))
}

/// Deletes a topic and its records.
#[utoipa::path(delete, path = "/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "Unknown topic", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn delete_topic(State(gateway): State<Gateway>, Path(topic): Path<String>) -> Result<StatusCode, Problem> {
    gateway.client.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Describes the cluster: its brokers and controller.
#[utoipa::path(get, path = "/cluster", tag = "cluster",
    responses((status = 200, description = "The cluster", body = super::model::Cluster)))]
pub async fn describe_cluster(State(gateway): State<Gateway>) -> Result<Json<super::model::Cluster>, Problem> {
    Ok(Json(gateway.client.describe_cluster().await?.into()))
}

/// Lists the consumer groups.
#[utoipa::path(get, path = "/groups", tag = "groups",
    responses((status = 200, description = "The groups", body = Vec<GroupSummary>)))]
pub async fn list_groups(State(gateway): State<Gateway>) -> Result<Json<Vec<GroupSummary>>, Problem> {
    let groups = gateway.client.list_groups().await?;
    Ok(Json(
        groups.into_iter().map(|g| GroupSummary { group_id: g.group_id, state: g.state, members: g.members }).collect(),
    ))
}

/// Describes a consumer group: members, assignments, committed offsets and lag.
#[utoipa::path(get, path = "/groups/{group}", tag = "groups",
    params(("group" = String, Path, description = "The group id")),
    responses(
        (status = 200, description = "The group", body = Group),
        (status = 404, description = "Unknown group", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn describe_group(State(gateway): State<Gateway>, Path(group): Path<String>) -> Result<Json<Group>, Problem> {
    let described = gateway.client.describe_group(&group).await?;
    // The coordinator describes a group it never heard of as dead and empty (as Kafka does).
    if described.state == "dead" && described.members.is_empty() && described.offsets.is_empty() {
        return Err(Problem::new(eddy_client::Reason::GroupNotFound, format!("no group {group:?}")));
    }
    Ok(Json(described.into()))
}
