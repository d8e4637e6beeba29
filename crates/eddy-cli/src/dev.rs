//! `eddy dev`: a local cluster of `eddy server` child processes on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Args;
use eddy_client::{Client, ClientConfig};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::process::{Child, Command};

use crate::error::CliError;
use crate::output::{Format, json_line, table};
use crate::server::Tracing;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of nodes; the first three (or all, if fewer) are controller voters.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where the nodes keep their data and logs (node-N/ each).
    #[arg(long, default_value = "./eddy-dev")]
    data_dir: PathBuf,
    /// Node N serves clients on 127.0.0.1:(base-port + N - 1).
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
    /// Node N serves the other nodes (Raft and controller traffic) on
    /// 127.0.0.1:(internal-base-port + N - 1).
    #[arg(long, default_value_t = 19092)]
    internal_base_port: u16,
    /// Node N serves /metrics on 127.0.0.1:(metrics-base-port + N - 1).
    #[arg(long, default_value_t = 9644)]
    metrics_base_port: u16,
    /// Node N serves HTTP (the schema registry's API) on 127.0.0.1:(http-base-port + N - 1).
    #[arg(long, default_value_t = 8081)]
    http_base_port: u16,
    /// Log level of the nodes.
    #[arg(long, default_value = "info,openraft=warn")]
    log_level: String,
}

/// Most nodes a dev cluster runs.
const DEV_NODES_MAX: u16 = 16;
/// How long the cluster may take to come up.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

struct Node {
    id: u16,
    address: String,
    internal: String,
    metrics: String,
    http: String,
    log: PathBuf,
    child: Child,
}

fn port(base: u16, id: u16, flag: &str) -> Result<u16, CliError> {
    base.checked_add(id - 1).ok_or_else(|| CliError::Usage(format!("{flag} {base} + {id} nodes exceeds port 65535")))
}

fn spawn_node(exe: &Path, args: &DevArgs, tracing: &Tracing, id: u16, voters: &str) -> Result<Node, CliError> {
    let dir = args.data_dir.join(format!("node-{id}"));
    std::fs::create_dir_all(&dir)?;
    let address = format!("127.0.0.1:{}", port(args.base_port, id, "--base-port")?);
    let internal = format!("127.0.0.1:{}", port(args.internal_base_port, id, "--internal-base-port")?);
    let metrics = format!("127.0.0.1:{}", port(args.metrics_base_port, id, "--metrics-base-port")?);
    let http = format!("127.0.0.1:{}", port(args.http_base_port, id, "--http-base-port")?);
    let log = dir.join("eddy.log");
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let mut command = Command::new(exe);
    // Each node exports its spans where `eddy dev --otlp-endpoint` says.
    if let Some(endpoint) = &tracing.otlp_endpoint {
        command.args(["--otlp-endpoint", endpoint]);
    }
    if let Some(ratio) = tracing.sample_ratio {
        command.args(["--trace-sample-ratio", &ratio.to_string()]);
    }
    let child = command
        .arg("server")
        .args(["--node-id", &id.to_string()])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--listen",
            &address,
            "--internal-listen",
            &internal,
            "--controller-voters",
            voters,
            "--metrics-listen",
            &metrics,
            "--http-listen",
            &http,
            "--log-level",
            &args.log_level,
        ])
        .env_remove("EDDY_BROKERS")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .spawn()
        .map_err(|e| CliError::Failed(format!("cannot start node {id}: {e}")))?;
    Ok(Node { id, address, internal, metrics, http, log, child })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

