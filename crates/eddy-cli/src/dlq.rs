//! `eddy dlq`: an operator's tools for dead-letter topics (`<topic>.dlq`, written by
//! `eddy_client::processing::Processor`): count the failures, read them with their failure
//! headers, replay them to their original topic once the cause is fixed, purge them.
//!
//! Replays are recorded in a ledger topic, `<topic>.dlq.replayed` (one record per replayed dead
//! letter, keyed `PARTITION/OFFSET`), so running `replay` again sends only what was not sent
//! before. A replayed record keeps its key, value and own headers (its event id among them, so
//! idempotent handlers skip it if it had in fact been handled), loses the `eddy.*` failure
//! headers and gains `eddy.replayed.from` (`DLQ-TOPIC/PARTITION/OFFSET`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use clap::Subcommand;
use eddy_client::processing::failure::{self, Failure};
use eddy_client::{Client, ClientError, Producer, ProducerConfig, ProducerRecord, v1};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table, text};

/// The header a replayed record carries: the dead letter it came from.
pub const REPLAYED_FROM: &str = "eddy.replayed.from";

/// Records replayed between two ledger writes.
const REPLAY_CHUNK: usize = 200;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Count a dead-letter topic's records per error, with how many were replayed.
    List {
        /// The dead-letter topic (`orders.dlq`) or the topic whose dead letters to read
        /// (`orders`).
        topic: String,
        /// Only dead letters matching FIELD=VALUE (repeatable, all must match): key, group,
        /// reason (FATAL, RETRIES_EXHAUSTED), original-topic, partition (in the dead-letter
        /// topic), error (a substring of the last error).
        #[arg(long = "filter", value_name = "FIELD=VALUE", value_parser = parse_filter)]
        filters: Vec<Filter>,
    },
    /// Print dead letters with their failure headers, oldest first.
    Show {
        /// The dead-letter topic or its main topic.
        topic: String,
        /// Print at most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only dead letters matching FIELD=VALUE (see `list`).
        #[arg(long = "filter", value_name = "FIELD=VALUE", value_parser = parse_filter)]
        filters: Vec<Filter>,
    },
    /// Produce dead letters again to their original topic (or --to), each at most once: what
    /// was replayed is recorded in `<dlq>.replayed` and skipped next time.
    Replay {
        /// The dead-letter topic or its main topic.
        topic: String,
        /// Send to this topic instead of each record's original one.
        #[arg(long)]
        to: Option<String>,
        /// Only dead letters matching FIELD=VALUE (see `list`).
        #[arg(long = "filter", value_name = "FIELD=VALUE", value_parser = parse_filter)]
        filters: Vec<Filter>,
        /// Say what would be replayed, without sending anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete every record of a dead-letter topic (and its replay ledger).
    Purge {
        /// The dead-letter topic or its main topic.
        topic: String,
    },
}

/// One `--filter FIELD=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Key(String),
    Group(String),
    Reason(String),
    OriginalTopic(String),
    Partition(u32),
    Error(String),
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    let Some((field, value)) = text.split_once('=') else {
        return Err(format!("{text:?} is not FIELD=VALUE"));
    };
    let value = value.to_string();
    Ok(match field.trim() {
        "key" => Filter::Key(value),
        "group" => Filter::Group(value),
        "reason" => Filter::Reason(value),
        "original-topic" => Filter::OriginalTopic(value),
        "partition" => Filter::Partition(value.parse().map_err(|_| format!("partition {value:?} is not a number"))?),
        "error" => Filter::Error(value),
        other => {
            return Err(format!(
                "unknown filter field {other:?} (key, group, reason, original-topic, partition, error)"
            ));
        }
    })
}

/// The dead-letter topic an argument names: itself when it ends in `.dlq`, else its DLQ.
fn dead_letter_topic(topic: &str) -> String {
    if topic.ends_with(".dlq") { topic.to_string() } else { failure::dead_letter_topic(topic) }
}

fn ledger_topic(dlq: &str) -> String {
    format!("{dlq}.replayed")
}

/// A record of a dead-letter topic with what its headers say.
struct DeadLetter {
    partition: u32,
    record: v1::StoredRecord,
    headers: Vec<(String, Bytes)>,
    failure: Option<Failure>,
}

impl DeadLetter {
    fn new(partition: u32, record: v1::StoredRecord) -> Self {
        let headers: Vec<(String, Bytes)> = record.headers.iter().map(|h| (h.key.clone(), h.value.clone())).collect();
        let failure = Failure::from_headers(&headers);
        DeadLetter { partition, record, headers, failure }
    }

    fn reason(&self) -> &str {
        failure::text(&self.headers, failure::DLQ_REASON).unwrap_or("-")
    }

