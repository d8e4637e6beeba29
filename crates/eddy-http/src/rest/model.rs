//! The REST API's JSON bodies, and how record keys and values travel in them.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use eddy_client::v1;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;

/// How a key or value is written in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Any JSON value; the record holds its compact JSON text.
    Json,
    /// A JSON string; the record holds its UTF-8 bytes.
    String,
    /// A base64 string (standard alphabet, padded); the record holds the decoded bytes.
    Base64,
}

impl Encoding {
    /// The record bytes `value` stands for; `what` names it in the error (`records[3].value`).
    pub fn to_bytes(self, value: &Value, what: &str) -> Result<Bytes, Problem> {
        match (self, value) {
            (Encoding::Json, value) => Ok(Bytes::from(serde_json::to_vec(value).expect("JSON serializes"))),
            (Encoding::String, Value::String(s)) => Ok(Bytes::from(s.clone().into_bytes())),
            (Encoding::Base64, Value::String(s)) => BASE64
                .decode(s)
                .map(Bytes::from)
                .map_err(|e| Problem::invalid(format!("{what} is not valid base64: {e}"))),
            (encoding, _) => {
                Err(Problem::invalid(format!("{what} must be a JSON string with the {encoding:?} encoding")))
            }
        }
    }

    /// `bytes` written in this encoding, or in the one that can hold them: bytes that are not
    /// JSON (or not UTF-8) are written as base64. Returns the encoding used.
    pub fn encode(self, bytes: &[u8]) -> (Value, Encoding) {
        if self == Encoding::Json
            && let Ok(value) = serde_json::from_slice::<Value>(bytes)
        {
            return (value, Encoding::Json);
        }
        if self != Encoding::Base64
            && let Ok(text) = std::str::from_utf8(bytes)
            && self == Encoding::String
        {
            return (Value::String(text.to_string()), Encoding::String);
        }
        (Value::String(BASE64.encode(bytes)), Encoding::Base64)
    }
}

fn json_encoding() -> Encoding {
    Encoding::Json
}

fn string_encoding() -> Encoding {
    Encoding::String
}

/// `POST /topics/{topic}/records`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceBody {
    /// The records, appended in this order within each partition.
    pub records: Vec<RecordIn>,
    /// How the values are written (default `json`).
    #[serde(default = "json_encoding")]
    pub value_encoding: Encoding,
    /// How the keys are written (default `string`).
    #[serde(default = "string_encoding")]
    pub key_encoding: Encoding,
}

/// A record to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// Records of one key go to one partition, in order.
    #[serde(default)]
    pub key: Option<Value>,
    /// The value; absent or null appends an empty value (a tombstone for compacted topics).
    #[serde(default)]
    pub value: Value,
    /// Header names and their UTF-8 values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The partition; by default the key's (as every Eddy client hashes it), or one partition
    /// for all the request's records without a key.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Milliseconds since the Unix epoch; by default the broker's append time.
    #[serde(default)]
    pub timestamp_ms: Option<i64>,
}

/// Where each record of a produce request was appended, in request order.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProduceAnswer {
    pub topic: String,
    pub records: Vec<RecordPosition>,
}

/// A record's place in the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPosition {
    pub partition: u32,
    pub offset: u64,
    /// True when this record had been appended by an earlier request with the same
    /// Idempotency-Key: the offset is the one it got then.
    pub duplicate: bool,
}

/// Acknowledgement level of a produce request.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AcksParam {
    /// Answer once a quorum of replicas has the records on disk (the default).
    #[default]
    All,
    /// Answer once the leader has accepted them.
    Leader,
}

/// Query of `POST /topics/{topic}/records`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProduceQuery {
    /// `all` (default) or `leader`.
    #[serde(default)]
    pub acks: AcksParam,
}

/// Query of `GET /topics/{topic}/partitions/{partition}/records`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The first offset to read (default: the log start).
    pub offset: Option<u64>,
    /// At most this many records (default: the broker's).
    pub max_records: Option<u32>,
    /// At most about this many bytes of records (default: the broker's).
    pub max_bytes: Option<u32>,
    /// When no record at or after `offset` exists yet, wait up to this long for one (long poll).
    pub wait_ms: Option<u32>,
    /// How values are written: `json` (default; values that are not JSON come as base64),
    /// `string` (values that are not UTF-8 come as base64) or `base64`.
    pub value_encoding: Option<Encoding>,
    /// How keys are written (default `string`), with the same fallback.
    pub key_encoding: Option<Encoding>,
}

/// A stored record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    /// Absent for a record without a key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_encoding: Option<Encoding>,
    pub value: Value,
    pub value_encoding: Encoding,
    /// Header names and values (UTF-8; a header repeated keeps its last value).
    pub headers: BTreeMap<String, String>,
}

impl RecordOut {
    /// `record` of `topic`/`partition` in the requested encodings.
    pub fn new(topic: &str, partition: u32, record: &v1::StoredRecord, keys: Encoding, values: Encoding) -> RecordOut {
        let key = record.key.as_ref().map(|k| keys.encode(k));
        let (value, value_encoding) = values.encode(&record.value);
        RecordOut {
            topic: topic.to_string(),
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key_encoding: key.as_ref().map(|(_, e)| *e),
            key: key.map(|(k, _)| k),
            value,
            value_encoding,
            headers: record
                .headers
                .iter()
                .map(|h| (h.key.clone(), String::from_utf8_lossy(&h.value).into_owned()))
                .collect(),
        }
    }
}

/// Records read from one partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordsAnswer {
    pub records: Vec<RecordOut>,
    /// The offset to read from next.
    pub next_offset: u64,
    /// Every offset below it is readable.
    pub high_watermark: u64,
    /// The lowest offset still stored.
    pub log_start_offset: u64,
}

