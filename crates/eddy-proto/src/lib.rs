//! Eddy's wire contract: the code generated from `proto/`.
//!
//! `v1` is the public client API (an API boundary: change it only compatibly). `internal` is the
//! node-to-node transport, whose payloads are bincode-encoded Rust types owned by the crates that
//! send them.

pub mod codec;
pub mod reason;
pub mod size;

pub use reason::{ERROR_DOMAIN, Reason, ReasonSpec};
pub use size::{HEADER_OVERHEAD_BYTES, RECORD_OVERHEAD_BYTES, record_size_bytes, wire_record_size_bytes};

/// The public client API, `eddy.v1`.
pub mod v1 {
    tonic::include_proto!("eddy.v1");
}

impl v1::TopicPartitions {
    /// `(topic, partition)` pairs grouped by topic, as the wire carries them (topics in order;
    /// partitions in the order given).
    pub fn group<'a>(pairs: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<v1::TopicPartitions> {
        let mut by_topic: std::collections::BTreeMap<&str, Vec<u32>> = std::collections::BTreeMap::new();
        for (topic, partition) in pairs {
            by_topic.entry(topic).or_default().push(partition);
        }
        by_topic
            .into_iter()
            .map(|(topic, partitions)| v1::TopicPartitions { topic: topic.to_string(), partitions })
            .collect()
    }
}

// The decoded records of the largest produce request the codec lets through stay within their
// memory bound.
const _: () = assert!(
    std::mem::size_of::<v1::Record>() * eddy_limits::BATCH_RECORDS_MAX_LIMIT
        <= eddy_limits::PRODUCE_DECODED_RECORDS_BYTES_MAX
);

/// Node-to-node services, `eddy.internal.v1`.
pub mod internal {
    tonic::include_proto!("eddy.internal.v1");
}

/// Encoded descriptors of the public services (`eddy.v1`), for gRPC reflection.
pub const PUBLIC_FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/eddy_public_descriptor.bin"));

/// The fully qualified names of the public gRPC services.
pub const PUBLIC_SERVICES: &[&str] = &["eddy.v1.Eddy", "eddy.v1.Groups", "eddy.v1.Security"];
