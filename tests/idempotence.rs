//! Producer guarantees against a real cluster: answers lost after the append never duplicate a
//! record of an idempotent producer (they do duplicate a plain one's, which shows the fault
//! bites); a second instance of a named producer fences the first; a producer a partition forgot
//! after its idle expiry re-initializes by itself and loses nothing.
//!
//! Answers are lost by the client's own connection: a stream wrapper that reads the HTTP/2
//! frames coming back and, for every other produce request (a large DATA frame sent on a
//! stream), cuts the connection at the moment the answer arrives: after the broker appended the
//! batch, before the client learns of it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use eddy_client::{
    Client, ClientConfig, ClientResult, Connect, Producer, ProducerConfig, ProducerRecord, Reason, endpoint, v1,
};
use hyper_util::rt::TokioIo;
use support::Cluster;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::{Channel, Uri};

const PARTITIONS: u32 = 2;
/// A produce request's DATA frame is at least this large (its records are 1 KiB each); no other
/// request the client sends is.
const PRODUCE_FRAME_MIN: usize = 1_000;
const VALUE_PAD: usize = 1_024;

/// Shared by every connection of one client: which produce answers to lose.
#[derive(Default)]
struct Faults {
    answers: AtomicU64,
    cut: AtomicU64,
    /// The most produce requests one connection had waiting for their answers at once.
    most_in_flight: AtomicU64,
}

impl Faults {
    /// Loses every other produce answer.
    fn lose_next(&self) -> bool {
        let lose = self.answers.fetch_add(1, Ordering::SeqCst).is_multiple_of(2);
        if lose {
            self.cut.fetch_add(1, Ordering::SeqCst);
        }
        lose
    }
}

/// Splits a byte stream into HTTP/2 frames (after `skip` bytes of preface).
#[derive(Default)]
struct FrameSplitter {
    skip: usize,
    buffer: Vec<u8>,
}

impl FrameSplitter {
    /// Feeds bytes; returns the complete frames as (type, stream id, payload length, whole frame).
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<(u8, u32, usize, Vec<u8>)> {
        let skipped = self.skip.min(bytes.len());
        self.skip -= skipped;
        bytes = &bytes[skipped..];
        self.buffer.extend_from_slice(bytes);
        let mut frames = Vec::new();
        while self.buffer.len() >= 9 {
            let length =
                (usize::from(self.buffer[0]) << 16) | (usize::from(self.buffer[1]) << 8) | usize::from(self.buffer[2]);
            if self.buffer.len() < 9 + length {
                break;
            }
            let kind = self.buffer[3];
            let stream =
                u32::from_be_bytes([self.buffer[5], self.buffer[6], self.buffer[7], self.buffer[8]]) & 0x7fff_ffff;
            let frame: Vec<u8> = self.buffer.drain(..9 + length).collect();
            frames.push((kind, stream, length, frame));
        }
        frames
    }
}

const DATA: u8 = 0;

/// A client connection that loses produce answers as [`Faults`] decides.
struct LossyStream {
    inner: TcpStream,
    faults: Arc<Faults>,
    sent: FrameSplitter,
    received: FrameSplitter,
    produce_streams: BTreeSet<u32>,
    ready: Vec<u8>,
    dead: bool,
}

impl LossyStream {
    fn new(inner: TcpStream, faults: Arc<Faults>) -> Self {
        Self {
            inner,
            faults,
            // The client's connection preface ("PRI * HTTP/2.0...") precedes its frames.
            sent: FrameSplitter { skip: 24, buffer: Vec::new() },
            received: FrameSplitter::default(),
            produce_streams: BTreeSet::new(),
            ready: Vec::new(),
            dead: false,
        }
    }

    fn reset() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "answer lost (test fault)")
    }
}

impl AsyncRead for LossyStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.dead {
                return Poll::Ready(Err(Self::reset()));
            }
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.drain(..n);
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut chunk_buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk_buf) {
                Poll::Ready(Ok(())) if chunk_buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    for (kind, stream, _, frame) in this.received.feed(chunk_buf.filled()) {
                        let answer = kind == DATA && this.produce_streams.remove(&stream);
                        if answer && this.faults.lose_next() {
                            this.dead = true;
                            let _ = Pin::new(&mut this.inner).poll_shutdown(cx);
                            break;
                        }
                        this.ready.extend_from_slice(&frame);
                    }
                }
                other => return other,
            }
        }
    }
}

