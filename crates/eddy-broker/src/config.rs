//! A broker's configuration: one typed struct, validated at start-up with errors that name the
//! field. The CLI layers it from a TOML file, `EDDY_*` environment variables and flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use eddy_limits::{BATCH_BYTES_MAX_LIMIT, BATCH_RECORDS_MAX_LIMIT};
use eddy_raft::RaftTiming;
use eddy_tls::{ClientAuth, TlsFiles};
use serde::{Deserialize, Serialize};

/// A controller voter: node id and inter-broker address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerVoter {
    pub id: u64,
    pub address: String,
}

/// Parses the controller voters, `ID=HOST:PORT,ID=HOST:PORT,...`.
pub fn parse_controller_voters(text: &str) -> Result<Vec<ControllerVoter>, ConfigError> {
    let mut voters = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, address) = part
            .split_once('=')
            .ok_or_else(|| bad("controller_voters", format!("voter {part:?} is not ID=HOST:PORT")))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| bad("controller_voters", format!("voter {part:?} has a non-numeric node id")))?;
        check_address(address.trim()).map_err(|e| bad("controller_voters", format!("voter {part:?}: {e}")))?;
        voters.push(ControllerVoter { id, address: address.trim().to_string() });
    }
    Ok(voters)
}

fn check_address(address: &str) -> Result<(), String> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("address {address:?} has no :PORT"))?;
    if host.is_empty() {
        return Err(format!("address {address:?} has no host"));
    }
    port.parse::<u16>().map_err(|_| format!("address {address:?} has an invalid port"))?;
    Ok(())
}

