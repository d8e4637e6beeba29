//! The connection to a cluster: channels to brokers, partition leader discovery, retries.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_proto::Reason;
use eddy_proto::v1::{self, eddy_client::EddyClient};
use eddy_telemetry::{messaging, propagation};
use tonic::transport::{Channel, Endpoint};

use crate::credentials::{Authorize, Credentials, Transport};
use crate::error::{ClientError, ClientResult};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Deadline of one request (a fetch adds its long-poll wait to it).
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Backoff between retries grows from the initial value to the max.
    pub retry_backoff_initial: Duration,
    pub retry_backoff_max: Duration,
    /// How long a retriable operation keeps trying before it gives up.
    pub retry_deadline: Duration,
    /// Largest message the client decodes.
    pub message_size_max_bytes: usize,
    /// A connection that has received nothing for this long is sent an HTTP/2 PING...
    pub keepalive_interval: Duration,
    /// ...and closed when the PING is not answered within this, so the next request reconnects
    /// instead of waiting on a connection that died silently (a broker that lost power).
    pub keepalive_timeout: Duration,
    /// TLS to the brokers (load it with [`eddy_tls::ClientTls::load`]): the CA their
    /// certificates chain to and, for brokers that authenticate clients by certificate, this
    /// client's own. None (the default): plaintext.
    pub tls: Option<eddy_tls::ClientTls>,
    /// A user name and password, or an API key, for brokers with authentication on. None (the
    /// default): none are sent (a client certificate in `tls` may still authenticate).
    pub credentials: Option<Credentials>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(2),
            retry_backoff_initial: Duration::from_millis(50),
            retry_backoff_max: Duration::from_secs(1),
            retry_deadline: Duration::from_secs(60),
            message_size_max_bytes: 128 << 20,
            keepalive_interval: Duration::from_secs(5),
            keepalive_timeout: Duration::from_secs(5),
            tls: None,
            credentials: None,
        }
    }
}

/// Makes the channel to a broker address. [`Client::new`] connects over TCP; the deterministic
/// simulation passes one that connects over its simulated network.
pub trait Connect: Send + Sync + 'static {
    fn connect(&self, address: &str, config: &ClientConfig) -> ClientResult<Channel>;
}

/// TCP, with TLS when the configuration has it ([`ClientConfig::tls`]), connecting lazily.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnect;

impl Connect for TcpConnect {
    fn connect(&self, address: &str, config: &ClientConfig) -> ClientResult<Channel> {
        let endpoint = endpoint(address, config)?;
        Ok(match &config.tls {
            Some(tls) => tls.channel(endpoint),
            None => endpoint.connect_lazy(),
        })
    }
}

/// A cluster connection. Share it (it is `Sync`); every method retries what is retriable.
pub struct Client {
    bootstrap: Vec<String>,
    config: ClientConfig,
    // Shared by the clients `with_scoped_credentials` makes: one set of connections and caches.
    connector: Arc<dyn Connect>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// (topic, partition) -> leader address, learned from DescribeTopic and NOT_LEADER hints.
    leaders: Arc<Mutex<HashMap<(String, u32), String>>>,
    /// topic -> partition count.
    partition_counts: Arc<Mutex<HashMap<String, u32>>>,
    pub(crate) coordinators: Arc<crate::groups::Coordinators>,
    authorize: Authorize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("bootstrap", &self.bootstrap).finish_non_exhaustive()
    }
}

/// Exponential backoff with a deadline.
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    deadline: tokio::time::Instant,
}

/// How a request retried on a partition's leader failed.
struct Failed {
    /// The last attempt's error.
    error: ClientError,
    /// Whether an attempt before the last one reached a broker and failed without a definite
    /// answer (a timeout, a lost connection, OUTCOME_UNKNOWN): it may have taken effect.
    earlier_unknown: bool,
}

impl Backoff {
    pub(crate) fn new(config: &ClientConfig) -> Self {
        Self {
            next: config.retry_backoff_initial,
            max: config.retry_backoff_max,
            deadline: tokio::time::Instant::now() + config.retry_deadline,
        }
    }