/// `POST /topics`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopicBody {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
    /// Topic configs (`retention.ms`, `value.schema.validation`, ...).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// A topic in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u32,
}

/// A topic, its configs and its partitions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Topic {
    pub name: String,
    pub replication_factor: u32,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<Partition>,
}

/// A partition: where it lives and how far its log goes.
#[derive(Debug, Serialize, ToSchema)]
pub struct Partition {
    pub partition: u32,
    /// The leading broker, when one is known.
    pub leader: Option<u64>,
    pub replicas: Vec<u64>,
    /// The replicas caught up with the leader.
    pub isr: Vec<u64>,
    /// Absent when the leader could not be asked.
    pub log_start_offset: Option<u64>,
    pub high_watermark: Option<u64>,
}

impl From<v1::TopicDescription> for Topic {
    fn from(t: v1::TopicDescription) -> Topic {
        Topic {
            name: t.name,
            replication_factor: t.replication_factor,
            configs: t.configs.into_iter().collect(),
            partitions: t
                .partitions
                .into_iter()
                .map(|p| Partition {
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas,
                    isr: p.isr,
                    log_start_offset: p.log_start_offset,
                    high_watermark: p.high_watermark,
                })
                .collect(),
        }
    }
}

/// The cluster: its brokers and controller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Cluster {
    pub cluster_id: String,
    pub controller_leader: Option<u64>,
    pub brokers: Vec<Broker>,
    /// Partitions with a replica on a broker that is not alive.
    pub under_replicated_partitions: u32,
}

/// A broker as the controller sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Broker {
    pub id: u64,
    pub address: String,
    pub alive: bool,
    /// `alive`, `fenced` or `decommissioning`.
    pub state: String,
    pub rack: Option<String>,
    pub controller_voter: bool,
    pub leader_count: u32,
    pub replica_count: u32,
}

impl From<v1::DescribeClusterResponse> for Cluster {
    fn from(c: v1::DescribeClusterResponse) -> Cluster {
        Cluster {
            cluster_id: c.cluster_id,
            controller_leader: c.controller_leader,
            under_replicated_partitions: c.under_replicated_partitions,
            brokers: c
                .brokers
                .into_iter()
                .map(|b| Broker {
                    id: b.id,
                    address: b.address,
                    alive: b.alive,
                    state: b.state,
                    rack: b.rack,
                    controller_voter: b.controller_voter,
                    leader_count: b.leader_count,
                    replica_count: b.replica_count,
                })
                .collect(),
        }
    }
}

/// A consumer group in the list.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: String,
    pub members: u32,
}

/// A consumer group: its members and, per partition, its committed offset and lag.
#[derive(Debug, Serialize, ToSchema)]
pub struct Group {
    pub group_id: String,
    /// `empty`, `assigning`, `reconciling`, `stable` or `dead`.
    pub state: String,
    pub group_epoch: u64,
    pub coordinator_id: u64,
    pub members: Vec<GroupMember>,
    pub offsets: Vec<PartitionLag>,
    /// The sum of the partitions' lags.
    pub total_lag: u64,
}

/// A member of a group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub member_epoch: u64,
    pub subscriptions: Vec<String>,
    /// `topic` -> the partitions the member consumes.
    pub assignment: BTreeMap<String, Vec<u32>>,
}

/// A group's position in one partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<u64>,
    pub end_offset: Option<u64>,
    pub lag: Option<u64>,
}

impl From<v1::GroupDescription> for Group {
    fn from(g: v1::GroupDescription) -> Group {
        let offsets: Vec<PartitionLag> = g
            .offsets
            .into_iter()
            .map(|o| PartitionLag {
                topic: o.topic,
                partition: o.partition,
                committed_offset: o.committed_offset,
                end_offset: o.end_offset,
                lag: o.lag,
            })
            .collect();
        Group {
            group_id: g.group_id,
            state: g.state,
            group_epoch: g.group_epoch,
            coordinator_id: g.coordinator_id,
            total_lag: offsets.iter().filter_map(|o| o.lag).sum(),
            offsets,
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id,
                    client_id: m.client_id,
                    member_epoch: m.member_epoch,
                    subscriptions: m.subscriptions,
                    assignment: m.assignment.into_iter().map(|tp| (tp.topic, tp.partitions)).collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_round_trip_in_each_encoding_and_fall_back_to_base64() {
        let json_value = json!({"order": 7, "items": ["a"]});
        let bytes = Encoding::Json.to_bytes(&json_value, "value").unwrap();
        assert_eq!(Encoding::Json.encode(&bytes), (json_value, Encoding::Json));
        let bytes = Encoding::String.to_bytes(&json!("plain text"), "value").unwrap();
        assert_eq!(&bytes[..], b"plain text");
        assert_eq!(Encoding::Json.encode(&bytes), (json!("cGxhaW4gdGV4dA=="), Encoding::Base64));
        assert_eq!(Encoding::String.encode(&bytes), (json!("plain text"), Encoding::String));
        let bytes = Encoding::Base64.to_bytes(&json!("AAEC/w=="), "value").unwrap();
        assert_eq!(&bytes[..], &[0, 1, 2, 255]);
        assert_eq!(Encoding::String.encode(&bytes), (json!("AAEC/w=="), Encoding::Base64));
        let error = Encoding::Base64.to_bytes(&json!("not base64!"), "records[2].value").unwrap_err();
        assert!(error.detail.contains("records[2].value"), "{}", error.detail);
        assert!(Encoding::String.to_bytes(&json!(5), "records[0].key").is_err());
    }
}
