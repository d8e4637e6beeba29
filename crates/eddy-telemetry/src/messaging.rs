//! Messaging spans, as the OpenTelemetry semantic conventions for messaging name and attribute
//! them.
//!
//! | span | kind | where | parent |
//! |---|---|---|---|
//! | `send {topic}` | PRODUCER | client, per produce batch | the caller's context (links to the callers' when a batch gathers several) |
//! | `produce {topic}` | SERVER | broker, per Produce request | the request's `traceparent` (else the first record's) |
//! | `append {topic}` | INTERNAL | broker: checks and the entry in the leader's Raft log | `produce` |
//! | `commit {topic}` | INTERNAL | broker: replicated to a quorum, committed, applied | `produce` |
//! | `apply` | INTERNAL | every replica: the batch's entry applied and written | the context its records carry |
//! | `fetch {topic}` | SERVER | broker, per Fetch that returns records | the request's context; links to the records' |
//! | `process {topic}` | CONSUMER | consumer, per record handled | the record's context, also linked |
//!
//! The record's context is the `send` span's: every record of a batch carries it in its
//! `traceparent` header (the conventions' rule when no per-record creation span is made), unless
//! the application set its own.

use opentelemetry::trace::{Link, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use std::time::SystemTime;

use opentelemetry::{Context, InstrumentationScope, KeyValue, global};

/// `messaging.system` of every Eddy span.
pub const SYSTEM: &str = "eddy";

/// Attribute keys: the semantic conventions' where they have one, Eddy's own under
/// `messaging.eddy.` (as Kafka's are under `messaging.kafka.`).
pub mod attributes {
    pub const MESSAGING_SYSTEM: &str = "messaging.system";
    pub const OPERATION_TYPE: &str = "messaging.operation.type";
    pub const OPERATION_NAME: &str = "messaging.operation.name";
    pub const DESTINATION: &str = "messaging.destination.name";
    pub const PARTITION: &str = "messaging.destination.partition.id";
    pub const CONSUMER_GROUP: &str = "messaging.consumer.group.name";
    pub const BATCH_COUNT: &str = "messaging.batch.message_count";
    pub const BODY_SIZE: &str = "messaging.message.body.size";
    pub const CLIENT_ID: &str = "messaging.client.id";
    /// The record's offset in its partition (Kafka's is `messaging.kafka.offset`).
    pub const OFFSET: &str = "messaging.eddy.offset";
    /// The record's key, when it is UTF-8 (Kafka's is `messaging.kafka.message.key`).
    pub const MESSAGE_KEY: &str = "messaging.eddy.message.key";
    /// The partition's Raft log index of the batch's entry.
    pub const RAFT_INDEX: &str = "messaging.eddy.raft.log_index";
    /// The partition's Raft group id.
    pub const RAFT_GROUP: &str = "messaging.eddy.raft.group";
    pub const ERROR_TYPE: &str = "error.type";
    pub const SERVER_ADDRESS: &str = "server.address";
    pub const RPC_SYSTEM: &str = "rpc.system";
    pub const RPC_SERVICE: &str = "rpc.service";
    pub const RPC_METHOD: &str = "rpc.method";
}

use attributes as attr;

/// The tracer of Eddy's spans, from the global provider.
fn tracer() -> global::BoxedTracer {
    global::tracer_with_scope(InstrumentationScope::builder("eddy").with_version(env!("CARGO_PKG_VERSION")).build())
}

/// A started span and the context that carries it. Ended explicitly ([`Operation::end`],
/// [`Operation::fail`]), or when the last clone of its context is dropped.
#[derive(Debug, Clone)]
pub struct Operation {
    cx: Context,
}

impl Operation {
    /// The context with this span: the parent of what it does, and what it propagates.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Whether the span is sampled and recorded (attributes and links cost nothing otherwise).
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    pub fn set_attribute(&self, attribute: KeyValue) {
        self.cx.span().set_attribute(attribute);
    }

    pub fn add_link(&self, span_context: SpanContext) {
        self.cx.span().add_link(span_context, Vec::new());
    }

    /// Ends the span as failed: `error.type` is the reason code (`NOT_LEADER`, ...).
    pub fn fail(self, error_type: &str, message: impl Into<String>) {
        let span = self.cx.span();
        span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type.to_string()));
        span.set_status(Status::error(message.into()));
        span.end();
    }

    pub fn end(self) {
        self.cx.span().end();
    }

    /// Ends it as the result says: failed with the error's reason, or done.
    pub fn end_with<T, E: std::fmt::Display>(self, result: &Result<T, E>, reason: impl FnOnce(&E) -> String) {
        match result {
            Ok(_) => self.end(),
            Err(e) => {
                let reason = reason(e);
                self.fail(&reason, e.to_string())
            }
        }
    }
}

