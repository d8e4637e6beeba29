//! What every service shares: its command-line settings, the connections, a processor with the
//! example's retry rules, and stopping on SIGTERM or Ctrl-C.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use eddy_client::processing::{HandlerError, Incoming, Processor, ProcessorConfig, RetryPolicy};
use eddy_client::schema::SchemaRegistry;
use eddy_client::{Client, ClientConfig, ClientError, ConsumerConfig, OffsetReset};

use crate::events::{self, Event};

/// Settings every service takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// Brokers to bootstrap from (HOST:PORT,...).
    #[arg(
        long,
        env = "EDDY_BROKERS",
        default_value = "127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094",
        value_delimiter = ','
    )]
    pub brokers: Vec<String>,
    /// The schema registry (any broker's HTTP listener).
    #[arg(long, env = "EDDY_SCHEMA_REGISTRY", default_value = "http://127.0.0.1:8081")]
    pub schema_registry: String,
    /// Where the service keeps its state (its own subdirectory is made).
    #[arg(long, env = "ECOMMERCE_DATA_DIR", default_value = "./ecommerce-data")]
    pub data_dir: PathBuf,
    /// Send OpenTelemetry spans over OTLP/gRPC to this collector (`http://HOST:4317`).
    #[arg(long, env = "EDDY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

/// A service's connections.
pub struct Connected {
    pub client: Arc<Client>,
    pub registry: Arc<SchemaRegistry>,
    pub publisher: Arc<events::Publisher>,
    /// The service's own state directory.
    pub dir: PathBuf,
}

impl Common {
    /// Connects, makes sure the topics and schemas exist, and makes the state directory.
    pub async fn connect(&self, service: &str) -> Result<Connected, String> {
        let brokers: Vec<String> =
            self.brokers.iter().map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).collect();
        let client = Arc::new(Client::new(brokers, ClientConfig::default()).map_err(|e| e.to_string())?);
        let registry = Arc::new(SchemaRegistry::new(&self.schema_registry).map_err(|e| e.to_string())?);
        retry_start(|| events::setup(&client, &registry)).await.map_err(|e| format!("setting up the topics: {e}"))?;
        let dir = self.data_dir.join(service);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let publisher = Arc::new(events::Publisher::new(client.clone(), registry.clone()));
        Ok(Connected { client, registry, publisher, dir })
    }
}

/// Retries a start-up step while the cluster is still coming up (up to a minute).
pub async fn retry_start<T, F, Fut>(mut step: F) -> eddy_client::ClientResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = eddy_client::ClientResult<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match step().await {
            Ok(value) => return Ok(value),
            Err(e) if tokio::time::Instant::now() < deadline && (e.is_retriable() || e.reason() == "UNREACHABLE") => {
                tracing::debug!(error = %e, "the cluster is not ready yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A processor for `group` over `topics`: 5 attempts in place (50 ms doubling to 1 s), then,
/// with `retry_topics`, retry topics after 1 s and 5 s (5 more attempts each), then the
/// dead-letter topic; processed event ids kept in the service's directory.
pub async fn processor(
    connected: &Connected,
    group: &str,
    topics: &[&str],
    retry_topics: bool,
) -> Result<Processor, String> {
    let consumer = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(200),
        session_timeout: Duration::from_secs(6),
        ..ConsumerConfig::group(group)
    };
    let retry = RetryPolicy {
        max_attempts: 5,
        base: Duration::from_millis(50),
        factor: 2.0,
        cap: Duration::from_secs(1),
        jitter: 0.2,
    };
    let config = ProcessorConfig {
        retry,
        retry_topic_delays: if retry_topics {
            vec![Duration::from_secs(1), Duration::from_secs(5)]
        } else {
            Vec::new()
        },
        event_id_header: events::EVENT_ID_HEADER.to_string(),
        state_dir: Some(connected.dir.clone()),
        commit_interval: Duration::from_millis(500),
        ..ProcessorConfig::new(consumer)
    };
    retry_start(|| Processor::new(connected.client.clone(), topics, config.clone())).await.map_err(|e| e.to_string())
}

/// The event a record holds; a value that does not decode is a fatal failure (it goes to the
/// dead-letter topic: retrying cannot fix it).
pub async fn event_of(connected: &Connected, incoming: &Incoming) -> Result<Event, HandlerError> {
    events::decode(&connected.registry, &incoming.record.value).await.map_err(|e| match e {
        ClientError::Schema(_) => HandlerError::fatal(format!("undecodable event: {e}")),
        other => HandlerError::retriable(format!("reading the event's schema: {other}")),
    })
}

/// A failed publish or request: retriable unless the cluster refused it for good.
pub fn failed(what: &str, e: ClientError) -> HandlerError {
    if e.is_definite() && !e.is_retriable() {
        HandlerError::fatal(format!("{what}: {e}"))
    } else {
        HandlerError::retriable(format!("{what}: {e}"))
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn stopped() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Appends one JSON line to `path` and syncs it to disk. A torn last line (a crash mid-write)
/// is ended first, so it spoils only itself.
pub fn append_line(path: &Path, value: &serde_json::Value) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut file = std::fs::OpenOptions::new().create(true).read(true).append(true).open(path)?;
    let len = file.metadata()?.len();
    let mut last = [b'\n'];
    if len > 0 {
        file.read_exact_at(&mut last, len - 1)?;
    }
    let lead = if last[0] == b'\n' { "" } else { "\n" };
    file.write_all(format!("{lead}{value}\n").as_bytes())?;
    file.sync_data()
}

/// The JSON lines of `path` (none when it does not exist); a torn last line (a crash mid-write)
/// is skipped.
pub fn read_lines(path: &Path) -> std::io::Result<Vec<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
