//! Live feeds of committed records: [`Client::subscribe`] holds a Subscribe stream open on a
//! partition's leader, which pushes each batch of records as it commits, and opens it again
//! after the last record it yielded when leadership moves or the connection drops.

use std::sync::Arc;

use eddy_proto::{Reason, v1};
use futures::Stream;
use tonic::Streaming;

use crate::client::{Backoff, Client};
use crate::error::{ClientError, ClientResult};

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record still stored.
    Earliest,
    /// The next record committed after the subscription starts.
    Latest,
    /// A given offset (at most the high watermark).
    Offset(u64),
    /// The first record whose timestamp is at or after this many milliseconds since the epoch.
    Timestamp(i64),
}

/// One subscription between two batches.
struct Feed {
    client: Arc<Client>,
    topic: String,
    partition: u32,
    /// Where the next batch starts: the starting position until the first batch arrives, then
    /// the offset after the last record yielded.
    next: StartAt,
    stream: Option<Streaming<v1::SubscribeResponse>>,
}

impl Client {
    /// The committed records of `topic`/`partition` from `start` on, in offset order, as the
    /// partition's leader pushes them (one item per batch, never empty). Returns once the
    /// leader has accepted the subscription (so [`StartAt::Latest`] means the records committed
    /// after this call), or with the error that refused it. Leader moves, broker restarts and
    /// lost connections are then retried with backoff and resume after the last record yielded,
    /// so nothing is skipped or repeated; the stream ends after yielding an error that cannot be
    /// retried (an offset retention removed, a deleted topic) or once retries ran out. Dropping
    /// the stream cancels the subscription.
    pub async fn subscribe(
        self: &Arc<Self>,
        topic: &str,
        partition: u32,
        start: StartAt,
    ) -> ClientResult<impl Stream<Item = ClientResult<v1::SubscribeResponse>> + Send + 'static> {
        let mut feed = Feed { client: self.clone(), topic: topic.to_string(), partition, next: start, stream: None };
        let mut backoff = Backoff::new(self.config());
        loop {
            match feed.open().await {
                Ok(stream) => {
                    feed.stream = Some(stream);
                    break;
                }
                Err(error) if error.is_retriable() && backoff.wait().await => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(futures::stream::unfold(Some(feed), |feed| async move {
            let mut feed = feed?;
            match feed.next_batch().await {
                Ok(batch) => Some((Ok(batch), Some(feed))),
                Err(e) => Some((Err(e), None)),
            }
        }))
    }
}

impl Feed {
    async fn next_batch(&mut self) -> ClientResult<v1::SubscribeResponse> {
        let mut backoff = Backoff::new(self.client.config());
        loop {
            let error = match self.receive().await {
                Ok(Some(batch)) => {
                    if let Some(last) = batch.records.last() {
                        self.next = StartAt::Offset(last.offset + 1);
                        return Ok(batch);
                    }
                    continue;
                }
                // The broker closed the stream without a status: open it again.
                Ok(None) => ClientError::answer(Reason::NotLeader, "the subscription stream ended".into()),
                Err(error) => error,
            };
            self.stream = None;
            if !error.is_retriable() {
                return Err(error);
            }
            tracing::debug!(topic = %self.topic, partition = self.partition, %error, "subscribing again");
            if !backoff.wait().await {
                return Err(error);
            }
        }
    }

    /// The next message of the open stream, opening it first when there is none.
    async fn receive(&mut self) -> ClientResult<Option<v1::SubscribeResponse>> {
        if self.stream.is_none() {
            self.stream = Some(self.open().await?);
        }
        let stream = self.stream.as_mut().expect("opened above");
        stream.message().await.map_err(|status| ClientError::from_status(&status))
    }

    async fn open(&mut self) -> ClientResult<Streaming<v1::SubscribeResponse>> {
        let (client, topic, partition) = (&self.client, self.topic.as_str(), self.partition);
        if self.next == StartAt::Latest {
            // Pinned to an offset now, so that opening the stream again later misses nothing
            // committed in between.
            let latest = client.list_offsets(topic, partition, v1::OffsetSpec::Latest, 0).await?;
            self.next = StartAt::Offset(latest.offset);
        }
        let (start, offset, timestamp_ms) = match self.next {
            StartAt::Earliest => (v1::OffsetSpec::Earliest, 0, 0),
            StartAt::Latest => unreachable!("pinned above"),
            StartAt::Offset(offset) => (v1::OffsetSpec::Unspecified, offset, 0),
            StartAt::Timestamp(ts) => (v1::OffsetSpec::Timestamp, 0, ts),
        };
        let request = v1::SubscribeRequest {
            topic: topic.to_string(),
            partition,
            start: start as i32,
            offset,
            timestamp_ms,
            ..Default::default()
        };
        let Some(address) = client.leader_of(topic, partition).await? else {
            return Err(ClientError::answer(Reason::NotLeader, format!("{topic}/{partition} has no leader yet")));
        };
        let mut stub = client.stub(&address)?;
        match tokio::time::timeout(client.config().request_timeout, stub.subscribe(request)).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                let error = ClientError::from_status(&status);
                client.learn_leader(topic, partition, &address, &error);
                Err(error)
            }
            Err(_) => {
                let error = ClientError::Timeout(format!("no answer from {address} for {topic}/{partition}"));
                client.learn_leader(topic, partition, &address, &error);
                Err(error)
            }
        }
    }
}
