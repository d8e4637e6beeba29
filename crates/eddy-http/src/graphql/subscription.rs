//! The `records` subscription: a topic's records pushed as they commit, read through the
//! broker's Subscribe streams (or as a member of a consumer group), with a bounded buffer per
//! subscriber.
//!
//! Records are read from the cluster only as fast as the subscriber takes them: up to
//! [`BUFFER_RECORDS`] wait for it, and the broker's Subscribe stream waits while the buffer is
//! full. A subscriber that keeps reading, however slowly (catching up on a backlog, say), is
//! never cut off. One that takes nothing for [`STALL_MAX`] while its buffer is full is not
//! allowed to hold the buffer and the broker's stream any longer: its subscription ends, after
//! the records already buffered, with a `SLOW_SUBSCRIBER` error whose `resume` extension lists,
//! per partition, the next offset to read; subscribing again with `offsets: resume` continues
//! exactly there. A group subscription resumes from the group's commits instead.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::{Context, ErrorExtensions, Subscription};
use eddy_client::{Consumer, ConsumerConfig, OffsetReset, StartAt, TopicPartition, v1};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::types::{Long, PartitionOffset, Record, RecordFilter, Start};
use super::{Gateway, GqlResult, error_of, invalid};

/// Records buffered for one subscriber at most.
pub const BUFFER_RECORDS: usize = 1_000;

/// How long a subscriber may take nothing from a full buffer before its subscription ends.
pub const STALL_MAX: Duration = Duration::from_secs(15);

/// How often a group subscription commits what it pushed.
const GROUP_COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The error code of a subscription ended because its subscriber stopped taking records.
pub const SLOW_SUBSCRIBER: &str = "SLOW_SUBSCRIBER";

type Item = GqlResult<Record>;

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// The records of `topic`, pushed as they commit, in offset order per partition.
    ///
    /// Without `group`, every partition (or only `partition`) is read from `from` (LATEST by
    /// default: the records committed from now on), or from the offsets in `offsets` for the
    /// partitions it names. With `group`, the subscriber is a member of that consumer group:
    /// the group spreads the topic's partitions over its members, each partition starts after
    /// the group's last commit (or at `from` when it has none), and the records pushed are
    /// committed every second: a record pushed just before the connection dropped is not
    /// pushed again to the group.
    ///
    /// `filter` pushes only the records that match it. Records are read as fast as the
    /// subscriber takes them; one that takes nothing for 15 s while 1,000 records wait gets a
    /// `SLOW_SUBSCRIBER` error whose `resume` extension holds the offsets to subscribe again
    /// from. Any other error carries the cluster's reason code in `code`.
    #[allow(clippy::too_many_arguments)]
    async fn records(
        &self,
        ctx: &Context<'_>,
        topic: String,
        from: Option<Start>,
        partition: Option<u32>,
        offsets: Option<Vec<PartitionOffset>>,
        group: Option<String>,
        filter: Option<RecordFilter>,
    ) -> BoxStream<'static, Item> {
        // An error before the first record (an unknown topic, bad arguments) is the stream's
        // only item.
        // The records are read by tasks of their own: they keep the caller's credentials.
        let gateway = ctx.data_unchecked::<Gateway>().scoped();
        match open(gateway, topic, from.unwrap_or_default(), partition, offsets, group, filter).await {
            Ok(stream) => stream,
            Err(error) => futures::stream::once(async move { Err(error) }).boxed(),
        }
    }
}