    fn last_error(&self) -> &str {
        self.failure.as_ref().map_or("-", |f| f.last_error.as_str())
    }

    fn id(&self) -> (u32, u64) {
        (self.partition, self.record.offset)
    }

    fn matches(&self, filters: &[Filter]) -> bool {
        filters.iter().all(|filter| match filter {
            Filter::Key(key) => self.record.key.as_deref() == Some(key.as_bytes()),
            Filter::Group(group) => self.failure.as_ref().is_some_and(|f| &f.group == group),
            Filter::Reason(reason) => self.reason().eq_ignore_ascii_case(reason),
            Filter::OriginalTopic(topic) => self.failure.as_ref().is_some_and(|f| &f.original_topic == topic),
            Filter::Partition(partition) => self.partition == *partition,
            Filter::Error(part) => self.last_error().contains(part.as_str()),
        })
    }

    fn json(&self, replayed: bool) -> serde_json::Value {
        let failure = self.failure.as_ref().map(|f| {
            json!({
                "original_topic": f.original_topic,
                "original_partition": f.original_partition,
                "original_offset": f.original_offset,
                "group": f.group,
                "attempts": f.attempts,
                "reason": self.reason(),
                "first_error": f.first_error,
                "last_error": f.last_error,
                "first_failure_ms": f.first_failure_ms,
                "last_failure_ms": f.last_failure_ms,
            })
        });
        let own: Vec<v1::Header> =
            failure::strip(&self.headers).into_iter().map(|(key, value)| v1::Header { key, value }).collect();
        json!({
            "partition": self.partition,
            "offset": self.record.offset,
            "key": self.record.key.as_deref().map(text),
            "value": text(&self.record.value),
            "timestamp": self.record.timestamp_ms,
            "headers": crate::consume::headers_json(&own),
            "failure": failure,
            "replayed": replayed,
        })
    }
}

