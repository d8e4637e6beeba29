//! An idempotent, ordered producer.
//!
//! The producer takes its id and epoch from the cluster (InitProducer). Each partition has one
//! sender task that batches queued records and keeps up to [`ProducerConfig::max_in_flight`]
//! batches in flight, each with the next sequence numbers, retrying a batch (same producer id,
//! epoch and sequence) across leader changes until it is acknowledged. The partition
//! deduplicates a retried batch, so a retry never appends twice, and appends a producer's
//! batches only in sequence order, so records stay in send order: a batch that arrives ahead of
//! its predecessor waits for it at the leader, or is refused (OUT_OF_ORDER_SEQUENCE) and sent
//! again once the batches before it are answered.
//!
//! When a batch fails with an unknown outcome (the retry deadline passed), the producer asks for
//! the next epoch before its next batch: a new epoch starts new sequences, so whether or not the
//! failed batch was appended, the next one is accepted. When a partition answers
//! UNKNOWN_PRODUCER_ID (it forgot an idle producer), the producer takes the next epoch and sends
//! the batch again at sequence 0. When it answers PRODUCER_FENCED (another instance initialized
//! the same producer name), the producer stops: that batch and every later one fail with it.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # let node = eddy_broker::InMemoryNode::start().await?;
//! use std::sync::Arc;
//! use eddy_client::{Client, ClientConfig, Producer, ProducerConfig, ProducerRecord, Reason};
//!
//! let client = Arc::new(Client::new(vec![node.address.clone()], ClientConfig::default())?);
//! client.create_topic("payments", 2, 1).await?;
//! // A named producer: a restarted instance of the service fences the one it replaces.
//! let config = || ProducerConfig { producer_name: Some("payment-service".into()), ..ProducerConfig::default() };
//! let old = Producer::new(client.clone(), "payments", config()).await?;
//! let record = |key: &str| ProducerRecord { key: Some(key.to_string().into()), value: "captured".into(), ..Default::default() };
//! let stored = old.send(record("order-1")).await?.await??;
//! println!("order-1 is at {}@{}", stored.partition, stored.offset);
//!
//! let new = Producer::new(client.clone(), "payments", config()).await?;
//! new.send(record("order-1")).await?.await??;
//! let fenced = old.send(record("order-1")).await?.await?.unwrap_err();
//! assert_eq!(fenced.code(), Some(Reason::ProducerFenced));
//! new.close().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_limits::PRODUCER_DEDUP_WINDOW_BATCHES;
use eddy_proto::{Reason, v1};
use eddy_telemetry::messaging;
use futures::StreamExt;
use futures::stream::FuturesOrdered;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::client::Client;
use crate::error::{ClientError, ClientResult};

/// Acknowledgement mode of a produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Quorum commit.
    All,
    /// The leader's acceptance.
    Leader,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    /// Send with a producer id and sequences so retries are deduplicated by the broker.
    pub idempotent: bool,
    /// Most records in one batch.
    pub batch_records_max: usize,
    /// Stop filling a batch once it holds this many bytes.
    pub batch_bytes_max: usize,
    /// How long a partially filled batch waits for more records.
    pub linger: Duration,
    /// Records queued per partition before `send` waits (backpressure).
    pub queue_records_max: usize,
    /// Most batches in flight per partition (1 to [`PRODUCER_DEDUP_WINDOW_BATCHES`], as Kafka's
    /// `max.in.flight.requests.per.connection`): a partition remembers that many batches per
    /// producer, so a retried batch is always recognized. An idempotent producer keeps its
    /// records in order with any number in flight; one that is not idempotent sends one batch at
    /// a time.
    pub max_in_flight: usize,
    /// A stable name for this logical producer (Kafka's `transactional.id`): every instance
    /// started with the name gets the name's producer id at a new epoch, and the older instances
    /// are fenced (their batches fail with PRODUCER_FENCED). `None`: a fresh id of its own.
    pub producer_name: Option<String>,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            idempotent: true,
            batch_records_max: 1_000,
            batch_bytes_max: 1 << 20,
            linger: Duration::from_millis(0),
            queue_records_max: 10_000,
            max_in_flight: PRODUCER_DEDUP_WINDOW_BATCHES,
            producer_name: None,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub key: Option<Bytes>,
    pub value: Bytes,
    pub headers: Vec<(String, Bytes)>,
    /// 0: the broker stamps its append time.
    pub timestamp_ms: i64,
    /// Explicit partition; otherwise the key's hash, or round-robin without a key.
    pub partition: Option<u32>,
}

