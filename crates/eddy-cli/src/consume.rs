//! `eddy consume`: print a topic's records.

use std::collections::BTreeMap;
use std::sync::Arc;

use clap::Args;
use std::time::Duration;

use eddy_client::schema::SchemaRegistry;
use eddy_client::{Client, ClientError, Consumer, ConsumerConfig, OffsetReset, SeekTo, TopicPartition, v1};
use opentelemetry::context::FutureExt;
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, text};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    topic: String,
    /// Read only this partition (default: all).
    #[arg(long)]
    partition: Option<u32>,
    /// Start at each partition's earliest offset (default: the latest).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "from_timestamp")]
    offset: Option<u64>,
    /// Start at each partition's first record whose timestamp (ms since the Unix epoch) is at or
    /// after this one.
    #[arg(long, conflicts_with = "from_beginning")]
    from_timestamp: Option<i64>,
    /// Stop once every partition's end, as it was at start, is reached.
    #[arg(long)]
    exit_at_end: bool,
    /// Stop after this many records.
    #[arg(long)]
    max_records: Option<u64>,
    /// Consume as a member of this group: the group's coordinator assigns partitions, consumption
    /// starts at the group's committed offsets (else at the latest, or the earliest with
    /// --from-beginning) and is committed as it goes and on exit (Ctrl-C included).
    #[arg(long, conflicts_with_all = ["partition", "offset", "from_timestamp", "exit_at_end"])]
    group: Option<String>,
    /// With --group: how long the group waits for this member's heartbeats before reassigning its
    /// partitions, in ms.
    #[arg(long, default_value_t = 10_000, requires = "group")]
    session_timeout_ms: u64,
    /// With --group: how often consumed offsets are committed, in ms.
    #[arg(long, default_value_t = 1_000, requires = "group")]
    commit_interval_ms: u64,
    /// Decode keys and values that carry a schema id (the schema registry's wire format) with
    /// their schema, and print them as JSON; others print as text.
    #[arg(long)]
    decode: bool,
}

/// How long one fetch waits for new records.
const FETCH_WAIT_MS: u32 = 500;

async fn read_partition(
    client: Arc<Client>,
    topic: String,
    partition: u32,
    mut offset: u64,
    end: Option<u64>,
    out: tokio::sync::mpsc::Sender<Result<(u32, v1::StoredRecord), ClientError>>,
) {
    loop {
        if end.is_some_and(|end| offset >= end) {
            return;
        }
        let request = v1::FetchRequest {
            topic: topic.clone(),
            partition,
            offset,
            max_bytes: 0,
            max_records: 0,
            max_wait_ms: FETCH_WAIT_MS,
            read_from_follower: false,
        };
        match client.fetch(request).await {
            Ok(response) => {
                for record in response.records {
                    if end.is_some_and(|end| record.offset >= end) {
                        return;
                    }
                    offset = record.offset + 1;
                    if out.send(Ok((partition, record))).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = out.send(Err(e)).await;
                return;
            }
        }
    }
}

/// A key or value as printed: decoded with its schema when asked and it names one, else text.
async fn shown(bytes: &[u8], decoder: Option<&SchemaRegistry>, what: &str, offset: u64) -> serde_json::Value {
    if let Some(registry) = decoder
        && eddy_schema::wire::split(bytes).is_ok()
    {
        match registry.decode_json(bytes).await {
            Ok((_, value)) => return value,
            Err(e) => eprintln!("warning: the {what} at offset {offset} does not decode, printed as text: {e}"),
        }
    }
    serde_json::Value::String(text(bytes))
}

/// Prints a record as its `process` span when the CLI exports spans (`--otlp-endpoint`): a child
/// of the trace the record carries, so the trace goes on from its producer to this consumer.
async fn process(
    format: Format,
    (topic, partition, group): (&str, u32, Option<&str>),
    record: &v1::StoredRecord,
    decoder: Option<&SchemaRegistry>,
) {
    if !eddy_telemetry::exporting() {
        return print(format, partition, record, decoder).await;
    }
    let carried = eddy_telemetry::propagation::from_record_headers(
        record.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref())),
    );
    let processed = eddy_telemetry::messaging::Processed {
        topic,
        partition,
        offset: record.offset,
        key: record.key.as_deref(),
        value_size: record.value.len(),
        group,
    };
    let span = eddy_telemetry::messaging::process(processed, &carried);
    print(format, partition, record, decoder).with_context(span.context().clone()).await;
    span.end();
}

/// A record's headers as a JSON object of text values (a repeated header keeps its last value).
pub fn headers_json(headers: &[v1::Header]) -> serde_json::Value {
    headers.iter().map(|h| (h.key.clone(), serde_json::Value::String(text(&h.value)))).collect()
}

async fn print(format: Format, partition: u32, record: &v1::StoredRecord, decoder: Option<&SchemaRegistry>) {
    let value = shown(&record.value, decoder, "value", record.offset).await;
    match format {
        Format::Json => {
            let key = match record.key.as_deref() {
                Some(key) => shown(key, decoder, "key", record.offset).await,
                None => serde_json::Value::Null,
            };
            json_line(&json!({
                "partition": partition,
                "offset": record.offset,
                "key": key,
                "value": value,
                "timestamp": record.timestamp_ms,
                "headers": headers_json(&record.headers),
            }))
        }
        Format::Table => match value {
            serde_json::Value::String(text) => println!("{text}"),
            decoded => println!("{decoded}"),
        },
    }
}

