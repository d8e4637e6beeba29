//! The dead-letter operator's tools against real processes: a processor dead-letters a poison
//! record and a record that keeps failing, then `eddy dlq list/show/replay/purge` count them,
//! print their failure headers, re-produce them exactly once to their original topic (a second
//! replay sends nothing) and delete them through the partitions' Raft logs; the DLQ depth is on
//! /metrics, and `eddy topic delete-records` refuses what it cannot do.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use eddy_client::processing::{HandlerError, Incoming, Processor, ProcessorConfig, RetryPolicy};
use eddy_client::{Client, ClientConfig, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord};
use serde_json::Value;
use support::{Cluster, wait_for};

const TOPIC: &str = "payments";
const DLQ: &str = "payments.dlq";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Twelve payments over four keys: `declined` ones fail for good, `flaky` ones every time.
fn payments() -> Vec<(String, &'static str)> {
    (0..12)
        .map(|i| {
            let value = match i {
                2 | 7 | 9 => "declined",
                4 | 10 => "flaky",
                _ => "ok",
            };
            (format!("order-{}", i % 4), value)
        })
        .collect()
}

/// Produces the payments (each with its own `ce_id`), runs a processor until every record is
/// handled or dead-lettered, and returns how often each value was handled successfully.
fn process(cluster: &Cluster) -> BTreeMap<String, usize> {
    let runtime = runtime();
    runtime.block_on(async {
        let client = Arc::new(
            Client::new(cluster.brokers().split(',').map(String::from).collect(), ClientConfig::default())
                .expect("client"),
        );
        let producer = Producer::new(client.clone(), TOPIC, ProducerConfig::default()).await.expect("producer");
        for (i, (key, value)) in payments().into_iter().enumerate() {
            let record = ProducerRecord {
                key: Some(Bytes::from(key)),
                value: Bytes::from(format!("{value}-{i}")),
                headers: vec![("ce_id".into(), Bytes::from(format!("evt-{i}")))],
                ..Default::default()
            };
            producer.send(record).await.expect("send").await.expect("delivery").expect("acked");
        }
        producer.close().await;

        let consumer = ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            fetch_max_wait: Duration::from_millis(100),
            ..ConsumerConfig::group("billing")
        };
        let retry = RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(20),
            factor: 2.0,
            cap: Duration::from_millis(50),
            jitter: 0.0,
        };
        let config =
            ProcessorConfig { retry, commit_interval: Duration::from_millis(100), ..ProcessorConfig::new(consumer) };
        let processor = Processor::new(client.clone(), &[TOPIC], config).await.expect("processor");
        let handled = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
        let seen = handled.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(processor.run(
            move |incoming: Incoming| {
                let seen = seen.clone();
                async move {
                    let value = String::from_utf8_lossy(&incoming.record.value).to_string();
                    if value.starts_with("declined") {
                        Err(HandlerError::fatal("card declined"))
                    } else if value.starts_with("flaky") {
                        Err(HandlerError::retriable("gateway timeout"))
                    } else {
                        *seen.lock().unwrap().entry(value).or_default() += 1;
                        Ok(())
                    }
                }
            },
            async {
                let _ = stopped.await;
            },
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ok = handled.lock().unwrap().len();
            let dead = high_watermarks(&client, DLQ).await;
            if ok == 7 && dead == 5 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "processed {ok} of 7, dead-lettered {dead} of 5");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = stop.send(());
        task.await.expect("processor task").expect("processor");
        handled.lock().unwrap().clone()
    })
}

