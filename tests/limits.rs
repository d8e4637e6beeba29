//! No client can make a broker run out of memory: requests past the bounds in `eddy_limits` are
//! refused with a reason code before they cost memory, the broker's peak resident memory stays
//! bounded, and its other partitions keep serving. Runs against a real 3-node cluster.
//!
//! Before the bounds, one Produce of 8 million empty records (16 MiB on the wire, under the
//! message size limit) raised the leader's peak resident memory from 50 MiB to 1.8 GiB while it
//! was decoded, and long polls were unbounded per connection.

mod support;

use std::time::Duration;

use bytes::{BufMut, Bytes};
use eddy_client::v1::{self, eddy_client::EddyClient};
use eddy_proto::internal::controller_rpc_client::ControllerRpcClient;
use eddy_proto::internal::raft_transport_client::RaftTransportClient;
use eddy_proto::internal::{ControllerEnvelope, RaftEnvelope};
use prost::Message;
use support::{Cluster, produce_request};
use tonic::transport::Channel;

const TOPIC: &str = "bounded";
/// Peak resident memory a node may reach in this test. A node of an idle test cluster peaks near
/// 60 MiB; decoding the 16 MiB request below took 1.8 GiB.
const PEAK_RSS_MAX_BYTES: u64 = 300 << 20;

/// The peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    kib * 1024
}

fn reason(status: &tonic::Status) -> String {
    eddy_client::ClientError::from_status(status).reason().to_string()
}

/// A produce request of `count` empty records, encoded by hand: tonic encodes a request inside the
/// connection's task, and encoding millions of records there in a debug build starves the HTTP/2
/// keep-alive until the server closes the connection.
fn empty_records_request(partition: u32, count: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(2 * count + 32);
    bytes.push(0x0a); // field 1 (topic), length-delimited
    bytes.push(TOPIC.len() as u8);
    bytes.extend_from_slice(TOPIC.as_bytes());
    bytes.extend_from_slice(&[0x10, partition as u8]); // field 2 (partition), varint
    for _ in 0..count {
        bytes.extend_from_slice(&[0x1a, 0x00]); // field 3 (records): an empty record
    }
    bytes.extend_from_slice(&[0x20, v1::Acks::All as u8]); // field 4 (acks)
    Bytes::from(bytes)
}

/// Sends an already encoded Produce request.
async fn produce_encoded(address: &str, request: Bytes) -> Result<v1::ProduceResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel(address).await).max_encoding_message_size(usize::MAX);
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/eddy.v1.Eddy/Produce");
    grpc.unary(tonic::Request::new(request), path, RawCodec).await.map(tonic::Response::into_inner)
}

/// Sends bytes as they are; decodes the answer as a ProduceResponse.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Bytes;
    type Decode = v1::ProduceResponse;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self {
        *self
    }

    fn decoder(&mut self) -> Self {
        *self
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = v1::ProduceResponse;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
        v1::ProduceResponse::decode(src).map(Some).map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}")).unwrap().connect().await.expect("connect")
}

fn long_poll(offset: u64) -> v1::FetchRequest {
    v1::FetchRequest {
        topic: TOPIC.into(),
        partition: 1,
        offset,
        max_bytes: 0,
        max_records: 0,
        max_wait_ms: 30_000,
        read_from_follower: false,
    }
}

