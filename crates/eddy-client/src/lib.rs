//! The Eddy Rust client: admin calls (topics, cluster, groups), an idempotent ordered
//! [`Producer`], a [`Consumer`] of assigned partitions or of a consumer group, and fetches that
//! follow partition leaders; live [`Client::subscribe`] feeds of committed records; and [`schema::SchemaRegistry`], the schema registry's client and
//! the serializers of the wire format Confluent's clients share.
//!
//! Tracing: produce batches are `send` spans whose context every record carries in its
//! `traceparent` header, and [`ConsumerRecord::process_span`] starts the `process` span of a
//! consumed record, a child of that context (see [`telemetry`]). Spans go to the application's
//! global OpenTelemetry tracer provider.
//!
//! API boundary: this crate speaks only the public `eddy.v1` gRPC contract. It never links
//! RocksDB or the broker (its doc examples run against an in-memory broker, a dev-dependency).

pub mod client;
pub mod config_file;
pub mod consumer;
pub mod credentials;
pub mod error;
mod groups;
pub mod processing;
pub mod producer;
pub mod schema;
pub mod security;
pub mod subscription;

pub use client::{Client, ClientConfig, Connect, TcpConnect, endpoint};
pub use config_file::ClientFile;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, RebalanceListener, SeekTo, TopicPartition};
pub use credentials::{Credentials, with_authorization, with_principal};
pub use eddy_proto::{Reason, record_size_bytes, v1};
/// OpenTelemetry: trace context propagation and Eddy's messaging spans.
pub use eddy_telemetry as telemetry;
pub use error::{ClientError, ClientResult};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata, partition_for_key};
pub use subscription::StartAt;
