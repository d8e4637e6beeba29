//! `eddy consume`: print a topic's records.

use std::sync::Arc;

use clap::Args;
use eddy_client::{Client, ClientError, v1};
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

pub async fn run(args: &ConsumeArgs, client: Arc<Client>, format: Format) -> Result<(), CliError> {
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
                match format {
                    Format::Json => json_line(&json!({
                        "partition": partition,
                        "offset": record.offset,
                        "key": record.key.as_deref().map(text),
                        "value": text(&record.value),
                        "timestamp": record.timestamp_ms,
                    })),
                    Format::Table => println!("{}", text(&record.value)),
                }
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
