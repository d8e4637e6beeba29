//! `eddy produce`: one record per stdin line.

use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
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

pub async fn run(args: &ProduceArgs, client: Arc<Client>, format: Format) -> Result<(), CliError> {
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
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0u64;
    while let Some(line) = lines.next_line().await? {
        number += 1;
        let (key, value) = match &args.key_delimiter {
            Some(d) => match line.split_once(d.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let record = ProducerRecord {
            key: key.clone().map(Bytes::from),
            value: Bytes::from(value.clone()),
            partition: args.partition,
            ..Default::default()
        };
        let delivery = producer.send(record).await?;
        if tx.send((number, key, value, delivery)).await.is_err() {
            break;
        }
    }
    drop(tx);
    producer.close().await;
    let (ok, failed) = printer.await.map_err(|e| CliError::Failed(e.to_string()))?;
    if format == Format::Table {
        eprintln!("produced {ok} records to {}", args.topic);
    }
    if failed > 0 {
        return Err(CliError::Failed(format!("{failed} of {} records were not produced", ok + failed)));
    }
    Ok(())
}