/// Where an acknowledged record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: u32,
    pub offset: u64,
}

/// Resolves when the record is acknowledged (or definitively failed).
pub type Delivery = oneshot::Receiver<ClientResult<RecordMetadata>>;

struct Pending {
    record: v1::Record,
    done: oneshot::Sender<ClientResult<RecordMetadata>>,
    /// The span current where the record was sent (when there was a valid one): the parent of
    /// its batch's `send` span.
    caller: Option<SpanContext>,
}

/// The partition a key goes to: a stable hash of the key (CRC-32C-free plain CRC-32 of its
/// bytes) modulo the partition count, the same in every client and version.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    crc32fast::hash(key) % partitions
}

/// An idempotent producer's id and epoch, shared by its partition senders.
struct Identity {
    name: Option<String>,
    current: Mutex<Current>,
}

struct Current {
    producer_id: u64,
    epoch: u32,
    /// A batch of this epoch failed with an unknown outcome: take the next epoch before sending.
    stale: bool,
    /// Set once a newer instance fenced this one: every send fails with it.
    fenced: Option<ClientError>,
}

impl Identity {
    async fn init(client: &Client, name: Option<String>) -> ClientResult<Identity> {
        let answer = client.init_producer(name.as_deref(), None).await?;
        let current = Current { producer_id: answer.producer_id, epoch: answer.epoch, stale: false, fenced: None };
        Ok(Identity { name, current: Mutex::new(current) })
    }

    /// The id and epoch to send with, taking the next epoch first when one is needed.
    async fn current(&self, client: &Client) -> ClientResult<(u64, u32)> {
        let mut current = self.current.lock().await;
        if let Some(fenced) = &current.fenced {
            return Err(fenced.clone());
        }
        if current.stale {
            match client.init_producer(self.name.as_deref(), Some((current.producer_id, current.epoch))).await {
                Ok(answer) => {
                    tracing::debug!(producer_id = answer.producer_id, epoch = answer.epoch, "producer epoch bumped");
                    *current =
                        Current { producer_id: answer.producer_id, epoch: answer.epoch, stale: false, fenced: None };
                }
                Err(e) => {
                    if e.code() == Some(Reason::ProducerFenced) {
                        current.fenced = Some(e.clone());
                    }
                    return Err(e);
                }
            }
        }
        Ok((current.producer_id, current.epoch))
    }

    /// Asks for the next epoch before the next batch, unless another partition already moved
    /// past `epoch`.
    async fn retire(&self, epoch: u32) {
        let mut current = self.current.lock().await;
        if current.epoch == epoch {
            current.stale = true;
        }
    }

    async fn fence(&self, error: &ClientError) {
        self.current.lock().await.fenced.get_or_insert_with(|| error.clone());
    }
}

/// Sends records to one topic.
pub struct Producer {
    client: Arc<Client>,
    topic: String,
    partitions: u32,
    config: ProducerConfig,
    /// `None` for a producer that is not idempotent.
    identity: Option<Arc<Identity>>,
    /// Ordered, so closing drops the partition senders in the same order every time.
    senders: Mutex<BTreeMap<u32, mpsc::Sender<Pending>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    round_robin: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").field("topic", &self.topic).finish_non_exhaustive()
    }
}