/// Everything a broker needs to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// This node's id, unique in the cluster, >= 1.
    pub node_id: u64,
    /// Name of the cluster, reported by DescribeCluster.
    pub cluster_name: String,
    /// Where RocksDB and the format stamp live.
    pub data_dir: PathBuf,
    /// Address the client gRPC listener binds: the public API (produce, fetch, groups, admin),
    /// health and reflection.
    pub listen: SocketAddr,
    /// Address clients use to reach this node; defaults to `listen`.
    pub advertise: Option<String>,
    /// Address the inter-broker gRPC listener binds: the Raft transport and the controller RPCs,
    /// which the client listener never serves. Put it on a network clients cannot reach.
    pub internal_listen: SocketAddr,
    /// Address other brokers use to reach this node's inter-broker listener; defaults to
    /// `internal_listen`.
    pub internal_advertise: Option<String>,
    /// TLS of the client listeners (gRPC and HTTP), from PEM files reloaded when they change;
    /// none (the default): plaintext. `tls.ca` is the CA of the cluster's certificates: client
    /// certificates are checked against it, and the broker's own HTTP API, a client of this
    /// listener, trusts it.
    pub tls: Option<TlsFiles>,
    /// What the client listeners ask of client certificates: `none`, `optional` or `required`
    /// (the last two need `tls.ca`). A verified certificate authenticates the principal its
    /// subject's common name names.
    pub tls_client_auth: ClientAuth,
    /// Mutual TLS between brokers, on the inter-broker listener and on this broker's connections
    /// to the others; none (the default): plaintext. `internal_tls.ca` is required: each broker
    /// presents a certificate it signed whose common name is `broker-<node id>`, and may act only
    /// as that broker.
    pub internal_tls: Option<TlsFiles>,
    /// Authentication and authorization of client requests (docs/security.md).
    pub auth: AuthConfig,
    /// Per-principal produce, fetch and request rates, enforced on this broker by delaying
    /// answers (docs/security.md, Quotas). None configured (the default): unlimited.
    pub quotas: QuotaConfig,
    /// The controller voters, each at its inter-broker address. A node listed here runs a
    /// controller replica.
    pub controller_voters: Vec<ControllerVoter>,
    /// Prometheus `/metrics` address; none disables it.
    pub metrics_listen: Option<SocketAddr>,
    /// Address of the broker's HTTP listener (the REST API, GraphQL, the schema registry's REST
    /// API, the AsyncAPI document); none disables it.
    pub http_listen: Option<SocketAddr>,
    /// Origins of web pages allowed to call the HTTP listener from a browser (CORS):
    /// `scheme://host[:port]` each, or `*` for any. Empty (the default): no cross-origin access.
    pub http_cors_origins: Vec<String>,
    /// OTLP/gRPC collector the broker sends its spans to (`http://HOST:4317`); none (the
    /// default) exports nothing.
    pub otlp_endpoint: Option<String>,
    /// Share of the traces that start at this broker which are recorded (0 to 1); a trace that
    /// came in follows its caller's sampling decision.
    pub trace_sample_ratio: f64,
    /// Largest record accepted (key + value + headers), in bytes.
    pub record_size_max_bytes: u32,
    /// Largest produce batch accepted, in bytes (each record counted with its overhead, see
    /// `eddy_proto::RECORD_OVERHEAD_BYTES`).
    pub batch_size_max_bytes: u32,
    /// Most records in one produce batch. A batch is one Raft entry, decoded whole to replicate
    /// and apply it, so its record count is bounded as well as its bytes.
    pub batch_records_max: u32,
    /// How long a produce may wait for its batch to commit.
    pub produce_timeout_ms: u32,
    /// Fetch defaults and bounds.
    pub fetch_max_bytes_default: u32,
    pub fetch_max_records_default: u32,
    pub fetch_wait_max_ms: u32,
    /// How often the broker reports to the controller.
    pub heartbeat_interval_ms: u64,
    /// A broker silent for this long is fenced: it gets no new replicas.
    pub broker_session_timeout_ms: u64,
    /// A broker fenced this long has its replicas replaced on other brokers.
    pub replica_replacement_delay_ms: u64,
    /// Most partition moves (replacements, drains, rebalance) under way at once, cluster-wide.
    pub partition_moves_max: u32,
    /// This broker's rack (failure domain): replacements and rebalances put a partition's
    /// replicas on different racks when they can.
    pub rack: Option<String>,
    pub partitions_per_topic_max: u32,
    /// Partitions of `__consumer_offsets` when this broker is the one to create it (on the first
    /// group request in the cluster); groups are spread over them.
    pub offsets_partitions: u32,
    /// How long a partition keeps the deduplication window of an idempotent producer that stopped
    /// writing to it. A producer idle for longer gets UNKNOWN_PRODUCER_ID on its next batch and
    /// re-initializes. Used by this broker's partition leaderships (each batch carries it).
    pub producer_idle_expiry_ms: u64,
    /// How often this broker hands the leaderships it holds back to their live, caught-up
    /// preferred replicas; 0 never does.
    pub leader_balance_interval_ms: u64,
    /// A partition group with no new entry for this long, fully replicated, stops its Raft
    /// ticks (no heartbeats, no election timers) until it is busy again or its leader's broker
    /// stops answering this broker's pings (see `crate::quiesce`); 0 never quiesces. Default
    /// 2 s.
    pub quiesce_after_ms: u64,
    /// How often this broker's partition leaderships apply their topics' retention
    /// (`retention.ms`, `retention.bytes`); 0 never does.
    pub retention_check_interval_ms: u64,
    /// The controller snapshots its metadata every this many applied entries and purges its
    /// log up to the snapshot (keeping the last tenth, for followers slightly behind).
    pub controller_snapshot_entries: u64,
    /// Bytes RocksDB buffers in memory per column family before it writes a file.
    pub storage_write_buffer_bytes: u64,
    /// Bytes of RocksDB write-ahead log after which every column family is flushed, so the log
    /// does not grow past it whatever retention deletes.
    pub storage_wal_max_bytes: u64,
    pub raft: RaftTiming,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            node_id: 1,
            cluster_name: "eddy".into(),
            data_dir: PathBuf::from("./eddy-data"),
            listen: "127.0.0.1:9092".parse().expect("valid default address"),
            advertise: None,
            internal_listen: "127.0.0.1:9093".parse().expect("valid default address"),
            internal_advertise: None,
            tls: None,
            tls_client_auth: ClientAuth::None,
            internal_tls: None,
            auth: AuthConfig::default(),
            quotas: QuotaConfig::default(),
            controller_voters: Vec::new(),
            metrics_listen: None,
            http_listen: None,
            http_cors_origins: Vec::new(),
            otlp_endpoint: None,
            trace_sample_ratio: 1.0,
            record_size_max_bytes: 1 << 20,
            batch_size_max_bytes: 16 << 20,
            batch_records_max: 65_536,
            produce_timeout_ms: 10_000,
            fetch_max_bytes_default: 1 << 20,
            fetch_max_records_default: 1_000,
            fetch_wait_max_ms: 30_000,
            heartbeat_interval_ms: 500,
            broker_session_timeout_ms: 10_000,
            replica_replacement_delay_ms: 30_000,
            partition_moves_max: 4,
            rack: None,
            partitions_per_topic_max: 1_000,
            offsets_partitions: eddy_groups::OFFSETS_PARTITIONS_DEFAULT,
            producer_idle_expiry_ms: eddy_partition::PRODUCER_IDLE_EXPIRY_MS_DEFAULT,
            leader_balance_interval_ms: 5_000,
            quiesce_after_ms: 2_000,
            retention_check_interval_ms: 30_000,
            controller_snapshot_entries: 10_000,
            storage_write_buffer_bytes: 64 << 20,
            storage_wal_max_bytes: 512 << 20,
            raft: RaftTiming::default(),
        }
    }
}

