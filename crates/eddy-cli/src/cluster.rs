//! `eddy cluster describe`.

use clap::Subcommand;
use eddy_client::Client;
use serde_json::json;

use crate::error::CliError;
use crate::output::{Format, json_line, table};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Brokers (id, address, alive), the controller leader and partition counts.
    Describe,
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
    }
    Ok(())
}
