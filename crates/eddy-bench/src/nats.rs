//! The NATS JetStream driver, through `async-nats`.
//!
//! - A partition is one JetStream stream: `<name>-<p>`, bound to the one subject `<name>.<p>`,
//!   file storage, `replicas` copies. A JetStream stream is one Raft group with one leader, as
//!   an Eddy partition is, so N partitions are N streams, each with a leader of its own spread
//!   over the servers. (One stream with N subjects would be a single Raft group and a single
//!   leader: one partition with N keys, not N partitions.)
//! - An acknowledgement is JetStream's publish ack: the stream's leader has the message and a
//!   quorum of the stream's replicas accepted it. NATS does not fsync before it answers; the
//!   file store syncs on a timer (every 60 s in 2.9; the `sync_interval` setting came in 2.10).
//! - Publishing is JetStream's asynchronous publish: the message goes out at once and the ack
//!   comes back on an inbox; the client's own in-flight bound is set to the engine's window.
//!   With [`NatsOptions::idempotent_retries`] (W5) every message carries a `Nats-Msg-Id` and a
//!   publish that fails (no stream leader, no ack in time) is sent again with the same id until
//!   it is acknowledged or the retry deadline passes: JetStream's deduplication makes that safe,
//!   as Eddy's idempotent producer's retries are. Unlike Eddy's, these retries may reorder.
//! - Reading is an ephemeral pull consumer on the partition's stream, without acks
//!   (`AckPolicy::None`), deliver-all or deliver-new, pulling `batch_records_max` at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::context::{Context, ContextBuilder, PublishAckFuture, PublishError};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::{Client, Subject};
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use crate::driver::{AckFuture, Driver, Position, Publisher, Reader, StreamSpec, System};
use crate::error::{BenchError, BenchResult};

/// How long creating a stream may wait for JetStream (a fresh cluster elects its meta leader
/// first) and then for the stream's leader.
const STREAM_READY_WAIT: Duration = Duration::from_secs(60);
/// How long a JetStream API request waits for its answer. (A publish waits for its ack the
/// client's default time, 5 s: a message lost with a killed leader is only known by that.)
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// An ephemeral consumer left unused this long is removed by the server.
const CONSUMER_INACTIVE: Duration = Duration::from_secs(120);
/// Messages the client buffers per subscription (a pull consumer's deliveries), at most.
const SUBSCRIPTION_BUFFER_MESSAGES: usize = 128 * 1024;
/// How long an idempotent publish keeps retrying (Eddy's client gives up after the same).
const RETRY_DEADLINE: Duration = Duration::from_secs(60);
/// Backoff between retries of a publish: doubling from the first to the last.
const RETRY_BACKOFF_FIRST: Duration = Duration::from_millis(50);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Settings of the NATS driver.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsOptions {
    /// Publish with message ids and retry failed publishes (see the module documentation).
    pub idempotent_retries: bool,
}

/// Talks to a NATS cluster with JetStream.
#[derive(Debug, Clone)]
pub struct NatsDriver {
    client: Client,
    context: Context,
    options: NatsOptions,
}

/// The stream holding partition `p`.
fn stream_name(stream: &StreamSpec, partition: u32) -> String {
    format!("{}-{partition}", stream.name)
}

/// The subject of partition `p`.
fn subject(stream: &StreamSpec, partition: u32) -> String {
    format!("{}.{partition}", stream.name)
}

impl NatsDriver {
    /// Connects to the servers (`host:port` or `nats://host:port` each); the client picks one
    /// and fails over to the others.
    pub async fn connect(servers: &[String], options: NatsOptions) -> BenchResult<NatsDriver> {
        let urls: Vec<String> =
            servers.iter().map(|s| if s.contains("://") { s.clone() } else { format!("nats://{s}") }).collect();
        let client = async_nats::ConnectOptions::new()
            .subscription_capacity(SUBSCRIPTION_BUFFER_MESSAGES)
            .request_timeout(Some(API_TIMEOUT))
            .connect(urls)
            .await
            .map_err(|e| BenchError::nats("connect", e))?;
        let context = ContextBuilder::new().timeout(API_TIMEOUT).build(client.clone());
        Ok(NatsDriver { client, context, options })
    }

    async fn stream_info(&self, name: &str) -> BenchResult<async_nats::jetstream::stream::Info> {
        let stream = self.context.get_stream_no_info(name).await.map_err(|e| BenchError::nats("get stream", e))?;
        retry("stream info", || stream.get_info()).await
    }
}

