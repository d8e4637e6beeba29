//! `eddy topic create|list|describe|delete`.

use clap::Subcommand;
use eddy_client::{Client, v1};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        #[arg(long, default_value_t = 1)]
        replication_factor: u32,
        /// A topic config KEY=VALUE (repeatable): retention.ms, retention.bytes,
        /// max.message.bytes, min.insync.replicas, value.schema.validation,
        /// key.schema.validation, value.subject.name.strategy, key.subject.name.strategy.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
    },
    /// Change a topic's configs or add partitions (records of a key go to another partition
    /// after a partition count change).
    Alter {
        name: String,
        /// Set a config KEY=VALUE (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config)]
        configs: Vec<(String, String)>,
        /// Return a config to its default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// The new partition count (only up).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// List topics.
    List,
    /// Show a topic's partitions: leader, replicas, log start and high watermark.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
    /// Delete a partition's records below an offset (all of them without --before); the log
    /// start moves to the first record of the batch holding that offset.
    DeleteRecords {
        name: String,
        #[arg(long)]
        partition: u32,
        /// Delete the records below this offset.
        #[arg(long)]
        before: Option<u64>,
    },
}

fn parse_config(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.trim().to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

/// The JSON shape of a topic description.
pub fn topic_json(topic: &v1::TopicDescription) -> serde_json::Value {
    json!({
        "name": topic.name,
        "replication_factor": topic.replication_factor,
        "partitions": topic.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "leader": p.leader,
            "leader_address": if p.leader_address.is_empty() { None } else { Some(&p.leader_address) },
            "replicas": p.replicas,
            "isr": p.isr,
            "target_replicas": if p.target_replicas.is_empty() { None } else { Some(&p.target_replicas) },
            "log_start_offset": p.log_start_offset,
            "high_watermark": p.high_watermark,
        })).collect::<Vec<_>>(),
        "configs": topic.configs.iter().collect::<std::collections::BTreeMap<_, _>>(),
    })
}

pub async fn run(command: &TopicCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        TopicCommand::Create { name, partitions, replication_factor, configs } => {
            let configs = configs.iter().cloned().collect();
            let topic = client.create_topic_with_configs(name, *partitions, *replication_factor, configs).await?;
            match format {
                Format::Json => json_line(&topic_json(&topic)),
                Format::Table => println!(
                    "created topic {} with {} partitions, replication factor {}",
                    topic.name,
                    topic.partitions.len(),
                    topic.replication_factor
                ),
            }
        }
        TopicCommand::List => {
            let topics = client.list_topics().await?;
            match format {
                Format::Json => json_line(&json!({"topics": topics.iter().map(|t| json!({
                    "name": t.name, "partitions": t.partitions, "replication_factor": t.replication_factor,
                })).collect::<Vec<_>>()})),
                Format::Table => {
                    let mut out = table(&["TOPIC", "PARTITIONS", "REPLICATION FACTOR"]);
                    for t in &topics {
                        out.add_row(vec![t.name.clone(), t.partitions.to_string(), t.replication_factor.to_string()]);
                    }
                    println!("{out}");
                }
            }
        }
        TopicCommand::Describe { name } => {
            let topic = client.describe_topic(name).await?;
            match format {
                Format::Json => json_line(&topic_json(&topic)),
                Format::Table => {
                    println!("topic {} (replication factor {})", topic.name, topic.replication_factor);
                    if !topic.configs.is_empty() {
                        let configs: std::collections::BTreeMap<_, _> = topic.configs.iter().collect();
                        let shown: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        println!("configs: {}", shown.join(" "));
                    }
                    let mut out =
                        table(&["PARTITION", "LEADER", "REPLICAS", "ISR", "MOVING TO", "LOG START", "HIGH WATERMARK"]);
                    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                    for p in &topic.partitions {
                        out.add_row(vec![
                            p.partition.to_string(),
                            opt(p.leader),
                            ids(&p.replicas),
                            ids(&p.isr),
                            ids(&p.target_replicas),
                            opt(p.log_start_offset),
                            opt(p.high_watermark),
                        ]);
                    }
                    println!("{out}");
                }
            }
        }
        TopicCommand::Alter { name, configs, delete_configs, partitions } => {
            if configs.is_empty() && delete_configs.is_empty() && partitions.is_none() {
                return Err(CliError::Usage(
                    "nothing to change: give --config, --delete-config or --partitions".into(),
                ));
            }
            let set = configs.iter().cloned().collect();
            let topic = client.alter_topic(name, set, delete_configs.clone(), *partitions).await?;
            match format {
                Format::Json => json_line(&topic_json(&topic)),
                Format::Table => println!("altered topic {} ({} partitions)", topic.name, topic.partitions.len()),
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(name).await?;
            match format {
                Format::Json => json_line(&json!({"deleted": name})),
                Format::Table => println!("deleted topic {name}"),
            }
        }
        TopicCommand::DeleteRecords { name, partition, before } => {
            let answer = client.delete_records(name, *partition, *before).await?;
            match format {
                Format::Json => json_line(&json!({
                    "topic": name,
                    "partition": answer.partition,
                    "log_start_offset": answer.log_start_offset,
                    "deleted_records": answer.deleted_records,
                })),
                Format::Table => println!(
                    "deleted {} records of {name}/{}; the log now starts at {}",
                    answer.deleted_records, answer.partition, answer.log_start_offset
                ),
            }
        }
    }
    Ok(())
}
