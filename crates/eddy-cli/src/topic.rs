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
    },
    /// List topics.
    List,
    /// Show a topic's partitions: leader, replicas, log start and high watermark.
    Describe { name: String },
    /// Delete a topic and its data.
    Delete { name: String },
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
            "log_start_offset": p.log_start_offset,
            "high_watermark": p.high_watermark,
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(command: &TopicCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        TopicCommand::Create { name, partitions, replication_factor } => {
            let topic = client.create_topic(name, *partitions, *replication_factor).await?;
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
                    let mut out = table(&["PARTITION", "LEADER", "REPLICAS", "LOG START", "HIGH WATERMARK"]);
                    for p in &topic.partitions {
                        let replicas = p.replicas.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
                        out.add_row(vec![
                            p.partition.to_string(),
                            opt(p.leader),
                            replicas,
                            opt(p.log_start_offset),
                            opt(p.high_watermark),
                        ]);
                    }
                    println!("{out}");
                }
            }
        }
        TopicCommand::Delete { name } => {
            client.delete_topic(name).await?;
            match format {
                Format::Json => json_line(&json!({"deleted": name})),
                Format::Table => println!("deleted topic {name}"),
            }
        }
    }
    Ok(())
}