/// Who may use the client listeners, and how they prove it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Every client request must authenticate (a user's password, an API key or a client
    /// certificate), and ACLs decide what it may do. Also on whenever `api_keys` are configured
    /// or client certificates are required. Off (the default, and in `eddy dev`): every request
    /// is served as `User:ANONYMOUS`, with no ACLs.
    pub enabled: bool,
    /// Principals (`User:<name>`) that may do everything whatever the ACLs say: the
    /// administrators who create users and ACLs.
    pub superusers: Vec<String>,
    /// Static API keys: bearer tokens, known to the broker only by their SHA-256
    /// (`eddy auth generate-key` makes one).
    pub api_keys: Vec<eddy_auth::ApiKey>,
}

/// Per-principal rate limits, each enforced on every broker separately (as Kafka's): a client
/// over a quota gets its answers late, never an error. Quotas set cluster-wide (`eddy quota
/// set`) take precedence over these (see [`eddy_auth::quota_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaConfig {
    /// The limits of every principal without an entry in `principals`, superusers included.
    pub default: QuotaLimits,
    /// Principals with limits of their own. An entry replaces `default` whole: a rate it leaves
    /// out is unlimited for that principal (an entry with no rates exempts it).
    pub principals: Vec<PrincipalQuota>,
}

pub use eddy_auth::QuotaLimits;

/// One principal's own quota limits (`[[quotas.principals]]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalQuota {
    /// `User:<name>`.
    pub principal: String,
    /// As in [`QuotaLimits`].
    pub produce_bytes_per_second: Option<u64>,
    pub fetch_bytes_per_second: Option<u64>,
    pub requests_per_second: Option<u64>,
}

impl PrincipalQuota {
    /// The entry's rates.
    pub fn limits(&self) -> QuotaLimits {
        QuotaLimits {
            produce_bytes_per_second: self.produce_bytes_per_second,
            fetch_bytes_per_second: self.fetch_bytes_per_second,
            requests_per_second: self.requests_per_second,
        }
    }
}