/// Runs a JetStream API call until it succeeds or [`STREAM_READY_WAIT`] passes: after a
/// server is lost, the stream and the meta group elect new leaders first.
async fn retry<T, E: std::fmt::Display, F: Future<Output = Result<T, E>>>(
    operation: &'static str,
    mut call: impl FnMut() -> F,
) -> BenchResult<T> {
    let deadline = Instant::now() + STREAM_READY_WAIT;
    loop {
        match call().await {
            Ok(value) => return Ok(value),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(operation, error = %e, "JetStream call failed; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(BenchError::nats(operation, e)),
        }
    }
}

impl Driver for NatsDriver {
    type Publisher = NatsPublisher;
    type Reader = NatsReader;

    fn system(&self) -> System {
        System::Nats
    }

    async fn ensure_stream(&self, stream: &StreamSpec) -> BenchResult<u32> {
        let deadline = Instant::now() + STREAM_READY_WAIT;
        for p in 0..stream.partitions {
            let config = Config {
                name: stream_name(stream, p),
                subjects: vec![subject(stream, p)],
                storage: StorageType::File,
                num_replicas: stream.replicas as usize,
                retention: RetentionPolicy::Limits,
                discard: DiscardPolicy::Old,
                ..Default::default()
            };
            retry("create stream", || self.context.get_or_create_stream(config.clone())).await?;
        }
        for p in 0..stream.partitions {
            let name = stream_name(stream, p);
            loop {
                let led = self.stream_info(&name).await.ok().and_then(|info| info.cluster?.leader).is_some();
                if led {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(BenchError::Timeout {
                        what: format!("a leader for stream {name}"),
                        seconds: STREAM_READY_WAIT.as_secs(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(stream.partitions)
    }

    async fn publisher(&self, stream: &StreamSpec, in_flight_max: usize) -> BenchResult<NatsPublisher> {
        let context = ContextBuilder::new()
            .max_ack_inflight(in_flight_max.max(1))
            .backpressure_on_inflight(true)
            .build(self.client.clone());
        let subjects = (0..stream.partitions).map(|p| Subject::from(subject(stream, p))).collect();
        Ok(NatsPublisher {
            client: self.client.clone(),
            context,
            subjects,
            idempotent_retries: self.options.idempotent_retries,
            next_message_id: AtomicU64::new(0),
        })
    }

    async fn reader(
        &self,
        stream: &StreamSpec,
        partition: u32,
        from: Position,
        batch_records_max: u32,
    ) -> BenchResult<NatsReader> {
        let config = pull::Config {
            deliver_policy: match from {
                Position::Start => DeliverPolicy::All,
                Position::End => DeliverPolicy::New,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: CONSUMER_INACTIVE,
            ..Default::default()
        };
        let name = stream_name(stream, partition);
        let consumer =
            retry("create consumer", || self.context.create_consumer_on_stream(config.clone(), &name)).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch_records_max.max(1) as usize)
            .messages()
            .await
            .map_err(|e| BenchError::nats("pull messages", e))?;
        Ok(NatsReader { messages, batch_records_max: batch_records_max.max(1) as usize })
    }

    async fn stored_records(&self, stream: &StreamSpec, partition: u32) -> BenchResult<u64> {
        Ok(self.stream_info(&stream_name(stream, partition)).await?.state.messages)
    }

    async fn leader(&self, stream: &StreamSpec, partition: u32) -> BenchResult<String> {
        let info = self.stream_info(&stream_name(stream, partition)).await?;
        info.cluster
            .and_then(|c| c.leader)
            .ok_or_else(|| BenchError::NoLeader { stream: stream.name.clone(), partition })
    }
}

/// JetStream asynchronous publishes with acks.
#[derive(Debug)]
pub struct NatsPublisher {
    client: Client,
    context: Context,
    subjects: Vec<Subject>,
    idempotent_retries: bool,
    next_message_id: AtomicU64,
}

/// Publishes `payload` with message id `id` until it is acknowledged or the retry deadline
/// passes; `first` is the outcome of the first send.
async fn retry_until_acknowledged(
    context: Context,
    subject: Subject,
    payload: Bytes,
    id: String,
    first: Result<PublishAckFuture, PublishError>,
) -> Result<(), String> {
    let deadline = Instant::now() + RETRY_DEADLINE;
    let mut backoff = RETRY_BACKOFF_FIRST;
    let mut attempt = first;
    loop {
        let error = match attempt {
            Ok(ack) => match ack.await {
                Ok(_) => return Ok(()),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        if Instant::now() + backoff >= deadline {
            return Err(error);
        }
        tracing::debug!(%subject, %id, %error, "publish failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        let message = PublishMessage::build().payload(payload.clone()).message_id(&id);
        attempt = context.send_publish(subject.clone(), message).await;
    }
}

impl Publisher for NatsPublisher {
    async fn publish(&self, partition: u32, payload: Bytes) -> BenchResult<AckFuture> {
        let subject = self.subjects.get(partition as usize).cloned().ok_or_else(|| {
            BenchError::Usage(format!("partition {partition} is out of range ({} partitions)", self.subjects.len()))
        })?;
        if !self.idempotent_retries {
            let ack = self.context.publish(subject, payload).await.map_err(|e| BenchError::nats("publish", e))?;
            return Ok(ack.into_future().map(|answer| answer.map(|_| ()).map_err(|e| e.to_string())).boxed());
        }
        let id = self.next_message_id.fetch_add(1, Ordering::Relaxed).to_string();
        let message = PublishMessage::build().payload(payload.clone()).message_id(&id);
        let first = self.context.send_publish(subject.clone(), message).await;
        Ok(retry_until_acknowledged(self.context.clone(), subject, payload, id, first).boxed())
    }

    async fn close(self) {
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "flushing the NATS connection failed");
        }
    }
}

/// A pull consumer's message stream.
pub struct NatsReader {
    messages: pull::Stream,
    batch_records_max: usize,
}

impl std::fmt::Debug for NatsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsReader").finish_non_exhaustive()
    }
}

impl Reader for NatsReader {
    async fn next_batch(&mut self, wait: Duration) -> BenchResult<Vec<Bytes>> {
        let first = match tokio::time::timeout(wait, self.messages.next()).await {
            Err(_) => return Ok(Vec::new()),
            Ok(None) => return Err(BenchError::nats("read", "the consumer's message stream ended")),
            Ok(Some(message)) => message.map_err(|e| BenchError::nats("read", e))?,
        };
        let mut batch = vec![first.message.payload];
        // Whatever else has already arrived, without waiting.
        while batch.len() < self.batch_records_max {
            match self.messages.next().now_or_never() {
                Some(Some(message)) => batch.push(message.map_err(|e| BenchError::nats("read", e))?.message.payload),
                Some(None) | None => break,
            }
        }
        Ok(batch)
    }
}