/// Starts a `records` subscription: the stream of its records.
async fn open(
    gateway: Gateway,
    topic: String,
    from: Start,
    partition: Option<u32>,
    offsets: Option<Vec<PartitionOffset>>,
    group: Option<String>,
    filter: Option<RecordFilter>,
) -> GqlResult<BoxStream<'static, Item>> {
    let filter = filter.unwrap_or_default();
    let (sender, receiver) = mpsc::channel::<Item>(BUFFER_RECORDS);
    let delivered = Arc::new(Mutex::new(BTreeMap::new()));
    // Dropped with the subscription's stream: tells a group's pump that the subscriber has
    // taken (or given up on) everything it was sent.
    let (gone, gone_signal) = oneshot::channel::<()>();
    match group {
        Some(group) => {
            if partition.is_some() || offsets.is_some() {
                return Err(invalid(
                    "a group subscription reads the partitions the group assigns it: partition and offsets do not apply",
                ));
            }
            let config = ConsumerConfig {
                client_id: "eddy-graphql".into(),
                auto_commit_interval: None,
                commit_on_revoke: false,
                auto_offset_reset: match from {
                    Start::Latest => OffsetReset::Latest,
                    Start::Earliest => OffsetReset::Earliest,
                },
                ..ConsumerConfig::group(&group)
            };
            gateway.client.partition_count(&topic).await.map_err(error_of)?;
            let consumer =
                Consumer::subscribe(gateway.client.clone(), &[topic.as_str()], config).await.map_err(error_of)?;
            tokio::spawn(pump_group(consumer, filter, sender, delivered.clone(), gone_signal));
        }
        None => {
            let starts = starts(&gateway, &topic, from, partition, offsets).await?;
            let mut feeds = Vec::new();
            for (&partition, &offset) in &starts {
                let feed =
                    gateway.client.subscribe(&topic, partition, StartAt::Offset(offset)).await.map_err(error_of)?;
                feeds.push(feed.map(move |batch| (partition, batch)).boxed());
            }
            tokio::spawn(pump(topic.into(), futures::stream::select_all(feeds), starts, filter, sender));
        }
    }
    Ok(ReceiverStream::new(receiver)
        .inspect(move |item| {
            let _ = &gone;
            if let Ok(record) = item {
                let position = TopicPartition::new(&record.topic, record.partition);
                delivered.lock().expect("delivered lock").insert(position, record.offset + 1);
            }
        })
        .boxed())
}

/// The offset each partition starts at: `offsets` for the partitions they name, `from` for the
/// others (pinned now, so that the subscription's start does not move while feeds open).
async fn starts(
    gateway: &Gateway,
    topic: &str,
    from: Start,
    partition: Option<u32>,
    offsets: Option<Vec<PartitionOffset>>,
) -> GqlResult<BTreeMap<u32, u64>> {
    let count = gateway.client.partition_count(topic).await.map_err(error_of)?;
    let chosen: Vec<u32> = match partition {
        Some(p) if p >= count => {
            return Err(error_of(eddy_client::ClientError::answer(
                eddy_client::Reason::UnknownPartition,
                format!("topic {topic:?} has no partition {p} (it has {count})"),
            )));
        }
        Some(p) => vec![p],
        None => (0..count).collect(),
    };
    let mut given = BTreeMap::new();
    for position in offsets.into_iter().flatten() {
        if !chosen.contains(&position.partition) {
            return Err(invalid(format!(
                "offsets name partition {} which this subscription does not read",
                position.partition
            )));
        }
        given.insert(position.partition, position.offset.offset("offsets[].offset")?);
    }
    let spec = match from {
        Start::Latest => v1::OffsetSpec::Latest,
        Start::Earliest => v1::OffsetSpec::Earliest,
    };
    let mut starts = BTreeMap::new();
    for p in chosen {
        let offset = match given.get(&p) {
            Some(offset) => *offset,
            None => gateway.client.list_offsets(topic, p, spec, 0).await.map_err(error_of)?.offset,
        };
        starts.insert(p, offset);
    }
    Ok(starts)
}

/// The error that ends a subscription whose subscriber stalled; `next` is the offset to
/// resume from in each partition.
fn slow_subscriber(next: &BTreeMap<u32, u64>) -> async_graphql::Error {
    let resume: Vec<PartitionOffset> =
        next.iter().map(|(p, o)| PartitionOffset { partition: *p, offset: Long::from(*o) }).collect();
    async_graphql::Error::new(format!(
        "the subscriber took nothing for {} s with {BUFFER_RECORDS} records waiting; subscribe again with \
         offsets: resume",
        STALL_MAX.as_secs()
    ))
    .extend_with(|_, e| {
        e.set("code", SLOW_SUBSCRIBER);
        e.set(
            "resume",
            async_graphql::Value::List(
                resume
                    .iter()
                    .map(|r| {
                        let mut entry = async_graphql::indexmap::IndexMap::new();
                        entry.insert(async_graphql::Name::new("partition"), async_graphql::Value::from(r.partition));
                        entry.insert(async_graphql::Name::new("offset"), async_graphql::Value::from(r.offset.0));
                        async_graphql::Value::Object(entry)
                    })
                    .collect(),
            ),
        );
    })
}