async fn wait_ready(nodes: &mut [Node]) -> Result<(), CliError> {
    let brokers: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let config = ClientConfig { retry_deadline: Duration::from_secs(2), ..Default::default() };
    let client = Client::new(brokers, config)?;
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    loop {
        for node in nodes.iter_mut() {
            if let Some(status) = node.child.try_wait()? {
                return Err(CliError::Failed(format!(
                    "node {} exited during start-up ({status}); its log {} ends with:\n{}",
                    node.id,
                    node.log.display(),
                    log_tail(&node.log)
                )));
            }
        }
        if let Ok(cluster) = client.describe_cluster().await {
            let alive = cluster.brokers.iter().filter(|b| b.alive).count();
            if alive == nodes.len() && cluster.controller_leader.is_some() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(CliError::Failed(format!(
                "the cluster did not come up within {READY_TIMEOUT:?}; see the logs under each node-N/eddy.log"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn stop(nodes: &mut [Node]) {
    for node in nodes.iter() {
        if let Some(pid) = node.child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for node in nodes.iter_mut() {
        if tokio::time::timeout(STOP_TIMEOUT, node.child.wait()).await.is_err() {
            eprintln!("node {} did not stop within {STOP_TIMEOUT:?}; killing it", node.id);
            let _ = node.child.kill().await;
        }
    }
}

pub async fn run(args: &DevArgs, format: Format, tracing: &Tracing) -> Result<(), CliError> {
    if args.nodes == 0 || args.nodes > DEV_NODES_MAX {
        return Err(CliError::Usage(format!("--nodes must be between 1 and {DEV_NODES_MAX}")));
    }
    let exe = std::env::current_exe()?;
    let voters = args.nodes.min(3);
    let voter_list = (1..=voters)
        .map(|id| Ok(format!("{id}=127.0.0.1:{}", port(args.internal_base_port, id, "--internal-base-port")?)))
        .collect::<Result<Vec<_>, CliError>>()?
        .join(",");
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        match spawn_node(&exe, args, tracing, id, &voter_list) {
            Ok(node) => nodes.push(node),
            Err(e) => {
                stop(&mut nodes).await;
                return Err(e);
            }
        }
    }
    if let Err(e) = wait_ready(&mut nodes).await {
        stop(&mut nodes).await;
        return Err(e);
    }
    let brokers = nodes.iter().map(|n| n.address.clone()).collect::<Vec<_>>().join(",");
    match format {
        Format::Json => json_line(&json!({
            "brokers": brokers,
            "schema_registry": format!("http://{}", nodes[0].http),
            "nodes": nodes.iter().map(|n| json!({
                "id": n.id, "address": n.address, "internal_address": n.internal,
                "metrics": format!("http://{}/metrics", n.metrics),
                "http": format!("http://{}", n.http),
                "log": n.log.display().to_string(), "controller_voter": n.id <= voters,
            })).collect::<Vec<_>>(),
        })),
        Format::Table => {
            println!("Eddy dev cluster is up: {} nodes, data under {}", nodes.len(), args.data_dir.display());
            let mut out =
                table(&["NODE", "ADDRESS", "INTER-BROKER", "HTTP (REST, GRAPHQL, REGISTRY)", "METRICS", "LOG"]);
            for n in &nodes {
                out.add_row(vec![
                    n.id.to_string(),
                    n.address.clone(),
                    n.internal.clone(),
                    format!("http://{}", n.http),
                    format!("http://{}/metrics", n.metrics),
                    n.log.display().to_string(),
                ]);
            }
            println!("{out}");
            println!("export EDDY_BROKERS={brokers}");
            println!("export EDDY_SCHEMA_REGISTRY=http://{}", nodes[0].http);
            println!("GraphiQL: http://{}/graphql   REST API: http://{}/openapi.json", nodes[0].http, nodes[0].http);
            println!("Press Ctrl-C to stop the cluster.");
        }
    }
    let mut exited = vec![false; nodes.len()];
    // Ctrl-C, or SIGTERM from whatever started the cluster (a script, a test): both stop the
    // nodes first, so none outlives the command.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                for (i, node) in nodes.iter_mut().enumerate() {
                    if !exited[i]
                        && let Some(status) = node.child.try_wait()? {
                            exited[i] = true;
                            eprintln!("node {} exited ({status}); the others keep running. Log: {}", node.id, node.log.display());
                        }
                }
            }
        }
    }
    eprintln!("stopping the cluster");
    stop(&mut nodes).await;
    Ok(())
}