/// Rates that are set must be positive ([`QuotaLimits::check`]).
fn check_quota_limits(limits: &QuotaLimits, fields: [&'static str; 3]) -> Result<(), ConfigError> {
    for ((name, rate), field) in limits.named().into_iter().zip(fields) {
        debug_assert!(field.ends_with(name));
        if rate == Some(0) {
            return Err(bad(field, "must be > 0 (leave it out for no limit)"));
        }
    }
    Ok(())
}

impl BrokerConfig {
    fn check_quotas(&self) -> Result<(), ConfigError> {
        check_quota_limits(
            &self.quotas.default,
            [
                "quotas.default.produce_bytes_per_second",
                "quotas.default.fetch_bytes_per_second",
                "quotas.default.requests_per_second",
            ],
        )?;
        let mut seen = std::collections::BTreeSet::new();
        for entry in &self.quotas.principals {
            let principal = eddy_auth::Principal::parse(&entry.principal)
                .map_err(|e| bad("quotas.principals.principal", e.to_string()))?;
            if principal.is_any() {
                return Err(bad("quotas.principals.principal", "User:* is not one principal: use [quotas.default]"));
            }
            if !seen.insert(principal) {
                return Err(bad(
                    "quotas.principals.principal",
                    format!("{} has two entries; give it one", entry.principal),
                ));
            }
            check_quota_limits(
                &entry.limits(),
                [
                    "quotas.principals.produce_bytes_per_second",
                    "quotas.principals.fetch_bytes_per_second",
                    "quotas.principals.requests_per_second",
                ],
            )
            .map_err(|e| ConfigError { reason: format!("{}: {}", entry.principal, e.reason), ..e })?;
        }
        Ok(())
    }
}

impl BrokerConfig {
    /// Whether requests must authenticate and are authorized by ACLs.
    pub fn auth_on(&self) -> bool {
        self.auth.enabled || !self.auth.api_keys.is_empty() || self.tls_client_auth == ClientAuth::Required
    }

    fn check_auth(&self) -> Result<(), ConfigError> {
        for superuser in &self.auth.superusers {
            eddy_auth::Principal::parse(superuser).map_err(|e| bad("auth.superusers", e.to_string()))?;
        }
        for key in &self.auth.api_keys {
            key.principal().map_err(|e| bad("auth.api_keys", e.to_string()))?;
            if !key.valid_hash() {
                return Err(bad(
                    "auth.api_keys",
                    format!("the sha256 of {}'s key is not 64 hex digits", key.principal),
                ));
            }
        }
        Ok(())
    }
}

/// A configuration value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {field}: {reason}")]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { field, reason: reason.into() }
}

impl BrokerConfig {
    /// The address clients reach this node at.
    pub fn advertised_address(&self) -> String {
        self.advertise.clone().unwrap_or_else(|| self.listen.to_string())
    }

    /// The address other brokers reach this node's inter-broker listener at.
    pub fn advertised_internal_address(&self) -> String {
        self.internal_advertise.clone().unwrap_or_else(|| self.internal_listen.to_string())
    }

