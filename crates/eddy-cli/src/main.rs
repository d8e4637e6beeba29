//! `eddy`: the Eddy server, a local dev cluster, and the client commands.

mod asyncapi;
mod bench;
mod cluster;
mod consume;
mod dev;
mod dlq;
mod error;
mod group;
mod output;
mod produce;
mod schema;
mod server;
mod topic;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use eddy_client::{Client, ClientConfig};

use crate::error::CliError;
use crate::output::Format;

/// Eddy: a Raft-replicated event log.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about, propagate_version = true)]
struct Cli {
    /// Brokers to bootstrap from (HOST:PORT,...).
    #[arg(
        long,
        global = true,
        env = "EDDY_BROKERS",
        default_value = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094",
        value_delimiter = ','
    )]
    brokers: Vec<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The schema registry: any broker's HTTP listener (`eddy dev` prints it), or any
    /// Confluent-compatible registry.
    #[arg(long, global = true, env = "EDDY_SCHEMA_REGISTRY", default_value = "http://127.0.0.1:8081")]
    schema_registry: String,
    /// Send OpenTelemetry spans over OTLP/gRPC to this collector (`http://HOST:4317`): the
    /// client commands' produce and consume spans, and `eddy server`'s (its `otlp_endpoint`).
    #[arg(long, global = true, env = "EDDY_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The share of traces started here that are recorded, 0 to 1 (a trace that came in keeps
    /// its caller's decision).
    #[arg(long, global = true, env = "EDDY_TRACE_SAMPLE_RATIO")]
    trace_sample_ratio: Option<f64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an Eddy node.
    Server(server::ServerArgs),
    /// Run a local cluster of `eddy server` processes on 127.0.0.1 until Ctrl-C.
    Dev(dev::DevArgs),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce stdin lines as records.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Inspect and rebalance the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Manage one broker (decommission).
    #[command(subcommand)]
    Broker(cluster::BrokerCommand),
    /// Inspect, replay and purge dead-letter topics (`<topic>.dlq`).
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Register, inspect and check schemas in the schema registry.
    #[command(subcommand)]
    Schema(schema::SchemaCommand),
    /// Write the cluster's AsyncAPI 3.0 document: topics, event types and their schemas.
    Asyncapi(asyncapi::AsyncapiArgs),
    /// Measure produce or consume throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn registry(cli: &Cli) -> Result<eddy_client::schema::SchemaRegistry, CliError> {
    Ok(eddy_client::schema::SchemaRegistry::new(&cli.schema_registry)?)
}

fn client(cli: &Cli) -> Result<Arc<Client>, CliError> {
    let brokers: Vec<String> = cli.brokers.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
    Ok(Arc::new(Client::new(brokers, ClientConfig::default())?))
}

/// Exports the client commands' spans when an endpoint is given.
fn telemetry(cli: &Cli) -> Result<Option<eddy_telemetry::export::Telemetry>, CliError> {
    let Some(endpoint) = &cli.otlp_endpoint else { return Ok(None) };
    let config = eddy_telemetry::export::ExportConfig {
        endpoint: endpoint.clone(),
        service_name: "eddy-cli".into(),
        instance_id: None,
        sample_ratio: cli.trace_sample_ratio.unwrap_or(1.0),
    };
    eddy_telemetry::export::install(&config).map(Some).map_err(|e| CliError::Usage(e.to_string()))
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let tracing = server::Tracing { otlp_endpoint: cli.otlp_endpoint.clone(), sample_ratio: cli.trace_sample_ratio };
    match &cli.command {
        Command::Server(args) => return server::run(args, &tracing).await,
        Command::Dev(args) => return dev::run(args, cli.format, &tracing).await,
        _ => {}
    }
    let telemetry = telemetry(&cli)?;
    let result = run_client(&cli).await;
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    result
}

async fn run_client(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Server(_) | Command::Dev(_) => unreachable!("run serves them"),
        Command::Topic(command) => topic::run(command, &*client(cli)?, cli.format).await,
        Command::Produce(args) => produce::run(args, client(cli)?, registry(cli)?, cli.format).await,
        Command::Consume(args) => consume::run(args, client(cli)?, registry(cli)?, cli.format).await,
        Command::Dlq(command) => dlq::run(command, client(cli)?, cli.format).await,
        Command::Schema(command) => schema::run(command, &registry(cli)?, cli.format).await,
        Command::Asyncapi(args) => asyncapi::run(args, &registry(cli)?).await,
        Command::Group(command) => group::run(command, &*client(cli)?, cli.format).await,
        Command::Cluster(command) => cluster::run(command, &*client(cli)?, cli.format).await,
        Command::Broker(command) => cluster::run_broker(command, &*client(cli)?, cli.format).await,
        Command::Bench(command) => bench::run(command, client(cli)?, cli.format).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Server(_) | Command::Dev(_)) {
        // Client commands log only warnings, to stderr, so stdout stays machine-readable.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
