//! Reliable event processing over a consumer group: a [`Processor`] calls a handler for every
//! record, retries what fails with exponential backoff, moves what keeps failing through retry
//! topics to a dead-letter topic, and skips events it already processed.
//!
//! The rules (docs/processing.md has them at length):
//! - **At least once.** A partition's offset is committed only up to its first record that is
//!   neither handled nor dead-lettered, so a crash redelivers what was in flight and nothing is
//!   skipped.
//! - **Retries in place** ([`RetryPolicy`]): a handler's [`HandlerError::Retriable`] is retried
//!   with exponential backoff and jitter. A record being retried holds back the later records of
//!   its key, and only those: other keys, and records without a key, go on.
//! - **Retry topics** (optional, `<topic>.retry.<n>`): after the attempts in place, the record
//!   is produced to the next retry topic with a not-before time (its level's delay), consumed by
//!   the same group, and tried again once due. The record then no longer holds back its key: the
//!   later records of the key are handled meanwhile (the non-blocking trade-off), so use retry
//!   topics only where a key's events may be handled out of order after a failure.
//! - **Dead letters** (`<topic>.dlq`): a record that failed fatally ([`HandlerError::Fatal`]) or
//!   on every attempt is produced there with its key, value and headers and the failure headers
//!   of [`failure`]; only then is its offset passed.
//! - **Idempotency**: records carrying an event id (header `ce_id` by default) are skipped when
//!   the processed-id store holds the id, and the id is recorded once handled
//!   ([`idempotency`]).
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let node = eddy_broker::InMemoryNode::start().await?;
//! use std::sync::Arc;
//! use eddy_client::{Client, ClientConfig, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord};
//! use eddy_client::processing::{HandlerError, Processor, ProcessorConfig, RetryPolicy};
//!
//! let client = Arc::new(Client::new(vec![node.address.clone()], ClientConfig::default())?);
//! client.create_topic("payments", 1, 1).await?;
//! let producer = Producer::new(client.clone(), "payments", ProducerConfig::default()).await?;
//! for card in ["4242", "0000"] {
//!     producer.send(ProducerRecord { key: Some(card.into()), value: card.into(), ..Default::default() }).await?;
//! }
//! producer.close().await;
//!
//! let consumer = ConsumerConfig { auto_offset_reset: OffsetReset::Earliest, ..ConsumerConfig::group("shipping") };
//! let config = ProcessorConfig { retry: RetryPolicy::none(), ..ProcessorConfig::new(consumer) };
//! let processor = Processor::new(client.clone(), &["payments"], config).await?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let run = tokio::spawn(processor.run(
//!     |incoming| async move {
//!         match &incoming.record.value[..] {
//!             b"0000" => Err(HandlerError::fatal("card declined")),
//!             _ => Ok(()),
//!         }
//!     },
//!     async { let _ = stopped.await; },
//! ));
//! // The declined card's record lands in the dead-letter topic, with why.
//! let dead = client.describe_topic("payments.dlq").await?;
//! # let mut dead = dead;
//! # while dead.partitions[0].high_watermark != Some(1) {
//! #     tokio::time::sleep(std::time::Duration::from_millis(50)).await;
//! #     dead = client.describe_topic("payments.dlq").await?;
//! # }
//! assert_eq!(dead.partitions[0].high_watermark, Some(1));
//! stop.send(()).unwrap();
//! run.await??;
//! # Ok(()) }
//! ```

pub mod failure;
pub mod idempotency;
mod metrics;
mod retry;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::context::FutureExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use self::failure::Failure;
pub use self::idempotency::{FileProcessedIds, MemoryProcessedIds, ProcessedIds};
pub use self::retry::{HandlerError, RetryPolicy};
use self::retry::{Tried, try_in_place};
use crate::client::Client;
use crate::consumer::{Consumer, ConsumerConfig, ConsumerRecord, TopicPartition};
use crate::error::{ClientError, ClientResult};
use crate::producer::{Producer, ProducerConfig, ProducerRecord};

/// The header holding a record's event id by default (the CloudEvents Kafka binding's).
pub const EVENT_ID_HEADER_DEFAULT: &str = "ce_id";

/// Most retry topics a processor may use.
pub const RETRY_TOPICS_MAX: usize = 10;

