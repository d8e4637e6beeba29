//! `eddy bench produce|consume`: throughput and latency, like `nats bench` or
//! kafka-producer-perf-test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};
use eddy_client::{Acks, Client, Producer, ProducerConfig, ProducerRecord, Reason, v1};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};
use crate::produce::AcksArg;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Produce records as fast as the in-flight bound allows.
    Produce(ProduceBench),
    /// Read a topic from its start as fast as possible.
    Consume(ConsumeBench),
}

#[derive(Debug, Args)]
pub struct ProduceBench {
    /// Topic to write; created when missing.
    #[arg(long, default_value = "eddy-bench")]
    topic: String,
    /// Partitions of a topic the bench creates.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Replication factor of a topic the bench creates.
    #[arg(long, default_value_t = 3)]
    replication_factor: u32,
    /// Value size of each record, in bytes.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Records to send (ignored when --duration is given).
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Send for this many seconds instead of a fixed count.
    #[arg(long)]
    duration: Option<u64>,
    /// Records sent but not yet acknowledged, at most.
    #[arg(long, default_value_t = 2_000)]
    in_flight: usize,
    /// Most records per produce request.
    #[arg(long, default_value_t = 500)]
    batch_records: usize,
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    acks: AcksArg,
}

#[derive(Debug, Args)]
pub struct ConsumeBench {
    #[arg(long, default_value = "eddy-bench")]
    topic: String,
    /// Records to read (default: everything in the topic when the bench starts).
    #[arg(long)]
    count: Option<u64>,
    /// Most records per fetch.
    #[arg(long, default_value_t = 5_000)]
    fetch_records: u32,
}

/// How long the bench waits for a new topic's leaders.
const LEADERS_WAIT: Duration = Duration::from_secs(30);

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

fn progress(total: Option<u64>) -> ProgressBar {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} records ({per_sec})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    bar
}

struct Summary {
    kind: &'static str,
    records: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latency: Histogram<u64>,
    latency_of: &'static str,
}

fn report(summary: &Summary, format: Format) {
    let secs = summary.elapsed.as_secs_f64().max(f64::EPSILON);
    let ms = |q: f64| summary.latency.value_at_quantile(q) as f64 / 1000.0;
    let records_per_sec = summary.records as f64 / secs;
    let mb_per_sec = summary.bytes as f64 / secs / 1_000_000.0;
    match format {
        Format::Json => json_line(&json!({
            "bench": summary.kind,
            "records": summary.records,
            "errors": summary.errors,
            "seconds": secs,
            "records_per_sec": records_per_sec,
            "mb_per_sec": mb_per_sec,
            "latency_of": summary.latency_of,
            "latency_ms": {"p50": ms(0.5), "p99": ms(0.99), "p99_9": ms(0.999), "max": summary.latency.max() as f64 / 1000.0},
        })),
        Format::Table => {
            let mut out =
                table(&["RECORDS", "ERRORS", "SECONDS", "RECORDS/S", "MB/S", "P50 MS", "P99 MS", "P99.9 MS", "MAX MS"]);
            out.add_row(vec![
                summary.records.to_string(),
                summary.errors.to_string(),
                format!("{secs:.2}"),
                format!("{records_per_sec:.0}"),
                format!("{mb_per_sec:.2}"),
                format!("{:.2}", ms(0.5)),
                format!("{:.2}", ms(0.99)),
                format!("{:.2}", ms(0.999)),
                format!("{:.2}", summary.latency.max() as f64 / 1000.0),
            ]);
            println!("{} bench ({} latency)\n{out}", summary.kind, summary.latency_of);
        }
    }
}

