//! The simulated clients: they drive the cluster through the real client library and record
//! every operation and its outcome in the [`History`].
//!
//! - `setup` creates the topic.
//! - `producer-N` are idempotent producers (`acks=all`): outcomes are `ok` with an offset, or
//!   `unknown` when they gave up.
//! - `oneshot` sends each value once, without idempotence or retries: its outcomes are `ok`,
//!   `fail` (the broker said nothing was written) or `unknown`.
//! - `consumer-P` follows partition P from offset 0 with long-polls, recording every poll.
//! - `final-reader` waits for the end of healing, then reads every partition in full from its
//!   leader and from each replica.
//! - `retained-producer` sends to [`RETAINED_TOPIC`], a topic with a small `retention.bytes`,
//!   so retention trims it many times under the faults; `retained-final` reads it after
//!   healing from its log start, from the leader and from every replica.
//! - `operator` asks for a rebalance a third of the way through the faults and, in clusters of
//!   four or more, drains the last broker halfway (`eddy broker decommission`).
//! - `member-N` are consumer-group members (the real `Consumer`, subscribed to the topic in
//!   [`GROUP`]): one crashes halfway and one joins halfway; they record deliveries with their
//!   member epochs and every commit. `group-final` then reads the group's committed offsets.
//! - `registrar-N` register schemas in the schema registry (through the controller RPC the
//!   brokers forward its HTTP API over): an evolving record under their own subject and a shared
//!   one, and now and then an incompatible one; `registry-final` reads the registry after
//!   healing (see `checker/schemas.rs`).
//! - `securer-0` adds and removes ACLs, sets and removes a quota, and sets and deletes a user
//!   through the public Security API while the faults run; `security-final` reads what every broker enforces after healing
//!   (see `checker/security.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use eddy_client::{
    Client, ClientConfig, Consumer, ConsumerConfig, OffsetReset, Producer, ProducerConfig, ProducerRecord, Reason,
    RebalanceListener, TopicPartition, v1,
};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::history::{Event, History, ReadRecord};
use crate::net::{INTERNAL_PORT, PORT, SimConnector};

/// The topic every workload uses.
pub const TOPIC: &str = "events";

/// A one-partition topic under retention (see `checker/retention.rs`).
pub const RETAINED_TOPIC: &str = "retained";
/// Its `retention.bytes`: some dozens of the retained producer's records.
pub const RETAINED_BYTES: u64 = 2_000;

/// When each phase starts, in simulated milliseconds since the start of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub nodes: u64,
    pub partitions: u32,
    pub producers: u32,
    /// Producers stop sending new values here (the faults end here too).
    pub send_until_ms: u64,
    /// Consumers stop and the final read starts here (after healing).
    pub final_read_ms: u64,
    /// How long the final read may take: beyond it, the partition counts as unavailable.
    pub final_read_budget_ms: u64,
    /// Gap between two sends of one producer.
    pub send_interval: Duration,
    /// How long a client waits for one answer.
    pub request_timeout: Duration,
    /// Whether clients' channels have HTTP/2 keep-alive (off only for `--bug no-keepalive`).
    pub keepalive: bool,
}

impl Plan {
    fn brokers(&self) -> Vec<String> {
        (1..=self.nodes).map(|n| format!("n{n}:{PORT}")).collect()
    }
}

type SimResult = Result<(), Box<dyn std::error::Error>>;

fn now_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |d| d.as_millis() as u64)
}

fn client(plan: &Plan, retry_deadline: Duration) -> Result<Client, eddy_client::ClientError> {
    let config = ClientConfig {
        request_timeout: plan.request_timeout,
        connect_timeout: Duration::from_millis(500),
        retry_backoff_initial: Duration::from_millis(50),
        retry_backoff_max: Duration::from_millis(500),
        retry_deadline,
        ..ClientConfig::default()
    };
    Client::with_connector(plan.brokers(), config, SimConnector { keepalive: plan.keepalive })
}