/// Processor settings.
#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// The group consumer's settings; `group_id` is required. The processor commits itself:
    /// auto-commit and commit-on-revoke are turned off.
    pub consumer: ConsumerConfig,
    /// Retries in place.
    pub retry: RetryPolicy,
    /// One delay per retry topic (`<topic>.retry.1` first); empty: no retry topics.
    pub retry_topic_delays: Vec<Duration>,
    /// Dead-letter records that failed for good into `<topic>.dlq`. Without it such a record
    /// stops the processor ([`ClientError::Unhandled`]) and its offset is not passed.
    pub dead_letter: bool,
    /// Create missing retry and dead-letter topics (with the main topic's partition count and
    /// replication factor).
    pub create_topics: bool,
    /// The header holding a record's event id, for the processed-id store.
    pub event_id_header: String,
    /// Where the processed-id journal lives (`<dir>/processed-ids-<group>`); `None`: processed
    /// ids are kept in memory only. [`Processor::with_processed_ids`] sets another store.
    pub state_dir: Option<PathBuf>,
    /// Records of one partition in flight (read but not yet handled or dead-lettered) before
    /// the partition is paused.
    pub partition_in_flight_max: usize,
    /// Handler calls running at once.
    pub handlers_max: usize,
    /// How often handled offsets are committed.
    pub commit_interval: Duration,
    /// How long stopping waits for running handlers before abandoning them (their records are
    /// redelivered).
    pub shutdown_grace: Duration,
    /// For the retry and dead-letter topics' producers.
    pub producer: ProducerConfig,
}

impl ProcessorConfig {
    /// The defaults around a group consumer's settings.
    pub fn new(consumer: ConsumerConfig) -> Self {
        Self {
            consumer,
            retry: RetryPolicy::default(),
            retry_topic_delays: Vec::new(),
            dead_letter: true,
            create_topics: true,
            event_id_header: EVENT_ID_HEADER_DEFAULT.to_string(),
            state_dir: None,
            partition_in_flight_max: 1_000,
            handlers_max: 64,
            commit_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            producer: ProducerConfig::default(),
        }
    }

    /// Checks the settings, naming the bad field.
    pub fn validate(&self) -> ClientResult<()> {
        let invalid = |m: String| Err(ClientError::Invalid(m));
        if self.consumer.group_id.as_deref().is_none_or(str::is_empty) {
            return invalid("a processor needs consumer.group_id".into());
        }
        self.retry.validate().map_err(ClientError::Invalid)?;
        if self.retry_topic_delays.len() > RETRY_TOPICS_MAX {
            return invalid(format!("retry_topic_delays has at most {RETRY_TOPICS_MAX} entries"));
        }
        if self.event_id_header.is_empty() {
            return invalid("event_id_header must not be empty".into());
        }
        if self.partition_in_flight_max == 0 || self.handlers_max == 0 {
            return invalid("partition_in_flight_max and handlers_max must be at least 1".into());
        }
        if self.commit_interval.is_zero() {
            return invalid("commit_interval must be positive".into());
        }
        Ok(())
    }
}

/// A record as its handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// The record as read: from the main topic, or from a retry topic on a later round (its
    /// `topic`, `partition` and `offset` are then the retry topic's).
    pub record: ConsumerRecord,
    /// The main topic the record was first read from.
    pub topic: String,
    /// Its partition there.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// This attempt's number, from 1, counting every earlier attempt (in place and in retry
    /// topics).
    pub attempt: u32,
    /// The record's event id, from the event-id header.
    pub event_id: Option<String>,
}

/// A processor. See the module documentation.
pub struct Processor {
    client: Arc<Client>,
    topics: Vec<String>,
    group: String,
    config: ProcessorConfig,
    processed: Arc<dyn ProcessedIds>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processor").field("group", &self.group).field("topics", &self.topics).finish_non_exhaustive()
    }
}

impl Processor {
    /// Checks the settings and topics, creates missing retry and dead-letter topics (when
    /// `create_topics`), and opens the processed-id store.
    pub async fn new(client: Arc<Client>, topics: &[&str], config: ProcessorConfig) -> ClientResult<Processor> {
        config.validate()?;
        if topics.is_empty() {
            return Err(ClientError::Invalid("a processor needs at least one topic".into()));
        }
        let group = config.consumer.group_id.clone().unwrap_or_default();
        for topic in topics {
            if failure::parse_retry_topic(topic).is_some() || topic.ends_with(".dlq") {
                return Err(ClientError::Invalid(format!(
                    "{topic} is a retry or dead-letter topic; name the main topic and the processor reads the others"
                )));
            }
            let main = client.describe_topic(topic).await?;
            let mut derived: Vec<String> =
                (1..=config.retry_topic_delays.len()).map(|level| failure::retry_topic(topic, level)).collect();
            if config.dead_letter {
                derived.push(failure::dead_letter_topic(topic));
            }
            for name in derived {
                ensure_topic(&client, &name, &main, config.create_topics).await?;
            }
        }
        let processed: Arc<dyn ProcessedIds> = match &config.state_dir {
            Some(dir) => Arc::new(FileProcessedIds::open(
                dir.join(format!("processed-ids-{}", sanitize(&group))),
                idempotency::CAPACITY_DEFAULT,
            )?),
            None => Arc::new(MemoryProcessedIds::default()),
        };
        Ok(Processor { client, topics: topics.iter().map(|t| t.to_string()).collect(), group, config, processed })
    }