/// Creates the topic when missing and waits (bounded) until every partition has a leader, so
/// leader election is not measured as produce latency.
async fn ensure_topic(client: &Client, args: &ProduceBench) -> Result<(), CliError> {
    match client.describe_topic(&args.topic).await {
        Ok(_) => {}
        Err(e) if e.code() == Some(Reason::UnknownTopic) => {
            client.create_topic(&args.topic, args.partitions, args.replication_factor).await?;
        }
        Err(e) => return Err(e.into()),
    }
    let deadline = Instant::now() + LEADERS_WAIT;
    while Instant::now() < deadline {
        let topic = client.describe_topic(&args.topic).await?;
        if topic.partitions.iter().all(|p| p.leader.is_some() && p.high_watermark.is_some()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(CliError::Failed(format!("topic {} has partitions without a leader after {LEADERS_WAIT:?}", args.topic)))
}

async fn produce(args: &ProduceBench, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    if args.in_flight == 0 || args.batch_records == 0 {
        return Err(CliError::Usage("--in-flight and --batch-records must be > 0".into()));
    }
    ensure_topic(&client, args).await?;
    let config = ProducerConfig {
        acks: Acks::from(args.acks),
        batch_records_max: args.batch_records,
        queue_records_max: args.in_flight.max(1),
        ..Default::default()
    };
    let producer = Producer::new(client, &args.topic, config).await?;
    let value = Bytes::from(vec![b'x'; args.record_size]);
    let permits = Arc::new(tokio::sync::Semaphore::new(args.in_flight));
    let latency = Arc::new(Mutex::new(histogram()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = args.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let bar = progress(if deadline.is_some() { None } else { Some(args.count) });
    let started = Instant::now();
    let mut sent = 0u64;
    while deadline.map_or(sent < args.count, |d| Instant::now() < d) {
        let permit = permits.clone().acquire_owned().await.map_err(|e| CliError::Failed(e.to_string()))?;
        let record = ProducerRecord { value: value.clone(), ..Default::default() };
        let at = Instant::now();
        let delivery = producer.send(record).await?;
        sent += 1;
        let (latency, errors, bar) = (latency.clone(), errors.clone(), bar.clone());
        tokio::spawn(async move {
            match delivery.await {
                Ok(Ok(_)) => {
                    let micros = at.elapsed().as_micros().max(1) as u64;
                    let _ = latency.lock().expect("histogram lock").record(micros.min(120_000_000));
                }
                _ => {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            bar.inc(1);
            drop(permit);
        });
    }
    // Every permit back means every record was answered.
    let _all = permits.acquire_many(args.in_flight as u32).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    producer.close().await;
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    let histogram = latency.lock().expect("histogram lock").clone();
    let records = sent - errors;
    report(
        &Summary {
            kind: "produce",
            records,
            bytes: records * args.record_size as u64,
            errors,
            elapsed,
            latency: histogram,
            latency_of: "send to acknowledgement, per record",
        },
        format,
    );
    if errors > 0 {
        return Err(CliError::Failed(format!("{errors} records were not acknowledged")));
    }
    Ok(())
}

async fn consume(args: &ConsumeBench, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    let partitions = client.partition_count(&args.topic).await?;
    let mut ranges = Vec::new();
    let mut available = 0u64;
    for p in 0..partitions {
        let start = client.list_offsets(&args.topic, p, v1::OffsetSpec::Earliest, 0).await?.offset;
        let end = client.list_offsets(&args.topic, p, v1::OffsetSpec::Latest, 0).await?.offset;
        available += end - start;
        ranges.push((p, start, end));
    }
    let target = args.count.unwrap_or(available).min(available);
    let bar = progress(Some(target));
    let started = Instant::now();
    let latency = Arc::new(Mutex::new(histogram()));
    let totals = Arc::new(Mutex::new((0u64, 0u64)));
    let mut tasks = Vec::new();
    for (partition, start, end) in ranges {
        let (client, topic, latency, totals, bar) =
            (client.clone(), args.topic.clone(), latency.clone(), totals.clone(), bar.clone());
        let fetch_records = args.fetch_records;
        tasks.push(tokio::spawn(async move {
            let mut offset = start;
            while offset < end && totals.lock().expect("totals lock").0 < target {
                let at = Instant::now();
                let request = v1::FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset,
                    max_bytes: 16 << 20,
                    max_records: fetch_records,
                    max_wait_ms: 0,
                    read_from_follower: false,
                };
                let response = client.fetch(request).await?;
                let _ = latency
                    .lock()
                    .expect("histogram lock")
                    .record((at.elapsed().as_micros().max(1) as u64).min(120_000_000));
                let bytes: u64 = response.records.iter().map(|r| r.value.len() as u64).sum();
                let n = response.records.len() as u64;
                if let Some(last) = response.records.last() {
                    offset = last.offset + 1;
                }
                let mut t = totals.lock().expect("totals lock");
                t.0 += n;
                t.1 += bytes;
                bar.inc(n);
            }
            Ok::<(), eddy_client::ClientError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| CliError::Failed(e.to_string()))??;
    }
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let (records, bytes) = *totals.lock().expect("totals lock");
    let histogram = latency.lock().expect("histogram lock").clone();
    report(
        &Summary {
            kind: "consume",
            records,
            bytes,
            errors: 0,
            elapsed,
            latency: histogram,
            latency_of: "per fetch request",
        },
        format,
    );
    Ok(())
}

pub async fn run(command: &BenchCommand, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    match command {
        BenchCommand::Produce(args) => produce(args, client, format).await,
        BenchCommand::Consume(args) => consume(args, client, format).await,
    }
}
