//! The Eddy Rust client: admin calls, an idempotent ordered [`Producer`], and fetches that
//! follow partition leaders.
//!
//! API boundary: this crate speaks only the public `eddy.v1` gRPC contract. It never links
//! RocksDB or the broker.

pub mod client;
pub mod error;
pub mod producer;

pub use client::{Client, ClientConfig, Connect, TcpConnect, endpoint};
pub use eddy_proto::{Reason, v1};
pub use error::{ClientError, ClientResult};
pub use producer::{Acks, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata, partition_for_key};