    /// Uses `store` for processed event ids instead of the configured one.
    pub fn with_processed_ids(mut self, store: impl ProcessedIds) -> Self {
        self.processed = Arc::new(store);
        self
    }

    /// Handles records with `handler` until `shutdown` resolves (then commits what was handled
    /// and leaves the group) or a record cannot be handled nor dead-lettered (then returns its
    /// error, having committed only what came before it).
    pub async fn run<H, Fut>(self, handler: H, shutdown: impl Future<Output = ()>) -> ClientResult<()>
    where
        H: Fn(Incoming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let mut consumer_config = self.config.consumer.clone();
        consumer_config.auto_commit_interval = None;
        consumer_config.commit_on_revoke = false;
        let mut subscribed: Vec<String> = self.topics.clone();
        for topic in &self.topics {
            subscribed
                .extend((1..=self.config.retry_topic_delays.len()).map(|level| failure::retry_topic(topic, level)));
        }
        let names: Vec<&str> = subscribed.iter().map(String::as_str).collect();
        let consumer = Consumer::subscribe(self.client.clone(), &names, consumer_config).await?;
        let shared = Arc::new(Shared {
            client: self.client.clone(),
            group: self.group.clone(),
            main_topics: self.topics.iter().cloned().collect(),
            handler,
            slots: Semaphore::new(self.config.handlers_max),
            processed: self.processed.clone(),
            producers: tokio::sync::Mutex::new(HashMap::new()),
            config: self.config.clone(),
        });
        let mut run = Run {
            shared,
            consumer,
            tracks: HashMap::new(),
            lanes: HashMap::new(),
            tasks: JoinSet::new(),
            last_commit: Instant::now(),
        };
        let result = run.until(shutdown).await;
        run.finish().await;
        result
    }
}

/// Makes sure a retry or dead-letter topic exists, like its main topic.
async fn ensure_topic(
    client: &Client,
    name: &str,
    main: &crate::v1::TopicDescription,
    create: bool,
) -> ClientResult<()> {
    match client.describe_topic(name).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_unknown_topic() && create => {
            let partitions = main.partitions.len() as u32;
            match client.create_topic(name, partitions, main.replication_factor).await {
                Ok(_) => Ok(()),
                // Another member of the group created it first.
                Err(e) if e.reason() == "TOPIC_ALREADY_EXISTS" => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) if e.is_unknown_topic() => Err(ClientError::Invalid(format!(
            "topic {name} does not exist and create_topics is off; create it with {} partitions",
            main.partitions.len()
        ))),
        Err(e) => Err(e),
    }
}

