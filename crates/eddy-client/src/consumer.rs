//! The consumer: reads the partitions it was given by hand ([`Consumer::assign`]) or by its
//! group's coordinator ([`Consumer::subscribe`]), and commits how far it got.
//!
//! In a group, a background task heartbeats to the coordinator and learns the member's
//! assignment; [`Consumer::poll`] reconciles with it before reading: partitions taken away are
//! committed, reported to the [`RebalanceListener`] and dropped, and only then does the next
//! heartbeat confirm that the member gave them up (so no other member gets them before). New
//! partitions start at the group's committed offset, or where [`OffsetReset`] says when none is.
//!
//! A group member reading what a producer sent (this example runs against a one-node cluster
//! inside the test process):
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let node = eddy_broker::InMemoryNode::start().await?;
//! use std::sync::Arc;
//! use eddy_client::{Client, ClientConfig, Consumer, ConsumerConfig, OffsetReset};
//! use eddy_client::{Producer, ProducerConfig, ProducerRecord};
//!
//! let client = Arc::new(Client::new(vec![node.address.clone()], ClientConfig::default())?);
//! client.create_topic("orders", 3, 1).await?;
//! let producer = Producer::new(client.clone(), "orders", ProducerConfig::default()).await?;
//! for i in 0..10 {
//!     let key = format!("order-{i}").into_bytes().into();
//!     producer.send(ProducerRecord { key: Some(key), value: "created".into(), ..Default::default() }).await?;
//! }
//! producer.close().await; // waits until every record is acknowledged
//!
//! let config = ConsumerConfig { auto_offset_reset: OffsetReset::Earliest, ..ConsumerConfig::group("billing") };
//! let mut consumer = Consumer::subscribe(client.clone(), &["orders"], config).await?;
//! let mut consumed = 0;
//! while consumed < 10 {
//!     for record in consumer.poll().await? {
//!         println!("{}/{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//!         consumed += 1;
//!     }
//! }
//! consumer.close().await?; // commits what was consumed and leaves the group
//!
//! // The group's committed offsets now cover every record.
//! let group = client.describe_group("billing").await?;
//! assert!(!group.offsets.is_empty() && group.offsets.iter().all(|o| o.lag == Some(0)));
//! # Ok(()) }
//! ```
//!
//! Reading by hand instead, as a `futures::Stream`, from a point in time:
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let node = eddy_broker::InMemoryNode::start().await?;
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use eddy_client::{Client, ClientConfig, Consumer, ConsumerConfig, SeekTo, TopicPartition};
//! use eddy_client::{Producer, ProducerConfig, ProducerRecord};
//!
//! let client = Arc::new(Client::new(vec![node.address.clone()], ClientConfig::default())?);
//! client.create_topic("audit", 1, 1).await?;
//! let producer = Producer::new(client.clone(), "audit", ProducerConfig::default()).await?;
//! for (time, what) in [(1_000, "login"), (2_000, "order"), (3_000, "logout")] {
//!     producer.send(ProducerRecord { value: what.into(), timestamp_ms: time, ..Default::default() }).await?;
//! }
//! producer.close().await;
//!
//! let partition = TopicPartition::new("audit", 0);
//! let mut consumer = Consumer::assign(client, &[partition.clone()], ConsumerConfig::default()).await?;
//! consumer.seek(&partition, SeekTo::Timestamp(2_000)).await?;
//! let values: Vec<_> = consumer.stream().take(2).map(|r| r.map(|r| r.value)).collect().await;
//! assert_eq!(values.into_iter().collect::<Result<Vec<_>, _>>()?, ["order", "logout"]);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_proto::Reason;
use eddy_proto::v1;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::client::Client;
use crate::error::{ClientError, ClientResult};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: &str, partition: u32) -> Self {
        Self { topic: topic.to_string(), partition }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Where a partition without a committed offset starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
}