    /// Whether this node is a controller voter.
    pub fn is_controller_voter(&self) -> bool {
        self.controller_voters.iter().any(|s| s.id == self.node_id)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(bad("node_id", "must be >= 1"));
        }
        if self.controller_voters.is_empty() {
            return Err(bad("controller_voters", "at least one controller voter (ID=HOST:PORT) is required"));
        }
        let mut ids: Vec<u64> = self.controller_voters.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.controller_voters.len() {
            return Err(bad("controller_voters", "a node id appears twice"));
        }
        for voter in &self.controller_voters {
            if voter.id == 0 {
                return Err(bad("controller_voters", "node ids must be >= 1"));
            }
            check_address(&voter.address).map_err(|e| bad("controller_voters", e))?;
        }
        if let Some(advertise) = &self.advertise {
            check_address(advertise).map_err(|e| bad("advertise", e))?;
        }
        if let Some(advertise) = &self.internal_advertise {
            check_address(advertise).map_err(|e| bad("internal_advertise", e))?;
        }
        self.check_listeners_apart()?;
        self.check_tls()?;
        self.check_auth()?;
        self.check_quotas()?;
        if let Some(me) = self.controller_voters.iter().find(|s| s.id == self.node_id)
            && me.address != self.advertised_internal_address()
        {
            return Err(bad(
                "controller_voters",
                format!(
                    "this node ({}) is listed at {} but its inter-broker listener is advertised at {} \
                     (controller voters are listed at their internal addresses)",
                    self.node_id,
                    me.address,
                    self.advertised_internal_address()
                ),
            ));
        }
        if self.record_size_max_bytes == 0 {
            return Err(bad("record_size_max_bytes", "must be > 0"));
        }
        if self.batch_size_max_bytes < self.record_size_max_bytes {
            return Err(bad("batch_size_max_bytes", "must be >= record_size_max_bytes"));
        }
        if self.batch_size_max_bytes as usize > BATCH_BYTES_MAX_LIMIT {
            return Err(bad("batch_size_max_bytes", format!("must be <= {BATCH_BYTES_MAX_LIMIT}")));
        }
        if self.batch_records_max == 0 || self.batch_records_max as usize > BATCH_RECORDS_MAX_LIMIT {
            return Err(bad("batch_records_max", format!("must be between 1 and {BATCH_RECORDS_MAX_LIMIT}")));
        }
        if self.produce_timeout_ms == 0 {
            return Err(bad("produce_timeout_ms", "must be > 0"));
        }
        if self.fetch_max_bytes_default == 0 || self.fetch_max_records_default == 0 {
            return Err(bad("fetch_max_bytes_default", "fetch defaults must be > 0"));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(bad("heartbeat_interval_ms", "must be > 0"));
        }
        if self.broker_session_timeout_ms < 2 * self.heartbeat_interval_ms {
            return Err(bad("broker_session_timeout_ms", "must be at least twice heartbeat_interval_ms"));
        }
        if self.replica_replacement_delay_ms < 1_000 {
            return Err(bad("replica_replacement_delay_ms", "must be at least 1000"));
        }
        if self.partition_moves_max == 0 {
            return Err(bad("partition_moves_max", "must be > 0"));
        }
        if self.rack.as_ref().is_some_and(|r| r.is_empty() || r.len() > 255) {
            return Err(bad("rack", "must be 1 to 255 characters"));
        }
        if self.partitions_per_topic_max == 0 {
            return Err(bad("partitions_per_topic_max", "must be > 0"));
        }
        if self.offsets_partitions == 0 || self.offsets_partitions > self.partitions_per_topic_max {
            return Err(bad("offsets_partitions", "must be between 1 and partitions_per_topic_max"));
        }
        for origin in &self.http_cors_origins {
            if !valid_origin(origin) {
                return Err(bad(
                    "http_cors_origins",
                    "each must be * or an origin scheme://host[:port] (http or https, no path)",
                ));
            }
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            eddy_telemetry::export::validate_endpoint(endpoint).map_err(|e| bad("otlp_endpoint", e.to_string()))?;
        }
        if eddy_telemetry::export::validate_sample_ratio(self.trace_sample_ratio).is_err() {
            return Err(bad("trace_sample_ratio", "must be between 0 and 1"));
        }
        if self.producer_idle_expiry_ms < 1_000 {
            return Err(bad("producer_idle_expiry_ms", "must be at least 1000"));
        }
        if self.storage_write_buffer_bytes < 1 << 20 || self.storage_write_buffer_bytes > 1 << 30 {
            return Err(bad("storage_write_buffer_bytes", "must be between 1 MiB and 1 GiB"));
        }
        if self.storage_wal_max_bytes < self.storage_write_buffer_bytes {
            return Err(bad("storage_wal_max_bytes", "must be at least storage_write_buffer_bytes"));
        }
        if self.controller_snapshot_entries == 0 {
            return Err(bad("controller_snapshot_entries", "must be > 0"));
        }
        let raft = &self.raft;
        if raft.heartbeat_interval_ms == 0 || raft.election_timeout_min_ms <= raft.heartbeat_interval_ms {
            return Err(bad("raft.election_timeout_min_ms", "must be greater than raft.heartbeat_interval_ms"));
        }
        if raft.election_timeout_max_ms <= raft.election_timeout_min_ms {
            return Err(bad("raft.election_timeout_max_ms", "must be greater than raft.election_timeout_min_ms"));
        }
        Ok(())
    }
}