/// A group id as a file name.
fn sanitize(group: &str) -> String {
    group.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// What the record tasks share.
struct Shared<H> {
    client: Arc<Client>,
    group: String,
    main_topics: HashSet<String>,
    handler: H,
    slots: Semaphore,
    processed: Arc<dyn ProcessedIds>,
    producers: tokio::sync::Mutex<HashMap<String, Arc<Producer>>>,
    config: ProcessorConfig,
}

/// Records of one lane are handled one after the other: the records of one key in one
/// partition, or a record without a key alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Lane {
    source: TopicPartition,
    key: LaneKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LaneKey {
    Key(Bytes),
    Keyless(u64),
}

/// Per source partition: the offsets in flight and how far the partition was read.
#[derive(Debug)]
struct Track {
    in_flight: BTreeSet<u64>,
    /// One past the highest offset read.
    next: u64,
    committed: Option<u64>,
}

impl Track {
    /// The offset to commit: the first one in flight, or everything read.
    fn watermark(&self) -> u64 {
        self.in_flight.first().copied().unwrap_or(self.next)
    }
}

/// A record task's end.
struct Done {
    lane: Lane,
    offset: u64,
    outcome: ClientResult<()>,
}

/// The state of one [`Processor::run`].
struct Run<H> {
    shared: Arc<Shared<H>>,
    consumer: Consumer,
    tracks: HashMap<TopicPartition, Track>,
    /// Lanes with a record in a task, and the records queued behind it.
    lanes: HashMap<Lane, VecDeque<ConsumerRecord>>,
    tasks: JoinSet<Done>,
    last_commit: Instant,
}

impl<H, Fut> Run<H>
where
    H: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    async fn until(&mut self, shutdown: impl Future<Output = ()>) -> ClientResult<()> {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                step = self.step() => step?,
            }
        }
    }

    /// Reads and dispatches when some partition has room, or waits for a task; settles finished
    /// tasks; commits when due.
    async fn step(&mut self) -> ClientResult<()> {
        let owned = self.consumer.assignment();
        let all_paused = !owned.is_empty() && self.consumer.paused().len() == owned.len();
        if all_paused {
            // Every partition is full: wait for room (polling now and then, to follow the group).
            if let Ok(Some(done)) = tokio::time::timeout(Duration::from_millis(200), self.tasks.join_next()).await {
                self.settle(done)?;
            }
        }
        let records = self.consumer.poll().await?;
        self.forget_revoked();
        for record in records {
            self.dispatch(record);
        }
        while let Some(done) = self.tasks.try_join_next() {
            self.settle(done)?;
        }
        self.flow_control();
        metrics::in_flight(&self.shared.group, self.tracks.values().map(|t| t.in_flight.len()).sum());
        if self.last_commit.elapsed() >= self.shared.config.commit_interval {
            self.commit().await;
        }
        Ok(())
    }

    fn dispatch(&mut self, record: ConsumerRecord) {
        let source = TopicPartition::new(&record.topic, record.partition);
        let track = self.tracks.entry(source.clone()).or_insert(Track {
            in_flight: BTreeSet::new(),
            next: record.offset,
            committed: None,
        });
        track.in_flight.insert(record.offset);
        track.next = track.next.max(record.offset + 1);
        let key = match &record.key {
            Some(key) => LaneKey::Key(key.clone()),
            None => LaneKey::Keyless(record.offset),
        };
        let lane = Lane { source, key };
        match self.lanes.get_mut(&lane) {
            Some(queued) => queued.push_back(record),
            None => {
                self.lanes.insert(lane.clone(), VecDeque::new());
                self.spawn(lane, record);
            }
        }
    }

    fn spawn(&mut self, lane: Lane, record: ConsumerRecord) {
        let shared = self.shared.clone();
        self.tasks.spawn(async move {
            let offset = record.offset;
            let outcome = process(&shared, record).await;
            Done { lane, offset, outcome }
        });
    }

    /// A task ended: its offset is no longer in flight and its lane's next record starts.
    fn settle(&mut self, done: Result<Done, tokio::task::JoinError>) -> ClientResult<()> {
        let done = match done {
            Ok(done) => done,
            Err(e) if e.is_cancelled() => return Ok(()),
            Err(e) => {
                return Err(ClientError::Unhandled {
                    topic: String::new(),
                    partition: 0,
                    offset: 0,
                    error: format!("a handler panicked: {e}"),
                });
            }
        };
        done.outcome?;
        if let Some(track) = self.tracks.get_mut(&done.lane.source) {
            track.in_flight.remove(&done.offset);
        }
        match self.lanes.get_mut(&done.lane).and_then(VecDeque::pop_front) {
            Some(next) => self.spawn(done.lane, next),
            None => {
                self.lanes.remove(&done.lane);
            }
        }
        Ok(())
    }

    /// Drops what was queued for partitions the group took away (their new owner reads them
    /// from the last commit). Records already in a task finish; their commits are refused.
    fn forget_revoked(&mut self) {
        let owned: HashSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        self.tracks.retain(|tp, _| owned.contains(tp));
        for (lane, queued) in &mut self.lanes {
            if !owned.contains(&lane.source) {
                queued.clear();
            }
        }
    }

    /// Pauses partitions whose in-flight records reached the bound, resumes those at half.
    fn flow_control(&mut self) {
        let max = self.shared.config.partition_in_flight_max;
        let paused: HashSet<TopicPartition> = self.consumer.paused().into_iter().collect();
        for (tp, track) in &self.tracks {
            let count = track.in_flight.len();
            if count >= max && !paused.contains(tp) {
                self.consumer.pause(tp);
            } else if count <= max / 2 && paused.contains(tp) {
                self.consumer.resume(tp);
            }
        }
    }

    /// Commits each partition's watermark that moved.
    async fn commit(&mut self) {
        self.last_commit = Instant::now();
        let offsets: BTreeMap<TopicPartition, u64> = self
            .tracks
            .iter()
            .filter(|(_, track)| track.committed != Some(track.watermark()))
            .map(|(tp, track)| (tp.clone(), track.watermark()))
            .collect();
        if offsets.is_empty() {
            return;
        }
        match self.consumer.commit_offsets(offsets.clone()).await {
            Ok(()) => {
                for (tp, offset) in offsets {
                    if let Some(track) = self.tracks.get_mut(&tp) {
                        track.committed = Some(offset);
                    }
                }
            }
            Err(e) => tracing::warn!(group = %self.shared.group, error = %e, "committing handled offsets failed"),
        }
    }

    /// Lets running handlers finish (up to the grace period), commits, leaves the group.
    async fn finish(mut self) {
        let deadline = Instant::now() + self.shared.config.shutdown_grace;
        self.lanes.values_mut().for_each(VecDeque::clear);
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(Some(done)) => {
                    if let Err(e) = self.settle(done) {
                        tracing::warn!(group = %self.shared.group, error = %e, "a record failed while stopping");
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    self.tasks.abort_all();
                    break;
                }
            }
        }
        self.commit().await;
        metrics::in_flight(&self.shared.group, 0);
        if let Err(e) = self.consumer.leave().await {
            tracing::warn!(group = %self.shared.group, error = %e, "leaving the group failed");
        }
    }
}