/// Where [`Consumer::seek`] moves a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    Earliest,
    Latest,
    Offset(u64),
    /// The first record at or after this time (ms since the Unix epoch).
    Timestamp(i64),
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group whose offsets are used and committed; required by [`Consumer::subscribe`].
    pub group_id: Option<String>,
    pub client_id: String,
    /// The coordinator removes the member after this long without a heartbeat.
    pub session_timeout: Duration,
    /// How long the member may take to give up a partition.
    pub rebalance_timeout: Duration,
    /// Commit consumed offsets this often during [`Consumer::poll`]; `None`: only on
    /// [`Consumer::commit`] (and on revocation and close).
    pub auto_commit_interval: Option<Duration>,
    pub auto_offset_reset: OffsetReset,
    /// Most records one fetch of one partition asks for.
    pub fetch_max_records: u32,
    /// How long a fetch waits for records when a partition has none.
    pub fetch_max_wait: Duration,
    /// Most records held fetched but not yet returned by [`Consumer::poll`].
    pub prefetch_records_max: usize,
    /// Whether what [`Consumer::poll`] returned counts as processed when partitions are taken
    /// away (their positions are committed then). False for a consumer whose caller commits
    /// explicitly what it processed ([`Consumer::commit_offsets`]), such as the HTTP API's
    /// group consumers: a partition then moves on from the last explicit commit.
    pub commit_on_revoke: bool,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: None,
            client_id: "eddy-client".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(60),
            auto_commit_interval: Some(Duration::from_secs(5)),
            auto_offset_reset: OffsetReset::Latest,
            fetch_max_records: 500,
            fetch_max_wait: Duration::from_millis(500),
            prefetch_records_max: 10_000,
            commit_on_revoke: true,
        }
    }
}

impl ConsumerConfig {
    /// The defaults, in `group_id`.
    pub fn group(group_id: &str) -> Self {
        Self { group_id: Some(group_id.to_string()), ..Self::default() }
    }
}

/// A record as consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    pub timestamp_ms: i64,
}

impl ConsumerRecord {
    /// The trace context the record carries in its `traceparent`/`tracestate` headers: the
    /// producer's `send` span (or whatever context its producer set); empty without one.
    pub fn trace_context(&self) -> opentelemetry::Context {
        eddy_telemetry::propagation::from_record_headers(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_ref())))
    }

    /// Starts the `process {topic}` span (kind CONSUMER) of handling this record: a child of the
    /// record's trace context and linked to it, so one trace follows the event from its
    /// producer to each consumer that handled it. Run the handling inside its context
    /// (`opentelemetry::context::FutureExt::with_context`, or `attach`) and end it when done:
    ///
    /// ```no_run
    /// # async fn handle(record: eddy_client::ConsumerRecord) {
    /// use opentelemetry::context::FutureExt;
    /// let span = record.process_span(Some("billing"));
    /// let handled: Result<(), String> = async { /* ... */ Ok(()) }.with_context(span.context().clone()).await;
    /// span.end_with(&handled, |_| "HANDLER_FAILED".to_string());
    /// # }
    /// ```
    pub fn process_span(&self, group: Option<&str>) -> eddy_telemetry::messaging::Operation {
        let record = eddy_telemetry::messaging::Processed {
            topic: &self.topic,
            partition: self.partition,
            offset: self.offset,
            key: self.key.as_deref(),
            value_size: self.value.len(),
            group,
        };
        eddy_telemetry::messaging::process(record, &self.trace_context())
    }
}

/// Told when the consumer's partitions change.
pub trait RebalanceListener: Send {
    /// The consumer starts reading these.
    fn on_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// These were taken away; their offsets were committed just before.
    fn on_revoked(&mut self, _partitions: &[TopicPartition]) {}
    /// The member was fenced or removed: these may already be someone else's, and nothing was
    /// committed for them.
    fn on_lost(&mut self, _partitions: &[TopicPartition]) {}
}