/// Reads every record of `topic` from the log start to the high watermark as it is now, calling
/// `visit` until it returns false. A topic that does not exist reads as empty when `missing_ok`.
async fn read_all(
    client: &Client,
    topic: &str,
    missing_ok: bool,
    mut visit: impl FnMut(u32, v1::StoredRecord) -> bool,
) -> Result<(), CliError> {
    let description = match client.describe_topic(topic).await {
        Ok(description) => description,
        Err(e) if missing_ok && e.code() == Some(eddy_client::Reason::UnknownTopic) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for partition in description.partitions.iter().map(|p| p.partition) {
        let bounds = client.list_offsets(topic, partition, v1::OffsetSpec::Earliest, 0).await?;
        let (mut offset, end) = (bounds.offset, bounds.high_watermark);
        while offset < end {
            let request = v1::FetchRequest { topic: topic.to_string(), partition, offset, ..Default::default() };
            let fetched = client.fetch(request).await?;
            let Some(last) = fetched.records.last().map(|r| r.offset) else { break };
            for record in fetched.records.into_iter().take_while(|r| r.offset < end) {
                if !visit(partition, record) {
                    return Ok(());
                }
            }
            offset = last + 1;
        }
    }
    Ok(())
}

async fn dead_letters(client: &Client, dlq: &str) -> Result<Vec<DeadLetter>, CliError> {
    let mut letters = Vec::new();
    read_all(client, dlq, false, |partition, record| {
        letters.push(DeadLetter::new(partition, record));
        true
    })
    .await?;
    Ok(letters)
}

/// The dead letters already replayed, from the ledger.
async fn replayed(client: &Client, dlq: &str) -> Result<HashSet<(u32, u64)>, CliError> {
    let mut done = HashSet::new();
    read_all(client, &ledger_topic(dlq), true, |_, record| {
        if let Some(id) = record.key.as_deref().and_then(parse_ledger_key) {
            done.insert(id);
        }
        true
    })
    .await?;
    Ok(done)
}

fn ledger_key((partition, offset): (u32, u64)) -> String {
    format!("{partition}/{offset}")
}

fn parse_ledger_key(key: &[u8]) -> Option<(u32, u64)> {
    let (partition, offset) = std::str::from_utf8(key).ok()?.split_once('/')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

pub async fn run(command: &DlqCommand, client: Arc<Client>, format: Format) -> Result<(), CliError> {
    match command {
        DlqCommand::List { topic, filters } => list(&client, &dead_letter_topic(topic), filters, format).await,
        DlqCommand::Show { topic, limit, filters } => {
            show(&client, &dead_letter_topic(topic), *limit, filters, format).await
        }
        DlqCommand::Replay { topic, to, filters, dry_run } => {
            replay(client, &dead_letter_topic(topic), to.as_deref(), filters, *dry_run, format).await
        }
        DlqCommand::Purge { topic } => purge(&client, &dead_letter_topic(topic), format).await,
    }
}

async fn list(client: &Client, dlq: &str, filters: &[Filter], format: Format) -> Result<(), CliError> {
    let letters = dead_letters(client, dlq).await?;
    let done = replayed(client, dlq).await?;
    // (original topic, reason, last error) -> (count, replayed)
    let mut counts: BTreeMap<(String, String, String), (u64, u64)> = BTreeMap::new();
    let mut total = 0;
    for letter in letters.iter().filter(|l| l.matches(filters)) {
        let original = letter.failure.as_ref().map_or("-", |f| f.original_topic.as_str());
        let entry = counts
            .entry((original.to_string(), letter.reason().to_string(), letter.last_error().to_string()))
            .or_default();
        entry.0 += 1;
        entry.1 += u64::from(done.contains(&letter.id()));
        total += 1;
    }
    let mut rows: Vec<_> = counts.into_iter().collect();
    rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
    match format {
        Format::Json => json_line(&json!({
            "topic": dlq,
            "records": total,
            "errors": rows.iter().map(|((original, reason, error), (count, replayed))| json!({
                "original_topic": original,
                "reason": reason,
                "error": error,
                "count": count,
                "replayed": replayed,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            let mut out = table(&["COUNT", "REPLAYED", "ORIGINAL TOPIC", "REASON", "LAST ERROR"]);
            for ((original, reason, error), (count, replayed)) in &rows {
                out.add_row(vec![
                    count.to_string(),
                    replayed.to_string(),
                    original.clone(),
                    reason.clone(),
                    error.clone(),
                ]);
            }
            println!("{out}");
            println!("{total} dead letters in {dlq}");
        }
    }
    Ok(())
}

async fn show(client: &Client, dlq: &str, limit: usize, filters: &[Filter], format: Format) -> Result<(), CliError> {
    let mut shown = Vec::new();
    if limit > 0 {
        read_all(client, dlq, false, |partition, record| {
            let letter = DeadLetter::new(partition, record);
            if letter.matches(filters) {
                shown.push(letter);
            }
            shown.len() < limit
        })
        .await?;
    }
    let done = replayed(client, dlq).await?;
    match format {
        Format::Json => {
            for letter in &shown {
                json_line(&letter.json(done.contains(&letter.id())));
            }
        }
        Format::Table => {
            for letter in &shown {
                let key = letter.record.key.as_deref().map_or_else(|| "-".to_string(), text);
                println!("── {dlq} partition {} offset {} key {key}", letter.partition, letter.record.offset);
                if let Some(f) = &letter.failure {
                    println!(
                        "   from {}/{}@{} group {} after {} attempts ({})",
                        f.original_topic,
                        f.original_partition,
                        f.original_offset,
                        f.group,
                        f.attempts,
                        letter.reason()
                    );
                    println!("   first error: {}", f.first_error);
                    println!("   last error:  {}", f.last_error);
                }
                if done.contains(&letter.id()) {
                    println!("   replayed");
                }
                println!("   value: {}", text(&letter.record.value));
            }
            println!("{} shown", shown.len());
        }
    }
    Ok(())
}

async fn replay(
    client: Arc<Client>,
    dlq: &str,
    to: Option<&str>,
    filters: &[Filter],
    dry_run: bool,
    format: Format,
) -> Result<(), CliError> {
    let letters = dead_letters(&client, dlq).await?;
    let done = replayed(&client, dlq).await?;
    let mut already = 0u64;
    let mut pending = Vec::new();
    for letter in letters.into_iter().filter(|l| l.matches(filters)) {
        if done.contains(&letter.id()) {
            already += 1;
            continue;
        }
        let target = match (to, &letter.failure) {
            (Some(to), _) => to.to_string(),
            (None, Some(f)) => f.original_topic.clone(),
            (None, None) => {
                return Err(CliError::Usage(format!(
                    "the record at {dlq}/{}@{} has no {} header: give --to",
                    letter.partition,
                    letter.record.offset,
                    failure::ORIGINAL_TOPIC
                )));
            }
        };
        pending.push((target, letter));
    }
    let mut per_topic: BTreeMap<String, u64> = BTreeMap::new();
    for (target, _) in &pending {
        *per_topic.entry(target.clone()).or_default() += 1;
    }
    if !dry_run && !pending.is_empty() {
        let ledger = ledger_topic(dlq);
        ensure_ledger(&client, dlq, &ledger).await?;
        let config = ProducerConfig { idempotent: true, ..ProducerConfig::default() };
        let ledger_producer = Producer::new(client.clone(), &ledger, config.clone()).await?;
        let mut producers: BTreeMap<String, Producer> = BTreeMap::new();
        for target in per_topic.keys() {
            producers.insert(target.clone(), Producer::new(client.clone(), target, config.clone()).await?);
        }
        // Each chunk goes out and is acknowledged before its ledger entries are written: a
        // crash in between replays the chunk again next time (the records' event ids let
        // idempotent handlers skip them), never skips a record that was not sent.
        for chunk in pending.chunks(REPLAY_CHUNK) {
            let mut sent = Vec::with_capacity(chunk.len());
            for (target, letter) in chunk {
                let mut headers = failure::strip(&letter.headers);
                let from = format!("{dlq}/{}/{}", letter.partition, letter.record.offset);
                headers.push((REPLAYED_FROM.to_string(), Bytes::from(from)));
                let record = ProducerRecord {
                    key: letter.record.key.clone(),
                    value: letter.record.value.clone(),
                    headers,
                    ..ProducerRecord::default()
                };
                sent.push(producers[target].send(record).await?);
            }
            let mut entries = Vec::with_capacity(chunk.len());
            for ((target, letter), delivery) in chunk.iter().zip(sent) {
                let stored = acknowledged(delivery).await?;
                let entry = json!({
                    "to_topic": target,
                    "to_partition": stored.partition,
                    "to_offset": stored.offset,
                    "replayed_at_ms": failure::now_ms(),
                });
                let record = ProducerRecord {
                    key: Some(Bytes::from(ledger_key(letter.id()))),
                    value: Bytes::from(entry.to_string()),
                    ..ProducerRecord::default()
                };
                entries.push(ledger_producer.send(record).await?);
            }
            for entry in entries {
                acknowledged(entry).await?;
            }
        }
        for (_, producer) in producers {
            producer.close().await;
        }
        ledger_producer.close().await;
    }
    let replayed_count = pending.len();
    match format {
        Format::Json => json_line(&json!({
            "topic": dlq,
            "dry_run": dry_run,
            "replayed": replayed_count,
            "already_replayed": already,
            "to": per_topic,
        })),
        Format::Table => {
            let verb = if dry_run { "would replay" } else { "replayed" };
            let targets: Vec<String> = per_topic.iter().map(|(t, n)| format!("{n} to {t}")).collect();
            let targets = if targets.is_empty() { String::new() } else { format!(" ({})", targets.join(", ")) };
            println!("{verb} {replayed_count} dead letters from {dlq}{targets}; {already} replayed before");
        }
    }
    Ok(())
}

async fn acknowledged(delivery: eddy_client::Delivery) -> Result<eddy_client::RecordMetadata, CliError> {
    Ok(delivery.await.unwrap_or_else(|_| Err(ClientError::Invalid("the producer stopped".into())))?)
}

/// Creates the replay ledger when it does not exist, replicated as its dead-letter topic.
async fn ensure_ledger(client: &Client, dlq: &str, ledger: &str) -> Result<(), CliError> {
    let replication = client.describe_topic(dlq).await?.replication_factor;
    match client.create_topic(ledger, 1, replication).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(eddy_client::Reason::TopicAlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn purge(client: &Client, dlq: &str, format: Format) -> Result<(), CliError> {
    let mut deleted = 0;
    for topic in [dlq.to_string(), ledger_topic(dlq)] {
        let description = match client.describe_topic(&topic).await {
            Ok(description) => description,
            Err(e) if topic != dlq && e.code() == Some(eddy_client::Reason::UnknownTopic) => continue,
            Err(e) => return Err(e.into()),
        };
        for partition in description.partitions.iter().map(|p| p.partition) {
            let answer = client.delete_records(&topic, partition, None).await?;
            if topic == dlq {
                deleted += answer.deleted_records;
            }
        }
    }
    match format {
        Format::Json => json_line(&json!({"topic": dlq, "deleted": deleted})),
        Format::Table => println!("purged {deleted} dead letters from {dlq}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_or_name_the_problem() {
        assert_eq!(parse_filter("key=order-1"), Ok(Filter::Key("order-1".into())));
        assert_eq!(parse_filter("partition=2"), Ok(Filter::Partition(2)));
        assert_eq!(parse_filter("error=card=declined"), Ok(Filter::Error("card=declined".into())));
        assert!(parse_filter("colour=red").unwrap_err().contains("unknown filter field"));
        assert!(parse_filter("partition=x").unwrap_err().contains("not a number"));
        assert!(parse_filter("key").unwrap_err().contains("FIELD=VALUE"));
    }

    #[test]
    fn topic_arguments_and_ledger_keys() {
        assert_eq!(dead_letter_topic("orders"), "orders.dlq");
        assert_eq!(dead_letter_topic("orders.dlq"), "orders.dlq");
        assert_eq!(parse_ledger_key(ledger_key((3, 17)).as_bytes()), Some((3, 17)));
        assert_eq!(parse_ledger_key(b"3-17"), None);
    }
}
