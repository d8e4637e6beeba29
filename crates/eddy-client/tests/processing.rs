//! The processor against a one-node cluster in the test process: dead letters and their
//! headers, retry topics, what a poison record holds back (its key) and what it does not (other
//! keys), processed-id deduplication, and at-least-once commits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_broker::InMemoryNode;
use eddy_client::processing::{HandlerError, Incoming, Processor, ProcessorConfig, RetryPolicy, failure};
use eddy_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const WAIT: Duration = Duration::from_secs(30);

async fn cluster(topic: &str, partitions: u32) -> Result<(InMemoryNode, Arc<Client>)> {
    let node = InMemoryNode::start().await?;
    let client = Arc::new(Client::new(vec![node.address.clone()], ClientConfig::default())?);
    client.create_topic(topic, partitions, 1).await?;
    Ok((node, client))
}

/// A record to produce: key, value, headers.
type Sample<'a> = (Option<&'a str>, &'a str, Vec<(&'a str, &'a str)>);

async fn produce(client: &Arc<Client>, topic: &str, records: Vec<Sample<'_>>) -> Result {
    let producer = Producer::new(client.clone(), topic, ProducerConfig::default()).await?;
    for (key, value, headers) in records {
        let record = ProducerRecord {
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Bytes::from(value.to_string()),
            headers: headers.into_iter().map(|(n, v)| (n.to_string(), Bytes::from(v.to_string()))).collect(),
            ..Default::default()
        };
        producer.send(record).await?.await??;
    }
    producer.close().await;
    Ok(())
}

fn config(group: &str, retry: RetryPolicy) -> ProcessorConfig {
    let consumer = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(100),
        ..ConsumerConfig::group(group)
    };
    ProcessorConfig { retry, commit_interval: Duration::from_millis(100), ..ProcessorConfig::new(consumer) }
}

fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base: Duration::from_millis(20),
        factor: 2.0,
        cap: Duration::from_millis(100),
        jitter: 0.0,
    }
}

/// A running processor and a way to stop it.
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<eddy_client::ClientResult<()>>,
}