    /// Sleeps before the next attempt, between half the current backoff and all of it (the
    /// jitter spreads clients that failed together); false when the deadline has passed.
    pub(crate) async fn wait(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if now >= self.deadline {
            return false;
        }
        let jittered = self.next / 2 + self.next.mul_f64(rand::random::<f64>() / 2.0);
        let sleep = jittered.min(self.deadline - now);
        tokio::time::sleep(sleep).await;
        self.next = (self.next * 2).min(self.max);
        true
    }
}

impl Client {
    /// A client for the cluster reachable through `brokers` (`host:port` each). Connections are
    /// made on first use.
    pub fn new(brokers: Vec<String>, config: ClientConfig) -> ClientResult<Client> {
        Self::with_connector(brokers, config, TcpConnect)
    }

    /// A client whose connections are made by `connector`.
    pub fn with_connector(brokers: Vec<String>, config: ClientConfig, connector: impl Connect) -> ClientResult<Client> {
        if brokers.is_empty() {
            return Err(ClientError::Invalid("at least one broker address is needed".into()));
        }
        for broker in &brokers {
            endpoint(broker, &config)?;
        }
        let authorize = Authorize::new(config.credentials.as_ref());
        Ok(Client {
            authorize,
            bootstrap: brokers,
            config,
            connector: Arc::new(connector),
            channels: Default::default(),
            leaders: Default::default(),
            partition_counts: Default::default(),
            coordinators: Default::default(),
        })
    }

    /// This client as the credentials the current task runs with (see
    /// [`crate::with_authorization`]), for work that outlives the task: a stream a gateway
    /// serves its caller, a consumer it keeps for them. It shares this client's connections and
    /// caches. Outside such a task it is this client.
    pub fn with_scoped_credentials(&self) -> Client {
        Client {
            bootstrap: self.bootstrap.clone(),
            config: self.config.clone(),
            connector: self.connector.clone(),
            channels: self.channels.clone(),
            leaders: self.leaders.clone(),
            partition_counts: self.partition_counts.clone(),
            coordinators: self.coordinators.clone(),
            authorize: self.authorize.scoped(),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The channel to a broker, made on first use.
    pub(crate) fn channel(&self, address: &str) -> ClientResult<Channel> {
        let mut channels = self.channels.lock().expect("channels lock");
        match channels.get(address) {
            Some(c) => Ok(c.clone()),
            None => {
                let c = self.connector.connect(address, &self.config)?;
                channels.insert(address.to_string(), c.clone());
                Ok(c)
            }
        }
    }

    /// The channel to a broker with this client's credentials added to each request.
    pub(crate) fn transport(&self, address: &str) -> ClientResult<Transport> {
        Ok(tonic::service::interceptor::InterceptedService::new(self.channel(address)?, self.authorize.clone()))
    }

    pub(crate) fn stub(&self, address: &str) -> ClientResult<EddyClient<Transport>> {
        Ok(EddyClient::new(self.transport(address)?)
            .max_decoding_message_size(self.config.message_size_max_bytes)
            .max_encoding_message_size(self.config.message_size_max_bytes))
    }

    /// Runs `call` against the bootstrap brokers in turn until one answers (or a non-retriable
    /// error comes back), retrying with backoff.
    pub(crate) async fn any_broker<T, F, Fut>(&self, mut call: F) -> ClientResult<T>
    where
        F: FnMut(EddyClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.any_address(|address| {
            let call = self.stub(address).map(&mut call);
            async move { call?.await.map_err(|s| ClientError::from_status(&s)).map(tonic::Response::into_inner) }
        })
        .await
    }

    /// Runs `call` with each bootstrap address in turn until one answers (or a non-retriable
    /// error comes back), retrying with backoff.
    pub(crate) async fn any_address<T, F, Fut>(&self, mut call: F) -> ClientResult<T>
    where
        F: FnMut(&str) -> Fut,
        Fut: std::future::Future<Output = ClientResult<T>>,
    {
        let mut backoff = Backoff::new(&self.config);
        let mut attempt = 0usize;
        loop {
            let address = &self.bootstrap[attempt % self.bootstrap.len()];
            attempt += 1;
            let result = match tokio::time::timeout(self.config.request_timeout, call(address)).await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) => error,
                Err(_) => ClientError::Timeout(format!("no answer from {address}")),
            };
            if !result.is_retriable() {
                return Err(result);
            }
            // Try every bootstrap broker once before sleeping.
            if attempt.is_multiple_of(self.bootstrap.len()) && !backoff.wait().await {
                return Err(result);
            }
        }
    }