/// Moves records from the partitions' feeds into the subscriber's buffer until the subscriber
/// goes, stalls, or a feed fails.
async fn pump(
    topic: Arc<str>,
    mut feeds: impl Stream<Item = (u32, eddy_client::ClientResult<v1::SubscribeResponse>)> + Unpin,
    mut next: BTreeMap<u32, u64>,
    filter: RecordFilter,
    sender: mpsc::Sender<Item>,
) {
    loop {
        let batch = tokio::select! {
            batch = feeds.next() => batch,
            () = sender.closed() => return,
        };
        let Some((partition, batch)) = batch else { return };
        let batch = match batch {
            Ok(batch) => batch,
            Err(error) => {
                let _ = sender.send(Err(error_of(error))).await;
                return;
            }
        };
        for stored in batch.records {
            let offset = stored.offset;
            let record = Record::new(topic.clone(), partition, stored);
            if filter.matches(&record) {
                match sender.send_timeout(Ok(record), STALL_MAX).await {
                    Ok(()) => {}
                    Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                        let _ = sender.send(Err(slow_subscriber(&next))).await;
                        return;
                    }
                    Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
                }
            }
            next.insert(partition, offset + 1);
        }
    }
}

/// [`pump`] for a group member: polls the consumer, and commits what the subscriber was given.
async fn pump_group(
    mut consumer: Consumer,
    filter: RecordFilter,
    sender: mpsc::Sender<Item>,
    delivered: Arc<Mutex<BTreeMap<TopicPartition, u64>>>,
    gone: oneshot::Receiver<()>,
) {
    let mut last_commit = tokio::time::Instant::now();
    let mut committed: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    let outcome: Option<async_graphql::Error> = 'polling: loop {
        if sender.is_closed() {
            break None;
        }
        let records = match consumer.poll().await {
            Ok(records) => records,
            Err(error) => break Some(error_of(error)),
        };
        for consumed in records {
            let record = Record {
                topic: consumed.topic.as_str().into(),
                partition: consumed.partition,
                offset: consumed.offset,
                timestamp_ms: consumed.timestamp_ms,
                key: consumed.key,
                value: consumed.value,
                headers: consumed.headers,
            };
            if !filter.matches(&record) {
                // Nothing to push: it counts as given.
                delivered
                    .lock()
                    .expect("delivered lock")
                    .insert(TopicPartition::new(&consumed.topic, consumed.partition), consumed.offset + 1);
                continue;
            }
            match sender.send_timeout(Ok(record), STALL_MAX).await {
                Ok(()) => {}
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    break 'polling Some(
                        async_graphql::Error::new(format!(
                            "the subscriber took nothing for {} s with {BUFFER_RECORDS} records waiting; subscribe \
                             again: the group resumes after its last commit",
                            STALL_MAX.as_secs()
                        ))
                        .extend_with(|_, e| e.set("code", SLOW_SUBSCRIBER)),
                    );
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => break 'polling None,
            }
        }
        if last_commit.elapsed() >= GROUP_COMMIT_INTERVAL {
            commit_delivered(&mut consumer, &delivered, &mut committed).await;
            last_commit = tokio::time::Instant::now();
        }
    };
    if let Some(error) = outcome {
        // After the records buffered before it.
        let _ = sender.send(Err(error)).await;
    }
    // The stream ends once it has pushed what is buffered; then what it pushed is committed.
    drop(sender);
    let _ = gone.await;
    commit_delivered(&mut consumer, &delivered, &mut committed).await;
    if let Err(error) = consumer.leave().await {
        tracing::debug!(%error, "a GraphQL group subscription's member could not leave its group");
    }
}

/// Commits the positions pushed since the last commit, of the partitions the member still owns.
async fn commit_delivered(
    consumer: &mut Consumer,
    delivered: &Mutex<BTreeMap<TopicPartition, u64>>,
    committed: &mut BTreeMap<TopicPartition, u64>,
) {
    let owned = consumer.assignment();
    let due: BTreeMap<TopicPartition, u64> = delivered
        .lock()
        .expect("delivered lock")
        .iter()
        .filter(|(tp, offset)| owned.contains(tp) && committed.get(*tp) != Some(*offset))
        .map(|(tp, offset)| (tp.clone(), *offset))
        .collect();
    if due.is_empty() {
        return;
    }
    match consumer.commit_offsets(due.clone()).await {
        Ok(()) => committed.extend(due),
        Err(error) => tracing::warn!(%error, "a GraphQL group subscription's commit failed"),
    }
}
