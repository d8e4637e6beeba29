//! The Eddy driver: `eddy-client`'s idempotent [`Producer`] for publishing and partition-leader
//! fetches for reading.
//!
//! - A partition is an Eddy partition: one Raft group with its own leader.
//! - An acknowledgement (with [`Acks::All`], the default) means the record's batch is fsynced
//!   on a quorum of replicas and applied by the leader.
//! - The producer batches what is queued for a partition (up to `batch_records_max`) and keeps
//!   one batch in flight per partition; its queue holds the engine's whole in-flight window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eddy_client::{Acks, Client, ClientConfig, Producer, ProducerConfig, ProducerRecord, Reason, v1};
use futures::FutureExt;

use crate::driver::{AckFuture, Driver, Position, Publisher, Reader, StreamSpec, System};
use crate::error::{BenchError, BenchResult};

/// How long [`Driver::ensure_stream`] waits for every partition to have a leader.
const LEADERS_WAIT: Duration = Duration::from_secs(30);
/// Upper bound on a fetch answer's record bytes.
const FETCH_BYTES_MAX: u32 = 16 << 20;

/// Settings of the Eddy driver.
#[derive(Debug, Clone)]
pub struct EddyOptions {
    /// Acknowledgement mode (`All`: quorum fsync before the answer).
    pub acks: Acks,
    /// Most records in one produce request.
    pub batch_records_max: usize,
}

impl Default for EddyOptions {
    fn default() -> Self {
        Self { acks: Acks::All, batch_records_max: 500 }
    }
}

/// Talks to an Eddy cluster.
#[derive(Debug, Clone)]
pub struct EddyDriver {
    client: Arc<Client>,
    options: EddyOptions,
}

impl EddyDriver {
    /// A driver for the cluster reachable through `brokers` (`host:port` each).
    pub fn connect(brokers: Vec<String>, options: EddyOptions) -> BenchResult<EddyDriver> {
        Ok(Self::with_client(Arc::new(Client::new(brokers, ClientConfig::default())?), options))
    }

    /// A driver sharing an existing client.
    pub fn with_client(client: Arc<Client>, options: EddyOptions) -> EddyDriver {
        EddyDriver { client, options }
    }
}

impl Driver for EddyDriver {
    type Publisher = EddyPublisher;
    type Reader = EddyReader;

    fn system(&self) -> System {
        System::Eddy
    }

    async fn ensure_stream(&self, stream: &StreamSpec) -> BenchResult<u32> {
        match self.client.describe_topic(&stream.name).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(Reason::UnknownTopic) => {
                self.client.create_topic(&stream.name, stream.partitions, stream.replicas).await?;
            }
            Err(e) => return Err(e.into()),
        }
        let deadline = Instant::now() + LEADERS_WAIT;
        loop {
            let topic = self.client.describe_topic(&stream.name).await?;
            if topic.partitions.iter().all(|p| p.leader.is_some() && p.high_watermark.is_some()) {
                return Ok(topic.partitions.len() as u32);
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!("a leader for every partition of topic {}", stream.name),
                    seconds: LEADERS_WAIT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn publisher(&self, stream: &StreamSpec, in_flight_max: usize) -> BenchResult<EddyPublisher> {
        let config = ProducerConfig {
            acks: self.options.acks,
            batch_records_max: self.options.batch_records_max,
            // The engine bounds what is in flight; the queue never makes `send` wait below it.
            queue_records_max: in_flight_max.max(1),
            ..Default::default()
        };
        let producer = Producer::new(self.client.clone(), &stream.name, config).await?;
        Ok(EddyPublisher { producer })
    }

    async fn reader(
        &self,
        stream: &StreamSpec,
        partition: u32,
        from: Position,
        batch_records_max: u32,
    ) -> BenchResult<EddyReader> {
        let spec = match from {
            Position::Start => v1::OffsetSpec::Earliest,
            Position::End => v1::OffsetSpec::Latest,
        };
        let offset = self.client.list_offsets(&stream.name, partition, spec, 0).await?.offset;
        Ok(EddyReader { client: self.client.clone(), topic: stream.name.clone(), partition, offset, batch_records_max })
    }

    async fn stored_records(&self, stream: &StreamSpec, partition: u32) -> BenchResult<u64> {
        let start = self.client.list_offsets(&stream.name, partition, v1::OffsetSpec::Earliest, 0).await?.offset;
        let end = self.client.list_offsets(&stream.name, partition, v1::OffsetSpec::Latest, 0).await?.offset;
        Ok(end.saturating_sub(start))
    }

    async fn leader(&self, stream: &StreamSpec, partition: u32) -> BenchResult<String> {
        let topic = self.client.describe_topic(&stream.name).await?;
        topic
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .and_then(|p| p.leader)
            .map(|id| id.to_string())
            .ok_or_else(|| BenchError::NoLeader { stream: stream.name.clone(), partition })
    }
}

/// Publishes through one idempotent [`Producer`].
#[derive(Debug)]
pub struct EddyPublisher {
    producer: Producer,
}

impl Publisher for EddyPublisher {
    async fn publish(&self, partition: u32, payload: Bytes) -> BenchResult<AckFuture> {
        let record = ProducerRecord { value: payload, partition: Some(partition), ..Default::default() };
        let delivery = self.producer.send(record).await?;
        Ok(delivery
            .map(|answer| match answer {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("the producer dropped the record".to_string()),
            })
            .boxed())
    }

    async fn close(self) {
        self.producer.close().await;
    }
}

/// Fetches one partition from its leader.
#[derive(Debug)]
pub struct EddyReader {
    client: Arc<Client>,
    topic: String,
    partition: u32,
    offset: u64,
    batch_records_max: u32,
}

impl Reader for EddyReader {
    async fn next_batch(&mut self, wait: Duration) -> BenchResult<Vec<Bytes>> {
        let request = v1::FetchRequest {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            max_bytes: FETCH_BYTES_MAX,
            max_records: self.batch_records_max,
            max_wait_ms: wait.as_millis().min(u128::from(u32::MAX)) as u32,
            read_from_follower: false,
        };
        let response = self.client.fetch(request).await?;
        if let Some(last) = response.records.last() {
            self.offset = last.offset + 1;
        }
        Ok(response.records.into_iter().map(|r| r.value).collect())
    }
}