impl BrokerConfig {
    /// No two listeners share an address: the inter-broker one above all must stay apart from
    /// the client one, or clients would reach the cluster's internals.
    fn check_listeners_apart(&self) -> Result<(), ConfigError> {
        let mut listeners = vec![("listen", self.listen), ("internal_listen", self.internal_listen)];
        listeners.extend(self.http_listen.map(|a| ("http_listen", a)));
        listeners.extend(self.metrics_listen.map(|a| ("metrics_listen", a)));
        for (i, (field, address)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| same_port(*a, *address)) {
                return Err(bad(field, format!("{address} is also {other}: each listener needs its own port")));
            }
        }
        if self.advertise.is_some() && self.advertise == self.internal_advertise {
            return Err(bad("internal_advertise", "must differ from advertise: clients must not reach it"));
        }
        Ok(())
    }
}

impl BrokerConfig {
    fn check_tls(&self) -> Result<(), ConfigError> {
        if self.tls_client_auth != ClientAuth::None && self.tls.as_ref().is_none_or(|t| t.ca.is_none()) {
            return Err(bad("tls_client_auth", "client certificates need tls (cert, key) and tls.ca to check them"));
        }
        if self.tls.as_ref().is_some_and(|t| t.ca.is_none()) && self.http_listen.is_some() {
            return Err(bad(
                "tls.ca",
                "required with TLS and an HTTP listener: the HTTP API connects to this broker's TLS \
                 listener and checks its certificate against it",
            ));
        }
        if self.internal_tls.as_ref().is_some_and(|t| t.ca.is_none()) {
            return Err(bad(
                "internal_tls.ca",
                "required: brokers authenticate each other with certificates it signed",
            ));
        }
        Ok(())
    }
}