/// What the heartbeat task and the consumer share.
#[derive(Debug, Default)]
struct MemberState {
    epoch: i64,
    /// The assignment of the last heartbeat answer.
    assignment: BTreeSet<TopicPartition>,
    /// What the consumer reads now (reported by heartbeats).
    owned: BTreeSet<TopicPartition>,
    /// What the heartbeat in flight reported as owned. A partition outside it is not taken
    /// until that heartbeat is answered: the coordinator may read the report as the partition
    /// given up and hand it to another member (simulation seed 11: a heartbeat reporting
    /// {p1} was retried through a coordinator outage while the consumer started p2 from the
    /// assignment before it; the answer moved p2 to another member).
    reported: Option<BTreeSet<TopicPartition>>,
    /// The member was fenced or removed since the consumer last looked.
    lost: bool,
}

struct Membership {
    group_id: String,
    member_id: String,
    state: Mutex<MemberState>,
    /// Heartbeat now (the consumer gave partitions up).
    wake: Notify,
    /// A heartbeat answer arrived.
    answered: Notify,
}

/// Per owned partition: where the next fetch starts and where consumption got to.
#[derive(Debug, Clone, Copy)]
struct Position {
    fetch_offset: u64,
    consumed: u64,
}

/// A consumer. See the module documentation.
pub struct Consumer {
    client: Arc<Client>,
    config: ConsumerConfig,
    membership: Option<Arc<Membership>>,
    stop: watch::Sender<bool>,
    heartbeats: Option<tokio::task::JoinHandle<()>>,
    positions: BTreeMap<TopicPartition, Position>,
    /// Owned partitions not fetched until resumed.
    paused: BTreeSet<TopicPartition>,
    buffer: VecDeque<ConsumerRecord>,
    /// In a mutex only so that the consumer is `Sync` (its futures are `Send`); it is reached
    /// through `&mut self` and never contended.
    listener: Option<std::sync::Mutex<Box<dyn RebalanceListener>>>,
    last_commit: Instant,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("group_id", &self.config.group_id).finish_non_exhaustive()
    }
}

impl Consumer {
    fn new(client: Arc<Client>, config: ConsumerConfig, membership: Option<Arc<Membership>>) -> Self {
        let (stop, _) = watch::channel(false);
        Self {
            client,
            config,
            membership,
            stop,
            heartbeats: None,
            positions: BTreeMap::new(),
            paused: BTreeSet::new(),
            buffer: VecDeque::new(),
            listener: None,
            last_commit: Instant::now(),
        }
    }

    /// Joins `config.group_id` subscribed to `topics`; the coordinator assigns the partitions.
    pub async fn subscribe(client: Arc<Client>, topics: &[&str], config: ConsumerConfig) -> ClientResult<Consumer> {
        let group_id =
            config.group_id.clone().ok_or_else(|| ClientError::Invalid("subscribing needs a group id".into()))?;
        if topics.is_empty() {
            return Err(ClientError::Invalid("subscribe to at least one topic".into()));
        }
        let membership = Arc::new(Membership {
            group_id,
            member_id: format!("{:032x}", rand::random::<u128>()),
            state: Mutex::new(MemberState::default()),
            wake: Notify::new(),
            answered: Notify::new(),
        });
        let mut consumer = Consumer::new(client.clone(), config.clone(), Some(membership.clone()));
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let stop = consumer.stop.subscribe();
        consumer.heartbeats = Some(tokio::spawn(heartbeat_loop(client, membership, config, topics, stop)));
        Ok(consumer)
    }

    /// Reads `partitions` by hand, outside the group protocol. With a group id, starts at the
    /// group's committed offsets and commits to it (allowed while the group has no members).
    pub async fn assign(
        client: Arc<Client>,
        partitions: &[TopicPartition],
        config: ConsumerConfig,
    ) -> ClientResult<Consumer> {
        let mut consumer = Consumer::new(client, config, None);
        consumer.start(partitions.iter().cloned().collect()).await?;
        Ok(consumer)
    }

