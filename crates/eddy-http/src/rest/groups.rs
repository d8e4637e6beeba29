//! Consumer groups over HTTP: `GET /groups/{group}/records` reads as a member of the group and
//! `POST /groups/{group}/offsets` commits what the caller processed.
//!
//! HTTP is stateless and a group member is not: the gateway keeps one member per group and
//! `instance` (a name the caller picks, `default` when it picks none) and reads for it. The
//! member heartbeats between requests and is retired (it leaves the group, committing nothing)
//! after [`INSTANCE_IDLE`] without a request, or on `DELETE /groups/{group}/instances/{instance}`.
//! Nothing is committed unless the caller commits: a partition that moves to another member
//! (or whose member is retired) resumes after the last commit, so every record is processed at
//! least once. An instance lives on the broker that made it: send its requests to that broker.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use eddy_client::{Consumer, ConsumerConfig, OffsetReset, Reason, TopicPartition};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::Gateway;
use super::model::{Encoding, RecordOut};
use crate::problem::{Problem, ProblemDetails};

/// A member no request has used for this long leaves its group.
pub const INSTANCE_IDLE: Duration = Duration::from_secs(60);

/// Group members one broker's gateway keeps at once (BUSY beyond).
pub const INSTANCES_MAX: usize = 1_000;

/// The longest a read waits for records.
const WAIT_MAX_MS: u32 = 30_000;

/// One group member the gateway keeps.
struct Instance {
    topics: Vec<String>,
    consumer: tokio::sync::Mutex<Option<Consumer>>,
    last_used: Mutex<Instant>,
    /// Whose member it is: the SHA-256 of the credentials it was made with (all zeros for
    /// none). It reads with them, so no one else may use it.
    owner: [u8; 32],
}

/// The SHA-256 of the current request's credentials (all zeros for none).
fn caller_digest() -> [u8; 32] {
    use sha2::Digest as _;
    match eddy_client::credentials::scoped().map(|s| s.identity()).filter(|i| !i.is_empty()) {
        Some(identity) => sha2::Sha256::digest(identity.as_bytes()).into(),
        None => [0; 32],
    }
}

fn someone_elses(group: &str, name: &str) -> Problem {
    Problem::new(
        Reason::PermissionDenied,
        format!("member {name:?} of group {group:?} was made by another caller; use another instance name"),
    )
}

/// Every member the gateway keeps, by (group, instance).
#[derive(Default)]
pub struct Instances {
    members: Mutex<HashMap<(String, String), Arc<Instance>>>,
}

impl Instances {
    /// The member for `group`/`name` reading `topics`, made (or remade, for other topics) when
    /// needed.
    async fn get(
        &self,
        gateway: &Gateway,
        group: &str,
        name: &str,
        topics: Vec<String>,
        reset: OffsetReset,
    ) -> Result<Arc<Instance>, Problem> {
        let key = (group.to_string(), name.to_string());
        let owner = caller_digest();
        let replaced = {
            let mut members = self.members.lock().expect("instances lock");
            match members.get(&key) {
                Some(instance) if instance.owner != owner => return Err(someone_elses(group, name)),
                Some(instance) if instance.topics == topics => {
                    *instance.last_used.lock().expect("instance lock") = Instant::now();
                    return Ok(instance.clone());
                }
                Some(_) => members.remove(&key),
                None if members.len() >= INSTANCES_MAX => {
                    let mut problem =
                        Problem::new(Reason::Busy, format!("this broker keeps {INSTANCES_MAX} group members already"));
                    problem.set_retry_after_ms(1_000);
                    return Err(problem);
                }
                None => None,
            }
        };
        if let Some(old) = replaced {
            retire(old).await;
        }
        let config = ConsumerConfig {
            client_id: format!("eddy-http/{name}"),
            auto_commit_interval: None,
            commit_on_revoke: false,
            auto_offset_reset: reset,
            session_timeout: Duration::from_secs(30),
            ..ConsumerConfig::group(group)
        };
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        // The member outlives this request (it heartbeats in the background): it keeps the
        // caller's credentials of its own.
        let client = Arc::new(gateway.client.with_scoped_credentials());
        let consumer = Consumer::subscribe(client, &refs, config).await?;
        let instance = Arc::new(Instance {
            topics,
            consumer: tokio::sync::Mutex::new(Some(consumer)),
            last_used: Mutex::new(Instant::now()),
            owner,
        });
        self.members.lock().expect("instances lock").insert(key, instance.clone());
        Ok(instance)
    }