    /// Creates a topic with the default configs.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
    ) -> ClientResult<v1::TopicDescription> {
        self.create_topic_with_configs(name, partitions, replication_factor, BTreeMap::new()).await
    }

    /// Creates a topic with configs (`retention.ms`, `retention.bytes`, `max.message.bytes`,
    /// `min.insync.replicas`; docs/api.md lists them). An unknown key or a bad value is refused
    /// with INVALID_CONFIG naming it.
    pub async fn create_topic_with_configs(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> ClientResult<v1::TopicDescription> {
        let request = v1::CreateTopicRequest {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: configs.into_iter().collect(),
        };
        let response = self
            .any_broker(|mut c| {
                let r = request.clone();
                async move { c.create_topic(r).await }
            })
            .await?;
        response.topic.ok_or_else(|| ClientError::Invalid("broker returned no topic".into()))
    }

    /// Sets configs (`set`), returns others to their defaults (`delete`), and raises the
    /// partition count (`partitions`, never lower).
    pub async fn alter_topic(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        partitions: Option<u32>,
    ) -> ClientResult<v1::TopicDescription> {
        let request = v1::AlterTopicRequest {
            name: name.to_string(),
            set_configs: set.into_iter().collect(),
            delete_configs: delete,
            partitions,
        };
        let response = self
            .any_broker(|mut c| {
                let r = request.clone();
                async move { c.alter_topic(r).await }
            })
            .await?;
        // Partition counts may have changed: the next use describes the topic afresh.
        self.partition_counts.lock().expect("lock").remove(name);
        response.topic.ok_or_else(|| ClientError::Invalid("broker returned no topic".into()))
    }

    pub async fn delete_topic(&self, name: &str) -> ClientResult<()> {
        let request = v1::DeleteTopicRequest { name: name.to_string() };
        self.any_broker(|mut c| {
            let r = request.clone();
            async move { c.delete_topic(r).await }
        })
        .await?;
        self.partition_counts.lock().expect("lock").remove(name);
        Ok(())
    }

    pub async fn list_topics(&self) -> ClientResult<Vec<v1::TopicSummary>> {
        Ok(self.any_broker(|mut c| async move { c.list_topics(v1::ListTopicsRequest {}).await }).await?.topics)
    }

    /// Describes a topic (partitions, leaders, offsets) and refreshes the leader cache from it.
    pub async fn describe_topic(&self, name: &str) -> ClientResult<v1::TopicDescription> {
        let request = v1::DescribeTopicRequest { name: name.to_string() };
        let response = self
            .any_broker(|mut c| {
                let r = request.clone();
                async move { c.describe_topic(r).await }
            })
            .await?;
        let topic = response.topic.ok_or_else(|| ClientError::Invalid("broker returned no topic".into()))?;
        self.learn(&topic);
        Ok(topic)
    }

    /// Gets a producer id and epoch (InitProducer): a fresh id when `name` is `None` and there is
    /// no `current`; for a name, its id at the next epoch, fencing older instances; with
    /// `current` (the id and epoch held), the next epoch of that id.
    pub async fn init_producer(
        &self,
        name: Option<&str>,
        current: Option<(u64, u32)>,
    ) -> ClientResult<v1::InitProducerResponse> {
        let request = v1::InitProducerRequest {
            producer_name: name.unwrap_or_default().to_string(),
            current: current.map(|(producer_id, epoch)| v1::ProducerEpoch { producer_id, epoch }),
        };
        self.any_broker(|mut c| {
            let r = request.clone();
            async move { c.init_producer(r).await }
        })
        .await
    }

    pub async fn describe_cluster(&self) -> ClientResult<v1::DescribeClusterResponse> {
        self.any_broker(|mut c| async move { c.describe_cluster(v1::DescribeClusterRequest {}).await }).await
    }

    /// Plans the moves that even out replicas per broker and, unless `dry_run`, queues them (the
    /// controller runs a few at a time); with `status_only`, only reports the moves under way and
    /// queued.
    pub async fn rebalance_cluster(
        &self,
        dry_run: bool,
        status_only: bool,
    ) -> ClientResult<v1::RebalanceClusterResponse> {
        let request = v1::RebalanceClusterRequest { dry_run, status_only };
        self.any_broker(|mut c| async move { c.rebalance_cluster(request).await }).await
    }

    /// Drains broker `broker_id`: its replicas move to other brokers, and it gets no new ones.
    pub async fn decommission_broker(&self, broker_id: u64) -> ClientResult<()> {
        let request = v1::DecommissionBrokerRequest { broker_id };
        self.any_broker(|mut c| async move { c.decommission_broker(request).await }).await?;
        Ok(())
    }

    fn learn(&self, topic: &v1::TopicDescription) {
        self.partition_counts.lock().expect("lock").insert(topic.name.clone(), topic.partitions.len() as u32);
        let mut leaders = self.leaders.lock().expect("lock");
        for p in &topic.partitions {
            let key = (topic.name.clone(), p.partition);
            if p.leader_address.is_empty() {
                leaders.remove(&key);
            } else {
                leaders.insert(key, p.leader_address.clone());
            }
        }
    }

    /// Number of partitions of a topic (cached).
    pub async fn partition_count(&self, topic: &str) -> ClientResult<u32> {
        if let Some(n) = self.partition_counts.lock().expect("lock").get(topic) {
            return Ok(*n);
        }
        Ok(self.describe_topic(topic).await?.partitions.len() as u32)
    }

    /// Whether this client has described `topic` (and not deleted it) since it started.
    fn has_seen(&self, topic: &str) -> bool {
        self.partition_counts.lock().expect("lock").contains_key(topic)
    }

    pub(crate) async fn leader_of(&self, topic: &str, partition: u32) -> ClientResult<Option<String>> {
        let key = (topic.to_string(), partition);
        if let Some(address) = self.leaders.lock().expect("lock").get(&key) {
            return Ok(Some(address.clone()));
        }
        let described = self.describe_topic(topic).await?;
        if partition as usize >= described.partitions.len() {
            return Err(ClientError::answer(
                Reason::UnknownPartition,
                format!("topic {topic:?} has no partition {partition} (it has {})", described.partitions.len()),
            ));
        }
        Ok(self.leaders.lock().expect("lock").get(&key).cloned())
    }

    /// What a failed call to `address` for `topic`/`partition` says about the leader: the one a
    /// NOT_LEADER answer names, or none known any more.
    pub(crate) fn learn_leader(&self, topic: &str, partition: u32, address: &str, error: &ClientError) {
        let key = (topic.to_string(), partition);
        let mut leaders = self.leaders.lock().expect("lock");
        match error.leader_address() {
            Some(hint) if hint != address => {
                leaders.insert(key, hint.to_string());
            }
            _ => {
                leaders.remove(&key);
            }
        }
    }

    /// Runs `call` against the leader of `topic`/`partition`, following NOT_LEADER hints and
    /// retrying retriable errors with backoff until the retry deadline.
    pub(crate) async fn on_leader<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        timeout: Duration,
        call: F,
    ) -> ClientResult<T>
    where
        F: FnMut(EddyClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.on_leader_attempts(topic, partition, timeout, call).await.map_err(|failed| failed.error)
    }

    /// [`Self::on_leader`], telling also whether an attempt before the last one may have taken
    /// effect: a request that changes something must not be reported by its last attempt alone.
    async fn on_leader_attempts<T, F, Fut>(
        &self,
        topic: &str,
        partition: u32,
        timeout: Duration,
        mut call: F,
    ) -> Result<T, Failed>
    where
        F: FnMut(EddyClient<Transport>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut backoff = Backoff::new(&self.config);
        let key = (topic.to_string(), partition);
        let mut earlier_unknown = false;
        loop {
            let failed = move |error| Failed { error, earlier_unknown };
            let (error, sent) = match self.leader_of(topic, partition).await {
                Ok(Some(address)) => {
                    let stub = self.stub(&address).map_err(failed)?;
                    match tokio::time::timeout(timeout, call(stub)).await {
                        Ok(Ok(response)) => return Ok(response.into_inner()),
                        Ok(Err(status)) => {
                            let error = ClientError::from_status(&status);
                            self.learn_leader(topic, partition, &address, &error);
                            (error, true)
                        }
                        Err(_) => {
                            self.leaders.lock().expect("lock").remove(&key);
                            (ClientError::Timeout(format!("no answer from {address} for {topic}/{partition}")), true)
                        }
                    }
                }
                Ok(None) => {
                    (ClientError::answer(Reason::NotLeader, format!("{topic}/{partition} has no leader yet")), false)
                }
                Err(e) => (e, false),
            };
            // A topic this client has seen is not given up on at the first UNKNOWN_TOPIC: the
            // broker that said so may have answered from metadata that was behind (a broker that
            // just restarted, or a controller that just failed over), so the client refreshes
            // its metadata and retries until its deadline. A topic never seen fails at once.
            let seen_before = error.is_unknown_topic() && self.has_seen(topic);
            if !error.is_retriable() && !seen_before {
                return Err(failed(error));
            }
            if seen_before {
                self.leaders.lock().expect("lock").retain(|(t, _), _| t != topic);
            }
            tracing::debug!(topic, partition, error = %error, "retrying on the partition leader");
            if !backoff.wait().await {
                if error.is_unknown_topic() {
                    // Given up: the next request describes the topic afresh.
                    self.partition_counts.lock().expect("lock").remove(topic);
                }
                return Err(failed(error));
            }
            earlier_unknown |= sent && !error.is_definite();
        }
    }

    /// Sends one batch to a partition's leader. Retries on leader changes: pair it with a
    /// producer identity to make those retries safe (see [`crate::Producer`]).
    ///
    /// Traced as a `send {topic}` span (kind PRODUCER) in the caller's current OpenTelemetry
    /// context; every record without a `traceparent` header of its own is given the span's, and
    /// the request carries it to the broker (see [`eddy_telemetry::messaging`]). With no tracer
    /// provider and no current span, nothing is added.
    ///
    /// The error is that of the last attempt, except when an earlier attempt's outcome is
    /// unknown (its answer was lost) and the last one was refused only for where it went
    /// (NOT_LEADER, LEADER_NOT_AVAILABLE, SHUTTING_DOWN until the retry deadline): the batch may
    /// have been appended then, so the error is OUTCOME_UNKNOWN, never a promise that nothing
    /// was written. A refusal that answers for the batch itself stands: OUT_OF_ORDER_SEQUENCE
    /// or UNKNOWN_PRODUCER_ID (an appended batch would be in the producer's window),
    /// PRODUCER_FENCED, or a refusal of its contents.
    pub async fn produce(&self, mut request: v1::ProduceRequest) -> ClientResult<v1::ProduceResponse> {
        let send = messaging::send(
            &request.topic,
            request.partition,
            request.records.len(),
            &opentelemetry::Context::current(),
            Vec::new(),
        );
        carry_trace(send.context(), &mut request.records);
        let result = self.produce_in(request, send.context()).await;
        send.end_with(&result, reason_name);
        result
    }

    /// [`Self::produce`] of a batch whose span the caller made (and whose records carry it):
    /// `trace` goes to the broker in each attempt's metadata.
    pub(crate) async fn produce_in(
        &self,
        request: v1::ProduceRequest,
        trace: &opentelemetry::Context,
    ) -> ClientResult<v1::ProduceResponse> {
        let topic = request.topic.clone();
        let timeout = self.config.request_timeout;
        let attempts = self.on_leader_attempts(&topic, request.partition, timeout, |mut c| {
            let mut r = tonic::Request::new(request.clone());
            propagation::inject_metadata(trace, r.metadata_mut());
            async move { c.produce(r).await }
        });
        attempts.await.map_err(|Failed { error, earlier_unknown }| {
            if earlier_unknown && error.is_definite() && error.is_retriable() {
                ClientError::answer(
                    Reason::OutcomeUnknown,
                    format!(
                        "an attempt's answer was lost and the retries ended with: {error}; the batch may or may not \
                         have been appended"
                    ),
                )
            } else {
                error
            }
        })
    }

    /// Reads from a partition's leader.
    pub async fn fetch(&self, request: v1::FetchRequest) -> ClientResult<v1::FetchResponse> {
        let topic = request.topic.clone();
        let timeout = self.config.request_timeout + Duration::from_millis(u64::from(request.max_wait_ms));
        self.on_leader(&topic, request.partition, timeout, |mut c| {
            let r = request.clone();
            async move { c.fetch(r).await }
        })
        .await
    }

    /// Reads from one particular broker, without following leaders: with
    /// `read_from_follower`, a follower answers from its own replica.
    pub async fn fetch_from_broker(&self, address: &str, request: v1::FetchRequest) -> ClientResult<v1::FetchResponse> {
        let timeout = self.config.request_timeout + Duration::from_millis(u64::from(request.max_wait_ms));
        match tokio::time::timeout(timeout, self.stub(address)?.fetch(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(ClientError::from_status(&status)),
            Err(_) => Err(ClientError::Timeout(format!("no answer from {address}"))),
        }
    }

    /// Looks up an offset on a partition's leader.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: v1::OffsetSpec,
        timestamp_ms: i64,
    ) -> ClientResult<v1::ListOffsetsResponse> {
        let request = v1::ListOffsetsRequest { topic: topic.to_string(), partition, spec: spec as i32, timestamp_ms };
        self.on_leader(topic, partition, self.config.request_timeout, |mut c| {
            let r = request.clone();
            async move { c.list_offsets(r).await }
        })
        .await
    }

    /// Deletes a partition's records below `before_offset` (all of them up to the high
    /// watermark when `None`), as Kafka's DeleteRecords; see the RPC for the batch rounding.
    /// Repeating it is harmless: a log that already starts there deletes nothing.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        before_offset: Option<u64>,
    ) -> ClientResult<v1::DeleteRecordsResponse> {
        let request = v1::DeleteRecordsRequest { topic: topic.to_string(), partition, before_offset };
        self.on_leader(topic, partition, self.config.request_timeout, |mut c| {
            let r = request.clone();
            async move { c.delete_records(r).await }
        })
        .await
    }
}

