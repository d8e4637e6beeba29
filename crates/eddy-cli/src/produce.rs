//! `eddy produce`: one record per stdin line.

use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use eddy_client::schema::SchemaRegistry;
use eddy_client::{Acks, Client, Delivery, Producer, ProducerConfig, ProducerRecord};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::error::CliError;
use crate::output::{Format, json_line};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    topic: String,
    /// Split each line at the first occurrence of this delimiter into key and value.
    #[arg(long)]
    key_delimiter: Option<String>,
    /// Send every record to this partition.
    #[arg(long)]
    partition: Option<u32>,
    /// Encode each line's value, given as JSON, with the latest schema of this subject (in the
    /// schema registry's wire format: magic byte, schema id, the value in the schema's format).
    #[arg(long)]
    value_schema: Option<String>,
    /// The same for keys (with --key-delimiter).
    #[arg(long, requires = "key_delimiter")]
    key_schema: Option<String>,
    /// Acknowledgement: all (quorum commit) or leader.
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    acks: AcksArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcksArg {
    All,
    Leader,
}

impl From<AcksArg> for Acks {
    fn from(a: AcksArg) -> Acks {
        match a {
            AcksArg::All => Acks::All,
            AcksArg::Leader => Acks::Leader,
        }
    }
}

/// Deliveries awaited in input order, so output follows input order.
const DELIVERIES_IN_FLIGHT_MAX: usize = 10_000;

/// Encodes a line's key or value given as JSON with the latest schema of `subject`.
async fn encode(registry: &SchemaRegistry, subject: &str, text: &str) -> Result<Bytes, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    registry.encode_json(subject, &value).await.map(Bytes::from).map_err(|e| e.to_string())
}

pub async fn run(
    args: &ProduceArgs,
    client: Arc<Client>,
    registry: SchemaRegistry,
    format: Format,
) -> Result<(), CliError> {
    if args.key_delimiter.as_deref() == Some("") {
        return Err(CliError::Usage("--key-delimiter must not be empty".into()));
    }
    let config = ProducerConfig { acks: args.acks.into(), ..Default::default() };
    let producer = Producer::new(client, &args.topic, config).await?;
    if let Some(p) = args.partition
        && p >= producer.partitions()
    {
        return Err(CliError::Usage(format!(
            "topic {:?} has no partition {p} (it has {}) (UNKNOWN_PARTITION)",
            args.topic,
            producer.partitions()
        )));
    }
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, Option<String>, String, Delivery)>(DELIVERIES_IN_FLIGHT_MAX);
    let printer = tokio::spawn(async move {
        let (mut ok, mut failed) = (0u64, 0u64);
        while let Some((line, key, value, delivery)) = rx.recv().await {
            match delivery.await {
                Ok(Ok(meta)) => {
                    ok += 1;
                    if format == Format::Json {
                        json_line(
                            &json!({"partition": meta.partition, "offset": meta.offset, "key": key, "value": value}),
                        );
                    }
                }
                Ok(Err(e)) => {
                    failed += 1;
                    eprintln!("error: line {line} was not produced: {e}");
                }
                Err(_) => {
                    failed += 1;
                    eprintln!("error: line {line} was not produced: the producer stopped");
                }
            }
        }
        (ok, failed)
    });
    if let Some(subject) = args.value_schema.iter().chain(&args.key_schema).next() {
        // Fail once, clearly, before reading input when the subject has no schema.
        registry.latest_id(subject).await?;
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0u64;
    let mut unencodable = 0u64;
    while let Some(line) = lines.next_line().await? {
        number += 1;
        let (key, value) = match &args.key_delimiter {
            Some(d) => match line.split_once(d.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let encoded_key = match (&args.key_schema, &key) {
            (Some(subject), Some(k)) => encode(&registry, subject, k).await.map(Some),
            _ => Ok(key.clone().map(Bytes::from)),
        };
        let encoded_value = match &args.value_schema {
            Some(subject) => encode(&registry, subject, &value).await,
            None => Ok(Bytes::from(value.clone())),
        };
        let (encoded_key, encoded_value) = match (encoded_key, encoded_value) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(e), _) | (_, Err(e)) => {
                unencodable += 1;
                eprintln!("error: line {number} was not produced: {e}");
                continue;
            }
        };
        let record =
            ProducerRecord { key: encoded_key, value: encoded_value, partition: args.partition, ..Default::default() };
        let delivery = producer.send(record).await?;
        if tx.send((number, key, value, delivery)).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.close().await;
    let (ok, failed) = printer.await.map_err(|e| CliError::Failed(e.to_string()))?;
    let failed = failed + unencodable;
    if format == Format::Table {
        eprintln!("produced {ok} records to {}", args.topic);
    }
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} of {} records were not produced", ok + failed)));
    }
    Ok(())
}