/// `eddy consume TOPIC --group G`: a group member until Ctrl-C (or SIGTERM), then commits and
/// leaves.
async fn run_group(
    args: &ConsumeArgs,
    group: &str,
    client: Arc<Client>,
    decoder: Option<&SchemaRegistry>,
    format: Format,
) -> Result<(), CliError> {
    client.partition_count(&args.topic).await?;
    let config = ConsumerConfig {
        group_id: Some(group.to_string()),
        client_id: "eddy-cli".into(),
        session_timeout: Duration::from_millis(args.session_timeout_ms),
        auto_commit_interval: Some(Duration::from_millis(args.commit_interval_ms)),
        auto_offset_reset: if args.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::subscribe(client, &[args.topic.as_str()], config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| CliError::Failed(format!("cannot watch for SIGTERM: {e}")))?;
    let mut printed = 0u64;
    let outcome = 'consume: loop {
        let records = tokio::select! {
            biased;
            _ = tokio::signal::ctrl_c() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            records = consumer.poll() => records,
        };
        match records {
            Ok(records) => {
                let mut records = records.into_iter();
                for record in records.by_ref() {
                    let stored = v1::StoredRecord {
                        offset: record.offset,
                        key: record.key,
                        value: record.value,
                        headers: record.headers.into_iter().map(|(key, value)| v1::Header { key, value }).collect(),
                        timestamp_ms: record.timestamp_ms,
                    };
                    process(format, (&args.topic, record.partition, Some(group)), &stored, decoder).await;
                    printed += 1;
                    if args.max_records.is_some_and(|max| printed >= max) {
                        break;
                    }
                }
                // Records polled but not printed are not consumed: the group's commit on exit
                // covers exactly what was printed.
                let mut unprinted: BTreeMap<TopicPartition, u64> = BTreeMap::new();
                for record in records {
                    unprinted.entry(TopicPartition::new(&record.topic, record.partition)).or_insert(record.offset);
                }
                for (partition, offset) in unprinted {
                    if let Err(e) = consumer.seek(&partition, SeekTo::Offset(offset)).await {
                        break 'consume Err(CliError::from(e));
                    }
                }
                if args.max_records.is_some_and(|max| printed >= max) {
                    break Ok(());
                }
            }
            Err(e) => break Err(CliError::from(e)),
        }
    };
    // Commits what was printed and leaves the group, so its partitions move on at once.
    let closed = consumer.close().await.map_err(CliError::from);
    outcome.and(closed)
}

pub async fn run(
    args: &ConsumeArgs,
    client: Arc<Client>,
    registry: SchemaRegistry,
    format: Format,
) -> Result<(), CliError> {
    let decoder = args.decode.then_some(&registry);
    if let Some(group) = &args.group {
        return run_group(args, group, client, decoder, format).await;
    }
    let count = client.partition_count(&args.topic).await?;
    let partitions: Vec<u32> = match args.partition {
        Some(p) if p >= count => {
            return Err(CliError::Usage(format!(
                "topic {:?} has no partition {p} (it has {count}) (UNKNOWN_PARTITION)",
                args.topic
            )));
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let mut tasks = Vec::new();
    for partition in partitions {
        let start = match (args.offset, args.from_beginning) {
            (Some(offset), _) => {
                let earliest = client.list_offsets(&args.topic, partition, v1::OffsetSpec::Earliest, 0).await?;
                if offset < earliest.log_start_offset || offset > earliest.high_watermark {
                    return Err(CliError::Failed(format!(
                        "offset {offset} is out of range for {}/{partition}: the log holds [{}, {}) (OFFSET_OUT_OF_RANGE)",
                        args.topic, earliest.log_start_offset, earliest.high_watermark
                    )));
                }
                offset
            }
            (None, true) => client.list_offsets(&args.topic, partition, v1::OffsetSpec::Earliest, 0).await?.offset,
            (None, false) => match args.from_timestamp {
                Some(ts) => client.list_offsets(&args.topic, partition, v1::OffsetSpec::Timestamp, ts).await?.offset,
                None => client.list_offsets(&args.topic, partition, v1::OffsetSpec::Latest, 0).await?.offset,
            },
        };
        let end = if args.exit_at_end {
            Some(client.list_offsets(&args.topic, partition, v1::OffsetSpec::Latest, 0).await?.offset)
        } else {
            None
        };
        tasks.push(tokio::spawn(read_partition(client.clone(), args.topic.clone(), partition, start, end, tx.clone())));
    }
    drop(tx);
    let mut printed = 0u64;
    let mut failure = None;
    while let Some(item) = rx.recv().await {
        if args.max_records.is_some_and(|max| printed >= max) {
            break;
        }
        match item {
            Ok((partition, record)) => {
                printed += 1;
                process(format, (&args.topic, partition, None), &record, decoder).await;
                if args.max_records.is_some_and(|max| printed >= max) {
                    break;
                }
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    for task in tasks {
        task.abort();
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
