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
mod security;
mod server;
mod topic;

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use eddy_client::{Client, ClientConfig, ClientFile};

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
    /// TLS (PEM): for client commands, the CA the brokers' certificates chain to (it turns TLS
    /// on); for `eddy server`, the CA of the cluster's certificates (its `tls.ca`).
    #[arg(long, global = true, env = "EDDY_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// TLS certificate (PEM): for client commands, the client's own, for brokers that
    /// authenticate clients by certificate (with --tls-key); for `eddy server`, its client
    /// listeners' (its `tls.cert`).
    #[arg(long, global = true, env = "EDDY_TLS_CERT")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "EDDY_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Authenticate as this user (with --password, EDDY_PASSWORD or --password-file).
    #[arg(long, global = true, env = "EDDY_USER")]
    user: Option<String>,
    /// The user's password. Prefer EDDY_PASSWORD or --password-file: a flag shows in the
    /// process list.
    #[arg(long, global = true, env = "EDDY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A file whose first line is the user's password.
    #[arg(long, global = true)]
    password_file: Option<std::path::PathBuf>,
    /// Authenticate with this API key (`eddy auth generate-key` makes one).
    #[arg(long, global = true, env = "EDDY_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A TOML file of client settings: brokers, user, password, token, tls_ca, tls_cert,
    /// tls_key. Flags and environment variables win over it.
    #[arg(long, global = true, env = "EDDY_CLIENT_CONFIG")]
    client_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an Eddy node.
    Server(Box<server::ServerArgs>),
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
    /// Create, delete and list users (SCRAM-SHA-256 credentials).
    #[command(subcommand)]
    User(security::UserCommand),
    /// Add, remove and list access control lists.
    #[command(subcommand)]
    Acl(security::AclCommand),
    /// Who the brokers take this client for; make API keys.
    #[command(subcommand)]
    Auth(security::AuthCommand),
    /// Set, remove and list produce, fetch and request-rate quotas of principals.
    #[command(subcommand)]
    Quota(security::QuotaCommand),
}

fn registry(cli: &Cli) -> Result<eddy_client::schema::SchemaRegistry, CliError> {
    Ok(eddy_client::schema::SchemaRegistry::new(&cli.schema_registry)?)
}

/// The `--client-config` file's settings (none without one): flags and environment variables
/// win over them.
fn client_file(cli: &Cli) -> Result<ClientFile, CliError> {
    let Some(path) = &cli.client_config else { return Ok(ClientFile::default()) };
    ClientFile::load(path).map_err(CliError::Usage)
}

/// The credentials from flags, environment and the client config file, in that order.
fn credentials(cli: &Cli, file: &ClientFile) -> Result<Option<eddy_client::Credentials>, CliError> {
    let password = match (&cli.password, &cli.password_file) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("cannot read the password file {}: {e}", path.display())))?;
            Some(text.lines().next().unwrap_or_default().to_string())
        }
        (None, None) => file.password.clone(),
    };
    let user = cli.user.clone().or_else(|| file.user.clone());
    let token = cli.token.clone().or_else(|| file.token.clone());
    eddy_client::config_file::credentials(user, password, token).map_err(CliError::Usage)
}

fn client(cli: &Cli) -> Result<Arc<Client>, CliError> {
    let file = client_file(cli)?;
    let brokers = match (&file.brokers, cli_brokers_given(cli)) {
        (Some(brokers), false) => brokers.clone(),
        _ => cli.brokers.clone(),
    };
    let brokers: Vec<String> = brokers.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
    let credentials = credentials(cli, &file)?;
    let tls_ca = cli.tls_ca.clone().or(file.tls_ca.clone());
    let tls_cert = cli.tls_cert.clone().or(file.tls_cert.clone());
    let tls_key = cli.tls_key.clone().or(file.tls_key.clone());
    let tls = match (&tls_ca, &tls_cert, &tls_key) {
        (None, None, None) => None,
        (None, _, _) => return Err(CliError::Usage("--tls-cert and --tls-key need --tls-ca (the brokers' CA)".into())),
        (Some(ca), cert, key) => {
            let files = eddy_tls::ClientTlsFiles { ca: ca.clone(), cert: cert.clone(), key: key.clone() };
            Some(eddy_tls::ClientTls::load(&files).map_err(|e| CliError::Usage(e.to_string()))?)
        }
    };
    Ok(Arc::new(Client::new(brokers, ClientConfig { tls, credentials, ..ClientConfig::default() })?))
}

/// Whether --brokers or EDDY_BROKERS was given (else the client config file's brokers apply).
fn cli_brokers_given(_cli: &Cli) -> bool {
    std::env::args().any(|a| a == "--brokers" || a.starts_with("--brokers="))
        || std::env::var_os("EDDY_BROKERS").is_some()
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
        Command::Server(args) => {
            let tls = server::TlsFlags { ca: cli.tls_ca.clone(), cert: cli.tls_cert.clone(), key: cli.tls_key.clone() };
            return server::run(args, &tracing, &tls).await;
        }
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
        Command::User(command) => security::run_user(command, &*client(cli)?, cli.format).await,
        Command::Acl(command) => security::run_acl(command, &*client(cli)?, cli.format).await,
        Command::Quota(command) => security::run_quota(command, &*client(cli)?, cli.format).await,
        Command::Auth(command @ security::AuthCommand::GenerateKey { .. }) => {
            security::run_auth(command, None, cli.format).await
        }
        Command::Auth(command) => security::run_auth(command, Some(&*client(cli)?), cli.format).await,
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
