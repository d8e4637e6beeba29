//! `eddy server`: configuration layering (defaults < TOML file < EDDY_* environment < flags),
//! validation, and running one node until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use eddy_broker::{Broker, BrokerConfig, NodeEnv, SystemClock, parse_controller_voters};
use eddy_raft::transport::{TcpConnector, TlsConnector};
use eddy_storage::{GroupCommitConfig, RocksKv};
use eddy_tls::{ClientAuth, ClientTls, ClientTlsFiles, ServerTls};
use figment::Figment;
use figment::providers::{Env, Format as _, Serialized, Toml};

use crate::error::CliError;

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// TOML configuration file.
    #[arg(long, env = "EDDY_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id (>= 1).
    #[arg(long, env = "EDDY_NODE_ID")]
    node_id: Option<u64>,
    /// Data directory.
    #[arg(long, env = "EDDY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of the client gRPC listener (IP:PORT; default 127.0.0.1:9092).
    #[arg(long, env = "EDDY_LISTEN")]
    listen: Option<String>,
    /// Address clients reach this node at, if not the listen address.
    #[arg(long, env = "EDDY_ADVERTISE")]
    advertise: Option<String>,
    /// Address of the inter-broker gRPC listener (IP:PORT; default 127.0.0.1:9093): Raft and
    /// controller traffic, never served on the client listener.
    #[arg(long, env = "EDDY_INTERNAL_LISTEN")]
    internal_listen: Option<String>,
    /// Address other brokers reach this node's inter-broker listener at, if not
    /// --internal-listen.
    #[arg(long, env = "EDDY_INTERNAL_ADVERTISE")]
    internal_advertise: Option<String>,
    /// What the client listeners ask of client certificates: none, optional or required (the
    /// last two need --tls-ca). With TLS on, --tls-cert, --tls-key and --tls-ca (flags of every
    /// command) name the client listeners' certificate, key and the cluster's CA.
    #[arg(long, env = "EDDY_TLS_CLIENT_AUTH", value_parser = ["none", "optional", "required"])]
    tls_client_auth: Option<String>,
    /// Require authentication of every client request (a user's password, an API key or a
    /// client certificate) and authorize it by ACLs (`auth.enabled`).
    #[arg(long, env = "EDDY_AUTH")]
    auth: bool,
    /// A principal allowed everything whatever the ACLs (`User:admin`); repeat for several
    /// (`auth.superusers`).
    #[arg(long = "superuser", env = "EDDY_SUPERUSERS", value_delimiter = ',')]
    superusers: Vec<String>,
    /// Mutual TLS between brokers: this broker's certificate (PEM, CN=broker-<node id>).
    #[arg(long, env = "EDDY_INTERNAL_TLS_CERT")]
    internal_tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --internal-tls-cert.
    #[arg(long, env = "EDDY_INTERNAL_TLS_KEY")]
    internal_tls_key: Option<PathBuf>,
    /// The CA (PEM) every broker's inter-broker certificate chains to.
    #[arg(long, env = "EDDY_INTERNAL_TLS_CA")]
    internal_tls_ca: Option<PathBuf>,
    /// Controller voters at their inter-broker addresses: ID=HOST:PORT,... A node not listed
    /// joins as a broker. (`--seeds` is the former name of this flag.)
    #[arg(long, env = "EDDY_CONTROLLER_VOTERS", alias = "seeds")]
    controller_voters: Option<String>,
    /// Address for Prometheus /metrics (HOST:PORT).
    #[arg(long, env = "EDDY_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Address of the HTTP listener (HOST:PORT): the REST API, GraphQL (with GraphiQL), the
    /// schema registry's REST API (compatible with the Confluent Schema Registry's) and the
    /// AsyncAPI document.
    #[arg(long, env = "EDDY_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Web origins allowed to call the HTTP listener from a browser (CORS), comma-separated:
    /// `https://shop.example.com,http://localhost:3000`, or `*` for any.
    #[arg(long, env = "EDDY_HTTP_CORS_ORIGINS")]
    http_cors_origins: Option<String>,
    /// This broker's rack (failure domain): a partition's replicas go to different racks.
    #[arg(long, env = "EDDY_RACK")]
    rack: Option<String>,
    /// Milliseconds without a heartbeat after which the controller fences a broker.
    #[arg(long, env = "EDDY_BROKER_SESSION_TIMEOUT_MS")]
    broker_session_timeout_ms: Option<u64>,
    /// Milliseconds a broker stays fenced before its replicas are replaced on other brokers.
    #[arg(long, env = "EDDY_REPLICA_REPLACEMENT_DELAY_MS")]
    replica_replacement_delay_ms: Option<u64>,
    /// Print the resulting configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Log level or filter (RUST_LOG syntax); RUST_LOG wins when set.
    #[arg(long, env = "EDDY_LOG_LEVEL", default_value = "info,openraft=warn")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "EDDY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// The TLS flags, which `eddy` takes for every command (`--tls-cert`, `--tls-key`,