impl AsyncWrite for LossyStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.dead {
            return Poll::Ready(Err(Self::reset()));
        }
        let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, data))?;
        for (kind, stream, length, _) in this.sent.feed(&data[..written]) {
            if kind == DATA && length >= PRODUCE_FRAME_MIN {
                this.produce_streams.insert(stream);
                this.faults.most_in_flight.fetch_max(this.produce_streams.len() as u64, Ordering::SeqCst);
            }
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Connects every channel through a [`LossyStream`].
struct LossyConnect(Arc<Faults>);

impl Connect for LossyConnect {
    fn connect(&self, address: &str, config: &ClientConfig) -> ClientResult<Channel> {
        let faults = self.0.clone();
        let connector = tower::service_fn(move |uri: Uri| {
            let faults = faults.clone();
            async move {
                let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
                let stream = TcpStream::connect(authority).await?;
                stream.set_nodelay(true)?;
                Ok::<_, io::Error>(TokioIo::new(LossyStream::new(stream, faults)))
            }
        });
        Ok(endpoint(address, config)?.connect_with_connector_lazy(connector))
    }
}

fn record(tag: &str, n: usize) -> ProducerRecord {
    let value = format!("{tag}-{n:05}-{}", "x".repeat(VALUE_PAD));
    ProducerRecord {
        value: Bytes::from(value),
        partition: Some((n % PARTITIONS as usize) as u32),
        ..Default::default()
    }
}

/// Every record of the topic, by partition, in offset order (values cut to their tag and number).
async fn read_all(client: &Client, topic: &str) -> BTreeMap<u32, Vec<String>> {
    let mut out = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let end = client.list_offsets(topic, partition, v1::OffsetSpec::Latest, 0).await.unwrap().high_watermark;
        let mut values = Vec::new();
        while (values.len() as u64) < end {
            let request = v1::FetchRequest {
                topic: topic.into(),
                partition,
                offset: values.len() as u64,
                max_bytes: 0,
                max_records: 0,
                max_wait_ms: 0,
                read_from_follower: false,
            };
            for r in client.fetch(request).await.unwrap().records {
                let value = String::from_utf8_lossy(&r.value).into_owned();
                values.push(value[..value.find("-x").unwrap()].to_string());
            }
        }
        out.insert(partition, values);
    }
    out
}

/// Sends `count` records through a client whose connections lose every other produce answer;
/// returns how many answers were lost and the most produce requests a connection had in flight.
async fn send_through_lossy_connections(brokers: &[String], topic: &str, idempotent: bool, count: usize) -> (u64, u64) {
    let faults = Arc::new(Faults::default());
    let config = ClientConfig { retry_backoff_initial: Duration::from_millis(10), ..ClientConfig::default() };
    let client = Arc::new(Client::with_connector(brokers.to_vec(), config, LossyConnect(faults.clone())).unwrap());
    let config = ProducerConfig { idempotent, batch_records_max: 8, ..ProducerConfig::default() };
    let producer = Producer::new(client, topic, config).await.unwrap();
    let mut deliveries = Vec::new();
    for n in 0..count {
        deliveries.push(producer.send(record(topic, n)).await.unwrap());
    }
    for (n, delivery) in deliveries.into_iter().enumerate() {
        delivery.await.unwrap().unwrap_or_else(|e| panic!("record {n} of {topic} failed: {e}"));
    }
    producer.close().await;
    (faults.cut.load(Ordering::SeqCst), faults.most_in_flight.load(Ordering::SeqCst))
}

/// A cluster of `nodes` with `topics` of [`PARTITIONS`] partitions, the list of its brokers, and
/// a runtime to drive clients.
fn cluster_with(nodes: u64, env: &[(&str, &str)], topics: &[&str]) -> (Cluster, Vec<String>, tokio::runtime::Runtime) {
    let cluster = Cluster::start_with_env(nodes, env);
    for topic in topics {
        cluster.eddy_json(&[
            "topic",
            "create",
            topic,
            "--partitions",
            &PARTITIONS.to_string(),
            "--replication-factor",
            &nodes.to_string(),
        ]);
        cluster.wait_leaders(topic);
    }
    let brokers: Vec<String> = cluster.brokers().split(',').map(String::from).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    (cluster, brokers, runtime)
}

