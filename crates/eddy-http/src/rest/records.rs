//! Records over HTTP: produce, read a partition (with long polling), and a live stream of a
//! topic as Server-Sent Events.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use eddy_client::{StartAt, partition_for_key, v1};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa::IntoParams;

use super::Gateway;
use super::model::{
    AcksParam, Encoding, ProduceAnswer, ProduceBody, ProduceQuery, ReadQuery, RecordOut, RecordPosition, RecordsAnswer,
};
use crate::problem::{Problem, ProblemDetails};

/// The header that makes a retried produce request append once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Idempotency keys longer than this are refused.
const IDEMPOTENCY_KEY_MAX: usize = 255;

/// How often an idle event stream sends a comment, so proxies keep it open.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(15);

/// Appends records to a topic.
///
/// Records with a key go to the key's partition (the same as every Eddy client picks); records
/// without a key or partition go to one partition per request. With an `Idempotency-Key`
/// header, sending the same request again (after a timeout or a lost answer, to any broker)
/// appends nothing more and answers with the offsets the records got the first time: the key
/// names an idempotent producer whose first batch on each partition the partition remembers (its
/// 10,000 most recent producers, for a day).
#[utoipa::path(
    post,
    path = "/topics/{topic}/records",
    tag = "records",
    operation_id = "produce_records",
    params(("topic" = String, Path, description = "The topic"), ProduceQuery,
           ("Idempotency-Key" = Option<String>, Header, description = "Makes a retried request append once")),
    request_body = ProduceBody,
    responses(
        (status = 200, description = "Every record appended", body = ProduceAnswer),
        (status = 400, description = "Invalid request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown topic or partition", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "Request, record or batch too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "A value does not match the topic's schema", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "Not enough replicas, or no leader", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn produce(
    State(gateway): State<Gateway>,
    Path(topic): Path<String>,
    query: Result<Query<ProduceQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Result<axum::Json<ProduceBody>, axum::extract::rejection::JsonRejection>,
) -> Result<axum::Json<ProduceAnswer>, Problem> {
    let Query(query) = query?;
    let axum::Json(body) = body?;
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let key = value.to_str().map_err(|_| Problem::invalid("the Idempotency-Key header must be ASCII"))?;
            if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX {
                return Err(Problem::invalid(format!(
                    "the Idempotency-Key header must have 1 to {IDEMPOTENCY_KEY_MAX} characters"
                )));
            }
            Some(key.to_string())
        }
    };
    if body.records.is_empty() {
        return Err(Problem::invalid("records must hold at least one record"));
    }
    let partitions = gateway.client.partition_count(&topic).await?;
    // Keyless records share one partition: the idempotency key's (so a retry goes where the
    // first attempt went) or the next in turn.
    let keyless_partition = match &idempotency_key {
        Some(key) => {
            (u64::from_be_bytes(digest(&topic, key)[8..16].try_into().expect("8 bytes")) % u64::from(partitions)) as u32
        }
        None => gateway.next_partition(partitions),
    };
    let count = body.records.len();
    let mut batches: BTreeMap<u32, Vec<(usize, v1::Record)>> = BTreeMap::new();
    for (index, record) in body.records.into_iter().enumerate() {
        let key = match &record.key {
            None | Some(serde_json::Value::Null) => None,
            Some(key) => Some(body.key_encoding.to_bytes(key, &format!("records[{index}].key"))?),
        };
        let value = match record.value {
            serde_json::Value::Null => Bytes::new(),
            value => body.value_encoding.to_bytes(&value, &format!("records[{index}].value"))?,
        };
        let partition = match (record.partition, &key) {
            (Some(p), _) if p >= partitions => {
                return Err(no_partition(&format!("records[{index}].partition: "), &topic, p, partitions));
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => keyless_partition,
        };
        let headers = record
            .headers
            .into_iter()
            .map(|(key, value)| v1::Header { key, value: Bytes::from(value.into_bytes()) })
            .collect();
        let record = v1::Record { key, value, headers, timestamp_ms: record.timestamp_ms.unwrap_or(0) };
        batches.entry(partition).or_default().push((index, record));
    }
    let acks = match query.acks {
        AcksParam::All => v1::Acks::All,
        AcksParam::Leader => v1::Acks::Leader,
    };
    let producer_id = idempotency_key.as_deref().map(|key| idempotent_producer_id(&topic, key));
    let sends = batches.into_iter().map(|(partition, records)| {
        let client = gateway.client.clone();
        let topic = topic.clone();
        async move {
            let (indexes, records): (Vec<usize>, Vec<v1::Record>) = records.into_iter().unzip();
            let request = v1::ProduceRequest {
                topic,
                partition,
                records,
                acks: acks as i32,
                producer: producer_id.map(|producer_id| v1::ProducerIdentity {
                    producer_id,
                    epoch: 0,
                    first_sequence: 0,
                }),
                timeout_ms: 0,
            };
            let answer = client.produce(request).await?;
            Ok::<_, Problem>((indexes, answer))
        }
    });
    let mut positions: Vec<Option<RecordPosition>> = (0..count).map(|_| None).collect();
    for result in futures::future::join_all(sends).await {
        let (indexes, answer) = result?;
        for (i, index) in indexes.into_iter().enumerate() {
            positions[index] = Some(RecordPosition {
                partition: answer.partition,
                offset: answer.base_offset + i as u64,
                duplicate: answer.duplicate,
            });
        }
    }
    let records = positions.into_iter().map(|p| p.expect("every record was sent")).collect();
    Ok(axum::Json(ProduceAnswer { topic, records }))
}