/// `--tls-ca`): for a server they set `tls` (the client listeners' files).
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The tracing flags, which `eddy` takes for every command (`--otlp-endpoint`,
/// `--trace-sample-ratio`): for a server they set `otlp_endpoint` and `trace_sample_ratio`.
#[derive(Debug, Clone, Default)]
pub struct Tracing {
    pub otlp_endpoint: Option<String>,
    pub sample_ratio: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// How long a stopping node lets the HTTP API's open requests finish before it closes them.
const HTTP_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the HTTP API retries a request the cluster cannot serve yet (no leader, not enough
/// replicas) before it answers with the error.
const HTTP_RETRY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// Environment variables the flags above read themselves; the generic EDDY_* provider skips them.
const FLAG_ENV: &[&str] = &[
    "node_id",
    "data_dir",
    "listen",
    "advertise",
    "internal_listen",
    "internal_advertise",
    "tls_client_auth",
    "config",
    "auth",
    "superusers",
    "internal_tls_cert",
    "internal_tls_key",
    "internal_tls_ca",
    "tls_ca",
    "tls_cert",
    "tls_key",
    "controller_voters",
    "metrics_listen",
    "http_listen",
    "http_cors_origins",
    "rack",
    "broker_session_timeout_ms",
    "replica_replacement_delay_ms",
    "log_level",
    "log_format",
    "brokers",
    "otlp_endpoint",
    "trace_sample_ratio",
];

fn config_keys() -> Vec<String> {
    match serde_json::to_value(BrokerConfig::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Parses the `field` flag as `IP:PORT`.
fn socket_address(field: &str, text: &str) -> Result<SocketAddr, CliError> {
    text.parse()
        .map_err(|_| CliError::Usage(format!("invalid configuration: {field}: {text:?} is not an IP:PORT address")))
}

/// Builds the configuration from every layer and validates it.
pub fn load_config(args: &ServerArgs, tracing: &Tracing, tls: &TlsFlags) -> Result<BrokerConfig, CliError> {
    let mut figment = Figment::from(Serialized::defaults(BrokerConfig::default()));
    if let Some(path) = &args.config {
        if !path.is_file() {
            return Err(CliError::Usage(format!("config file {} does not exist", path.display())));
        }
        figment = figment.merge(Toml::file(path));
    }
    let keys = config_keys();
    figment = figment.merge(Env::prefixed("EDDY_").split("__").filter(move |key| {
        let key = key.as_str().to_ascii_lowercase();
        let top = key.split(['.']).next().unwrap_or_default().split("__").next().unwrap_or_default().to_string();
        keys.contains(&top) && !FLAG_ENV.contains(&top.as_str())
    }));
    let mut flags = serde_json::Map::new();
    if let Some(id) = args.node_id {
        flags.insert("node_id".into(), id.into());
    }
    if let Some(dir) = &args.data_dir {
        flags.insert("data_dir".into(), dir.display().to_string().into());
    }
    if let Some(listen) = &args.listen {
        flags.insert("listen".into(), socket_address("listen", listen)?.to_string().into());
    }
    if let Some(advertise) = &args.advertise {
        flags.insert("advertise".into(), advertise.clone().into());
    }
    if let Some(listen) = &args.internal_listen {
        flags.insert("internal_listen".into(), socket_address("internal_listen", listen)?.to_string().into());
    }
    if let Some(advertise) = &args.internal_advertise {
        flags.insert("internal_advertise".into(), advertise.clone().into());
    }
    if let Some(metrics) = &args.metrics_listen {
        flags.insert("metrics_listen".into(), socket_address("metrics_listen", metrics)?.to_string().into());
    }
    if let Some(http) = &args.http_listen {
        flags.insert("http_listen".into(), socket_address("http_listen", http)?.to_string().into());
    }
    if let Some(origins) = &args.http_cors_origins {
        let origins: Vec<serde_json::Value> =
            origins.split(',').map(str::trim).filter(|o| !o.is_empty()).map(|o| o.to_string().into()).collect();
        flags.insert("http_cors_origins".into(), origins.into());
    }
    if let Some(endpoint) = &tracing.otlp_endpoint {
        flags.insert("otlp_endpoint".into(), endpoint.clone().into());
    }
    if let Some(ratio) = tracing.sample_ratio {
        flags.insert("trace_sample_ratio".into(), ratio.into());
    }
    let files = |cert: &Option<PathBuf>, key: &Option<PathBuf>, ca: &Option<PathBuf>| {
        let mut files = serde_json::Map::new();
        for (name, path) in [("cert", cert), ("key", key), ("ca", ca)] {
            if let Some(path) = path {
                files.insert(name.into(), path.display().to_string().into());
            }
        }
        files
    };
    let client_tls = files(&tls.cert, &tls.key, &tls.ca);
    if !client_tls.is_empty() {
        flags.insert("tls".into(), client_tls.into());
    }
    let internal_tls = files(&args.internal_tls_cert, &args.internal_tls_key, &args.internal_tls_ca);
    if !internal_tls.is_empty() {
        flags.insert("internal_tls".into(), internal_tls.into());
    }
    if let Some(auth) = &args.tls_client_auth {
        flags.insert("tls_client_auth".into(), auth.clone().into());
    }
    // Nested under `auth`, merged key by key with the file's (its api_keys stay).
    let mut auth = serde_json::Map::new();
    if args.auth {
        auth.insert("enabled".into(), true.into());
    }
    if !args.superusers.is_empty() {
        auth.insert("superusers".into(), args.superusers.clone().into());
    }
    if !auth.is_empty() {
        flags.insert("auth".into(), auth.into());
    }
    if let Some(rack) = &args.rack {
        flags.insert("rack".into(), rack.clone().into());
    }
    if let Some(ms) = args.broker_session_timeout_ms {
        flags.insert("broker_session_timeout_ms".into(), ms.into());
    }
    if let Some(ms) = args.replica_replacement_delay_ms {
        flags.insert("replica_replacement_delay_ms".into(), ms.into());
    }
    if let Some(voters) = &args.controller_voters {
        let voters = parse_controller_voters(voters).map_err(|e| CliError::Usage(e.to_string()))?;
        let voters = serde_json::to_value(voters).map_err(|e| CliError::Failed(e.to_string()))?;
        flags.insert("controller_voters".into(), voters);
    }
    figment = figment.merge(Serialized::defaults(serde_json::Value::Object(flags)));
    let config: BrokerConfig = figment.extract().map_err(|e| CliError::Usage(format!("invalid configuration: {e}")))?;
    config.validate().map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(config)
}

fn init_logging(args: &ServerArgs) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn install_metrics(address: SocketAddr) -> Result<(), CliError> {
    let buckets =
        [0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(address)
        .set_buckets(&buckets)
        .map_err(|e| CliError::Failed(e.to_string()))?
        .install()
        .map_err(|e| CliError::Failed(format!("cannot serve metrics on {address}: {e}")))
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// The listeners' TLS, loaded from the configuration's files.
struct ListenerTls {
    grpc: Option<ServerTls>,
    http: Option<ServerTls>,
    internal: Option<ServerTls>,
    /// This broker's side of its connections to the other brokers.
    peers: Option<ClientTls>,
    /// The HTTP API's side of its connections to this broker's client listener.
    http_client: Option<ClientTls>,
}

/// The certificate and key the HTTP gateway presents to the client listeners: the broker's own
/// (its inter-broker identity, `broker-<id>`), so that the brokers let it act for HTTP callers
/// who proved themselves with a client certificate. Only when client certificates are asked for
/// and the client listeners' CA (`ca`) accepts the broker's certificate; otherwise the gateway
/// presents none, and such callers are answered UNAUTHENTICATED by the brokers.
fn gateway_identity(
    config: &BrokerConfig,
    ca: &std::path::Path,
) -> Result<Option<(std::path::PathBuf, std::path::PathBuf)>, CliError> {
    let Some(internal) = &config.internal_tls else { return Ok(None) };
    if config.tls_client_auth == ClientAuth::None {
        return Ok(None);
    }
    let trusted = eddy_tls::accepts_client_certificate(ca, &internal.cert)
        .map_err(|e| CliError::Usage(format!("invalid configuration: internal_tls.cert: {e}")))?;
    if !trusted {
        tracing::warn!(
            ca = %ca.display(),
            cert = %internal.cert.display(),
            "the client listeners' CA does not accept this broker's certificate: HTTP callers with only a client \
             certificate cannot be served"
        );
        return Ok(None);
    }
    Ok(Some((internal.cert.clone(), internal.key.clone())))
}

impl ListenerTls {
    fn load(config: &BrokerConfig) -> Result<ListenerTls, CliError> {
        let usage =
            |field: &str, e: eddy_tls::TlsError| CliError::Usage(format!("invalid configuration: {field}: {e}"));
        let (grpc, http, http_client) = match &config.tls {
            Some(files) => {
                let grpc = ServerTls::load(files, config.tls_client_auth, &[b"h2"]).map_err(|e| usage("tls", e))?;
                let http = ServerTls::load(files, config.tls_client_auth, &[b"h2", b"http/1.1"])
                    .map_err(|e| usage("tls", e))?;
                let http_client = match &files.ca {
                    Some(ca) => {
                        let identity = gateway_identity(config, ca)?;
                        let (cert, key) = identity.unzip();
                        Some(
                            ClientTls::load(&ClientTlsFiles { ca: ca.clone(), cert, key })
                                .map_err(|e| usage("tls.ca", e))?,
                        )
                    }
                    None => None,
                };
                (Some(grpc), Some(http), http_client)
            }
            None => (None, None, None),
        };
        let (internal, peers) = match &config.internal_tls {
            Some(files) => {
                let server =
                    ServerTls::load(files, ClientAuth::Required, &[b"h2"]).map_err(|e| usage("internal_tls", e))?;
                let ca = files
                    .ca
                    .clone()
                    .ok_or_else(|| CliError::Usage("invalid configuration: internal_tls.ca: required".into()))?;
                let client = ClientTlsFiles { ca, cert: Some(files.cert.clone()), key: Some(files.key.clone()) };
                (Some(server), Some(ClientTls::load(&client).map_err(|e| usage("internal_tls", e))?))
            }
            None => (None, None),
        };
        Ok(ListenerTls { grpc, http, internal, peers, http_client })
    }

    /// Reloads every configuration whose files change, until the node stops.
    fn watch(&self, stopping: &tokio::sync::watch::Receiver<bool>) {
        for server in [&self.grpc, &self.http, &self.internal].into_iter().flatten() {
            tokio::spawn(server.clone().watch(stopping.clone()));
        }
        for client in [&self.peers, &self.http_client].into_iter().flatten() {
            tokio::spawn(client.clone().watch(stopping.clone()));
        }
    }
}

pub async fn run(args: &ServerArgs, tracing: &Tracing, tls: &TlsFlags) -> Result<(), CliError> {
    let config = load_config(args, tracing, tls)?;
    if args.print_config {
        print!("{}", toml::to_string_pretty(&config).map_err(|e| CliError::Failed(e.to_string()))?);
        return Ok(());
    }
    init_logging(args);
    let tls = ListenerTls::load(&config)?;
    eddy_storage::node::check_data_dir(&config.data_dir, config.node_id)
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let storage = GroupCommitConfig {
        write_buffer_bytes: config.storage_write_buffer_bytes as usize,
        wal_max_bytes: config.storage_wal_max_bytes,
        ..GroupCommitConfig::default()
    };
    let kv = RocksKv::open(&config.data_dir.join("db"), storage)
        .map_err(|e| CliError::Failed(format!("cannot open the data directory {}: {e}", config.data_dir.display())))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CliError::Failed(format!("cannot listen on {}: {e}", config.listen)))?;
    let internal_listener = tokio::net::TcpListener::bind(config.internal_listen).await.map_err(|e| {
        CliError::Failed(format!("cannot listen for inter-broker traffic on {}: {e}", config.internal_listen))
    })?;
    let http_listener = match config.http_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .map_err(|e| CliError::Failed(format!("cannot listen for HTTP on {address}: {e}")))?,
        ),
        None => None,
    };
    if let Some(address) = config.metrics_listen {
        install_metrics(address)?;
    }
    let telemetry = match &config.otlp_endpoint {
        Some(endpoint) => {
            let export = eddy_telemetry::export::ExportConfig {
                endpoint: endpoint.clone(),
                service_name: "eddy-broker".into(),
                instance_id: Some(config.node_id.to_string()),
                sample_ratio: config.trace_sample_ratio,
            };
            let telemetry = eddy_telemetry::export::install(&export).map_err(|e| CliError::Failed(e.to_string()))?;
            tracing::info!(endpoint, ratio = config.trace_sample_ratio, "exporting spans over OTLP");
            Some(telemetry)
        }
        None => None,
    };
    let env = NodeEnv {
        kv: Arc::new(kv),
        connector: match &tls.peers {
            Some(peers) => Arc::new(TlsConnector { tls: peers.clone() }),
            None => Arc::new(TcpConnector),
        },
        clock: Arc::new(SystemClock),
        seed: eddy_raft::random_seed(),
    };
    let broker = Broker::start(config.clone(), env)
        .await
        .map_err(|e| CliError::Failed(format!("cannot start the broker: {e}")))?;
    let routes = broker.client_routes().await.map_err(|e| CliError::Failed(e.to_string()))?;
    let (stopping, stop) = tokio::sync::watch::channel(false);
    tls.watch(&stop);
    let internal = {
        let mut stop = stop.clone();
        let incoming = eddy_tls::incoming(internal_listener, tls.internal.clone());
        let shutdown = async move {
            let _ = stop.wait_for(|stopping| *stopping).await;
        };
        let served = eddy_broker::server_builder()
            .add_routes(broker.internal_routes().await)
            .serve_with_incoming_shutdown(incoming, shutdown);
        tokio::spawn(served)
    };
    let http = match http_listener {
        Some(listener) => {
            let mut stop = stop.clone();
            // The REST API reaches the cluster through this broker, as any client would.
            // An HTTP client gets an answer within seconds: retries end sooner than the library's.
            let client_config = eddy_client::ClientConfig {
                retry_deadline: HTTP_RETRY_DEADLINE,
                tls: tls.http_client.clone(),
                ..Default::default()
            };
            let client = eddy_client::Client::new(vec![broker.address().to_string()], client_config)
                .map_err(|e| CliError::Failed(format!("cannot make the HTTP API's cluster client: {e}")))?;
            let router = eddy_http::router(broker.clone(), Arc::new(client));
            let router = eddy_http::with_cors(router, &config.http_cors_origins);
            let shutdown = async move {
                let _ = stop.wait_for(|stopping| *stopping).await;
            };
            Some(tokio::spawn(eddy_http::serve(listener, tls.http.clone(), router, shutdown)))
        }
        None => None,
    };
    tracing::info!(
        listen = %config.listen,
        internal_listen = %config.internal_listen,
        metrics = ?config.metrics_listen,
        http = ?config.http_listen,
        tls = tls.grpc.is_some(),
        internal_tls = tls.internal.is_some(),
        "serving"
    );
    let incoming = eddy_tls::incoming(listener, tls.grpc.clone());
    let served = eddy_broker::server_builder()
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, {
            let broker = broker.clone();
            let stopping = stopping.clone();
            async move {
                shutdown_signal().await;
                // Open streams (Subscribe, and the HTTP API's event streams) would hold the
                // graceful shutdown open for as long as their clients stay.
                broker.close_streams();
                let _ = stopping.send(true);
            }
        })
        .await;
    tracing::info!("shutting down");
    let _ = stopping.send(true);
    if let Some(mut http) = http {
        // An event stream the HTTP API relays from another broker does not end by itself.
        match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, &mut http).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the HTTP listener failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP listener panicked"),
            Ok(Ok(Ok(()))) => {}
            Err(_) => {
                tracing::info!("closing the HTTP connections still open");
                http.abort();
            }
        }
    }
    // Peers' Raft calls end with the broker's groups; the listener closes after them.
    broker.shutdown().await;
    match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, internal).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the inter-broker listener failed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "the inter-broker listener panicked"),
        Ok(Ok(Ok(()))) => {}
        Err(_) => tracing::info!("closing the inter-broker connections still open"),
    }
    if let Some(telemetry) = telemetry {
        telemetry.shutdown().await;
    }
    served.map_err(|e| CliError::Failed(format!("server failed: {e}")))
}
