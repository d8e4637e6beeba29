//! `eddy bench produce|consume`: throughput and latency, like `nats bench` or
//! kafka-producer-perf-test. A thin front over `eddy-bench`'s workload engine and its Eddy
//! driver, the same code `scripts/bench-vs-nats` measures Eddy with.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use eddy_bench::engine::{self, ConsumeOutcome, Epoch, Pace, ProduceSpec, Progress, Stop};
use eddy_bench::latency::Latency;
use eddy_bench::{Driver, EddyDriver, EddyOptions, Publisher, StreamSpec};
use eddy_client::Client;
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

fn progress_bar(total: Option<u64>) -> ProgressBar {
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

/// Shows the engine's progress counter on a bar until dropped.
struct ShowProgress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl ShowProgress {
    fn start(total: Option<u64>, progress: &Progress) -> ShowProgress {
        let bar = progress_bar(total);
        let (shown, progress) = (bar.clone(), progress.clone());
        let ticker = tokio::spawn(async move {
            loop {
                shown.set_position(progress.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        ShowProgress { bar, ticker }
    }
}

impl Drop for ShowProgress {
    fn drop(&mut self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}

struct Summary {
    kind: &'static str,
    records: u64,
    bytes: u64,
    errors: u64,
    elapsed: Duration,
    latency: Latency,
    latency_of: &'static str,
}

fn report(summary: &Summary, format: Format) {
    let secs = summary.elapsed.as_secs_f64().max(f64::EPSILON);
    let ms = summary.latency.summary();
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
            "latency_ms": ms,
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
                format!("{:.2}", ms.p50),
                format!("{:.2}", ms.p99),
                format!("{:.2}", ms.p99_9),
                format!("{:.2}", ms.max),
            ]);
            println!("{} bench ({} latency)\n{out}", summary.kind, summary.latency_of);
        }
    }
}

async fn produce(args: &ProduceBench, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    if args.in_flight == 0 || args.batch_records == 0 {
        return Err(CliError::Usage("--in-flight and --batch-records must be > 0".into()));
    }
    let options = EddyOptions { acks: args.acks.into(), batch_records_max: args.batch_records };
    let driver = EddyDriver::with_client(client, options);
    let stream =
        StreamSpec { name: args.topic.clone(), partitions: args.partitions, replicas: args.replication_factor };
    // Waits for every partition's leader, so leader election is not measured as latency.
    let partitions = driver.ensure_stream(&stream).await?;
    let publisher = driver.publisher(&stream, args.in_flight).await?;
    let spec = ProduceSpec {
        stop: args.duration.map_or(Stop::Records(args.count), |s| Stop::After(Duration::from_secs(s))),
        record_size_bytes: args.record_size,
        in_flight_max: args.in_flight,
        pace: Pace::ClosedLoop,
        stamped: false,
        track_acks: false,
    };
    let progress = Progress::default();
    let shown = ShowProgress::start(args.duration.is_none().then_some(args.count), &progress);
    let outcome = engine::produce(&publisher, partitions, &spec, Epoch(Instant::now()), progress).await?;
    drop(shown);
    publisher.close().await;
    report(
        &Summary {
            kind: "produce",
            records: outcome.acknowledged,
            bytes: outcome.bytes_acknowledged,
            errors: outcome.errors,
            elapsed: outcome.elapsed,
            latency: outcome.latency,
            latency_of: "scheduled send to acknowledgement, per record",
        },
        format,
    );
    if outcome.errors > 0 {
        let first = outcome.first_error.unwrap_or_default();
        return Err(CliError::Failed(format!("{} records were not acknowledged; the first: {first}", outcome.errors)));
    }
    Ok(())
}

async fn consume(args: &ConsumeBench, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    let partitions = client.partition_count(&args.topic).await?;
    let driver = EddyDriver::with_client(client, EddyOptions::default());
    // Partitions and replicas of an existing topic: only the name is used to read it.
    let stream = StreamSpec { name: args.topic.clone(), partitions, replicas: 0 };
    let progress = Progress::default();
    let shown = ShowProgress::start(args.count, &progress);
    let outcome: ConsumeOutcome =
        engine::consume_from_start(&driver, &stream, partitions, args.count, args.fetch_records, false, progress)
            .await?;
    drop(shown);
    report(
        &Summary {
            kind: "consume",
            records: outcome.records,
            bytes: outcome.bytes,
            errors: 0,
            elapsed: outcome.elapsed,
            latency: outcome.latency,
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