fn start(name: String, kind: SpanKind, attributes: Vec<KeyValue>, parent: &Context, links: Vec<Link>) -> Operation {
    start_at(name, kind, attributes, parent, links, None)
}

fn start_at(
    name: String,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    parent: &Context,
    links: Vec<Link>,
    started: Option<SystemTime>,
) -> Operation {
    let tracer = tracer();
    let mut builder = tracer.span_builder(name).with_kind(kind).with_attributes(attributes).with_links(links);
    if let Some(started) = started {
        builder = builder.with_start_time(started);
    }
    let span = builder.start_with_context(&tracer, parent);
    Operation { cx: parent.with_span(span) }
}

fn common(operation_type: &'static str, operation_name: &'static str, topic: &str) -> Vec<KeyValue> {
    vec![
        KeyValue::new(attr::MESSAGING_SYSTEM, SYSTEM),
        KeyValue::new(attr::OPERATION_TYPE, operation_type),
        KeyValue::new(attr::OPERATION_NAME, operation_name),
        KeyValue::new(attr::DESTINATION, topic.to_string()),
    ]
}

/// The contexts of the callers whose records make up one batch: one of them is the batch's
/// parent; with several, the batch starts a trace of its own and links to each.
pub fn batch_parent(callers: &[SpanContext]) -> (Context, Vec<Link>) {
    let mut distinct: Vec<&SpanContext> = Vec::new();
    for caller in callers.iter().filter(|c| c.is_valid()) {
        if !distinct.contains(&caller) {
            distinct.push(caller);
        }
    }
    match distinct.as_slice() {
        [] => (Context::new(), Vec::new()),
        [one] => (Context::new().with_remote_span_context((*one).clone()), Vec::new()),
        many => (Context::new(), many.iter().map(|c| Link::with_context((*c).clone())).collect()),
    }
}

/// The client's span for one produce batch to `topic`/`partition`.
pub fn send(topic: &str, partition: u32, count: usize, parent: &Context, links: Vec<Link>) -> Operation {
    let mut attributes = common("send", "send", topic);
    attributes.push(KeyValue::new(attr::PARTITION, partition.to_string()));
    if count != 1 {
        attributes.push(KeyValue::new(attr::BATCH_COUNT, count as i64));
    }
    start(format!("send {topic}"), SpanKind::Producer, attributes, parent, links)
}

/// What a consumer knows of a record it processes.
#[derive(Debug, Clone, Copy)]
pub struct Processed<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<&'a [u8]>,
    pub value_size: usize,
    pub group: Option<&'a str>,
}

/// The consumer's span for processing one record, whose headers carried `record_context`: a
/// child of the record's context (so the trace that sent it goes on to whoever handled it) and
/// linked to it; with no context in the record, a child of the caller's current context.
pub fn process(record: Processed<'_>, record_context: &Context) -> Operation {
    let mut attributes = common("process", "process", record.topic);
    attributes.push(KeyValue::new(attr::PARTITION, record.partition.to_string()));
    attributes.push(KeyValue::new(attr::OFFSET, record.offset as i64));
    attributes.push(KeyValue::new(attr::BODY_SIZE, record.value_size as i64));
    if let Some(key) = record.key.and_then(|k| std::str::from_utf8(k).ok()) {
        attributes.push(KeyValue::new(attr::MESSAGE_KEY, key.to_string()));
    }
    if let Some(group) = record.group {
        attributes.push(KeyValue::new(attr::CONSUMER_GROUP, group.to_string()));
    }
    let carried = record_context.span().span_context().clone();
    if carried.is_valid() {
        let link = Link::with_context(carried);
        start(format!("process {}", record.topic), SpanKind::Consumer, attributes, record_context, vec![link])
    } else {
        start(format!("process {}", record.topic), SpanKind::Consumer, attributes, &Context::current(), Vec::new())
    }
}

/// The broker's span for a Produce request.
pub fn broker_produce(topic: &str, partition: u32, count: usize, parent: &Context) -> Operation {
    let mut attributes = common("send", "produce", topic);
    attributes.push(KeyValue::new(attr::PARTITION, partition.to_string()));
    attributes.push(KeyValue::new(attr::BATCH_COUNT, count as i64));
    attributes.push(KeyValue::new(attr::RPC_SYSTEM, "grpc"));
    attributes.push(KeyValue::new(attr::RPC_SERVICE, "eddy.v1.Eddy"));
    attributes.push(KeyValue::new(attr::RPC_METHOD, "Produce"));
    start(format!("produce {topic}"), SpanKind::Server, attributes, parent, Vec::new())
}