    /// The member, when the caller is the one who made it (none else is found).
    fn find(&self, group: &str, name: &str) -> Option<Arc<Instance>> {
        let found = self.members.lock().expect("instances lock").get(&(group.to_string(), name.to_string())).cloned();
        found.filter(|i| i.owner == caller_digest())
    }

    fn remove(&self, group: &str, name: &str) -> Option<Arc<Instance>> {
        let mut members = self.members.lock().expect("instances lock");
        let key = (group.to_string(), name.to_string());
        let owned = members.get(&key).is_some_and(|i| i.owner == caller_digest());
        if owned { members.remove(&key) } else { None }
    }

    /// Retires the members idle longer than [`INSTANCE_IDLE`]; runs for as long as the gateway.
    pub async fn expire(self: Arc<Self>) {
        loop {
            tokio::time::sleep(INSTANCE_IDLE / 4).await;
            let idle: Vec<Arc<Instance>> = {
                let mut members = self.members.lock().expect("instances lock");
                let keys: Vec<_> = members
                    .iter()
                    .filter(|(_, i)| i.last_used.lock().expect("instance lock").elapsed() >= INSTANCE_IDLE)
                    .map(|(k, _)| k.clone())
                    .collect();
                keys.iter().filter_map(|k| members.remove(k)).collect()
            };
            for instance in idle {
                retire(instance).await;
            }
        }
    }
}

/// Makes a member leave its group without committing.
async fn retire(instance: Arc<Instance>) {
    if let Some(consumer) = instance.consumer.lock().await.take()
        && let Err(e) = consumer.leave().await
    {
        tracing::debug!(error = %e, "a retired HTTP group member could not leave its group");
    }
}

/// Query of `GET /groups/{group}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupReadQuery {
    /// The topics to read, comma-separated.
    pub topics: String,
    /// The member's name within this broker's gateway (default `default`).
    pub instance: Option<String>,
    /// Where partitions the group never committed start: `latest` (default) or `earliest`.
    pub reset: Option<String>,
    /// At most this many records.
    pub max_records: Option<usize>,
    /// When there are no records, wait up to this long for some (default 1000, at most 30000).
    pub wait_ms: Option<u32>,
    /// How values are written (default `json`).
    pub value_encoding: Option<Encoding>,
    /// How keys are written (default `string`).
    pub key_encoding: Option<Encoding>,
}

/// Records read as a member of a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupRecords {
    pub records: Vec<RecordOut>,
    /// The partitions this member reads now (`topic` -> partitions).
    pub assignment: BTreeMap<String, Vec<u32>>,
}