#[test]
fn requests_past_the_bounds_are_refused_and_memory_stays_bounded() {
    let cluster = Cluster::start(3);
    cluster.eddy_json(&["topic", "create", TOPIC, "--partitions", "2", "--replication-factor", "3"]);
    let described = cluster.wait_leaders(TOPIC);
    let leader_of = |p: usize| {
        let id = described["partitions"][p]["leader"].as_u64().expect("a leader id");
        (id, described["partitions"][p]["leader_address"].as_str().expect("a leader address").to_string())
    };
    let (leader_id, leader) = leader_of(0);
    let (_, poll_leader) = leader_of(1);

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        // Millions of empty records within the message size limit: refused before decoding,
        // naming the bound.
        let small = v1::ProduceRequest::decode(empty_records_request(0, 3)).expect("the hand encoding is valid");
        assert_eq!((small.topic.as_str(), small.records.len(), small.acks), (TOPIC, 3, v1::Acks::All as i32));
        for count in [8 << 20, 1 << 20] {
            let status = produce_encoded(&leader, empty_records_request(0, count)).await.unwrap_err();
            assert_eq!(reason(&status), "BATCH_TOO_LARGE", "{status:?}");
            assert!(status.message().contains(&eddy_limits::BATCH_RECORDS_MAX_LIMIT.to_string()), "{status:?}");
        }

        // Node-to-node messages past their limits are refused from their length prefix, on the
        // inter-broker listener; the client listener does not serve them at all.
        let internal = cluster.node(leader_id).internal.clone();
        let refusals = [
            (&internal, tonic::Code::OutOfRange, 1),
            // Whatever its size, a node-to-node message is refused by name on the client port.
            (&leader, tonic::Code::Unimplemented, 0),
        ];
        for (address, code, past_the_limit) in refusals {
            let payload = vec![0u8; past_the_limit * (eddy_limits::RAFT_MESSAGE_MAX_BYTES + 1)];
            let mut raft = RaftTransportClient::new(channel(address).await).max_encoding_message_size(usize::MAX);
            let status = raft.call(RaftEnvelope { group_id: 1, kind: 0, payload: payload.into() }).await.unwrap_err();
            assert_eq!(status.code(), code, "{address}: {status:?}");
            let payload = vec![0u8; past_the_limit * (eddy_limits::CONTROLLER_MESSAGE_MAX_BYTES + 1)];
            let mut controller = ControllerRpcClient::new(channel(address).await).max_encoding_message_size(usize::MAX);
            let status = controller.call(ControllerEnvelope { payload: payload.into() }).await.unwrap_err();
            assert_eq!(status.code(), code, "{address}: {status:?}");
        }

        // Long polls on one connection: up to the per-connection bound they wait; the next is
        // BUSY; another connection may still wait; and a record wakes every waiter.
        let end = {
            let mut poller = EddyClient::new(channel(&poll_leader).await);
            let mut probe = long_poll(0);
            probe.max_wait_ms = 0;
            poller.fetch(probe).await.expect("fetch").into_inner().high_watermark
        };
        let shared = channel(&poll_leader).await;
        // The broker answers a long poll after at most 30 s (its fetch wait bound): the probing
        // below must end well before the first waiters give up.
        let probe_deadline = tokio::time::Instant::now() + Duration::from_secs(25);
        let mut waiters = Vec::new();
        for _ in 0..eddy_limits::FETCH_WAITS_PER_CONNECTION_MAX {
            let mut client = EddyClient::new(shared.clone());
            waiters.push(tokio::spawn(async move { client.fetch(long_poll(end)).await }));
        }
        // Wait until the broker holds them all: the next one on the same connection is refused.
        let mut refused = None;
        while tokio::time::Instant::now() < probe_deadline {
            let mut probe = long_poll(end);
            probe.max_wait_ms = 1;
            let mut client = EddyClient::new(shared.clone());
            // A 1 ms poll either returns empty (a slot was free) or is refused at the bound.
            match client.fetch(probe).await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let refused = refused.expect("a long poll past the per-connection bound is refused");
        assert_eq!(reason(&refused), "BUSY", "{refused:?}");
        let info = tonic_types::StatusExt::get_error_details(&refused).error_info().cloned().expect("error info");
        assert_eq!(info.metadata["limit"], "fetch_waits_per_connection_max");
        let mut other = EddyClient::new(channel(&poll_leader).await);
        let mut probe = long_poll(end);
        probe.max_wait_ms = 10;
        other.fetch(probe).await.expect("another connection may still long-poll");

        let mut producer = EddyClient::new(channel(&poll_leader).await);
        let record = v1::Record { value: b"wake".to_vec().into(), ..Default::default() };
        producer.produce(produce_request(TOPIC, 1, vec![record])).await.expect("produce to the other partition");
        for waiter in waiters {
            let answer = waiter.await.unwrap().expect("a waiting long poll is answered").into_inner();
            assert_eq!(answer.records.len(), 1, "every waiter gets the record that woke it");
        }

        // Both partitions still serve.
        for partition in [0, 1] {
            let record = v1::Record { value: b"after".to_vec().into(), ..Default::default() };
            let mut client = EddyClient::new(channel(&leader_of(partition as usize).1).await);
            client.produce(produce_request(TOPIC, partition, vec![record])).await.expect("the partition serves");
        }
    });

    for node in &cluster.nodes {
        let pid = cluster.pid(node.id).expect("the node runs");
        let peak = peak_rss_bytes(pid);
        assert!(
            peak < PEAK_RSS_MAX_BYTES,
            "node {} (leader {leader_id}) peaked at {} MiB resident, above {} MiB",
            node.id,
            peak >> 20,
            PEAK_RSS_MAX_BYTES >> 20
        );
        eprintln!("node {}: peak resident memory {} MiB", node.id, peak >> 20);
    }
}
