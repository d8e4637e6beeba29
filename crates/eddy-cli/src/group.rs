//! `eddy group list|describe|reset-offsets|delete`.

use clap::{ArgGroup, Subcommand};
use eddy_client::{Client, v1};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List every consumer group with its state and member count.
    List,
    /// Show a group's members, assignments, and committed offsets with lag.
    Describe { group: String },
    /// Move a group's committed offsets for a topic (only while the group has no members).
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp"])))]
    ResetOffsets {
        group: String,
        #[arg(long)]
        topic: String,
        /// Only this partition (default: every partition of the topic).
        #[arg(long)]
        partition: Option<u32>,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        /// An exact offset (kept within each partition's log).
        #[arg(long)]
        to_offset: Option<u64>,
        /// The first record at or after this time, in ms since the Unix epoch.
        #[arg(long)]
        to_timestamp: Option<i64>,
    },
    /// Delete a group without members, with its committed offsets.
    Delete { group: String },
}

fn partitions(list: &[v1::TopicPartitions]) -> Vec<serde_json::Value> {
    list.iter().flat_map(|t| t.partitions.iter().map(move |p| json!({"topic": t.topic, "partition": p}))).collect()
}

fn partitions_text(list: &[v1::TopicPartitions]) -> String {
    let parts: Vec<String> = list
        .iter()
        .map(|t| format!("{}[{}]", t.topic, t.partitions.iter().map(u32::to_string).collect::<Vec<_>>().join(",")))
        .collect();
    if parts.is_empty() { "-".into() } else { parts.join(" ") }
}

/// The JSON shape of `eddy group describe`.
pub fn describe_json(group: &v1::GroupDescription) -> serde_json::Value {
    json!({
        "group": group.group_id,
        "state": group.state,
        "group_epoch": group.group_epoch,
        "assignment_epoch": group.assignment_epoch,
        "coordinator": group.coordinator_id,
        "rebalances": group.rebalances,
        "members": group.members.iter().map(|m| json!({
            "member_id": m.member_id,
            "client_id": m.client_id,
            "member_epoch": m.member_epoch,
            "subscriptions": m.subscriptions,
            "assignment": partitions(&m.assignment),
            "revoking": partitions(&m.revoking),
        })).collect::<Vec<_>>(),
        "offsets": group.offsets.iter().map(|o| json!({
            "topic": o.topic,
            "partition": o.partition,
            "committed_offset": o.committed_offset,
            "end_offset": o.end_offset,
            "lag": o.lag,
        })).collect::<Vec<_>>(),
    })
}

fn opt(n: Option<u64>) -> String {
    n.map_or_else(|| "-".to_string(), |n| n.to_string())
}

pub async fn run(command: &GroupCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            match format {
                Format::Json => json_line(&json!({"groups": groups.iter().map(|g| json!({
                    "group": g.group_id, "state": g.state, "members": g.members, "coordinator": g.coordinator_id,
                })).collect::<Vec<_>>()})),
                Format::Table => {
                    let mut out = table(&["GROUP", "STATE", "MEMBERS", "COORDINATOR"]);
                    for g in &groups {
                        out.add_row(vec![
                            g.group_id.clone(),
                            g.state.clone(),
                            g.members.to_string(),
                            g.coordinator_id.to_string(),
                        ]);
                    }
                    println!("{out}");
                }
            }
        }
        GroupCommand::Describe { group } => {
            let described = client.describe_group(group).await?;
            match format {
                Format::Json => json_line(&describe_json(&described)),
                Format::Table => {
                    println!(
                        "group {} is {} (epoch {}, coordinator {}, {} rebalances)",
                        described.group_id,
                        described.state,
                        described.group_epoch,
                        described.coordinator_id,
                        described.rebalances
                    );
                    let mut members = table(&["MEMBER", "CLIENT", "EPOCH", "ASSIGNMENT", "REVOKING"]);
                    for m in &described.members {
                        members.add_row(vec![
                            m.member_id.clone(),
                            m.client_id.clone(),
                            m.member_epoch.to_string(),
                            partitions_text(&m.assignment),
                            partitions_text(&m.revoking),
                        ]);
                    }
                    println!("{members}");
                    let mut offsets = table(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
                    for o in &described.offsets {
                        offsets.add_row(vec![
                            o.topic.clone(),
                            o.partition.to_string(),
                            opt(o.committed_offset),
                            opt(o.end_offset),
                            opt(o.lag),
                        ]);
                    }
                    println!("{offsets}");
                }
            }
        }
        GroupCommand::ResetOffsets { group, topic, partition, to_earliest, to_latest, to_offset, to_timestamp } => {
            let spec = if *to_earliest {
                v1::OffsetSpec::Earliest
            } else if *to_latest || to_offset.is_some() {
                v1::OffsetSpec::Latest
            } else {
                v1::OffsetSpec::Timestamp
            };
            let request = v1::ResetOffsetsRequest {
                group_id: group.clone(),
                topic: topic.clone(),
                partitions: partition.iter().copied().collect(),
                spec: spec as i32,
                timestamp_ms: to_timestamp.unwrap_or(0),
                offset: *to_offset,
            };
            let offsets = client.reset_offsets(request).await?;
            match format {
                Format::Json => json_line(&json!({"group": group, "offsets": offsets.iter().map(|o| json!({
                    "topic": o.topic, "partition": o.partition, "committed_offset": o.offset,
                })).collect::<Vec<_>>()})),
                Format::Table => {
                    let mut out = table(&["TOPIC", "PARTITION", "COMMITTED"]);
                    for o in &offsets {
                        out.add_row(vec![o.topic.clone(), o.partition.to_string(), o.offset.to_string()]);
                    }
                    println!("{out}");
                }
            }
        }
        GroupCommand::Delete { group } => {
            client.delete_group(group).await?;
            match format {
                Format::Json => json_line(&json!({"deleted": group})),
                Format::Table => println!("deleted group {group}"),
            }
        }
    }
    Ok(())
}