/// Where a record read stands: its main topic's coordinates and its earlier failures.
struct Origin {
    topic: String,
    partition: u32,
    offset: u64,
    /// The retry topic it was read from (0: the main topic).
    level: usize,
    earlier: Option<Failure>,
}

fn origin_of(record: &ConsumerRecord, main_topics: &HashSet<String>) -> Origin {
    let main = |record: &ConsumerRecord| Origin {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        level: 0,
        earlier: None,
    };
    let Some((topic, level)) = failure::parse_retry_topic(&record.topic).filter(|(t, _)| main_topics.contains(*t))
    else {
        return main(record);
    };
    match Failure::from_headers(&record.headers) {
        Some(earlier) => Origin {
            topic: topic.to_string(),
            partition: earlier.original_partition,
            offset: earlier.original_offset,
            level,
            earlier: Some(earlier),
        },
        None => {
            tracing::warn!(topic = %record.topic, offset = record.offset, "a retry record without failure headers; handling it as new");
            Origin { topic: topic.to_string(), level, ..main(record) }
        }
    }
}

/// Everything one record goes through: its retry topic's delay, the processed-id check, the
/// attempts in place, then the next retry topic or the dead-letter topic.
async fn process<H, Fut>(shared: &Shared<H>, record: ConsumerRecord) -> ClientResult<()>
where
    H: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let origin = origin_of(&record, &shared.main_topics);
    let (group, topic) = (shared.group.as_str(), origin.topic.as_str());
    if origin.level > 0
        && let Some(not_before) =
            failure::text(&record.headers, failure::NOT_BEFORE_MS).and_then(|v| v.parse::<i64>().ok())
    {
        let wait_ms: i64 = not_before - failure::now_ms();
        if wait_ms > 0 {
            tokio::time::sleep(Duration::from_millis(wait_ms as u64)).await;
        }
    }
    let event_id = failure::text(&record.headers, &shared.config.event_id_header)
        .filter(|id| idempotency::validate_event_id(id).is_ok())
        .map(str::to_string);
    if let Some(id) = &event_id
        && shared.processed.contains(id).await?
    {
        metrics::duplicate(group, topic);
        return Ok(());
    }
    let earlier_attempts = origin.earlier.as_ref().map_or(0, |f| f.attempts);
    let earlier_first = origin.earlier.as_ref().map(|f| (f.first_error.clone(), f.first_failure_ms));
    let first_failure_ms = std::sync::Mutex::new(earlier_first.as_ref().map(|(_, ms)| *ms));
    let tried = try_in_place(
        &shared.config.retry,
        earlier_attempts + 1,
        earlier_first.map(|(error, _)| error),
        |attempt| {
            let incoming = Incoming {
                record: record.clone(),
                topic: origin.topic.clone(),
                partition: origin.partition,
                offset: origin.offset,
                attempt,
                event_id: event_id.clone(),
            };
            let first_failure_ms = &first_failure_ms;
            async move {
                let _slot = shared.slots.acquire().await.expect("the handler slots are never closed");
                let span = incoming.record.process_span(Some(group));
                let started = Instant::now();
                let result = (shared.handler)(incoming).with_context(span.context().clone()).await;
                metrics::handler_duration(group, topic, started.elapsed());
                span.end_with(&result, |e| if e.is_fatal() { "FATAL".into() } else { "RETRIABLE".into() });
                if let Err(e) = &result {
                    metrics::handler_failure(group, topic, e.is_fatal());
                    first_failure_ms.lock().expect("lock").get_or_insert_with(failure::now_ms);
                }
                result
            }
        },
        |_, _| metrics::retried(group, topic, "in_place"),
    )
    .await;
    let (attempts, first_error, last_error, fatal) = match tried {
        Tried::Handled { .. } => {
            metrics::handled(group, topic);
            if let Some(id) = &event_id
                && let Err(e) = shared.processed.insert(id).await
            {
                // Handled all the same: a redelivery would run the handler again.
                tracing::warn!(group, topic, event_id = %id, error = %e, "recording a processed event id failed");
            }
            return Ok(());
        }
        Tried::Failed { attempts, first_error, last_error, fatal } => (attempts, first_error, last_error, fatal),
    };
    let now = failure::now_ms();
    let failed = Failure {
        original_topic: origin.topic.clone(),
        original_partition: origin.partition,
        original_offset: origin.offset,
        group: group.to_string(),
        attempts,
        first_error,
        last_error,
        first_failure_ms: first_failure_ms.into_inner().expect("lock").unwrap_or(now),
        last_failure_ms: now,
    };
    let delays = &shared.config.retry_topic_delays;
    let (destination, extra) = if !fatal && origin.level < delays.len() {
        let not_before = now + delays[origin.level].as_millis() as i64;
        metrics::retried(group, topic, "retry_topic");
        (failure::retry_topic(topic, origin.level + 1), (failure::NOT_BEFORE_MS, not_before.to_string()))
    } else if shared.config.dead_letter {
        let reason = if fatal { "FATAL" } else { "RETRIES_EXHAUSTED" };
        metrics::dead_lettered(group, topic, reason);
        (failure::dead_letter_topic(topic), (failure::DLQ_REASON, reason.to_string()))
    } else {
        return Err(ClientError::Unhandled {
            topic: origin.topic,
            partition: origin.partition,
            offset: origin.offset,
            error: failed.last_error,
        });
    };
    tracing::info!(group, topic, partition = origin.partition, offset = origin.offset, attempts, %destination,
        error = %failed.last_error, "record failed; moving it on");
    let forwarded = ProducerRecord {
        key: record.key.clone(),
        value: record.value.clone(),
        headers: failed.onto(&record.headers, &[(extra.0, extra.1)]),
        timestamp_ms: record.timestamp_ms,
        partition: None,
    };
    forward(shared, &destination, forwarded).await
}