/// A step of the broker's produce (`append`, `commit`), a child of its `produce` span.
pub fn broker_step(step: &'static str, topic: &str, parent: &Operation) -> Operation {
    let attributes =
        vec![KeyValue::new(attr::MESSAGING_SYSTEM, SYSTEM), KeyValue::new(attr::DESTINATION, topic.to_string())];
    start(format!("{step} {topic}"), SpanKind::Internal, attributes, parent.context(), Vec::new())
}

/// A replica's span for applying a batch of a partition's Raft group (on the leader and on every
/// follower), a child of the context the batch's records carry: the trace shows when each
/// replica stored the batch.
pub fn replica_apply(group: u64, log_index: u64, count: usize, carried: &Context) -> Operation {
    let attributes = vec![
        KeyValue::new(attr::MESSAGING_SYSTEM, SYSTEM),
        KeyValue::new(attr::RAFT_GROUP, group as i64),
        KeyValue::new(attr::RAFT_INDEX, log_index as i64),
        KeyValue::new(attr::BATCH_COUNT, count as i64),
    ];
    start("apply".to_string(), SpanKind::Internal, attributes, carried, Vec::new())
}

/// The broker's span for a Fetch (that began at `started`), linked to the contexts of the
/// records it returned.
pub fn broker_fetch(
    topic: &str,
    partition: u32,
    offset: u64,
    count: usize,
    parent: &Context,
    links: Vec<Link>,
    started: SystemTime,
) -> Operation {
    let mut attributes = common("receive", "fetch", topic);
    attributes.push(KeyValue::new(attr::PARTITION, partition.to_string()));
    attributes.push(KeyValue::new(attr::OFFSET, offset as i64));
    attributes.push(KeyValue::new(attr::BATCH_COUNT, count as i64));
    attributes.push(KeyValue::new(attr::RPC_SYSTEM, "grpc"));
    attributes.push(KeyValue::new(attr::RPC_SERVICE, "eddy.v1.Eddy"));
    attributes.push(KeyValue::new(attr::RPC_METHOD, "Fetch"));
    start_at(format!("fetch {topic}"), SpanKind::Server, attributes, parent, links, Some(started))
}

/// A gateway's span for an HTTP request (`POST /topics/{topic}/records`), the parent of the
/// produce it makes.
pub fn http_server(method: &str, route: &str, parent: &Context) -> Operation {
    let attributes =
        vec![KeyValue::new("http.request.method", method.to_string()), KeyValue::new("http.route", route.to_string())];
    start(format!("{method} {route}"), SpanKind::Server, attributes, parent, Vec::new())
}

/// Most links a span takes from the records of one batch (the SDK keeps 128 by default).
pub const LINKS_MAX: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn caller(span: u64) -> SpanContext {
        SpanContext::new(TraceId::from(7u128), SpanId::from(span), TraceFlags::SAMPLED, true, TraceState::NONE)
    }

    #[test]
    fn one_caller_parents_a_batch_and_several_are_linked() {
        let (parent, links) = batch_parent(&[caller(1), caller(1), SpanContext::empty_context()]);
        assert_eq!(parent.span().span_context(), &caller(1));
        assert!(links.is_empty());
        let (parent, links) = batch_parent(&[caller(1), caller(2), caller(1)]);
        assert!(!parent.span().span_context().is_valid());
        assert_eq!(links.len(), 2);
        let (parent, links) = batch_parent(&[]);
        assert!(!parent.span().span_context().is_valid() && links.is_empty());
    }

    #[test]
    fn without_a_provider_spans_carry_their_parent_and_record_nothing() {
        let parent = Context::new().with_remote_span_context(caller(3));
        let send = send("orders", 0, 2, &parent, Vec::new());
        assert!(!send.is_recording());
        // The no-op tracer passes the parent on, so a context that came in still goes out.
        assert_eq!(send.context().span().span_context().trace_id(), TraceId::from(7u128));
        send.end();
        let alone = send_alone();
        assert!(!alone.context().span().span_context().is_valid());
    }

    fn send_alone() -> Operation {
        send("orders", 0, 1, &Context::new(), Vec::new())
    }
}