/// Whether binding both would collide: the same port on the same address, or on a wildcard.
fn same_port(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && a.port() != 0 && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Whether `origin` is `*` or a web origin as a browser sends it: `http(s)://host[:port]`.
fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Some(rest) = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) else {
        return false;
    };
    // A bracketed IPv6 host has colons of its own: a port follows the last one only outside
    // the brackets.
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (rest, None),
    };
    !host.is_empty() && !rest.contains(['/', '?', '#', ' ']) && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cors_origins_are_web_origins() {
        for good in ["*", "http://localhost:3000", "https://shop.example.com", "http://[::1]:8080", "http://[::1]"] {
            assert!(valid_origin(good), "{good}");
        }
        for bad in ["", "localhost:3000", "ftp://x", "http://", "http://a/b", "https://a:port", "http://a:99999"] {
            assert!(!valid_origin(bad), "{bad}");
        }
        let mut config = BrokerConfig {
            controller_voters: parse_controller_voters("1=127.0.0.1:9093").unwrap(),
            http_cors_origins: vec!["https://shop.example".into(), "*".into()],
            ..BrokerConfig::default()
        };
        config.validate().unwrap();
        config.http_cors_origins.push("http://a/".into());
        assert_eq!(config.validate().unwrap_err().field, "http_cors_origins");
    }

    #[test]
    fn controller_voters_parse_and_errors_name_the_problem() {
        let voters = parse_controller_voters("1=127.0.0.1:9092, 2=localhost:9093").unwrap();
        assert_eq!(voters[1], ControllerVoter { id: 2, address: "localhost:9093".into() });
        let error = parse_controller_voters("x=127.0.0.1:1").unwrap_err();
        assert_eq!(error.field, "controller_voters");
        assert!(error.reason.contains("non-numeric"), "{error}");
        assert!(parse_controller_voters("1=127.0.0.1").unwrap_err().reason.contains("no :PORT"));
    }

    #[test]
    fn validate_names_the_field() {
        let mut config = BrokerConfig {
            controller_voters: parse_controller_voters("1=127.0.0.1:9093").unwrap(),
            ..Default::default()
        };
        config.validate().unwrap();
        config.node_id = 0;
        assert_eq!(config.validate().unwrap_err().field, "node_id");
        config.node_id = 1;
        config.raft.election_timeout_max_ms = 10;
        assert_eq!(config.validate().unwrap_err().field, "raft.election_timeout_max_ms");
    }

    #[test]
    fn quotas_are_positive_for_one_principal_each() {
        let text = r#"
            controller_voters = [{ id = 1, address = "127.0.0.1:9093" }]
            [quotas.default]
            fetch_bytes_per_second = 1048576
            [[quotas.principals]]
            principal = "User:alice"
            produce_bytes_per_second = 4096
            [[quotas.principals]]
            principal = "User:admin"
        "#;
        let config: BrokerConfig = toml::from_str(text).unwrap();
        config.validate().unwrap();
        assert_eq!(config.quotas.default.fetch_bytes_per_second, Some(1 << 20));
        assert_eq!(config.quotas.principals[0].limits().produce_bytes_per_second, Some(4096));
        assert_eq!(config.quotas.principals[1].limits(), QuotaLimits::default());
        // As `eddy server --print-config` shows it, and back.
        let printed = toml::to_string_pretty(&config).unwrap();
        assert!(printed.contains("[[quotas.principals]]"), "{printed}");
        assert_eq!(toml::from_str::<BrokerConfig>(&printed).unwrap(), config);

        let mut zero = config.clone();
        zero.quotas.default.requests_per_second = Some(0);
        assert_eq!(zero.validate().unwrap_err().field, "quotas.default.requests_per_second");
        let mut zero = config.clone();
        zero.quotas.principals[0].fetch_bytes_per_second = Some(0);
        let error = zero.validate().unwrap_err();
        assert_eq!(error.field, "quotas.principals.fetch_bytes_per_second");
        assert!(error.reason.contains("User:alice"), "{error}");
        let mut twice = config.clone();
        twice.quotas.principals[1].principal = "User:alice".into();
        let error = twice.validate().unwrap_err();
        assert_eq!(error.field, "quotas.principals.principal");
        assert!(error.reason.contains("two entries"), "{error}");
        for bad_principal in ["alice", "User:*", "Group:x"] {
            let mut bad = config.clone();
            bad.quotas.principals[0].principal = bad_principal.into();
            assert_eq!(bad.validate().unwrap_err().field, "quotas.principals.principal", "{bad_principal}");
        }
    }

    #[test]
    fn the_inter_broker_listener_stands_apart() {
        let config = BrokerConfig {
            controller_voters: parse_controller_voters("1=127.0.0.1:9093").unwrap(),
            ..Default::default()
        };
        config.validate().unwrap();
        let shared = BrokerConfig { internal_listen: "0.0.0.0:9092".parse().unwrap(), ..config.clone() };
        let error = shared.validate().unwrap_err();
        assert_eq!(error.field, "internal_listen", "{error}");
        assert!(error.reason.contains("listen"), "{error}");
        let http = BrokerConfig { http_listen: Some("127.0.0.1:9093".parse().unwrap()), ..config.clone() };
        assert_eq!(http.validate().unwrap_err().field, "http_listen");
        let same = BrokerConfig {
            advertise: Some("broker-1:9092".into()),
            internal_advertise: Some("broker-1:9092".into()),
            controller_voters: parse_controller_voters("1=broker-1:9092").unwrap(),
            ..config.clone()
        };
        assert_eq!(same.validate().unwrap_err().field, "internal_advertise");
        // Voters are listed at their inter-broker addresses.
        let client_address =
            BrokerConfig { controller_voters: parse_controller_voters("1=127.0.0.1:9092").unwrap(), ..config };
        let error = client_address.validate().unwrap_err();
        assert_eq!(error.field, "controller_voters");
        assert!(error.reason.contains("127.0.0.1:9093"), "{error}");
    }
}