/// The sum of a topic's high watermarks (0 while it does not exist).
async fn high_watermarks(client: &Client, topic: &str) -> u64 {
    match client.describe_topic(topic).await {
        Ok(t) => t.partitions.iter().filter_map(|p| p.high_watermark).sum(),
        Err(_) => 0,
    }
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

fn eddy_lines(cluster: &Cluster, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = cluster.eddy(&all);
    assert!(out.status.success(), "eddy {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    lines(&out)
}

/// The records of the main topic (partition, offset order per partition) from `consume`.
fn main_topic(cluster: &Cluster) -> Vec<Value> {
    eddy_lines(cluster, &["consume", TOPIC, "--from-beginning", "--exit-at-end"])
}

#[test]
fn dead_letters_are_listed_shown_replayed_once_and_purged() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "2", "--replication-factor", "3"]);
    cluster.wait_leaders(TOPIC);
    let handled = process(&cluster);
    assert_eq!(handled.len(), 7, "every good payment handled: {handled:?}");
    assert!(handled.values().all(|&n| n == 1));

    // list: counts per error.
    let listed = cluster.eddy_json(&["dlq", "list", TOPIC]);
    assert_eq!(listed["topic"], DLQ);
    assert_eq!(listed["records"], 5);
    let errors = listed["errors"].as_array().unwrap();
    let by_error: BTreeMap<&str, (&str, u64)> = errors
        .iter()
        .map(|e| (e["error"].as_str().unwrap(), (e["reason"].as_str().unwrap(), e["count"].as_u64().unwrap())))
        .collect();
    assert_eq!(by_error["card declined"], ("FATAL", 3));
    assert_eq!(by_error["gateway timeout"], ("RETRIES_EXHAUSTED", 2));
    assert!(errors.iter().all(|e| e["original_topic"] == TOPIC && e["replayed"] == 0));
    let fatal_only = cluster.eddy_json(&["dlq", "list", DLQ, "--filter", "reason=FATAL"]);
    assert_eq!(fatal_only["records"], 3);

    // show: the records with their failure headers and their own ones.
    let shown = eddy_lines(&cluster, &["dlq", "show", TOPIC, "--limit", "10"]);
    assert_eq!(shown.len(), 5);
    for letter in &shown {
        let failure = &letter["failure"];
        assert_eq!(failure["original_topic"], TOPIC);
        assert_eq!(failure["group"], "billing");
        let value = letter["value"].as_str().unwrap();
        let i: u64 = value.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(letter["headers"]["ce_id"], format!("evt-{i}"), "the record's own headers are kept");
        assert!(letter["headers"].get("eddy.attempts").is_none(), "failure headers are shown apart");
        if value.starts_with("declined") {
            assert_eq!((failure["reason"].as_str(), failure["attempts"].as_u64()), (Some("FATAL"), Some(1)));
        } else {
            assert_eq!(
                (failure["reason"].as_str(), failure["attempts"].as_u64()),
                (Some("RETRIES_EXHAUSTED"), Some(2))
            );
        }
        assert!(failure["first_failure_ms"].as_i64().unwrap() <= failure["last_failure_ms"].as_i64().unwrap());
    }
    assert_eq!(eddy_lines(&cluster, &["dlq", "show", TOPIC, "--limit", "2"]).len(), 2);
    let one_key = eddy_lines(&cluster, &["dlq", "show", TOPIC, "--filter", "key=order-2"]);
    assert_eq!(one_key.len(), 2, "declined-2 and flaky-10 are order-2's: {one_key:?}");

    // The depth of the dead-letter topic on /metrics (each partition's largest report).
    wait_for(Duration::from_secs(30), "eddy_dlq_records on /metrics", || {
        let mut depth: BTreeMap<String, f64> = BTreeMap::new();
        for node in &cluster.nodes {
            for partition in 0..2 {
                let labels = format!("topic=\"{DLQ}\",partition=\"{partition}\"");
                if let Some(v) =
                    support::metric_value(&support::scrape_metrics(&node.metrics), "eddy_dlq_records", &labels)
                {
                    let entry = depth.entry(labels).or_default();
                    *entry = entry.max(v);
                }
            }
        }
        (depth.values().sum::<f64>() == 5.0).then_some(())
    });

    // replay: a dry run sends nothing; a replay of the fatal ones sends each once, without the
    // failure headers, marked with where it came from; a second replay sends nothing.
    let before = main_topic(&cluster).len();
    let dry = cluster.eddy_json(&["dlq", "replay", TOPIC, "--filter", "reason=FATAL", "--dry-run"]);
    assert_eq!((dry["replayed"].as_u64(), dry["already_replayed"].as_u64()), (Some(3), Some(0)));
    assert_eq!(main_topic(&cluster).len(), before, "a dry run sends nothing");
    let replayed = cluster.eddy_json(&["dlq", "replay", TOPIC, "--filter", "reason=FATAL"]);
    assert_eq!(replayed["replayed"], 3);
    assert_eq!(replayed["to"][TOPIC], 3);
    let again = cluster.eddy_json(&["dlq", "replay", TOPIC, "--filter", "reason=FATAL"]);
    assert_eq!((again["replayed"].as_u64(), again["already_replayed"].as_u64()), (Some(0), Some(3)));
    let records = main_topic(&cluster);
    assert_eq!(records.len(), before + 3, "each fatal dead letter replayed exactly once");
    let replays: Vec<&Value> = records.iter().filter(|r| r["headers"].get("eddy.replayed.from").is_some()).collect();
    assert_eq!(replays.len(), 3);
    let mut values = BTreeSet::new();
    for replay in &replays {
        let value = replay["value"].as_str().unwrap();
        assert!(value.starts_with("declined"), "{value}");
        let i: u64 = value.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(replay["key"], format!("order-{}", i % 4), "the key is kept");
        assert_eq!(replay["headers"]["ce_id"], format!("evt-{i}"), "the event id is kept");
        assert!(
            replay["headers"].as_object().unwrap().keys().all(|k| !k.starts_with("eddy.") || k == "eddy.replayed.from")
        );
        assert!(replay["headers"]["eddy.replayed.from"].as_str().unwrap().starts_with("payments.dlq/"));
        values.insert(value.to_string());
    }
    assert_eq!(values.len(), 3);
    let listed = cluster.eddy_json(&["dlq", "list", TOPIC]);
    let replayed_count: u64 =
        listed["errors"].as_array().unwrap().iter().map(|e| e["replayed"].as_u64().unwrap()).sum();
    assert_eq!(replayed_count, 3);

    // Bad input is refused with a message naming the problem.
    let bad = cluster.eddy(&["dlq", "list", TOPIC, "--filter", "colour=red"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown filter field"));
    let missing = cluster.eddy(&["dlq", "list", "nothing-here"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UNKNOWN_TOPIC"));
    // The groups' offsets are not the operator's to delete.
    let internal = cluster.eddy(&["topic", "delete-records", "__consumer_offsets", "--partition", "0"]);
    assert!(!internal.status.success());
    let stderr = String::from_utf8_lossy(&internal.stderr);
    assert!(stderr.contains("INTERNAL_TOPIC"), "{stderr}");
    let nowhere = cluster.eddy(&["dlq", "replay", TOPIC, "--to", "no-such-topic"]);
    assert!(!nowhere.status.success());
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("UNKNOWN_TOPIC"));

    // purge: every dead letter goes, on every replica.
    let purged = cluster.eddy_json(&["dlq", "purge", TOPIC]);
    assert_eq!(purged["deleted"], 5);
    assert_eq!(cluster.eddy_json(&["dlq", "list", TOPIC])["records"], 0);
    let described = cluster.eddy_json(&["topic", "describe", DLQ]);
    for partition in described["partitions"].as_array().unwrap() {
        assert_eq!(partition["log_start_offset"], partition["high_watermark"]);
    }
    assert_eq!(cluster.eddy_json(&["dlq", "purge", TOPIC])["deleted"], 0, "purging again deletes nothing");
}

#[test]
fn delete_records_moves_the_log_start_or_says_why_not() {
    let cluster = Cluster::start(1);
    cluster.eddy_json(&["topic", "create", "events", "--partitions", "1", "--replication-factor", "1"]);
    cluster.wait_leaders("events");
    // Ten single-record batches: every offset is a batch boundary.
    for i in 0..10 {
        let mut produce = std::process::Command::new(support::eddy_bin())
            .args(["produce", "events", "--brokers", &cluster.brokers()])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("eddy produce");
        use std::io::Write;
        writeln!(produce.stdin.take().unwrap(), "event-{i}").unwrap();
        assert!(produce.wait().unwrap().success());
    }
    let deleted = cluster.eddy_json(&["topic", "delete-records", "events", "--partition", "0", "--before", "4"]);
    assert_eq!((deleted["log_start_offset"].as_u64(), deleted["deleted_records"].as_u64()), (Some(4), Some(4)));
    let left = main_records(&cluster, "events");
    assert_eq!(left.first().map(|r| r["offset"].clone()), Some(Value::from(4)));
    assert_eq!(left.len(), 6);

    let beyond = cluster.eddy(&["topic", "delete-records", "events", "--partition", "0", "--before", "11"]);
    assert!(!beyond.status.success());
    assert!(String::from_utf8_lossy(&beyond.stderr).contains("OFFSET_OUT_OF_RANGE"));
    let again = cluster.eddy_json(&["topic", "delete-records", "events", "--partition", "0", "--before", "2"]);
    assert_eq!((again["log_start_offset"].as_u64(), again["deleted_records"].as_u64()), (Some(4), Some(0)));
    let all = cluster.eddy_json(&["topic", "delete-records", "events", "--partition", "0"]);
    assert_eq!((all["log_start_offset"].as_u64(), all["deleted_records"].as_u64()), (Some(10), Some(6)));
}

fn main_records(cluster: &Cluster, topic: &str) -> Vec<Value> {
    eddy_lines(cluster, &["consume", topic, "--from-beginning", "--exit-at-end"])
}
