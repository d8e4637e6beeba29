//! An idempotent, ordered producer.
//!
//! Each partition has one sender task that batches queued records and keeps exactly one batch in
//! flight, retrying it (same producer id, epoch and sequence) across leader changes until it is
//! acknowledged. The partition deduplicates a retried batch, so a retry never appends twice, and
//! one batch in flight keeps each partition's records in send order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use eddy_proto::v1;
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
    /// The producer's id for deduplication; `None` picks a random one. Two live producers must
    /// not share an id.
    pub producer_id: Option<u64>,
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
            producer_id: None,
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
}

/// The partition a key goes to: a stable hash of the key (CRC-32C-free plain CRC-32 of its
/// bytes) modulo the partition count, the same in every client and version.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    crc32fast::hash(key) % partitions
}

/// Sends records to one topic.
pub struct Producer {
    client: Arc<Client>,
    topic: String,
    partitions: u32,
    config: ProducerConfig,
    producer_id: u64,
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
        // A random id: collisions between 2^63 ids are not a practical concern.
        let producer_id = config.producer_id.unwrap_or_else(|| rand::random::<u64>() >> 1);
        Ok(Producer {
            client,
            topic: topic.to_string(),
            partitions,
            config,
            producer_id,
            senders: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(Vec::new()),
            round_robin: std::sync::atomic::AtomicU32::new(producer_id as u32),
        })
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
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
        let pending = Pending {
            record: v1::Record {
                key: record.key,
                value: record.value,
                headers: record.headers.into_iter().map(|(key, value)| v1::Header { key, value }).collect(),
                timestamp_ms: record.timestamp_ms,
            },
            done,
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
            producer_id: self.producer_id,
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
    producer_id: u64,
    epoch: u32,
    next_sequence: u64,
}

impl PartitionSender {
    async fn run(mut self, mut queue: mpsc::Receiver<Pending>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            // Counted as the broker counts them, so the batch stays within its limit.
            let mut bytes = eddy_proto::wire_record_size_bytes(&batch[0].record);
            let linger_until = tokio::time::Instant::now() + self.config.linger;
            while batch.len() < self.config.batch_records_max && bytes < self.config.batch_bytes_max {
                let next = match queue.try_recv() {
                    Ok(next) => Some(next),
                    Err(mpsc::error::TryRecvError::Empty) if !self.config.linger.is_zero() => {
                        tokio::time::timeout_at(linger_until, queue.recv()).await.ok().flatten()
                    }
                    Err(_) => None,
                };
                match next {
                    Some(next) => {
                        bytes += eddy_proto::wire_record_size_bytes(&next.record);
                        batch.push(next);
                    }
                    None => break,
                }
            }
            self.send_batch(batch).await;
        }
    }

    async fn send_batch(&mut self, batch: Vec<Pending>) {
        let count = batch.len() as u64;
        let (records, dones): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.record, p.done)).unzip();
        let request = v1::ProduceRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            records,
            acks: match self.config.acks {
                Acks::All => v1::Acks::All,
                Acks::Leader => v1::Acks::Leader,
            } as i32,
            producer: self.config.idempotent.then_some(v1::ProducerIdentity {
                producer_id: self.producer_id,
                epoch: self.epoch,
                first_sequence: self.next_sequence,
            }),
            timeout_ms: 0,
        };
        let result = self.send_with_retries(request).await;
        match &result {
            Ok(_) => self.next_sequence += count,
            Err(_) => {
                // The batch may or may not have been appended. A new epoch starts a new sequence
                // space, so the next batch is accepted either way.
                self.epoch += 1;
                self.next_sequence = 0;
            }
        }
        for (i, done) in dones.into_iter().enumerate() {
            let answer = result
                .as_ref()
                .map(|r| RecordMetadata { partition: r.partition, offset: r.base_offset + i as u64 })
                .map_err(Clone::clone);
            let _ = done.send(answer);
        }
    }

    /// Sends one batch until it is acknowledged, or fails with a non-retriable error, or the
    /// retry deadline passes: [`Client::produce`]'s one retry loop, which follows the leader.
    async fn send_with_retries(&self, request: v1::ProduceRequest) -> ClientResult<v1::ProduceResponse> {
        self.client.produce(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