impl Running {
    async fn stop(self) -> Result {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

fn start<H, Fut>(processor: Processor, handler: H) -> Running
where
    H: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::result::Result<(), HandlerError>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(processor.run(handler, async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

/// Every record of `topic` (all partitions), read by hand.
async fn read_all(client: &Arc<Client>, topic: &str, count: usize) -> Result<Vec<ConsumerRecord>> {
    let partitions = client.partition_count(topic).await?;
    let tps: Vec<TopicPartition> = (0..partitions).map(|p| TopicPartition::new(topic, p)).collect();
    let config = ConsumerConfig { fetch_max_wait: Duration::from_millis(100), ..ConsumerConfig::default() };
    let mut consumer = Consumer::assign(client.clone(), &tps, config).await?;
    for tp in &tps {
        consumer.seek(tp, eddy_client::SeekTo::Earliest).await?;
    }
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while records.len() < count {
        assert!(tokio::time::Instant::now() < deadline, "{topic}: only {} of {count} records", records.len());
        records.extend(consumer.poll().await?);
    }
    Ok(records)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn header<'a>(record: &'a ConsumerRecord, name: &str) -> Option<&'a str> {
    failure::text(&record.headers, name)
}

/// Waits until `group` committed `offset` for partition 0 of `topic`.
async fn wait_committed(client: &Client, group: &str, topic: &str, offset: u64) -> Result {
    let deadline = tokio::time::Instant::now() + WAIT;
    while committed(client, group, topic).await? != Some(offset) {
        assert!(tokio::time::Instant::now() < deadline, "{group} never committed {offset} for {topic}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn committed(client: &Client, group: &str, topic: &str) -> Result<Option<u64>> {
    let offsets = client.fetch_offsets(group, eddy_client::v1::TopicPartitions::group([(topic, 0)])).await?;
    Ok(offsets.into_iter().find(|o| o.topic == topic && o.partition == 0).map(|o| o.offset))
}

#[tokio::test]
async fn failed_records_are_dead_lettered_with_their_failure() -> Result {
    let (_node, client) = cluster("payments", 1).await?;
    produce(
        &client,
        "payments",
        vec![
            (Some("order-1"), "ok", vec![]),
            (
                Some("order-2"),
                "declined",
                vec![("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
            ),
            (Some("order-3"), "flaky", vec![("ce_id", "evt-3")]),
            (Some("order-4"), "ok", vec![]),
        ],
    )
    .await?;
    let attempts = Arc::new(Mutex::new(BTreeMap::<String, Vec<u32>>::new()));
    let seen = attempts.clone();
    let processor = Processor::new(client.clone(), &["payments"], config("billing", fast_retries(3))).await?;
    let running = start(processor, move |incoming: Incoming| {
        let seen = seen.clone();
        async move {
            let value = String::from_utf8_lossy(&incoming.record.value).to_string();
            let key = String::from_utf8_lossy(incoming.record.key.as_deref().unwrap_or_default()).to_string();
            seen.lock().unwrap().entry(key).or_default().push(incoming.attempt);
            match value.as_str() {
                "declined" => Err(HandlerError::fatal("card declined")),
                "flaky" => Err(HandlerError::retriable(format!("gateway timeout #{}", incoming.attempt))),
                _ => Ok(()),
            }
        }
    });
    let dead = read_all(&client, "payments.dlq", 2).await?;
    eventually("the offsets to pass every record", || attempts.lock().unwrap().len() == 4).await;
    wait_committed(&client, "billing", "payments", 4).await?;
    running.stop().await?;

    let attempts = attempts.lock().unwrap().clone();
    assert_eq!(attempts["order-1"], [1]);
    assert_eq!(attempts["order-2"], [1], "a fatal error is not retried");
    assert_eq!(attempts["order-3"], [1, 2, 3]);

    let by_key = |key: &str| dead.iter().find(|r| r.key.as_deref() == Some(key.as_bytes())).expect("dead-lettered");
    let declined = by_key("order-2");
    assert_eq!(declined.value, "declined");
    assert_eq!(header(declined, "traceparent"), Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_eq!(header(declined, failure::DLQ_REASON), Some("FATAL"));
    let info = failure::Failure::from_headers(&declined.headers).expect("failure headers");
    assert_eq!((info.original_topic.as_str(), info.original_partition, info.original_offset), ("payments", 0, 1));
    assert_eq!((info.group.as_str(), info.attempts), ("billing", 1));
    assert_eq!((info.first_error.as_str(), info.last_error.as_str()), ("card declined", "card declined"));

    let flaky = by_key("order-3");
    assert_eq!(header(flaky, failure::DLQ_REASON), Some("RETRIES_EXHAUSTED"));
    assert_eq!(header(flaky, "ce_id"), Some("evt-3"));
    let info = failure::Failure::from_headers(&flaky.headers).expect("failure headers");
    assert_eq!((info.original_offset, info.attempts), (2, 3));
    assert_eq!((info.first_error.as_str(), info.last_error.as_str()), ("gateway timeout #1", "gateway timeout #3"));
    assert!(info.first_failure_ms <= info.last_failure_ms && info.first_failure_ms > 0);
    Ok(())
}

#[tokio::test]
async fn a_poison_record_holds_back_its_key_and_nothing_else() -> Result {
    let (_node, client) = cluster("orders", 1).await?;
    let mut records = vec![(Some("poison"), "poison-1", vec![])];
    records.extend(["a-1", "b-1", "a-2", "c-1"].map(|v| (Some(&v[..1]), v, vec![])));
    records.push((Some("poison"), "poison-2", vec![]));
    records.push((None, "keyless", vec![]));
    produce(&client, "orders", records).await?;

    // The poison record fails until released; everything else succeeds.
    let (release, released) = tokio::sync::watch::channel(false);
    let handled = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = handled.clone();
    let retry = RetryPolicy { max_attempts: 10_000, ..fast_retries(1) };
    let processor = Processor::new(client.clone(), &["orders"], config("fulfilment", retry)).await?;
    let running = start(processor, move |incoming: Incoming| {
        let (log, released) = (log.clone(), released.clone());
        async move {
            let value = String::from_utf8_lossy(&incoming.record.value).to_string();
            if value == "poison-1" && !*released.borrow() {
                return Err(HandlerError::retriable("downstream is down"));
            }
            log.lock().unwrap().push(value);
            Ok(())
        }
    });
    eventually("the other keys to be handled", || handled.lock().unwrap().len() == 5).await;
    // The poison's key waits behind it, and the partition's commit stays at the poison record.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!handled.lock().unwrap().iter().any(|v| v.starts_with("poison")), "{:?}", handled.lock().unwrap());
    assert_eq!(committed(&client, "fulfilment", "orders").await?.unwrap_or(0), 0);
    release.send_replace(true);
    eventually("the poison key to be handled", || handled.lock().unwrap().len() == 7).await;
    running.stop().await?;

    let handled = handled.lock().unwrap().clone();
    let position = |v: &str| handled.iter().position(|h| h == v).unwrap();
    assert!(position("a-1") < position("a-2"), "one key's records in order: {handled:?}");
    assert!(position("poison-1") < position("poison-2"), "the poison key in order: {handled:?}");
    assert_eq!(committed(&client, "fulfilment", "orders").await?, Some(7));
    Ok(())
}

#[tokio::test]
async fn retry_topics_take_a_failing_record_out_of_the_way_until_due() -> Result {
    let (_node, client) = cluster("inventory", 2).await?;
    produce(&client, "inventory", vec![(Some("sku-1"), "reserve", vec![]), (Some("sku-2"), "reserve", vec![])]).await?;
    let attempts = Arc::new(Mutex::new(Vec::<(String, u32, String, std::time::Instant)>::new()));
    let log = attempts.clone();
    let config = ProcessorConfig {
        retry_topic_delays: vec![Duration::from_millis(300), Duration::from_millis(600)],
        ..config("stock", RetryPolicy::none())
    };
    let processor = Processor::new(client.clone(), &["inventory"], config).await?;
    let running = start(processor, move |incoming: Incoming| {
        let log = log.clone();
        async move {
            let key = String::from_utf8_lossy(incoming.record.key.as_deref().unwrap_or_default()).to_string();
            log.lock().unwrap().push((
                key.clone(),
                incoming.attempt,
                incoming.record.topic.clone(),
                std::time::Instant::now(),
            ));
            assert_eq!(incoming.topic, "inventory", "the handler sees the main topic");
            // sku-1 succeeds on its third attempt, in the second retry topic.
            if key == "sku-1" && incoming.attempt < 3 { Err(HandlerError::retriable("locked")) } else { Ok(()) }
        }
    });
    eventually("sku-1's third attempt", || attempts.lock().unwrap().iter().any(|(k, n, _, _)| k == "sku-1" && *n == 3))
        .await;
    running.stop().await?;
    let attempts = attempts.lock().unwrap().clone();
    let sku1: Vec<_> = attempts.iter().filter(|(k, ..)| k == "sku-1").collect();
    let topics: Vec<&str> = sku1.iter().map(|(_, _, t, _)| t.as_str()).collect();
    assert_eq!(topics, ["inventory", "inventory.retry.1", "inventory.retry.2"]);
    // Each retry topic's delay is honoured (a lower bound: it never runs early).
    assert!(sku1[1].3 - sku1[0].3 >= Duration::from_millis(300));
    assert!(sku1[2].3 - sku1[1].3 >= Duration::from_millis(600));
    assert_eq!(attempts.iter().filter(|(k, ..)| k == "sku-2").count(), 1);
    // Nothing reached the dead-letter topic.
    let dlq = client.describe_topic("inventory.dlq").await?;
    assert!(dlq.partitions.iter().all(|p| p.high_watermark.unwrap_or(0) == 0));
    Ok(())
}

#[tokio::test]
async fn events_already_processed_are_skipped_across_restarts() -> Result {
    let (_node, client) = cluster("emails", 1).await?;
    let state = std::env::temp_dir().join(format!("eddy-processing-{:016x}", rand_id()));
    // The same event twice (a producer retry outside idempotence, a replay), and another.
    produce(
        &client,
        "emails",
        vec![
            (Some("o-1"), "welcome", vec![("ce_id", "evt-1")]),
            (Some("o-1"), "welcome", vec![("ce_id", "evt-1")]),
            (Some("o-2"), "receipt", vec![("ce_id", "evt-2")]),
        ],
    )
    .await?;
    let sent = Arc::new(Mutex::new(Vec::<String>::new()));
    let run_once = |group: &'static str| {
        let (client, sent, state) = (client.clone(), sent.clone(), state.clone());
        async move {
            let config = ProcessorConfig { state_dir: Some(state), ..config(group, RetryPolicy::none()) };
            let processor = Processor::new(client, &["emails"], config).await?;
            let log = sent.clone();
            let running = start(processor, move |incoming: Incoming| {
                let log = log.clone();
                async move {
                    log.lock().unwrap().push(incoming.event_id.unwrap_or_default());
                    Ok(())
                }
            });
            Result::Ok(running)
        }
    };
    let running = run_once("mailer").await?;
    wait_committed(&client, "mailer", "emails", 3).await?;
    running.stop().await?;
    assert_eq!(*sent.lock().unwrap(), ["evt-1", "evt-2"]);
    // Everything again from the start (offsets reset), with the same journal: nothing is sent twice.
    let reset = eddy_client::v1::ResetOffsetsRequest {
        group_id: "mailer".into(),
        topic: "emails".into(),
        spec: eddy_client::v1::OffsetSpec::Earliest as i32,
        ..Default::default()
    };
    client.reset_offsets(reset).await?;
    let running = run_once("mailer").await?;
    wait_committed(&client, "mailer", "emails", 3).await?;
    running.stop().await?;
    assert_eq!(*sent.lock().unwrap(), ["evt-1", "evt-2"]);
    Ok(())
}

#[tokio::test]
async fn without_a_dead_letter_topic_a_failed_record_stops_the_processor_before_its_offset() -> Result {
    let (_node, client) = cluster("ledger", 1).await?;
    produce(&client, "ledger", vec![(Some("a"), "ok", vec![]), (Some("b"), "bad", vec![]), (Some("c"), "ok", vec![])])
        .await?;
    let config = ProcessorConfig { dead_letter: false, ..config("auditors", fast_retries(2)) };
    let processor = Processor::new(client.clone(), &["ledger"], config).await?;
    let (_stop, stopped) = oneshot::channel::<()>();
    let outcome = tokio::time::timeout(
        WAIT,
        processor.run(
            |incoming: Incoming| async move {
                if incoming.record.value == "bad" { Err(HandlerError::retriable("unbalanced")) } else { Ok(()) }
            },
            async {
                let _ = stopped.await;
            },
        ),
    )
    .await?;
    let error = outcome.expect_err("the processor stops");
    assert_eq!(error.reason(), "HANDLER_FAILED");
    assert!(error.to_string().contains("ledger/0@1") && error.to_string().contains("unbalanced"), "{error}");
    assert_eq!(committed(&client, "auditors", "ledger").await?, Some(1), "committed up to the failed record");
    Ok(())
}

#[tokio::test]
async fn bad_settings_are_refused_naming_the_field() -> Result {
    let (_node, client) = cluster("t", 1).await?;
    let no_group = ProcessorConfig::new(ConsumerConfig::default());
    let error = Processor::new(client.clone(), &["t"], no_group).await.unwrap_err();
    assert!(error.to_string().contains("group_id"), "{error}");
    let bad = config("g", RetryPolicy { max_attempts: 0, ..RetryPolicy::default() });
    assert!(Processor::new(client.clone(), &["t"], bad).await.unwrap_err().to_string().contains("max_attempts"));
    let error = Processor::new(client.clone(), &["t.dlq"], config("g", RetryPolicy::none())).await.unwrap_err();
    assert!(error.to_string().contains("dead-letter"), "{error}");
    let error = Processor::new(client.clone(), &["missing"], config("g", RetryPolicy::none())).await.unwrap_err();
    assert_eq!(error.reason(), "UNKNOWN_TOPIC");
    Ok(())
}

fn rand_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        ^ u64::from(std::process::id())
}

/// What the processor's flow control stands on: a paused partition is not fetched (its new
/// records wait) while the others go on, and resuming picks up where it stopped.
#[tokio::test]
async fn a_paused_partition_is_not_fetched_until_resumed() -> Result {
    let (_node, client) = cluster("events", 2).await?;
    let p0 = TopicPartition::new("events", 0);
    let p1 = TopicPartition::new("events", 1);
    let config = ConsumerConfig { fetch_max_wait: Duration::from_millis(50), ..ConsumerConfig::default() };
    let mut consumer = Consumer::assign(client.clone(), &[p0.clone(), p1.clone()], config).await?;
    consumer.seek(&p0, eddy_client::SeekTo::Earliest).await?;
    consumer.seek(&p1, eddy_client::SeekTo::Earliest).await?;
    consumer.pause(&p0);
    assert_eq!(consumer.paused(), vec![p0.clone()]);

    let producer = Producer::new(client.clone(), "events", ProducerConfig::default()).await?;
    for (partition, value) in [(0, "a"), (1, "b"), (0, "c"), (1, "d")] {
        let record = ProducerRecord { value: Bytes::from(value), partition: Some(partition), ..Default::default() };
        producer.send(record).await?.await??;
    }
    producer.close().await;

    let mut seen: Vec<(u32, String)> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while seen.len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "partition 1's records never came: {seen:?}");
        seen.extend(
            consumer.poll().await?.into_iter().map(|r| (r.partition, String::from_utf8_lossy(&r.value).into())),
        );
    }
    // A few more polls: still nothing from the paused partition.
    for _ in 0..5 {
        seen.extend(
            consumer.poll().await?.into_iter().map(|r| (r.partition, String::from_utf8_lossy(&r.value).into())),
        );
    }
    assert_eq!(seen, vec![(1, "b".to_string()), (1, "d".to_string())]);

    consumer.resume(&p0);
    assert!(consumer.paused().is_empty());
    while seen.len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "partition 0's records never came after resume: {seen:?}");
        seen.extend(
            consumer.poll().await?.into_iter().map(|r| (r.partition, String::from_utf8_lossy(&r.value).into())),
        );
    }
    assert_eq!(&seen[2..], &[(0, "a".to_string()), (0, "c".to_string())]);
    Ok(())
}
