//! The GraphQL schema's types: topics, partitions, groups and records as the API shows them,
//! and the 64-bit integer scalar their offsets and timestamps need.

use std::sync::Arc;

use async_graphql::{
    ComplexObject, Context, Enum, InputObject, InputValueError, InputValueResult, Object, Scalar, ScalarType,
    SimpleObject, Value,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use eddy_client::v1;
use tokio::sync::OnceCell;

use super::{Gateway, GqlResult, error_of};

/// A 64-bit integer: offsets, timestamps, lags, broker ids. GraphQL's `Int` holds 32 bits,
/// which a timestamp in milliseconds already exceeds. Written as a JSON number; a string of
/// digits is accepted as input too (for clients whose numbers are doubles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Long(pub i64);

#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(n) => n.as_i64().map(Long).ok_or_else(|| InputValueError::custom("not a 64-bit integer")),
            Value::String(s) => s.parse().map(Long).map_err(|_| InputValueError::custom("not a 64-bit integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

impl From<u64> for Long {
    fn from(n: u64) -> Long {
        Long(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl From<i64> for Long {
    fn from(n: i64) -> Long {
        Long(n)
    }
}

impl Long {
    /// As an offset: refused when negative.
    pub fn offset(self, what: &str) -> GqlResult<u64> {
        u64::try_from(self.0).map_err(|_| super::invalid(format!("{what} must not be negative")))
    }
}

/// A topic. Its partitions are described (leaders and offsets) only when asked for.
pub struct Topic {
    pub name: String,
    pub partition_count: u32,
    pub replication_factor: u32,
    pub described: Arc<OnceCell<v1::TopicDescription>>,
}

impl Topic {
    pub fn from_description(description: v1::TopicDescription) -> Topic {
        Topic {
            name: description.name.clone(),
            partition_count: description.partitions.len() as u32,
            replication_factor: description.replication_factor,
            described: Arc::new(OnceCell::new_with(Some(description))),
        }
    }

    async fn description(&self, ctx: &Context<'_>) -> GqlResult<&v1::TopicDescription> {
        let gateway = ctx.data_unchecked::<Gateway>();
        self.described
            .get_or_try_init(|| async { gateway.client.describe_topic(&self.name).await.map_err(error_of) })
            .await
    }
}

#[Object]
impl Topic {
    async fn name(&self) -> &str {
        &self.name
    }

    async fn partition_count(&self) -> u32 {
        self.partition_count
    }

    async fn replication_factor(&self) -> u32 {
        self.replication_factor
    }

    /// The topic's configs (`retention.ms`, `cleanup.policy`, ...).
    async fn configs(&self, ctx: &Context<'_>) -> GqlResult<Vec<Config>> {
        let description = self.description(ctx).await?;
        let sorted: std::collections::BTreeMap<&String, &String> = description.configs.iter().collect();
        Ok(sorted.into_iter().map(|(name, value)| Config { name: name.clone(), value: value.clone() }).collect())
    }

    /// Each partition: where it lives and how far its log goes.
    async fn partitions(&self, ctx: &Context<'_>) -> GqlResult<Vec<Partition>> {
        let description = self.description(ctx).await?;
        Ok(description
            .partitions
            .iter()
            .map(|p| Partition {
                partition: p.partition,
                leader: p.leader.map(Long::from),
                replicas: p.replicas.iter().copied().map(Long::from).collect(),
                isr: p.isr.iter().copied().map(Long::from).collect(),
                log_start_offset: p.log_start_offset.map(Long::from),
                high_watermark: p.high_watermark.map(Long::from),
            })
            .collect())
    }
}

/// A topic config.
#[derive(SimpleObject)]
pub struct Config {
    pub name: String,
    pub value: String,
}

/// A partition of a topic.
#[derive(SimpleObject)]
pub struct Partition {
    pub partition: u32,
    /// The leading broker, when one is known.
    pub leader: Option<Long>,
    pub replicas: Vec<Long>,
    /// The replicas caught up with the leader.
    pub isr: Vec<Long>,
    /// The lowest offset still stored (absent when the leader could not be asked).
    pub log_start_offset: Option<Long>,
    /// Every offset below it is readable (absent when the leader could not be asked).
    pub high_watermark: Option<Long>,
}

/// The cluster: its brokers and controller.
#[derive(SimpleObject)]
pub struct Cluster {
    pub cluster_id: String,
    pub controller_leader: Option<Long>,
    pub brokers: Vec<Broker>,
    /// Partitions with a replica on a broker that is not alive.
    pub under_replicated_partitions: u32,
}

/// A broker as the controller sees it.
#[derive(SimpleObject)]
pub struct Broker {
    pub id: Long,
    pub address: String,
    pub alive: bool,
    /// `alive`, `fenced` or `decommissioning`.
    pub state: String,
    pub rack: Option<String>,
    pub leader_count: u32,
    pub replica_count: u32,
}

impl From<v1::DescribeClusterResponse> for Cluster {
    fn from(c: v1::DescribeClusterResponse) -> Cluster {
        Cluster {
            cluster_id: c.cluster_id,
            controller_leader: c.controller_leader.map(Long::from),
            under_replicated_partitions: c.under_replicated_partitions,
            brokers: c
                .brokers
                .into_iter()
                .map(|b| Broker {
                    id: b.id.into(),
                    address: b.address,
                    alive: b.alive,
                    state: b.state,
                    rack: b.rack,
                    leader_count: b.leader_count,
                    replica_count: b.replica_count,
                })
                .collect(),
        }
    }
}

/// A consumer group. Its members, offsets and lag come from its coordinator, asked once per
/// query when one of them is selected.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Group {
    pub group_id: String,
    /// `empty`, `assigning`, `reconciling`, `stable` or `dead`.
    pub state: String,
    #[graphql(skip)]
    pub described: Arc<OnceCell<v1::GroupDescription>>,
}

impl Group {
    async fn description(&self, ctx: &Context<'_>) -> GqlResult<&v1::GroupDescription> {
        let gateway = ctx.data_unchecked::<Gateway>();
        self.described
            .get_or_try_init(|| async { gateway.client.describe_group(&self.group_id).await.map_err(error_of) })
            .await
    }
}

#[ComplexObject]
impl Group {
    /// The group's members and what each consumes.
    async fn members(&self, ctx: &Context<'_>) -> GqlResult<Vec<GroupMember>> {
        let description = self.description(ctx).await?;
        Ok(description
            .members
            .iter()
            .map(|m| GroupMember {
                member_id: m.member_id.clone(),
                client_id: m.client_id.clone(),
                member_epoch: Long::from(m.member_epoch),
                subscriptions: m.subscriptions.clone(),
                assignment: m
                    .assignment
                    .iter()
                    .map(|tp| TopicPartitions { topic: tp.topic.clone(), partitions: tp.partitions.clone() })
                    .collect(),
            })
            .collect())
    }

    /// Per partition: the committed offset, the end of the log and the lag between them.
    async fn offsets(&self, ctx: &Context<'_>) -> GqlResult<Vec<PartitionLag>> {
        let description = self.description(ctx).await?;
        Ok(description
            .offsets
            .iter()
            .map(|o| PartitionLag {
                topic: o.topic.clone(),
                partition: o.partition,
                committed_offset: o.committed_offset.map(Long::from),
                end_offset: o.end_offset.map(Long::from),
                lag: o.lag.map(Long::from),
            })
            .collect())
    }

    /// The sum of the partitions' lags.
    async fn total_lag(&self, ctx: &Context<'_>) -> GqlResult<Long> {
        let description = self.description(ctx).await?;
        Ok(Long::from(description.offsets.iter().filter_map(|o| o.lag).sum::<u64>()))
    }
}

/// A member of a group.
#[derive(SimpleObject)]
pub struct GroupMember {
    pub member_id: String,
    pub client_id: String,
    pub member_epoch: Long,
    pub subscriptions: Vec<String>,
    pub assignment: Vec<TopicPartitions>,
}

/// Partitions of one topic.
#[derive(SimpleObject)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<u32>,
}

/// A group's position in one partition.
#[derive(SimpleObject)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: u32,
    pub committed_offset: Option<Long>,
    pub end_offset: Option<Long>,
    pub lag: Option<Long>,
}

/// A stored record. Keys and values are bytes: `key` and `value` give them as text when they
/// are UTF-8, `keyBase64` and `valueBase64` always, `json` the value parsed when it is JSON.
pub struct Record {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp_ms: i64,
    pub key: Option<bytes::Bytes>,
    pub value: bytes::Bytes,
    pub headers: Vec<(String, bytes::Bytes)>,
}

impl Record {
    pub fn new(topic: Arc<str>, partition: u32, record: v1::StoredRecord) -> Record {
        Record {
            topic,
            partition,
            offset: record.offset,
            timestamp_ms: record.timestamp_ms,
            key: record.key,
            value: record.value,
            headers: record.headers.into_iter().map(|h| (h.key, h.value)).collect(),
        }
    }
}

#[Object]
impl Record {
    async fn topic(&self) -> &str {
        &self.topic
    }

    async fn partition(&self) -> u32 {
        self.partition
    }

    async fn offset(&self) -> Long {
        self.offset.into()
    }

    /// Milliseconds since the Unix epoch.
    async fn timestamp_ms(&self) -> Long {
        self.timestamp_ms.into()
    }

    /// The key as text; null when the record has no key or its key is not UTF-8.
    async fn key(&self) -> Option<&str> {
        self.key.as_deref().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The key in base64; null when the record has no key.
    async fn key_base64(&self) -> Option<String> {
        self.key.as_deref().map(|k| BASE64.encode(k))
    }

    /// The value as text; null when it is not UTF-8.
    async fn value(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// The value in base64.
    async fn value_base64(&self) -> String {
        BASE64.encode(&self.value)
    }

    /// The value parsed as JSON; null when it is not JSON.
    async fn json(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        serde_json::from_slice(&self.value).ok().map(async_graphql::Json)
    }

    /// The headers, in the record's order (values as text, lossily for bytes not UTF-8).
    async fn headers(&self) -> Vec<Header> {
        self.headers
            .iter()
            .map(|(name, value)| Header { name: name.clone(), value: String::from_utf8_lossy(value).into_owned() })
            .collect()
    }
}

/// A record header.
#[derive(SimpleObject, InputObject, Clone, Debug)]
#[graphql(input_name = "HeaderInput")]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Where a subscription starts in each partition it reads.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Start {
    /// The records committed after the subscription starts.
    #[default]
    Latest,
    /// The oldest records still stored.
    Earliest,
}

/// How a produced value is written in the request.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum ValueEncoding {
    /// Text, stored as its UTF-8 bytes (JSON is text too).
    #[default]
    String,
    /// Base64 (standard alphabet, padded), stored decoded.
    #[graphql(name = "BASE64")]
    Base64,
}

impl ValueEncoding {
    pub fn decode(self, text: String, what: &str) -> GqlResult<bytes::Bytes> {
        match self {
            ValueEncoding::String => Ok(text.into_bytes().into()),
            ValueEncoding::Base64 => BASE64
                .decode(text)
                .map(bytes::Bytes::from)
                .map_err(|e| super::invalid(format!("{what} is not valid base64: {e}"))),
        }
    }
}

/// A position in a partition.
#[derive(SimpleObject, InputObject, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(input_name = "PartitionOffsetInput")]
pub struct PartitionOffset {
    pub partition: u32,
    pub offset: Long,
}

/// Which records a subscription pushes: those matching every field given.
#[derive(InputObject, Clone, Debug, Default)]
pub struct RecordFilter {
    /// The record's key, as text.
    pub key: Option<String>,
    /// Headers the record must carry with these values (each name once at least with its value).
    pub header_equals: Option<Vec<Header>>,
}

impl RecordFilter {
    pub fn matches(&self, record: &Record) -> bool {
        if let Some(key) = &self.key
            && record.key.as_deref() != Some(key.as_bytes())
        {
            return false;
        }
        self.header_equals.iter().flatten().all(|wanted| {
            record.headers.iter().any(|(name, value)| name == &wanted.name && value[..] == *wanted.value.as_bytes())
        })
    }
}

/// Where a produced record went.
#[derive(SimpleObject)]
pub struct Produced {
    pub topic: String,
    pub partition: u32,
    pub offset: Long,
    /// True when an `idempotencyKey` had appended the record before: the offset is the first
    /// append's.
    pub duplicate: bool,
}