/// Gives every record without trace context of its own the context's `traceparent` (and
/// `tracestate`): nothing when the context has no valid span.
pub(crate) fn carry_trace(cx: &opentelemetry::Context, records: &mut [v1::Record]) {
    let mut carried = Vec::new();
    propagation::inject(cx, |key, value| carried.push(v1::Header { key: key.to_string(), value: value.into() }));
    if carried.is_empty() {
        return;
    }
    for record in records.iter_mut().filter(|r| !r.headers.iter().any(|h| propagation::is_trace_header(&h.key))) {
        record.headers.extend(carried.iter().cloned());
    }
}

/// The reason code a failed span is marked with (`error.type`).
pub(crate) fn reason_name(error: &ClientError) -> String {
    match error.code() {
        Some(reason) => reason.as_str().to_string(),
        None => "CLIENT_ERROR".to_string(),
    }
}

/// The endpoint of every connection to a broker: `address` is `host:port` or a URL, configured
/// with `config`'s timeouts and keep-alive. [`TcpConnect`] connects it over TCP; another
/// [`Connect`] (the simulation's) may connect it over its own transport.
pub fn endpoint(address: &str, config: &ClientConfig) -> ClientResult<Endpoint> {
    let uri = if address.starts_with("http://") || address.starts_with("https://") {
        address.to_string()
    } else {
        format!("http://{address}")
    };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| ClientError::Invalid(format!("invalid broker address {address:?}: {e}")))?
        .connect_timeout(config.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(config.keepalive_interval)
        .keep_alive_timeout(config.keepalive_timeout)
        .keep_alive_while_idle(true))
}