impl Producer {
    /// A producer for `topic` (which must exist).
    pub async fn new(client: Arc<Client>, topic: &str, config: ProducerConfig) -> ClientResult<Producer> {
        let partitions = client.partition_count(topic).await?;
        if partitions == 0 {
            return Err(ClientError::Invalid(format!("topic {topic:?} has no partitions")));
        }
        // Deduplication needs the quorum's answer: an ACKS_LEADER producer is not idempotent.
        let config = ProducerConfig { idempotent: config.idempotent && config.acks == Acks::All, ..config };
        if !(1..=PRODUCER_DEDUP_WINDOW_BATCHES).contains(&config.max_in_flight) {
            return Err(ClientError::Invalid(format!(
                "max_in_flight must be 1 to {PRODUCER_DEDUP_WINDOW_BATCHES} (the batches a partition remembers per producer), not {}",
                config.max_in_flight
            )));
        }
        if config.producer_name.is_some() && !config.idempotent {
            return Err(ClientError::Invalid("a named producer must be idempotent, with acks=all".into()));
        }
        let identity = match config.idempotent {
            true => Some(Arc::new(Identity::init(&client, config.producer_name.clone()).await?)),
            false => None,
        };
        Ok(Producer {
            client,
            topic: topic.to_string(),
            partitions,
            config,
            identity,
            senders: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
            round_robin: std::sync::atomic::AtomicU32::new(rand::random()),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The producer id and epoch batches are sent with now; `None` when not idempotent.
    pub async fn producer_id_epoch(&self) -> Option<(u64, u32)> {
        let identity = self.identity.as_ref()?;
        let current = identity.current.lock().await;
        Some((current.producer_id, current.epoch))
    }

    /// Picks the partition of a record.
    pub fn partition_of(&self, record: &ProducerRecord) -> ClientResult<u32> {
        match (record.partition, &record.key) {
            (Some(p), _) if p >= self.partitions => Err(ClientError::Invalid(format!(
                "topic {:?} has no partition {p} (it has {})",
                self.topic, self.partitions
            ))),
            (Some(p), _) => Ok(p),
            (None, Some(key)) => Ok(partition_for_key(key, self.partitions)),
            (None, None) => Ok(self.round_robin.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.partitions),
        }
    }

    /// Queues a record; the returned [`Delivery`] resolves on acknowledgement. Waits while the
    /// partition's queue is full.
    pub async fn send(&self, record: ProducerRecord) -> ClientResult<Delivery> {
        let partition = self.partition_of(&record)?;
        let (done, delivery) = oneshot::channel();
        let caller = Some(opentelemetry::Context::current().span().span_context().clone()).filter(|c| c.is_valid());
        let pending = Pending {
            record: v1::Record {
                key: record.key,
                value: record.value,
                headers: record.headers.into_iter().map(|(key, value)| v1::Header { key, value }).collect(),
                timestamp_ms: record.timestamp_ms,
            },
            done,
            caller,
        };
        let sender = self.sender(partition).await;
        sender.send(pending).await.map_err(|_| ClientError::Invalid("the producer is closed".into()))?;
        Ok(delivery)
    }

    async fn sender(&self, partition: u32) -> mpsc::Sender<Pending> {
        let mut senders = self.senders.lock().await;
        if let Some(sender) = senders.get(&partition) {
            return sender.clone();
        }
        let (tx, rx) = mpsc::channel(self.config.queue_records_max);
        let worker = PartitionSender {
            client: self.client.clone(),
            topic: self.topic.clone(),
            partition,
            config: self.config.clone(),
            identity: self.identity.clone(),
            epoch: 0,
            next_sequence: 0,
        };
        self.tasks.lock().await.push(tokio::spawn(worker.run(rx)));
        senders.insert(partition, tx.clone());
        tx
    }

    /// Sends everything queued and waits until every record is acknowledged or failed.
    pub async fn close(self) {
        self.senders.lock().await.clear();
        for task in self.tasks.lock().await.drain(..) {
            let _ = task.await;
        }
    }
}

struct PartitionSender {
    client: Arc<Client>,
    topic: String,
    partition: u32,
    config: ProducerConfig,
    identity: Option<Arc<Identity>>,
    /// The epoch `next_sequence` counts in.
    epoch: u32,
    /// The sequence the next batch is sent with.
    next_sequence: u64,
}

/// Records taken from the queue for the next batch.
struct Staged {
    records: Vec<v1::Record>,
    dones: Vec<oneshot::Sender<ClientResult<RecordMetadata>>>,
    /// Counted as the broker counts them, so the batch stays within its limit (with the trace
    /// headers its records will be given).
    bytes: usize,
    /// The contexts its records were sent in.
    callers: Vec<SpanContext>,
    /// When its first record was taken.
    since: tokio::time::Instant,
}

impl Staged {
    fn new() -> Staged {
        Staged {
            records: Vec::new(),
            dones: Vec::new(),
            bytes: 0,
            callers: Vec::new(),
            since: tokio::time::Instant::now(),
        }
    }

    fn push(&mut self, pending: Pending) {
        self.bytes += eddy_proto::wire_record_size_bytes(&pending.record);
        if let Some(caller) = pending.caller {
            self.bytes += TRACE_HEADERS_BYTES + caller.trace_state().header().len();
            if !self.callers.contains(&caller) {
                self.callers.push(caller);
            }
        }
        self.records.push(pending.record);
        self.dones.push(pending.done);
    }

    fn is_full(&self, config: &ProducerConfig) -> bool {
        self.records.len() >= config.batch_records_max || self.bytes >= config.batch_bytes_max
    }
}

/// What the `traceparent` header and its framing add to a record, beyond the `tracestate`.
const TRACE_HEADERS_BYTES: usize = 96;

/// A batch on its way: the request (with the identity and sequence it was sent with), whom to
/// tell, and its `send` span (ended when it is answered, retries included).
struct Batch {
    request: v1::ProduceRequest,
    count: u64,
    dones: Vec<oneshot::Sender<ClientResult<RecordMetadata>>>,
    trace: messaging::Operation,
}

impl Batch {
    fn deliver(self, result: ClientResult<v1::ProduceResponse>) {
        self.trace.clone().end_with(&result, crate::client::reason_name);
        for (i, done) in self.dones.into_iter().enumerate() {
            let answer = result
                .as_ref()
                .map(|r| RecordMetadata { partition: r.partition, offset: r.base_offset + i as u64 })
                .map_err(Clone::clone);
            let _ = done.send(answer);
        }
    }

    /// The epoch and first sequence it was sent with (idempotent producers only).
    fn stamp(&self) -> Option<(u32, u64)> {
        self.request.producer.as_ref().map(|p| (p.epoch, p.first_sequence))
    }
}

type Sent = (Batch, ClientResult<v1::ProduceResponse>);

impl PartitionSender {
    /// Most batches in flight: [`ProducerConfig::max_in_flight`] for an idempotent producer, one
    /// otherwise (without sequences the partition could not put two of them back in order).
    fn max_in_flight(&self) -> usize {
        match self.identity {
            Some(_) => self.config.max_in_flight,
            None => 1,
        }
    }

    /// Sends batches as records arrive and answers them in send order. With nothing in flight, a
    /// batch goes as soon as it has records (after the linger); while batches are in flight,
    /// the next goes early only once it is full (up to [`Self::max_in_flight`] at once), and
    /// otherwise keeps filling until an answer comes: a producer limited by its own window keeps
    /// sending few large batches, one that outruns a round trip streams full ones. A failed batch
    /// stops the pipeline: what is in flight is awaited, and the batches that need it are sent
    /// again one at a time, so their order is kept (see [`Self::settle`]).
    async fn run(mut self, mut queue: mpsc::Receiver<Pending>) {
        let mut in_flight: FuturesOrdered<futures::future::BoxFuture<'static, Sent>> = FuturesOrdered::new();
        let mut staged: Option<Staged> = None;
        let mut open = true;
        loop {
            if let Some(batch) = staged.take_if(|s| {
                let full = s.is_full(&self.config);
                let lingered = !open || full || tokio::time::Instant::now() >= s.since + self.config.linger;
                (in_flight.is_empty() && lingered) || (full && in_flight.len() < self.max_in_flight())
            }) {
                let mut batch = self.batch_of(batch);
                // A batch of a new epoch must not overtake batches of the old one still in
                // flight: arriving first, it would fence them.
                if self.epoch_changes().await && !in_flight.is_empty() {
                    let mut sent = Vec::new();
                    while let Some(next) = in_flight.next().await {
                        sent.push(next);
                    }
                    self.settle(sent).await;
                }
                match self.stamp(&mut batch).await {
                    Ok(()) => {
                        let client = self.client.clone();
                        in_flight.push_back(Box::pin(async move {
                            let result = client.produce_in(batch.request.clone(), batch.trace.context()).await;
                            (batch, result)
                        }));
                    }
                    Err(e) => batch.deliver(Err(e)),
                }
                continue;
            }
            let full = staged.as_ref().is_some_and(|s| s.is_full(&self.config));
            let linger_until = staged.as_ref().filter(|_| in_flight.is_empty()).map(|s| s.since + self.config.linger);
            tokio::select! {
                biased;
                Some((batch, result)) = in_flight.next(), if !in_flight.is_empty() => match result {
                    Ok(response) => batch.deliver(Ok(response)),
                    Err(error) => {
                        let mut sent = vec![(batch, Err(error))];
                        while let Some(next) = in_flight.next().await {
                            sent.push(next);
                        }
                        self.settle(sent).await;
                    }
                },
                next = queue.recv(), if open && !full => match next {
                    Some(next) => {
                        let batch = staged.get_or_insert_with(Staged::new);
                        batch.push(next);
                        // Take whatever else is queued at once, up to a full batch.
                        while !batch.is_full(&self.config) {
                            let Ok(next) = queue.try_recv() else { break };
                            batch.push(next);
                        }
                    }
                    None => open = false,
                },
                () = tokio::time::sleep_until(linger_until.unwrap_or_else(tokio::time::Instant::now)),
                    if linger_until.is_some() => {}
                else => break,
            }
        }
    }

    /// The request for a batch of records.
    fn batch_of(&self, staged: Staged) -> Batch {
        let count = staged.records.len() as u64;
        let (parent, links) = messaging::batch_parent(&staged.callers);
        let trace = messaging::send(&self.topic, self.partition, staged.records.len(), &parent, links);
        let mut records = staged.records;
        crate::client::carry_trace(trace.context(), &mut records);
        let request = v1::ProduceRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            records,
            acks: match self.config.acks {
                Acks::All => v1::Acks::All,
                Acks::Leader => v1::Acks::Leader,
            } as i32,
            producer: None,
            timeout_ms: 0,
        };
        Batch { request, count, dones: staged.dones, trace }
    }

    /// Whether the next batch goes out in another epoch than the last one.
    async fn epoch_changes(&self) -> bool {
        let Some(identity) = &self.identity else { return false };
        let current = identity.current.lock().await;
        current.stale || current.epoch != self.epoch
    }

    /// Gives the batch the producer's identity and the next sequence (taking the next epoch
    /// first when one is needed).
    async fn stamp(&mut self, batch: &mut Batch) -> ClientResult<()> {
        let Some(identity) = self.identity.clone() else { return Ok(()) };
        let (producer_id, epoch) = identity.current(&self.client).await?;
        if epoch != self.epoch {
            self.epoch = epoch;
            self.next_sequence = 0;
        }
        batch.request.producer = Some(v1::ProducerIdentity { producer_id, epoch, first_sequence: self.next_sequence });
        self.next_sequence += batch.count;
        Ok(())
    }

    /// Answers the batches of a stopped pipeline, in send order; the first failed and none is
    /// in flight any more. Sequences are contiguous, so no batch after one that was not appended
    /// was appended either: each of those is sent again, one at a time, with the sequence it now
    /// follows. The failed batch itself is final unless the partition only found it out of order
    /// (it may have overtaken the batch before it) or forgot the producer: those are sent again
    /// too, once, as a single batch in flight would be.
    async fn settle(&mut self, sent: Vec<Sent>) {
        let mut resend = Vec::new();
        for (batch, result) in sent {
            match result {
                // (Only before any batch that was not appended: none after one can be.)
                Ok(response) => batch.deliver(Ok(response)),
                Err(e) => match e.code() {
                    Some(Reason::OutOfOrderSequence | Reason::UnknownProducerId) => {
                        self.rewind(&batch);
                        resend.push(batch);
                    }
                    _ if !resend.is_empty() && e.is_definite() => resend.push(batch),
                    _ => {
                        self.after_failure(&batch, &e).await;
                        batch.deliver(Err(e));
                    }
                },
            }
        }
        for batch in resend {
            let (batch, result) = self.send_alone(batch).await;
            batch.deliver(result);
        }
    }

    /// Sends one batch with nothing else in flight, until it is acknowledged or fails: through
    /// [`Client::produce`]'s one retry loop, which follows the leader. Keeps the sequence and the
    /// epoch right whatever the outcome.
    async fn send_alone(&mut self, mut batch: Batch) -> Sent {
        // A partition that forgot this producer (UNKNOWN_PRODUCER_ID) takes the batch at
        // sequence 0 of the next epoch: once more, then the error stands.
        for attempt in 0..2 {
            if let Err(e) = self.stamp(&mut batch).await {
                return (batch, Err(e));
            }
            let result = self.client.produce_in(batch.request.clone(), batch.trace.context()).await;
            if let Err(e) = &result {
                if e.code() == Some(Reason::UnknownProducerId) && attempt == 0 {
                    // Nothing was appended: a batch that had been would be in the window, which
                    // a partition forgets only after producer_idle_expiry_ms idle, far longer
                    // than a retry deadline. Take the next epoch and send it again.
                    self.rewind(&batch);
                    if let (Some(identity), Some((epoch, _))) = (&self.identity, batch.stamp()) {
                        identity.retire(epoch).await;
                    }
                    continue;
                }
                self.after_failure(&batch, e).await;
            }
            return (batch, result);
        }
        unreachable!("the second attempt returns")
    }

    /// Takes back the sequences of a batch that was not appended (and of every later one: none
    /// of them can have been).
    fn rewind(&mut self, batch: &Batch) {
        if let Some((epoch, first_sequence)) = batch.stamp()
            && epoch == self.epoch
        {
            self.next_sequence = self.next_sequence.min(first_sequence);
        }
    }

    /// What a final failure of a batch means for the batches after it.
    async fn after_failure(&mut self, batch: &Batch, e: &ClientError) {
        let (Some(identity), Some((epoch, _))) = (self.identity.clone(), batch.stamp()) else { return };
        match e.code() {
            Some(Reason::ProducerFenced) => identity.fence(e).await,
            // The partition's window and this sender disagree: start afresh.
            Some(Reason::OutOfOrderSequence) => identity.retire(epoch).await,
            // Refused before anything was written: the next batch takes its sequence.
            _ if e.is_definite() => self.rewind(batch),
            // Appended or not, nobody knows: a new epoch makes the next batch welcome either
            // way.
            _ => identity.retire(epoch).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More batches in flight than a partition remembers per producer would let a retried batch
    /// go unrecognized: refused when the producer is made, with the bound in the message.
    #[tokio::test]
    async fn max_in_flight_beyond_the_dedup_window_is_refused() {
        let node = eddy_broker::InMemoryNode::start().await.expect("node");
        let client = Arc::new(Client::new(vec![node.address.clone()], crate::ClientConfig::default()).unwrap());
        client.create_topic("bounded", 1, 1).await.expect("topic");
        for max_in_flight in [0, PRODUCER_DEDUP_WINDOW_BATCHES + 1] {
            let config = ProducerConfig { max_in_flight, ..ProducerConfig::default() };
            let error = Producer::new(client.clone(), "bounded", config).await.expect_err("out of range");
            assert!(matches!(&error, ClientError::Invalid(m) if m.contains("max_in_flight")), "{error}");
        }
        let config = ProducerConfig { max_in_flight: PRODUCER_DEDUP_WINDOW_BATCHES, ..ProducerConfig::default() };
        Producer::new(client, "bounded", config).await.expect("the largest allowed");
    }

    #[test]
    fn key_partitioning_is_stable() {
        // Pinned values: changing the hash would move every keyed record to another partition.
        assert_eq!(partition_for_key(b"order-1", 12), crc32fast::hash(b"order-1") % 12);
        assert_eq!(partition_for_key(b"order-1", 12), partition_for_key(b"order-1", 12));
        let spread: std::collections::BTreeSet<u32> =
            (0..100).map(|i| partition_for_key(format!("k{i}").as_bytes(), 4)).collect();
        assert_eq!(spread.len(), 4);
    }
}