/// UNKNOWN_PARTITION for partition `p` of a topic of `partitions`; `what` names the field.
fn no_partition(what: &str, topic: &str, p: u32, partitions: u32) -> Problem {
    Problem::new(
        eddy_client::Reason::UnknownPartition,
        format!("{what}topic {topic:?} has no partition {p} (it has {partitions})"),
    )
}

/// SHA-256 of the topic and an idempotency key.
fn digest(topic: &str, key: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(topic.as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    hash.finalize().into()
}

/// The idempotent producer an Idempotency-Key names on a topic: an id with the top bit set,
/// which the controller never hands out (it counts up from 1), from a cryptographic hash so
/// that no key can be made to collide with another.
pub fn idempotent_producer_id(topic: &str, key: &str) -> u64 {
    let hash = u64::from_be_bytes(digest(topic, key)[..8].try_into().expect("8 bytes"));
    (1 << 63) | hash
}

/// Reads records from one partition of a topic.
///
/// Answers at once with the records from `offset` on; when there are none yet and `wait_ms` is
/// set, waits up to that long for one to be committed (long poll).
#[utoipa::path(
    get,
    path = "/topics/{topic}/partitions/{partition}/records",
    tag = "records",
    operation_id = "read_partition_records",
    params(("topic" = String, Path, description = "The topic"), ("partition" = u32, Path, description = "The partition"), ReadQuery),
    responses(
        (status = 200, description = "The records (possibly none)", body = RecordsAnswer),
        (status = 404, description = "Unknown topic or partition", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 416, description = "The offset is outside the log", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "No leader", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn read(
    State(gateway): State<Gateway>,
    path: Result<Path<(String, u32)>, axum::extract::rejection::PathRejection>,
    query: Result<Query<ReadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<RecordsAnswer>, Problem> {
    let Path((topic, partition)) = path?;
    let Query(query) = query?;
    let offset = match query.offset {
        Some(offset) => offset,
        None => gateway.client.list_offsets(&topic, partition, v1::OffsetSpec::Earliest, 0).await?.offset,
    };
    let request = v1::FetchRequest {
        topic: topic.clone(),
        partition,
        offset,
        max_bytes: query.max_bytes.unwrap_or(0),
        max_records: query.max_records.unwrap_or(0),
        max_wait_ms: query.wait_ms.unwrap_or(0),
        read_from_follower: false,
    };
    let answer = gateway.client.fetch(request).await?;
    let (keys, values) =
        (query.key_encoding.unwrap_or(Encoding::String), query.value_encoding.unwrap_or(Encoding::Json));
    let next_offset = answer.records.last().map_or(offset, |r| r.offset + 1);
    Ok(axum::Json(RecordsAnswer {
        records: answer.records.iter().map(|r| RecordOut::new(&topic, partition, r, keys, values)).collect(),
        next_offset,
        high_watermark: answer.high_watermark,
        log_start_offset: answer.log_start_offset,
    }))
}

/// Query of `GET /topics/{topic}/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Where to start: `latest` (default: records committed from now on), `earliest`, or an
    /// offset (with `partition`).
    pub from: Option<String>,
    /// Only this partition (default: every partition of the topic).
    pub partition: Option<u32>,
    /// Resume after these records, as the `Last-Event-ID` header does (for clients that cannot
    /// set it).
    pub last_event_id: Option<String>,
    /// How values are written (default `json`, as for reads).
    pub value_encoding: Option<Encoding>,
    /// How keys are written (default `string`).
    pub key_encoding: Option<Encoding>,
}

/// A live stream of a topic's records as Server-Sent Events.
///
/// One `record` event per record, as it is committed, its data the record as JSON. The event id
/// is `partition:offset` of the record, followed (for a topic of several partitions) by the
/// last offset sent of each other partition: `2:41,0:17,1:9`. A browser's EventSource sends the
/// last id back as `Last-Event-ID` when it reconnects, and the stream resumes after those
/// records (partitions the id does not name start at their earliest offset). An error ends the
/// stream with an `error` event holding a problem.
#[utoipa::path(
    get,
    path = "/topics/{topic}/stream",
    tag = "records",
    operation_id = "stream_records",
    params(("topic" = String, Path, description = "The topic"), StreamQuery,
           ("Last-Event-ID" = Option<String>, Header, description = "Resume after the records this event id names")),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String),
        (status = 400, description = "Invalid starting position", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "Unknown topic or partition", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
pub async fn stream(
    State(gateway): State<Gateway>,
    Path(topic): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let Query(query) = query?;
    let partitions = gateway.client.partition_count(&topic).await?;
    let chosen: Vec<u32> = match query.partition {
        Some(p) if p >= partitions => return Err(no_partition("", &topic, p, partitions)),
        Some(p) => vec![p],
        None => (0..partitions).collect(),
    };
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id.clone())
        .filter(|id| !id.is_empty());
    let starts: BTreeMap<u32, StartAt> = match &last_event_id {
        Some(id) => {
            let sent = parse_event_id(id)?;
            chosen.iter().map(|p| (*p, sent.get(p).map_or(StartAt::Earliest, |o| StartAt::Offset(o + 1)))).collect()
        }
        None => {
            let start = match query.from.as_deref().unwrap_or("latest") {
                "latest" => StartAt::Latest,
                "earliest" => StartAt::Earliest,
                offset => match (offset.parse::<u64>(), query.partition) {
                    (Ok(offset), Some(_)) => StartAt::Offset(offset),
                    (Ok(_), None) => return Err(Problem::invalid("from=<offset> needs a partition")),
                    (Err(_), _) => {
                        return Err(Problem::invalid(format!(
                            "from must be latest, earliest or an offset, not {offset:?}"
                        )));
                    }
                },
            };
            chosen.iter().map(|p| (*p, start)).collect()
        }
    };
    // What has been sent of each partition: the event ids carry it.
    let mut sent: BTreeMap<u32, u64> = starts
        .iter()
        .filter_map(|(p, start)| match start {
            StartAt::Offset(o) if *o > 0 => Some((*p, o - 1)),
            _ => None,
        })
        .collect();
    let mut feeds = Vec::new();
    // The stream outlives this handler: it keeps the caller's credentials of its own.
    let client = std::sync::Arc::new(gateway.client.with_scoped_credentials());
    for (partition, start) in starts {
        let feed = client.subscribe(&topic, partition, start).await?;
        feeds.push(feed.map(move |batch| (partition, batch)).boxed());
    }
    let (keys, values) =
        (query.key_encoding.unwrap_or(Encoding::String), query.value_encoding.unwrap_or(Encoding::Json));
    let events = futures::stream::select_all(feeds)
        .flat_map(move |(partition, batch)| {
            // Each event, and whether it is the error that ends the stream.
            let events: Vec<(Event, bool)> = match batch {
                Ok(batch) => batch
                    .records
                    .iter()
                    .map(|record| {
                        sent.insert(partition, record.offset);
                        let others = sent.iter().filter(|(p, _)| **p != partition).map(|(p, o)| format!(",{p}:{o}"));
                        let id = format!("{partition}:{}{}", record.offset, others.collect::<String>());
                        let data = serde_json::to_string(&RecordOut::new(&topic, partition, record, keys, values))
                            .expect("a record serializes");
                        (Event::default().event("record").id(id).data(data), false)
                    })
                    .collect(),
                Err(error) => {
                    let problem = Problem::from(error);
                    vec![(
                        Event::default().event("error").data(serde_json::to_string(&problem).expect("serializes")),
                        true,
                    )]
                }
            };
            futures::stream::iter(events)
        })
        .scan(false, |ended, (event, error)| {
            // The first error event is the last event.
            let next = (!*ended).then_some(event);
            *ended |= error;
            futures::future::ready(next)
        })
        .map(Ok::<_, Infallible>);
    Ok(sse(events))
}

fn sse(events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(events).keep_alive(KeepAlive::new().interval(STREAM_KEEPALIVE)).into_response()
}

/// The partitions and offsets an event id names (`Last-Event-ID`, `last_event_id`):
/// `p:o[,p:o...]`.
pub fn parse_event_id(id: &str) -> Result<BTreeMap<u32, u64>, Problem> {
    id.split(',')
        .map(|pair| {
            let (p, o) = pair.split_once(':').ok_or(())?;
            Ok((p.trim().parse().map_err(|_| ())?, o.trim().parse().map_err(|_| ())?))
        })
        .collect::<Result<_, ()>>()
        .map_err(|()| Problem::invalid(format!("Last-Event-ID {id:?} is not partition:offset[,partition:offset...]")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_name_partitions_and_offsets() {
        assert_eq!(parse_event_id("2:41,0:17").unwrap(), BTreeMap::from([(2, 41), (0, 17)]));
        assert!(parse_event_id("2-41").is_err());
        assert!(parse_event_id("x:1").is_err());
    }

    #[test]
    fn idempotency_keys_name_producers_the_controller_never_hands_out() {
        let a = idempotent_producer_id("orders", "request-1");
        assert_eq!(a, idempotent_producer_id("orders", "request-1"), "stable");
        assert_ne!(a, idempotent_producer_id("orders", "request-2"));
        assert_ne!(a, idempotent_producer_id("payments", "request-1"));
        assert!(a >= 1 << 63);
    }
}