/// Reads records as a member of a consumer group.
///
/// The group's coordinator assigns partitions to the member; the records come from where the
/// member got to (the group's committed offsets at first). Commit what was processed with
/// `POST /groups/{group}/offsets`.
#[utoipa::path(get, path = "/groups/{group}/records", tag = "groups", operation_id = "read_group_records",
    params(("group" = String, Path, description = "The group id"), GroupReadQuery),
    responses(
        (status = 200, description = "The records (possibly none)", body = GroupRecords),
        (status = 400, description = "Invalid request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown topic", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Too many group members on this broker", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn read(
    State(gateway): State<Gateway>,
    Path(group): Path<String>,
    query: Result<Query<GroupReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GroupRecords>, Problem> {
    let Query(query) = query?;
    let topics: Vec<String> =
        query.topics.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect();
    if topics.is_empty() {
        return Err(Problem::invalid("topics must name at least one topic"));
    }
    for topic in &topics {
        gateway.client.partition_count(topic).await?;
    }
    let reset = match query.reset.as_deref().unwrap_or("latest") {
        "latest" => OffsetReset::Latest,
        "earliest" => OffsetReset::Earliest,
        other => return Err(Problem::invalid(format!("reset must be latest or earliest, not {other:?}"))),
    };
    let name = query.instance.as_deref().unwrap_or("default");
    let instance = gateway.instances.get(&gateway, &group, name, topics, reset).await?;
    let mut guard = instance.consumer.lock().await;
    let Some(consumer) = guard.as_mut() else {
        return Err(Problem::new(Reason::UnknownMember, format!("instance {name:?} of group {group:?} was retired")));
    };
    let deadline = Instant::now() + Duration::from_millis(u64::from(query.wait_ms.unwrap_or(1_000).min(WAIT_MAX_MS)));
    let max = query.max_records.unwrap_or(usize::MAX).max(1);
    let mut records = Vec::new();
    loop {
        let polled = consumer.poll().await?;
        records.extend(polled);
        if !records.is_empty() || Instant::now() >= deadline {
            break;
        }
    }
    // What does not fit is read again by the next request.
    if records.len() > max {
        let mut again: BTreeMap<TopicPartition, u64> = BTreeMap::new();
        for record in records.drain(max..) {
            again.entry(TopicPartition::new(&record.topic, record.partition)).or_insert(record.offset);
        }
        for (partition, offset) in again {
            consumer.seek(&partition, eddy_client::SeekTo::Offset(offset)).await?;
        }
    }
    *instance.last_used.lock().expect("instance lock") = Instant::now();
    let (keys, values) =
        (query.key_encoding.unwrap_or(Encoding::String), query.value_encoding.unwrap_or(Encoding::Json));
    let mut assignment: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for tp in consumer.assignment() {
        assignment.entry(tp.topic).or_default().push(tp.partition);
    }
    let records = records
        .into_iter()
        .map(|r| {
            let stored = eddy_client::v1::StoredRecord {
                offset: r.offset,
                key: r.key,
                value: r.value,
                headers: r.headers.into_iter().map(|(key, value)| eddy_client::v1::Header { key, value }).collect(),
                timestamp_ms: r.timestamp_ms,
            };
            RecordOut::new(&r.topic, r.partition, &stored, keys, values)
        })
        .collect();
    Ok(Json(GroupRecords { records, assignment }))
}

/// `POST /groups/{group}/offsets`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitBody {
    /// The member that read the records (default `default`).
    #[serde(default)]
    pub instance: Option<String>,
    /// Per partition, the next offset to read: the offset of the last processed record plus one.
    pub offsets: Vec<OffsetCommit>,
}

/// One partition's committed position.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetCommit {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
}

/// Commits a group's offsets for partitions its member owns.
#[utoipa::path(post, path = "/groups/{group}/offsets", tag = "groups", operation_id = "commit_group_offsets",
    params(("group" = String, Path, description = "The group id")),
    request_body = CommitBody,
    responses(
        (status = 204, description = "Committed"),
        (status = 404, description = "No such member on this broker", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The member does not own a partition (any more)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn commit(
    State(gateway): State<Gateway>,
    Path(group): Path<String>,
    body: Result<Json<CommitBody>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, Problem> {
    let Json(body) = body?;
    let name = body.instance.as_deref().unwrap_or("default");
    let Some(instance) = gateway.instances.find(&group, name) else {
        return Err(Problem::new(
            Reason::UnknownMember,
            format!(
                "this broker has no member {name:?} of group {group:?} (read with GET /groups/{group}/records first)"
            ),
        ));
    };
    let mut guard = instance.consumer.lock().await;
    let Some(consumer) = guard.as_mut() else {
        return Err(Problem::new(Reason::UnknownMember, format!("instance {name:?} of group {group:?} was retired")));
    };
    let offsets = body.offsets.into_iter().map(|o| (TopicPartition::new(&o.topic, o.partition), o.offset)).collect();
    consumer.commit_offsets(offsets).await?;
    *instance.last_used.lock().expect("instance lock") = Instant::now();
    Ok(StatusCode::NO_CONTENT)
}

/// Makes a member leave its group now (without committing).
#[utoipa::path(delete, path = "/groups/{group}/instances/{instance}", tag = "groups", operation_id = "remove_group_member",
    params(("group" = String, Path, description = "The group id"), ("instance" = String, Path, description = "The member's name")),
    responses(
        (status = 204, description = "The member left"),
        (status = 404, description = "No such member on this broker", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn remove(
    State(gateway): State<Gateway>,
    Path((group, name)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let Some(instance) = gateway.instances.remove(&group, &name) else {
        return Err(Problem::new(
            Reason::UnknownMember,
            format!("this broker has no member {name:?} of group {group:?}"),
        ));
    };
    retire(instance).await;
    Ok(StatusCode::NO_CONTENT)
}