/// Produces a failed record to a retry or dead-letter topic, retrying until acknowledged:
/// the source offset must not be passed before. A definite refusal (the topic is gone, the
/// record is too large) stops the processor.
async fn forward<H>(shared: &Shared<H>, topic: &str, record: ProducerRecord) -> ClientResult<()> {
    let mut wait = Duration::from_millis(100);
    loop {
        let producer = producer_for(shared, topic).await?;
        let delivered = match producer.send(record.clone()).await {
            Ok(delivery) => delivery.await.unwrap_or_else(|_| Err(ClientError::Invalid("producer closed".into()))),
            Err(e) => Err(e),
        };
        match delivered {
            Ok(_) => return Ok(()),
            Err(e) if e.is_retriable() || e.reason() == "OUTCOME_UNKNOWN" || e.reason() == "PRODUCER_FENCED" => {
                tracing::warn!(topic, error = %e, "producing a failed record failed; retrying");
                // A producer whose batch's outcome is unknown takes a new epoch: start afresh.
                shared.producers.lock().await.remove(topic);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn producer_for<H>(shared: &Shared<H>, topic: &str) -> ClientResult<Arc<Producer>> {
    let mut producers = shared.producers.lock().await;
    if let Some(producer) = producers.get(topic) {
        return Ok(producer.clone());
    }
    let producer = Arc::new(Producer::new(shared.client.clone(), topic, shared.config.producer.clone()).await?);
    producers.insert(topic.to_string(), producer.clone());
    Ok(producer)
}