    /// Sets a listener for partition changes.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        self.listener = Some(std::sync::Mutex::new(Box::new(listener)));
    }

    /// The partitions the consumer reads now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.positions.keys().cloned().collect()
    }

    /// The member id in the group, if subscribed.
    pub fn member_id(&self) -> Option<&str> {
        self.membership.as_ref().map(|m| m.member_id.as_str())
    }

    /// The member's epoch in its group, as the last heartbeat answer gave it (0 before the first
    /// assignment and after being fenced), if subscribed.
    pub fn member_epoch(&self) -> Option<i64> {
        self.membership.as_ref().map(|m| m.state.lock().expect("member lock").epoch)
    }

    /// The next offset to consume of an owned partition.
    pub fn position(&self, partition: &TopicPartition) -> Option<u64> {
        self.positions.get(partition).map(|p| p.consumed)
    }

    /// The next records: follows the group's assignment, commits when auto-commit is due, and
    /// waits up to `fetch_max_wait` for records when there are none.
    pub async fn poll(&mut self) -> ClientResult<Vec<ConsumerRecord>> {
        self.reconcile().await?;
        if let Some(interval) = self.config.auto_commit_interval
            && self.last_commit.elapsed() >= interval
            && let Err(e) = self.commit().await
        {
            tracing::warn!(error = %e, "auto-commit failed");
        }
        if self.buffer.is_empty() {
            self.fetch_round().await?;
        }
        if self.fenced() {
            self.buffer.clear();
            for position in self.positions.values_mut() {
                position.fetch_offset = position.consumed;
            }
            return Ok(Vec::new());
        }
        let records: Vec<ConsumerRecord> = self.buffer.drain(..).collect();
        for record in &records {
            if let Some(position) = self.positions.get_mut(&TopicPartition::new(&record.topic, record.partition)) {
                position.consumed = record.offset + 1;
            }
        }
        Ok(records)
    }

    /// Stops fetching `partition` until [`resume`](Self::resume) (as Kafka's `pause`): the member
    /// keeps owning it, and [`poll`](Self::poll) still follows the group. Records already
    /// fetched are still returned. Pausing every partition makes `poll` return at once.
    pub fn pause(&mut self, partition: &TopicPartition) {
        self.paused.insert(partition.clone());
    }

    /// Fetches `partition` again.
    pub fn resume(&mut self, partition: &TopicPartition) {
        self.paused.remove(partition);
    }

    /// The partitions paused now.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.paused.iter().filter(|tp| self.positions.contains_key(*tp)).cloned().collect()
    }

    /// The records as a stream (ending at the first error).
    pub fn stream(self) -> impl futures::Stream<Item = ClientResult<ConsumerRecord>> {
        futures::stream::unfold((self, VecDeque::new(), false), |(mut consumer, mut ready, failed)| async move {
            if failed {
                return None;
            }
            loop {
                if let Some(record) = ready.pop_front() {
                    return Some((Ok(record), (consumer, ready, false)));
                }
                match consumer.poll().await {
                    Ok(records) => ready.extend(records),
                    Err(e) => return Some((Err(e), (consumer, ready, true))),
                }
            }
        })
    }

    /// Moves an owned partition's position.
    pub async fn seek(&mut self, partition: &TopicPartition, to: SeekTo) -> ClientResult<()> {
        if !self.positions.contains_key(partition) {
            return Err(ClientError::Invalid(format!("{partition} is not assigned to this consumer")));
        }
        let offset = self.resolve(partition, to).await?;
        self.buffer.retain(|r| r.topic != partition.topic || r.partition != partition.partition);
        self.positions.insert(partition.clone(), Position { fetch_offset: offset, consumed: offset });
        Ok(())
    }

    /// Commits the position of every owned partition, waiting for the answer. Unchanged
    /// positions are sent too: the answer then confirms that the member still owns them (a member
    /// removed from its group gets `UNKNOWN_MEMBER`).
    pub async fn commit(&mut self) -> ClientResult<()> {
        let offsets: BTreeMap<TopicPartition, u64> =
            self.positions.iter().map(|(tp, p)| (tp.clone(), p.consumed)).collect();
        self.last_commit = Instant::now();
        self.commit_offsets(offsets).await
    }

    /// Commits every consumed position in the background; the handle tells the outcome.
    pub fn commit_async(&mut self) -> tokio::task::JoinHandle<ClientResult<()>> {
        let offsets: BTreeMap<TopicPartition, u64> =
            self.positions.iter().map(|(tp, p)| (tp.clone(), p.consumed)).collect();
        self.last_commit = Instant::now();
        let (client, membership, group_id) =
            (self.client.clone(), self.membership.clone(), self.config.group_id.clone());
        tokio::spawn(async move { commit_with(&client, membership.as_deref(), group_id.as_deref(), &offsets).await })
    }

    /// Commits, leaves the group and stops heartbeating.
    pub async fn close(mut self) -> ClientResult<()> {
        let committed = if self.config.group_id.is_some() { self.commit().await } else { Ok(()) };
        self.leave().await.and(committed)
    }

    /// Leaves the group and stops heartbeating without committing: the group's next member of
    /// each partition starts from its last commit.
    pub async fn leave(mut self) -> ClientResult<()> {
        self.stop.send_replace(true);
        if let Some(task) = self.heartbeats.take() {
            let _ = task.await;
        }
        if let Some(membership) = &self.membership {
            let epoch = membership.state.lock().expect("member lock").epoch;
            if epoch > 0 {
                let leave = v1::GroupHeartbeatRequest {
                    group_id: membership.group_id.clone(),
                    member_id: membership.member_id.clone(),
                    member_epoch: -1,
                    ..Default::default()
                };
                self.client.group_heartbeat(leave).await?;
            }
        }
        Ok(())
    }

    /// Commits `offsets` (each the next offset to read of a partition this member owns).
    pub async fn commit_offsets(&mut self, offsets: BTreeMap<TopicPartition, u64>) -> ClientResult<()> {
        if offsets.is_empty() || self.config.group_id.is_none() {
            return Ok(());
        }
        let group_id = self.config.group_id.clone();
        commit_with(&self.client, self.membership.as_deref(), group_id.as_deref(), &offsets).await?;
        Ok(())
    }

    /// Follows the group's assignment: gives up what was taken away, starts what was added.
    async fn reconcile(&mut self) -> ClientResult<()> {
        let Some(membership) = self.membership.clone() else { return Ok(()) };
        let (assignment, lost) = {
            let mut state = membership.state.lock().expect("member lock");
            (state.assignment.clone(), std::mem::take(&mut state.lost))
        };
        if lost {
            // Fetched before the fence: the partitions may be someone else's by now.
            self.buffer.clear();
        }
        if lost && !self.positions.is_empty() {
            let gone: Vec<TopicPartition> = self.positions.keys().cloned().collect();
            self.drop_partitions(&gone);
            if let Some(listener) = &mut self.listener {
                listener.get_mut().expect("listener lock").on_lost(&gone);
            }
        }
        let revoked: Vec<TopicPartition> =
            self.positions.keys().filter(|tp| !assignment.contains(*tp)).cloned().collect();
        if !revoked.is_empty() {
            let offsets =
                revoked.iter().filter_map(|tp| self.positions.get(tp).map(|p| (tp.clone(), p.consumed))).collect();
            if self.config.commit_on_revoke
                && let Err(e) = self.commit_offsets(offsets).await
            {
                tracing::warn!(error = %e, "committing revoked partitions failed");
            }
            if let Some(listener) = &mut self.listener {
                listener.get_mut().expect("listener lock").on_revoked(&revoked);
            }
            self.drop_partitions(&revoked);
            let mut state = membership.state.lock().expect("member lock");
            for tp in &revoked {
                state.owned.remove(tp);
            }
            drop(state);
            // The next heartbeat confirms that they were given up.
            membership.wake.notify_one();
        }
        // Partitions are taken from the assignment as it is now and reported as owned in the same
        // step, and not while a heartbeat that reported them as not owned is unanswered: such a
        // heartbeat must never be followed by reading them, or the coordinator could have handed
        // them to another member in between.
        let added: BTreeSet<TopicPartition> = {
            let mut state = membership.state.lock().expect("member lock");
            let added: BTreeSet<TopicPartition> = state
                .assignment
                .iter()
                .filter(|tp| !self.positions.contains_key(*tp))
                .filter(|tp| state.reported.as_ref().is_none_or(|reported| reported.contains(*tp)))
                .cloned()
                .collect();
            state.owned.extend(added.iter().cloned());
            added
        };
        if !added.is_empty() {
            tracing::debug!(member = %membership.member_id, ?added, "starting partitions");
        }
        if !added.is_empty()
            && let Err(e) = self.start(added.clone()).await
        {
            tracing::debug!(member = %membership.member_id, ?added, error = %e, "start failed");
            let mut state = membership.state.lock().expect("member lock");
            for tp in added.iter().filter(|tp| !self.positions.contains_key(*tp)) {
                state.owned.remove(tp);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Whether the member was fenced or removed since the last reconciliation: what was
    /// fetched meanwhile is not delivered (another member may own those partitions now).
    fn fenced(&self) -> bool {
        self.membership.as_ref().is_some_and(|m| m.state.lock().expect("member lock").lost)
    }

    fn drop_partitions(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.positions.remove(tp);
            self.paused.remove(tp);
        }
        self.buffer.retain(|r| !partitions.iter().any(|tp| tp.topic == r.topic && tp.partition == r.partition));
    }

    /// Starts reading `partitions` at the group's committed offsets, or by `auto_offset_reset`.
    async fn start(&mut self, partitions: BTreeSet<TopicPartition>) -> ClientResult<()> {
        let mut committed = BTreeMap::new();
        if let Some(group_id) = &self.config.group_id {
            for offset in self.client.fetch_offsets(group_id, to_wire(&partitions)).await? {
                committed.insert(TopicPartition::new(&offset.topic, offset.partition), offset.offset);
            }
        }
        // Every start offset first: the partitions start together or not at all (a failure is
        // retried whole at the next poll).
        let mut starts = Vec::with_capacity(partitions.len());
        for tp in &partitions {
            let offset = match committed.get(tp) {
                Some(offset) => *offset,
                None => {
                    let reset = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => SeekTo::Earliest,
                        OffsetReset::Latest => SeekTo::Latest,
                    };
                    self.resolve(tp, reset).await?
                }
            };
            starts.push((tp.clone(), offset));
        }
        for (tp, offset) in starts {
            self.positions.insert(tp, Position { fetch_offset: offset, consumed: offset });
        }
        if let Some(listener) = &mut self.listener {
            listener.get_mut().expect("listener lock").on_assigned(&partitions.into_iter().collect::<Vec<_>>());
        }
        Ok(())
    }

    async fn resolve(&self, tp: &TopicPartition, to: SeekTo) -> ClientResult<u64> {
        let (spec, ts) = match to {
            SeekTo::Earliest => (v1::OffsetSpec::Earliest, 0),
            SeekTo::Latest => (v1::OffsetSpec::Latest, 0),
            SeekTo::Timestamp(ms) => (v1::OffsetSpec::Timestamp, ms),
            SeekTo::Offset(offset) => return Ok(offset),
        };
        Ok(self.client.list_offsets(&tp.topic, tp.partition, spec, ts).await?.offset)
    }

    /// Fetches from every owned partition at once, within the prefetch bound.
    async fn fetch_round(&mut self) -> ClientResult<()> {
        if self.positions.is_empty() {
            // Nothing to read: wait for an assignment (or just a while, outside a group).
            match &self.membership {
                Some(m) => {
                    let _ = tokio::time::timeout(self.config.fetch_max_wait, m.answered.notified()).await;
                }
                None => tokio::time::sleep(self.config.fetch_max_wait).await,
            }
            return Ok(());
        }
        let fetching = self.positions.keys().filter(|tp| !self.paused.contains(*tp)).count();
        if fetching == 0 {
            return Ok(());
        }
        let share = (self.config.prefetch_records_max / fetching).max(1) as u32;
        let max_records = self.config.fetch_max_records.min(share);
        let wait = self.config.fetch_max_wait;
        let deadline = wait + self.client.config().request_timeout;
        let fetches = self.positions.iter().filter(|(tp, _)| !self.paused.contains(*tp)).map(|(tp, position)| {
            let request = v1::FetchRequest {
                topic: tp.topic.clone(),
                partition: tp.partition,
                offset: position.fetch_offset,
                max_bytes: 0,
                max_records,
                max_wait_ms: wait.as_millis() as u32,
                read_from_follower: false,
            };
            let client = self.client.clone();
            async move { (tp.clone(), tokio::time::timeout(deadline, client.fetch(request)).await) }
        });
        for (tp, result) in futures::future::join_all(fetches).await {
            match result {
                Ok(Ok(response)) => {
                    let Some(position) = self.positions.get_mut(&tp) else { continue };
                    for record in response.records {
                        position.fetch_offset = record.offset + 1;
                        self.buffer.push_back(ConsumerRecord {
                            topic: tp.topic.clone(),
                            partition: tp.partition,
                            offset: record.offset,
                            key: record.key,
                            value: record.value,
                            headers: record.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                            timestamp_ms: record.timestamp_ms,
                        });
                    }
                }
                // Beyond the end of the log that answered: a deposed leader that does not know it
                // yet (a Raft log never loses committed records), so ask again later. Only below
                // the log start (deleted by retention) does the position move.
                Ok(Err(e))
                    if e.code() == Some(Reason::OffsetOutOfRange) && !below_log_start(&e, self.positions.get(&tp)) =>
                {
                    tracing::debug!(partition = %tp, error = %e, "position beyond the answering leader's log; retrying");
                }
                Ok(Err(e)) if e.code() == Some(Reason::OffsetOutOfRange) => {
                    let reset = match self.config.auto_offset_reset {
                        OffsetReset::Earliest => SeekTo::Earliest,
                        OffsetReset::Latest => SeekTo::Latest,
                    };
                    let offset = self.resolve(&tp, reset).await?;
                    tracing::warn!(partition = %tp, offset, "position out of range; reset");
                    self.positions.insert(tp, Position { fetch_offset: offset, consumed: offset });
                }
                Ok(Err(e)) if !e.is_retriable() => return Err(e),
                Ok(Err(e)) => tracing::debug!(partition = %tp, error = %e, "fetch failed; retrying next poll"),
                Err(_) => tracing::debug!(partition = %tp, "fetch timed out; retrying next poll"),
            }
        }
        Ok(())
    }
}