async fn until_ready(ready: &AtomicBool) {
    while !ready.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates the topic (replicated on every node), then opens the gate for the others.
pub async fn setup(plan: Plan, history: History, ready: Arc<AtomicBool>) -> SimResult {
    let client = client(&plan, Duration::from_secs(5))?;
    loop {
        match client.create_topic(TOPIC, plan.partitions, plan.nodes.min(3) as u32).await {
            Ok(_) => break,
            Err(e) if e.code() == Some(Reason::TopicAlreadyExists) => break,
            Err(e) => {
                history.record(Event::Note { text: format!("create topic: {e}") });
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    let configs: BTreeMap<String, String> = [("retention.bytes".to_string(), RETAINED_BYTES.to_string())].into();
    loop {
        match client.create_topic_with_configs(RETAINED_TOPIC, 1, plan.nodes.min(3) as u32, configs.clone()).await {
            Ok(_) => break,
            Err(e) if e.code() == Some(Reason::TopicAlreadyExists) => break,
            Err(e) => {
                history.record(Event::Note { text: format!("create retained topic: {e}") });
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    history.record(Event::Note { text: "topic created".into() });
    ready.store(true, Ordering::SeqCst);
    Ok(())
}

/// Sends values `r-N` to the retained topic one at a time (acks=all, once each), recording the
/// acknowledged ones.
pub async fn retained_producer(plan: Plan, history: History, ready: Arc<AtomicBool>) -> SimResult {
    until_ready(&ready).await;
    let client = client(&plan, Duration::ZERO)?;
    let mut n = 0u64;
    while now_ms() < plan.send_until_ms {
        let value = format!("r-{n}");
        n += 1;
        let request = v1::ProduceRequest {
            topic: RETAINED_TOPIC.into(),
            partition: 0,
            records: vec![v1::Record { value: Bytes::from(value.clone()), ..Default::default() }],
            acks: v1::Acks::All as i32,
            producer: None,
            timeout_ms: 0,
        };
        if let Ok(response) = client.produce(request).await {
            history.record(Event::RetainedAck { value, offset: response.base_offset });
        }
        tokio::time::sleep(plan.send_interval).await;
    }
    Ok(())
}

/// After healing: the retained topic from its log start, from the leader, then from every
/// replica.
pub async fn retained_final(plan: Plan, history: History) -> SimResult {
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(plan.final_read_ms - now_ms())).await;
    let client = client(&plan, Duration::from_secs(2))?;
    let give_up_at = plan.final_read_ms + plan.final_read_budget_ms;
    let (log_start, records) = loop {
        let read = async {
            let answer = client.list_offsets(RETAINED_TOPIC, 0, v1::OffsetSpec::Earliest, 0).await?;
            let (records, _) = read_all(&client, RETAINED_TOPIC, 0, answer.log_start_offset, None).await?;
            Ok::<_, eddy_client::ClientError>((answer.log_start_offset, records))
        };
        match read.await {
            Ok(read) => break read,
            Err(e) if now_ms() < give_up_at => {
                tracing::debug!(error = %e, "retained final read retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                history.record(Event::RetainedFinalFailed { reason: e.to_string() });
                return Ok(());
            }
        }
    };
    history.record(Event::RetainedFinal { log_start, records });
    tokio::time::sleep(Duration::from_secs(2)).await;
    for node in 1..=plan.nodes {
        match read_all(&client, RETAINED_TOPIC, 0, log_start, Some(node)).await {
            Ok((records, _)) => history.record(Event::RetainedReplica { node, records, error: None }),
            // Only a replica that no longer holds `log_start` answers so: one whose log start
            // went past the leader's.
            Err(e) if e.code() == Some(Reason::OffsetOutOfRange) => {
                history.record(Event::RetainedReplica { node, records: Vec::new(), error: Some(e.to_string()) })
            }
            Err(_) => {}
        }
    }
    Ok(())
}

/// An idempotent producer: unique values, round-robin over partitions, many in flight.
pub async fn producer(plan: Plan, index: u32, history: History, ready: Arc<AtomicBool>) -> SimResult {
    until_ready(&ready).await;
    let process = format!("producer-{index}");
    let client = Arc::new(client(&plan, Duration::from_secs(10))?);
    // Named, so the controller's producer epochs are exercised under the faults too.
    let config = ProducerConfig { producer_name: Some(format!("sim-producer-{index}")), ..ProducerConfig::default() };
    let producer = loop {
        match Producer::new(client.clone(), TOPIC, config.clone()).await {
            Ok(producer) => break producer,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let mut in_flight = FuturesUnordered::new();
    let mut n = 0u64;
    while now_ms() < plan.send_until_ms {
        let value = format!("p{index}-{n}");
        let partition = (n % u64::from(plan.partitions)) as u32;
        n += 1;
        history.record(Event::SendInvoke { process: process.clone(), value: value.clone(), partition });
        let record =
            ProducerRecord { value: Bytes::from(value.clone()), partition: Some(partition), ..Default::default() };
        match producer.send(record).await {
            Ok(delivery) => in_flight.push(async move { (value, partition, delivery.await) }),
            Err(e) => history.record(Event::SendFail { value, partition, reason: e.to_string() }),
        }
        // Record what completed meanwhile, without waiting.
        while let Some(Some(done)) = futures::FutureExt::now_or_never(in_flight.next()) {
            record_delivery(&history, done);
        }
        tokio::time::sleep(plan.send_interval).await;
    }
    while let Some(done) = in_flight.next().await {
        record_delivery(&history, done);
    }
    producer.close().await;
    Ok(())
}

type DeliveryOutcome = (
    String,
    u32,
    Result<eddy_client::ClientResult<eddy_client::RecordMetadata>, tokio::sync::oneshot::error::RecvError>,
);

fn record_delivery(history: &History, (value, partition, outcome): DeliveryOutcome) {
    history.record(match outcome {
        Ok(Ok(meta)) => Event::SendOk { value, partition: meta.partition, offset: meta.offset },
        // The producer retried the batch: an earlier attempt may have been written.
        Ok(Err(e)) => Event::SendUnknown { value, partition, reason: e.to_string() },
        Err(_) => Event::SendUnknown { value, partition, reason: "the producer dropped the record".into() },
    });
}

/// Sends each value once with ACKS_LEADER (no idempotence, no retries): the answer names the
/// offset the leader predicted, which the checker holds against the final log.
pub async fn leader_acks(plan: Plan, history: History, ready: Arc<AtomicBool>) -> SimResult {
    send_once(plan, history, ready, v1::Acks::Leader).await
}

/// Sends each value exactly once (no idempotence, no retries), so a definite error is a definite
/// failure: such a value must never be read.
pub async fn oneshot(plan: Plan, history: History, ready: Arc<AtomicBool>) -> SimResult {
    send_once(plan, history, ready, v1::Acks::All).await
}

/// One value at a time, each sent once with `acks`, round-robin over the partitions.
async fn send_once(plan: Plan, history: History, ready: Arc<AtomicBool>, acks: v1::Acks) -> SimResult {
    let (process, prefix) = if acks == v1::Acks::Leader { ("leader-acks", "l") } else { ("oneshot", "o") };
    until_ready(&ready).await;
    let client = client(&plan, Duration::ZERO)?;
    let mut n = 0u64;
    while now_ms() < plan.send_until_ms {
        let value = format!("{prefix}-{n}");
        let partition = (n % u64::from(plan.partitions)) as u32;
        n += 1;
        history.record(Event::SendInvoke { process: process.into(), value: value.clone(), partition });
        let request = v1::ProduceRequest {
            topic: TOPIC.into(),
            partition,
            records: vec![v1::Record { value: Bytes::from(value.clone()), ..Default::default() }],
            acks: acks as i32,
            producer: None,
            timeout_ms: 0,
        };
        history.record(match client.produce(request).await {
            Ok(response) if acks == v1::Acks::Leader => {
                Event::SendLeaderOk { value, partition, offset: response.base_offset }
            }
            Ok(response) => Event::SendOk { value, partition, offset: response.base_offset },
            Err(e) if e.is_definite() => Event::SendFail { value, partition, reason: e.reason().to_string() },
            Err(e) => Event::SendUnknown { value, partition, reason: e.to_string() },
        });
        tokio::time::sleep(plan.send_interval * 4).await;
    }
    Ok(())
}

fn read_records(response: &v1::FetchResponse) -> Vec<ReadRecord> {
    response
        .records
        .iter()
        .map(|r| ReadRecord { offset: r.offset, value: String::from_utf8_lossy(&r.value).into_owned() })
        .collect()
}

/// Follows one partition from offset 0 with long-polls until the final read starts.
pub async fn consumer(plan: Plan, partition: u32, history: History, ready: Arc<AtomicBool>) -> SimResult {
    until_ready(&ready).await;
    let name = format!("consumer-{partition}");
    let client = client(&plan, Duration::from_secs(2))?;
    let mut position = 0u64;
    while now_ms() < plan.final_read_ms {
        let request = v1::FetchRequest {
            topic: TOPIC.into(),
            partition,
            offset: position,
            max_records: 200,
            max_wait_ms: 300,
            ..Default::default()
        };
        match client.fetch(request).await {
            Ok(response) => {
                let records = read_records(&response);
                if let Some(last) = records.last() {
                    let next = last.offset + 1;
                    history.record(Event::Poll { consumer: name.clone(), partition, position, records });
                    position = next;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    Ok(())
}

/// Reads `topic`/`partition` from offset `from` up to the high watermark, from the leader or
/// (with `from_node`) from one replica.
async fn read_all(
    client: &Client,
    topic: &str,
    partition: u32,
    from: u64,
    from_node: Option<u64>,
) -> Result<(Vec<ReadRecord>, u64), eddy_client::ClientError> {
    let mut records = Vec::new();
    let mut offset = from;
    loop {
        let request = v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_records: 1_000,
            max_wait_ms: 0,
            read_from_follower: from_node.is_some(),
            ..Default::default()
        };
        let response = match from_node {
            Some(node) => client.fetch_from_broker(&format!("n{node}:{PORT}"), request).await?,
            None => client.fetch(request).await?,
        };
        let batch = read_records(&response);
        match batch.last() {
            Some(last) => {
                offset = last.offset + 1;
                records.extend(batch);
            }
            // The end (or an empty answer below the high watermark, which the density check
            // reports).
            None => return Ok((records, response.high_watermark)),
        }
    }
}

/// After healing: every partition in full from its leader, then from every replica.
pub async fn final_reader(plan: Plan, history: History) -> SimResult {
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(plan.final_read_ms - now_ms())).await;
    history.record(Event::Note { text: "final read".into() });
    let client = client(&plan, Duration::from_secs(2))?;
    let give_up_at = plan.final_read_ms + plan.final_read_budget_ms;
    for partition in 0..plan.partitions {
        loop {
            match read_all(&client, TOPIC, partition, 0, None).await {
                Ok((records, high_watermark)) => {
                    history.record(Event::FinalRead { partition, records, high_watermark });
                    break;
                }
                Err(e) if now_ms() < give_up_at => {
                    tracing::debug!(partition, error = %e, "final read retry");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                // Nothing deletes the topic in this workload, so an answer that it does not exist
                // is the cluster failing to serve it, like any other error: the partition is
                // unavailable (liveness.rs), which says nothing of whether its records are lost.
                Err(e) => {
                    history.record(Event::FinalReadFailed { partition, reason: e.to_string() });
                    break;
                }
            }
        }
    }
    // Give followers a moment to apply what the leader committed last.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for partition in 0..plan.partitions {
        for node in 1..=plan.nodes {
            if let Ok((records, _)) = read_all(&client, TOPIC, partition, 0, Some(node)).await {
                history.record(Event::ReplicaRead { node, partition, records });
            }
        }
    }
    Ok(())
}

/// The consumer group every member joins.
pub const GROUP: &str = "sim-group";

/// When a group member runs, and how it stops.
#[derive(Debug, Clone, Copy)]
pub struct MemberLife {
    pub start_ms: u64,
    pub stop_ms: u64,
    /// Stop by crashing (the consumer is dropped: no commit, no leave; its session expires)
    /// rather than by `close` (commit and leave).
    pub crash: bool,
}

/// How often a member commits its positions.
const MEMBER_COMMIT_INTERVAL: Duration = Duration::from_millis(500);

/// A consumer-group member on the real [`Consumer`]: records every delivery with its member
/// epoch, where it started each partition, and every commit with its outcome.
pub async fn group_member(
    plan: Plan,
    index: u32,
    life: MemberLife,
    history: History,
    ready: Arc<AtomicBool>,
) -> SimResult {
    until_ready(&ready).await;
    tokio::time::sleep(Duration::from_millis(life.start_ms.saturating_sub(now_ms()))).await;
    let member = format!("member-{index}");
    let client = Arc::new(client(&plan, Duration::from_secs(5))?);
    let config = ConsumerConfig {
        group_id: Some(GROUP.into()),
        client_id: member.clone(),
        session_timeout: Duration::from_secs(3),
        rebalance_timeout: Duration::from_secs(10),
        auto_commit_interval: None,
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_records: 200,
        fetch_max_wait: Duration::from_millis(300),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::subscribe(client, &[TOPIC], config).await?;
    let assigned = Arc::new(std::sync::Mutex::new(Vec::new()));
    consumer.set_rebalance_listener(Starts(assigned.clone()));
    let mut last_commit = now_ms();
    while now_ms() < life.stop_ms {
        let records = match consumer.poll().await {
            Ok(records) => records,
            Err(e) => {
                history.record(Event::Note { text: format!("{member} poll: {e}") });
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let epoch = consumer.member_epoch().unwrap_or(0);
        let mut by_partition: BTreeMap<u32, Vec<ReadRecord>> = BTreeMap::new();
        for record in records {
            by_partition
                .entry(record.partition)
                .or_default()
                .push(ReadRecord { offset: record.offset, value: String::from_utf8_lossy(&record.value).into_owned() });
        }
        // Partitions (re)started during this poll: at its first record, or where it stands now.
        let starts: BTreeSet<TopicPartition> = assigned.lock().expect("starts lock").drain(..).collect();
        for tp in starts {
            let offset = match by_partition.get(&tp.partition).and_then(|r| r.first()) {
                Some(first) => first.offset,
                None => consumer.position(&tp).unwrap_or(0),
            };
            history.record(Event::GroupStarted { member: member.clone(), partition: tp.partition, offset });
        }
        for (partition, records) in by_partition {
            history.record(Event::GroupDelivered { member: member.clone(), epoch, partition, records });
        }
        if now_ms() >= last_commit + MEMBER_COMMIT_INTERVAL.as_millis() as u64 {
            last_commit = now_ms();
            commit_recorded(&mut consumer, &member, &history).await;
        }
    }
    if life.crash {
        history.record(Event::Note { text: format!("{member} crashes") });
        drop(consumer);
    } else {
        commit_recorded(&mut consumer, &member, &history).await;
        if let Err(e) = consumer.close().await {
            history.record(Event::Note { text: format!("{member} close: {e}") });
        }
    }
    Ok(())
}

/// Notes the partitions a member (re)starts.
struct Starts(Arc<std::sync::Mutex<Vec<TopicPartition>>>);

impl RebalanceListener for Starts {
    fn on_assigned(&mut self, partitions: &[TopicPartition]) {
        self.0.lock().expect("starts lock").extend(partitions.iter().cloned());
    }
}

/// Commits the consumer's positions and records the attempt.
async fn commit_recorded(consumer: &mut Consumer, member: &str, history: &History) {
    let offsets: Vec<(u32, u64)> =
        consumer.assignment().iter().filter_map(|tp| Some((tp.partition, consumer.position(tp)?))).collect();
    let invoked_ms = now_ms();
    let error = consumer.commit().await.err().map(|e| e.to_string());
    history.record(Event::GroupCommit { member: member.to_string(), invoked_ms, offsets, error });
}

/// After the members stopped: the group's committed offsets.
pub async fn group_final(plan: Plan, at_ms: u64, history: History) -> SimResult {
    tokio::time::sleep(Duration::from_millis(at_ms.saturating_sub(now_ms()))).await;
    let client = client(&plan, Duration::from_secs(20))?;
    match client.fetch_offsets(GROUP, Vec::new()).await {
        Ok(offsets) => {
            let offsets = offsets.into_iter().filter(|o| o.topic == TOPIC).map(|o| (o.partition, o.offset)).collect();
            history.record(Event::GroupFinal { offsets });
        }
        Err(e) => history.record(Event::Note { text: format!("group final: {e}") }),
    }
    Ok(())
}

/// Asks for a rebalance at `rebalance_ms`, and drains broker `decommission.1` at
/// `decommission.0`, retrying each until the cluster accepts it.
pub async fn operator(plan: Plan, rebalance_ms: u64, decommission: Option<(u64, u64)>, history: History) -> SimResult {
    let client = client(&plan, Duration::from_secs(2))?;
    let until = |at: u64| tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms())));
    until(rebalance_ms).await;
    while now_ms() < plan.send_until_ms {
        match client.rebalance_cluster(false, false).await {
            Ok(moves) => {
                history.record(Event::Note { text: format!("rebalance queued {} moves", moves.planned.len()) });
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let Some((at, broker)) = decommission else { return Ok(()) };
    until(at).await;
    while now_ms() < plan.send_until_ms {
        match client.decommission_broker(broker).await {
            Ok(()) => {
                history.record(Event::Note { text: format!("decommissioning n{broker}") });
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    Ok(())
}

/// The controller client a registry workload uses: the same RPC every broker forwards the
/// registry's HTTP requests over, to whichever voter leads, on the voters' inter-broker
/// listeners.
fn registry_client(plan: &Plan) -> eddy_controller::ControllerClient {
    let peers = Arc::new(eddy_raft::transport::Peers::new(Arc::new(SimConnector { keepalive: plan.keepalive })));
    let voters = (1..=plan.nodes).map(|n| format!("n{n}:{INTERNAL_PORT}")).collect();
    eddy_controller::ControllerClient::new(voters, peers, plan.request_timeout)
}

/// The `fields` first fields of the workload's evolving record: each version adds one, with a
/// default, so every version reads every earlier one (BACKWARD, the default level).
fn evolving_schema(fields: u32) -> String {
    let fields: Vec<String> =
        (0..fields).map(|f| format!(r#"{{"name":"f{f}","type":"string","default":""}}"#)).collect();
    format!(r#"{{"type":"record","name":"Event","fields":[{}]}}"#, fields.join(","))
}

/// A schema BACKWARD refuses after any evolving one: f0 changes from string to int.
const INCOMPATIBLE_SCHEMA: &str =
    r#"{"type":"record","name":"Event","doc":"Incompatible","fields":[{"name":"f0","type":"int"}]}"#;

/// Registers schemas while the faults run: an evolving record under its own subject and under
/// a subject every registrar shares (so one schema is registered concurrently by several
/// clients, and must get one id), and now and then one that breaks compatibility.
pub async fn registrar(plan: Plan, index: u32, history: History, ready: Arc<AtomicBool>) -> SimResult {
    use eddy_schema::api::{RegistryReply, RegistryRequest};
    use eddy_schema::{RegistryError, SchemaInput, SchemaType};
    until_ready(&ready).await;
    let client = registry_client(&plan);
    let process = format!("registrar-{index}");
    let own = format!("r{index}-value");
    let mut fields = 0u32;
    let mut own_acked = false;
    let mut step = 0u64;
    while now_ms() < plan.send_until_ms {
        step += 1;
        let (subject, schema) = if own_acked && step.is_multiple_of(5) {
            (own.clone(), INCOMPATIBLE_SCHEMA.to_string())
        } else if step.is_multiple_of(2) {
            ("shared-value".to_string(), evolving_schema(fields.max(1)))
        } else {
            fields += 1;
            (own.clone(), evolving_schema(fields))
        };
        let input = SchemaInput { schema_type: SchemaType::Avro, schema: schema.clone(), references: Vec::new() };
        match client.registry(RegistryRequest::Register { subject: subject.clone(), schema: input }).await {
            Ok(RegistryReply::Registered { id, version }) => {
                own_acked |= subject == own;
                history.record(Event::SchemaAck { process: process.clone(), subject, schema, id, version });
            }
            Err(eddy_controller::ControllerError::Registry(RegistryError::Incompatible { .. })) => {
                history.record(Event::SchemaRefused { process: process.clone(), subject, schema });
            }
            Ok(other) => history.record(Event::Note { text: format!("{process}: unexpected reply {other:?}") }),
            Err(e) => history.record(Event::Note { text: format!("{process}: register {subject}: {e}") }),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// After healing, reads every subject's versions and the schema of every id they list.
pub async fn registry_final(plan: Plan, history: History) -> SimResult {
    use eddy_schema::VersionSpec;
    use eddy_schema::api::{RegistryReply, RegistryRequest};
    tokio::time::sleep(Duration::from_millis(plan.final_read_ms.saturating_sub(now_ms()))).await;
    let client = registry_client(&plan);
    let deadline = plan.final_read_ms + plan.final_read_budget_ms;
    let mut last_error = String::from("never attempted");
    while now_ms() < deadline {
        let read = async {
            let RegistryReply::Subjects(names) =
                client.registry(RegistryRequest::Subjects { deleted: true, prefix: None }).await?
            else {
                return Err(eddy_controller::ControllerError::Unavailable("subjects".into()));
            };
            let mut subjects = Vec::new();
            let mut schemas = BTreeMap::new();
            for subject in names {
                let RegistryReply::Versions(numbers) =
                    client.registry(RegistryRequest::Versions { subject: subject.clone(), deleted: true }).await?
                else {
                    return Err(eddy_controller::ControllerError::Unavailable("versions".into()));
                };
                let mut versions = Vec::new();
                for number in numbers {
                    let request = RegistryRequest::Version {
                        subject: subject.clone(),
                        version: VersionSpec::Number(number),
                        deleted: true,
                    };
                    let RegistryReply::Version(view) = client.registry(request).await? else {
                        return Err(eddy_controller::ControllerError::Unavailable("version".into()));
                    };
                    schemas.insert(view.id, view.schema.schema.clone());
                    versions.push((view.version, view.id));
                }
                subjects.push((subject, versions));
            }
            Ok((subjects, schemas.into_iter().collect::<Vec<_>>()))
        };
        match read.await {
            Ok((subjects, schemas)) => {
                history.record(Event::SchemaFinal { subjects, schemas });
                return Ok(());
            }
            Err(e) => {
                last_error = e.to_string();
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    history.record(Event::SchemaFinalFailed { reason: last_error });
    Ok(())
}

/// Changes users, ACLs and quotas while the faults run, through the public Security API (a
/// broker forwards each change to the controller): it adds an ACL of its own each step, removes
/// the one added two steps before every third step, sets or removes its principal's quota every
/// fifth, and sets or deletes its user now and then.
/// Every target has this one writer, so the checker knows the order of its changes.
pub async fn securer(plan: Plan, index: u32, history: History, ready: Arc<AtomicBool>) -> SimResult {
    until_ready(&ready).await;
    let client = client(&plan, Duration::from_secs(5))?;
    let process = format!("securer-{index}");
    let user = format!("u{index}");
    let acl = |step: u64| v1::Acl {
        principal: format!("User:s{index}"),
        resource_type: v1::AclResourceType::Topic as i32,
        pattern_type: v1::AclPatternType::Literal as i32,
        name: format!("s{index}-{step}"),
        operation: v1::AclOperation::Read as i32,
        permission: v1::AclPermission::Allow as i32,
    };
    let mut step = 0u64;
    while now_ms() < plan.send_until_ms {
        step += 1;
        let added = acl(step);
        let outcome = client.create_acls(vec![added.clone()]).await;
        let target = format!("acl:{}", added.name);
        history.record(Event::SecurityChange {
            process: process.clone(),
            target,
            effect: Some("present".into()),
            acked: outcome.is_ok(),
        });
        if step.is_multiple_of(3) && step > 2 {
            let removed = acl(step - 2);
            let filter = v1::AclFilter {
                principal: Some(removed.principal.clone()),
                name: Some(removed.name.clone()),
                ..Default::default()
            };
            let outcome = client.delete_acls(filter).await;
            let target = format!("acl:{}", removed.name);
            history.record(Event::SecurityChange {
                process: process.clone(),
                target,
                effect: None,
                acked: outcome.is_ok(),
            });
        }
        if step.is_multiple_of(5) {
            // A quota of its own principal (which sends nothing, so nothing is throttled); the
            // rate tells the checker which change won, and every fourth one removes it.
            let principal = format!("User:s{index}");
            let (limits, effect) = match step.is_multiple_of(20) {
                true => (v1::QuotaLimits::default(), None),
                false => {
                    let rate = 1_000 + step;
                    (
                        v1::QuotaLimits { requests_per_second: Some(rate), ..Default::default() },
                        Some(format!("requests={rate}")),
                    )
                }
            };
            let outcome = client.set_quota(Some(&principal), limits).await;
            history.record(Event::SecurityChange {
                process: process.clone(),
                target: format!("quota:{principal}"),
                effect,
                acked: outcome.is_ok(),
            });
        }
        if step.is_multiple_of(4) {
            // The iteration count tells the checker which of the user's credentials won.
            let iterations = eddy_auth::SCRAM_ITERATIONS_MIN + step as u32;
            let salt = step.to_be_bytes().to_vec();
            let outcome = client.upsert_user_salted(&user, "password", salt, iterations).await;
            history.record(Event::SecurityChange {
                process: process.clone(),
                target: format!("user:{user}"),
                effect: Some(format!("iterations={iterations}")),
                acked: outcome.is_ok(),
            });
        } else if step.is_multiple_of(7) {
            let outcome = client.delete_user(&user).await;
            // UNKNOWN_USER is a definite answer too: there was no user to delete.
            let acked = match &outcome {
                Ok(()) => true,
                Err(e) => e.code() == Some(Reason::UnknownUser),
            };
            history.record(Event::SecurityChange {
                process: process.clone(),
                target: format!("user:{user}"),
                effect: None,
                acked,
            });
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    Ok(())
}

/// After healing, reads the users, ACLs and quotas every broker enforces (each from its own metadata),
/// until they agree or the read budget runs out; records each broker's last answer.
pub async fn security_final(plan: Plan, history: History) -> SimResult {
    tokio::time::sleep(Duration::from_millis(plan.final_read_ms.saturating_sub(now_ms()))).await;
    let deadline = plan.final_read_ms + plan.final_read_budget_ms;
    let mut answers: BTreeMap<u64, Result<Vec<(String, String)>, String>> = BTreeMap::new();
    loop {
        for node in 1..=plan.nodes {
            let address = format!("n{node}:{PORT}");
            let config = ClientConfig {
                request_timeout: plan.request_timeout,
                retry_deadline: Duration::from_secs(2),
                ..ClientConfig::default()
            };
            let client = Client::with_connector(vec![address], config, SimConnector { keepalive: plan.keepalive })?;
            let read = async {
                let acls = client.list_acls(v1::AclFilter::default()).await?;
                let users = client.list_users().await?;
                let quotas = client.list_quotas().await?;
                let mut state: Vec<(String, String)> =
                    acls.into_iter().map(|a| (format!("acl:{}", a.name), "present".to_string())).collect();
                state.extend(
                    users.into_iter().map(|u| (format!("user:{}", u.name), format!("iterations={}", u.iterations))),
                );
                state.extend(quotas.into_iter().map(|q| {
                    let rate = q.limits.unwrap_or_default().requests_per_second.unwrap_or_default();
                    (format!("quota:{}", q.principal), format!("requests={rate}"))
                }));
                state.sort();
                Ok::<_, eddy_client::ClientError>(state)
            };
            answers.insert(node, read.await.map_err(|e| e.to_string()));
        }
        let states: BTreeSet<&Vec<(String, String)>> = answers.values().filter_map(|a| a.as_ref().ok()).collect();
        let all_read = answers.values().all(Result::is_ok);
        if (all_read && states.len() == 1) || now_ms() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for (node, answer) in answers {
        match answer {
            Ok(state) => history.record(Event::SecurityFinal { node, state }),
            Err(reason) => history.record(Event::SecurityFinalFailed { node, reason }),
        }
    }
    Ok(())
}
