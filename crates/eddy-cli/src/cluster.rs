//! `eddy cluster describe`, `eddy cluster rebalance` and `eddy broker decommission`.

use clap::Subcommand;
use eddy_client::Client;
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers (id, address, state, rack), the controller leader and partition counts.
    Describe,
    /// Even out replicas per broker: plans partition moves and queues them (a few run at a time).
    Rebalance {
        /// Only show the moves that would be queued.
        #[arg(long, conflicts_with = "status")]
        dry_run: bool,
        /// Only show the moves under way and queued.
        #[arg(long)]
        status: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BrokerCommand {
    /// Drain a broker before it leaves: its replicas move to the other brokers and it gets no
    /// new ones. `eddy cluster describe` shows it as decommissioning, with its replica count
    /// going to 0; then stop it.
    Decommission {
        /// The broker's node id.
        id: u64,
    },
}

pub async fn run_broker(command: &BrokerCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        BrokerCommand::Decommission { id } => {
            client.decommission_broker(*id).await?;
            match format {
                Format::Json => json_line(&json!({ "decommissioning": id })),
                Format::Table => println!("broker {id} is decommissioning: its replicas are moving to other brokers"),
            }
        }
    }
    Ok(())
}

fn moves_json(moves: &[eddy_client::v1::PartitionMove]) -> Vec<serde_json::Value> {
    moves
        .iter()
        .map(|m| json!({"topic": m.topic, "partition": m.partition, "replicas": m.replicas, "target": m.target}))
        .collect()
}

fn print_moves(title: &str, moves: &[eddy_client::v1::PartitionMove]) {
    println!("{title}: {}", moves.len());
    if moves.is_empty() {
        return;
    }
    let mut out = table(&["TOPIC", "PARTITION", "REPLICAS", "TARGET"]);
    let ids = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    for m in moves {
        out.add_row(vec![m.topic.clone(), m.partition.to_string(), ids(&m.replicas), ids(&m.target)]);
    }
    println!("{out}");
}

pub async fn run(command: &ClusterCommand, client: &Client, format: Format) -> Result<(), CliError> {
    match command {
        ClusterCommand::Describe => {
            let cluster = client.describe_cluster().await?;
            match format {
                Format::Json => json_line(&json!({
                    "cluster_id": cluster.cluster_id,
                    "controller_leader": cluster.controller_leader,
                    "under_replicated_partitions": cluster.under_replicated_partitions,
                    "brokers": cluster.brokers.iter().map(|b| json!({
                        "id": b.id,
                        "address": b.address,
                        "alive": b.alive,
                        "state": b.state,
                        "rack": b.rack,
                        "controller_voter": b.controller_voter,
                        "leader_count": b.leader_count,
                        "replica_count": b.replica_count,
                    })).collect::<Vec<_>>(),
                })),
                Format::Table => {
                    let leader = cluster.controller_leader.map_or_else(|| "unknown".into(), |l| l.to_string());
                    println!(
                        "cluster {} (controller leader: {leader}, under-replicated partitions: {})",
                        cluster.cluster_id, cluster.under_replicated_partitions
                    );
                    let mut out = table(&["ID", "ADDRESS", "STATE", "VOTER", "LEADERS", "REPLICAS"]);
                    for b in &cluster.brokers {
                        out.add_row(vec![
                            b.id.to_string(),
                            b.address.clone(),
                            b.state.clone(),
                            b.controller_voter.to_string(),
                            b.leader_count.to_string(),
                            b.replica_count.to_string(),
                        ]);
                    }
                    println!("{out}");
                }
            }
        }
        ClusterCommand::Rebalance { dry_run, status } => {
            let moves = client.rebalance_cluster(*dry_run, *status).await?;
            match format {
                Format::Json => json_line(&json!({
                    "dry_run": dry_run,
                    "in_progress": moves_json(&moves.in_progress),
                    "planned": moves_json(&moves.planned),
                })),
                Format::Table => {
                    print_moves("moves under way", &moves.in_progress);
                    let title = match (dry_run, status) {
                        (true, _) => "moves a rebalance would queue",
                        _ => "moves queued",
                    };
                    print_moves(title, &moves.planned);
                }
            }
        }
    }
    Ok(())
}