/// With the default producer idle expiry (a day): a retry can come seconds after the batch it
/// repeats, and the partition must still remember the producer then. (With an expiry shorter
/// than a retry takes, a repeated first batch of an epoch starts a new window and is appended
/// again: the expiry must be longer than the client's retry deadline, docs/api.md.)
#[test]
fn lost_answers_never_duplicate_and_stale_instances_are_fenced() {
    let (_cluster, brokers, runtime) = cluster_with(3, &[], &["payments", "plain", "billing"]);
    runtime.block_on(async {
        let reader = Client::new(brokers.clone(), ClientConfig::default()).unwrap();

        // 1. Lost answers: an idempotent producer's retries are recognised; every record once,
        // in send order per partition, with several batches per partition in flight.
        const COUNT: usize = 240;
        let (lost, most_in_flight) = send_through_lossy_connections(&brokers, "payments", true, COUNT).await;
        assert!(lost >= 5, "the fault must lose answers ({lost} lost)");
        // Several batches per partition in flight at once (more requests than partitions).
        assert!(most_in_flight > u64::from(PARTITIONS), "at most {most_in_flight} produce requests were in flight");
        let stored = read_all(&reader, "payments").await;
        for partition in 0..PARTITIONS {
            let want: Vec<String> = (0..COUNT)
                .filter(|n| n % PARTITIONS as usize == partition as usize)
                .map(|n| format!("payments-{n:05}"))
                .collect();
            assert_eq!(
                stored[&partition], want,
                "partition {partition}: each record once, in order ({lost} answers lost)"
            );
        }

        // The same faults duplicate a producer without idempotence: the check above can fail.
        let (lost, _) = send_through_lossy_connections(&brokers, "plain", false, 60).await;
        let stored: usize = read_all(&reader, "plain").await.values().map(Vec::len).sum();
        assert!(lost > 0 && stored > 60, "a plain producer's retries append again ({lost} lost, {stored} stored)");

        // 2. Fencing: a second instance of a named producer fences the first.
        let client = Arc::new(Client::new(brokers.clone(), ClientConfig::default()).unwrap());
        let named = || ProducerConfig { producer_name: Some("billing-service".into()), ..ProducerConfig::default() };
        let first = Producer::new(client.clone(), "billing", named()).await.unwrap();
        for n in 0..2 {
            first.send(record("billing", n)).await.unwrap().await.unwrap().unwrap();
        }
        let (id, epoch) = first.producer_id_epoch().await.unwrap();
        // The second instance initializes at the leader of partition 1, whose metadata holds the
        // new epoch once InitProducer has answered.
        let leader = reader.describe_topic("billing").await.unwrap().partitions[1].leader_address.clone();
        let at_leader = Arc::new(Client::new(vec![leader], ClientConfig::default()).unwrap());
        let second = Producer::new(at_leader.clone(), "billing", named()).await.unwrap();
        assert_eq!(second.producer_id_epoch().await, Some((id, epoch + 1)), "the name's id at the next epoch");
        second.send(record("billing", 2)).await.unwrap().await.unwrap().unwrap();
        let fenced = first.send(record("billing", 4)).await.unwrap().await.unwrap().unwrap_err();
        assert_eq!(fenced.code(), Some(Reason::ProducerFenced), "{fenced}");
        let still = first.send(record("billing", 5)).await.unwrap().await.unwrap().unwrap_err();
        assert_eq!(still.code(), Some(Reason::ProducerFenced), "a fenced instance stays fenced: {still}");
        // A partition the new instance has not written to refuses the old epoch too, at the
        // broker that served the new instance's InitProducer.
        let refused = at_leader
            .produce(v1::ProduceRequest {
                topic: "billing".into(),
                partition: 1,
                records: vec![v1::Record { value: Bytes::from("zombie"), ..Default::default() }],
                acks: v1::Acks::All as i32,
                producer: Some(v1::ProducerIdentity { producer_id: id, epoch, first_sequence: 1 }),
                timeout_ms: 0,
            })
            .await;
        assert_eq!(refused.map(|_| ()).unwrap_err().code(), Some(Reason::ProducerFenced));
        // The old instance cannot take a new epoch for itself either.
        let err = client.init_producer(Some("billing-service"), Some((id, epoch))).await.unwrap_err();
        assert_eq!(err.code(), Some(Reason::ProducerFenced), "{err}");
        second.close().await;
        first.close().await;
        let stored = read_all(&reader, "billing").await;
        assert_eq!(stored[&0], ["billing-00000", "billing-00002"], "nothing of the fenced instance after the fence");
        assert_eq!(stored[&1], ["billing-00001"]);
    });
}

/// A producer idle past producer_idle_expiry_ms (2 s here) is forgotten by the partition; its
/// next batch gets UNKNOWN_PRODUCER_ID, the producer takes the next epoch and sends it again,
/// once.
#[test]
fn a_producer_forgotten_after_its_idle_expiry_reinitializes_and_loses_nothing() {
    let (_cluster, brokers, runtime) = cluster_with(1, &[("EDDY_PRODUCER_IDLE_EXPIRY_MS", "2000")], &["payments"]);
    runtime.block_on(async {
        let reader = Client::new(brokers.clone(), ClientConfig::default()).unwrap();
        let client = Arc::new(Client::new(brokers, ClientConfig::default()).unwrap());
        let producer = Producer::new(client, "payments", ProducerConfig::default()).await.unwrap();
        producer.send(record("idle", 0)).await.unwrap().await.unwrap().unwrap();
        let (_, before) = producer.producer_id_epoch().await.unwrap();
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        producer.send(record("idle", 2)).await.unwrap().await.unwrap().unwrap();
        let (_, after) = producer.producer_id_epoch().await.unwrap();
        assert_eq!(after, before + 1, "the forgotten producer re-initialized");
        producer.close().await;
        let stored = read_all(&reader, "payments").await;
        assert_eq!(
            stored[&0].iter().filter(|v| v.starts_with("idle-")).collect::<Vec<_>>(),
            ["idle-00000", "idle-00002"]
        );
    });
}