/// Whether an OFFSET_OUT_OF_RANGE answer says the position is below the log start (retention
/// deleted what it points at), rather than beyond the end of the log that answered.
fn below_log_start(error: &ClientError, position: Option<&Position>) -> bool {
    let start = error.detail("log_start_offset").and_then(|s| s.parse::<u64>().ok());
    start.zip(position).is_some_and(|(start, position)| position.fetch_offset < start)
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Partitions grouped by topic, as the wire carries them.
fn to_wire(partitions: &BTreeSet<TopicPartition>) -> Vec<v1::TopicPartitions> {
    v1::TopicPartitions::group(partitions.iter().map(|tp| (tp.topic.as_str(), tp.partition)))
}

/// Commits `offsets` as the member (or outside the protocol without one). A stale epoch is
/// retried after the next heartbeat answer, a few times.
async fn commit_with(
    client: &Client,
    membership: Option<&Membership>,
    group_id: Option<&str>,
    offsets: &BTreeMap<TopicPartition, u64>,
) -> ClientResult<()> {
    let Some(group_id) = group_id else { return Ok(()) };
    if offsets.is_empty() {
        return Ok(());
    }
    const STALE_RETRIES_MAX: usize = 3;
    let mut attempt = 0;
    loop {
        let (member_id, member_epoch) = match membership {
            Some(m) => (m.member_id.clone(), m.state.lock().expect("member lock").epoch),
            None => (String::new(), -1),
        };
        let request = v1::CommitOffsetsRequest {
            group_id: group_id.to_string(),
            member_id,
            member_epoch,
            offsets: offsets
                .iter()
                .map(|(tp, offset)| v1::OffsetCommit {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *offset,
                    metadata: String::new(),
                })
                .collect(),
        };
        match client.commit_offsets(request).await {
            Err(e) if e.code() == Some(Reason::StaleMemberEpoch) && attempt < STALE_RETRIES_MAX => {
                attempt += 1;
                if let Some(m) = membership {
                    m.wake.notify_one();
                    let _ = tokio::time::timeout(Duration::from_secs(2), m.answered.notified()).await;
                }
            }
            other => return other,
        }
    }
}

/// Heartbeats until told to stop: joins, reports what the consumer owns, learns the assignment.
async fn heartbeat_loop(
    client: Arc<Client>,
    membership: Arc<Membership>,
    config: ConsumerConfig,
    topics: Vec<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut interval = Duration::from_secs(1);
    loop {
        let (epoch, owned) = {
            let mut state = membership.state.lock().expect("member lock");
            state.reported = Some(state.owned.clone());
            (state.epoch, state.owned.clone())
        };
        let request = v1::GroupHeartbeatRequest {
            group_id: membership.group_id.clone(),
            member_id: membership.member_id.clone(),
            member_epoch: epoch,
            client_id: config.client_id.clone(),
            subscription: (epoch == 0).then(|| v1::Subscription { topics: topics.clone() }),
            owned: Some(v1::OwnedPartitions { partitions: to_wire(&owned) }),
            session_timeout_ms: config.session_timeout.as_millis() as u32,
            rebalance_timeout_ms: config.rebalance_timeout.as_millis() as u32,
        };
        tracing::debug!(member = %membership.member_id, epoch, ?owned, "heartbeat");
        let answer = tokio::select! {
            biased;
            _ = stop.changed() => return,
            answer = client.group_heartbeat(request) => answer,
        };
        match answer {
            Ok(response) => {
                tracing::debug!(
                    group = %membership.group_id,
                    member = %membership.member_id,
                    epoch = response.member_epoch,
                    assignment = ?response.assignment,
                    "heartbeat answered"
                );
                let mut state = membership.state.lock().expect("member lock");
                state.reported = None;
                state.epoch = response.member_epoch;
                state.assignment = response
                    .assignment
                    .into_iter()
                    .flat_map(|t| t.partitions.into_iter().map(move |p| TopicPartition::new(&t.topic, p)))
                    .collect();
                interval = Duration::from_millis(u64::from(response.heartbeat_interval_ms.max(50)));
            }
            Err(e) if matches!(e.code(), Some(Reason::FencedMemberEpoch | Reason::UnknownMember)) => {
                tracing::warn!(group = %membership.group_id, error = %e, "the member was fenced; rejoining");
                let mut state = membership.state.lock().expect("member lock");
                state.reported = None;
                state.epoch = 0;
                state.assignment.clear();
                state.owned.clear();
                state.lost = true;
            }
            Err(e) => {
                tracing::warn!(group = %membership.group_id, error = %e, "group heartbeat failed");
                // The coordinator may have taken the report anyway: what it did not claim may be
                // another member's now, until an answer says otherwise.
                let mut state = membership.state.lock().expect("member lock");
                state.reported = None;
                state.assignment.retain(|tp| owned.contains(tp));
            }
        }
        membership.answered.notify_waiters();
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            _ = membership.wake.notified() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
