//! The client against a scripted broker: how it treats UNKNOWN_TOPIC and METADATA_NOT_READY, and
//! what a produce whose retries ended reports.
//!
//! A broker that restarted, or whose controller just failed over, may answer from metadata that
//! is behind. The client must not take one such answer as the end of a topic it has seen.
//!
//! A produce retried after a lost answer may have been appended by the attempt whose answer was
//! lost: the last attempt's NOT_LEADER must not be reported as the outcome (an idempotent
//! producer would take it as "nothing written" and give the next batch the same sequence).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use eddy_client::{Client, ClientConfig, Reason, v1};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A one-broker "cluster" whose answers follow a script.
#[derive(Default)]
struct Script {
    address: std::sync::OnceLock<String>,
    /// Produce answers UNKNOWN_TOPIC this many times before it succeeds.
    produce_unknown_first: u32,
    /// DescribeTopic answers METADATA_NOT_READY this many times before it succeeds.
    describe_not_ready_first: u32,
    /// Produce answers these errors (gRPC code, reason), one per attempt, before the rest.
    produce_errors: Vec<(tonic::Code, &'static str)>,
    /// Then answers this error every time, if set (instead of succeeding).
    produce_always: Option<(tonic::Code, &'static str)>,
    /// Whether the topic exists at all.
    exists: bool,
    produces: AtomicU32,
    describes: AtomicU32,
}

fn error(code: tonic::Code, reason: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason, "eddy.dev", std::collections::HashMap::new());
    Status::with_error_details(code, format!("scripted {reason}"), details)
}

#[derive(Clone)]
struct FakeBroker(Arc<Script>);

#[tonic::async_trait]
impl v1::eddy_server::Eddy for FakeBroker {
    async fn produce(&self, request: Request<v1::ProduceRequest>) -> Result<Response<v1::ProduceResponse>, Status> {
        let n = self.0.produces.fetch_add(1, Ordering::SeqCst);
        if n < self.0.produce_unknown_first {
            return Err(error(tonic::Code::NotFound, "UNKNOWN_TOPIC"));
        }
        if let Some((code, reason)) = self.0.produce_errors.get(n as usize).or(self.0.produce_always.as_ref()) {
            return Err(error(*code, reason));
        }
        let request = request.into_inner();
        Ok(Response::new(v1::ProduceResponse {
            partition: request.partition,
            base_offset: 0,
            record_count: request.records.len() as u32,
            duplicate: false,
            throttle_time_ms: 0,
        }))
    }

    async fn alter_topic(&self, _: Request<v1::AlterTopicRequest>) -> Result<Response<v1::AlterTopicResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn init_producer(
        &self,
        _: Request<v1::InitProducerRequest>,
    ) -> Result<Response<v1::InitProducerResponse>, Status> {
        Ok(Response::new(v1::InitProducerResponse { producer_id: 1, epoch: 0 }))
    }

    async fn rebalance_cluster(
        &self,
        _: Request<v1::RebalanceClusterRequest>,
    ) -> Result<Response<v1::RebalanceClusterResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn decommission_broker(
        &self,
        _: Request<v1::DecommissionBrokerRequest>,
    ) -> Result<Response<v1::DecommissionBrokerResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn delete_records(
        &self,
        _: Request<v1::DeleteRecordsRequest>,
    ) -> Result<Response<v1::DeleteRecordsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn fetch(&self, _: Request<v1::FetchRequest>) -> Result<Response<v1::FetchResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    type SubscribeStream = futures::stream::Empty<Result<v1::SubscribeResponse, Status>>;

    async fn subscribe(&self, _: Request<v1::SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_offsets(
        &self,
        _: Request<v1::ListOffsetsRequest>,
    ) -> Result<Response<v1::ListOffsetsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn create_topic(
        &self,
        _: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::CreateTopicResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn delete_topic(
        &self,
        _: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn list_topics(&self, _: Request<v1::ListTopicsRequest>) -> Result<Response<v1::ListTopicsResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }

    async fn describe_topic(
        &self,
        request: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::DescribeTopicResponse>, Status> {
        let n = self.0.describes.fetch_add(1, Ordering::SeqCst);
        if n < self.0.describe_not_ready_first {
            return Err(error(tonic::Code::Unavailable, "METADATA_NOT_READY"));
        }
        if !self.0.exists {
            return Err(error(tonic::Code::NotFound, "UNKNOWN_TOPIC"));
        }
        let address = self.0.address.get().expect("address set").clone();
        let partition = v1::PartitionDescription {
            partition: 0,
            leader: Some(1),
            leader_address: address,
            replicas: vec![1],
            ..Default::default()
        };
        let topic = v1::TopicDescription {
            name: request.into_inner().name,
            partitions: vec![partition],
            replication_factor: 1,
            ..Default::default()
        };
        Ok(Response::new(v1::DescribeTopicResponse { topic: Some(topic) }))
    }

    async fn describe_cluster(
        &self,
        _: Request<v1::DescribeClusterRequest>,
    ) -> Result<Response<v1::DescribeClusterResponse>, Status> {
        Err(Status::unimplemented("not scripted"))
    }
}

/// Serves `script` on a loopback port and returns a client of it.
async fn serve(script: Script) -> (Client, Arc<Script>) {
    serve_until(script, Duration::from_secs(20)).await
}

/// [`serve`], with a client that gives up retrying after `retry_deadline`.
async fn serve_until(script: Script, retry_deadline: Duration) -> (Client, Arc<Script>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    script.address.set(address.clone()).unwrap();
    let script = Arc::new(script);
    let service = v1::eddy_server::EddyServer::new(FakeBroker(script.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let config = ClientConfig {
        retry_backoff_initial: Duration::from_millis(5),
        retry_backoff_max: Duration::from_millis(20),
        retry_deadline,
        ..ClientConfig::default()
    };
    (Client::new(vec![address], config).unwrap(), script)
}

fn record() -> v1::ProduceRequest {
    v1::ProduceRequest {
        topic: "orders".into(),
        partition: 0,
        records: vec![v1::Record { value: b"x".to_vec().into(), ..Default::default() }],
        acks: v1::Acks::All as i32,
        ..Default::default()
    }
}

#[tokio::test]
async fn unknown_topic_for_a_seen_topic_is_retried_with_fresh_metadata() {
    let (client, script) = serve(Script { exists: true, produce_unknown_first: 3, ..Script::default() }).await;
    client.describe_topic("orders").await.unwrap();
    let answer = client.produce(record()).await.expect("retried until the broker knew the topic again");
    assert_eq!(answer.record_count, 1);
    assert_eq!(script.produces.load(Ordering::SeqCst), 4);
    assert!(
        script.describes.load(Ordering::SeqCst) >= 4,
        "each retry describes the topic afresh (saw {} describes)",
        script.describes.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn unknown_topic_for_a_topic_never_seen_fails_at_once() {
    let (client, script) = serve(Script { exists: false, ..Script::default() }).await;
    let error = client.produce(record()).await.unwrap_err();
    assert_eq!(error.reason(), "UNKNOWN_TOPIC");
    assert_eq!(script.describes.load(Ordering::SeqCst), 1, "no retry for a topic never seen");
    assert_eq!(script.produces.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn metadata_not_ready_is_retried() {
    let (client, script) = serve(Script { exists: true, describe_not_ready_first: 3, ..Script::default() }).await;
    let topic = client.describe_topic("orders").await.expect("retried until the broker had metadata");
    assert_eq!(topic.partitions.len(), 1);
    assert_eq!(script.describes.load(Ordering::SeqCst), 4);
}

const LOST: (tonic::Code, &str) = (tonic::Code::Unavailable, "OUTCOME_UNKNOWN");
const NOT_LEADER: (tonic::Code, &str) = (tonic::Code::Unavailable, "NOT_LEADER");

#[tokio::test]
async fn retries_ending_in_not_leader_after_a_lost_answer_report_an_unknown_outcome() {
    let script =
        Script { exists: true, produce_errors: vec![LOST], produce_always: Some(NOT_LEADER), ..Script::default() };
    let (client, script) = serve_until(script, Duration::from_millis(300)).await;
    let error = client.produce(record()).await.unwrap_err();
    assert_eq!(error.code(), Some(Reason::OutcomeUnknown), "{error}");
    assert!(!error.is_definite());
    assert!(script.produces.load(Ordering::SeqCst) >= 2, "retried after the lost answer");
}

#[tokio::test]
async fn retries_ending_in_not_leader_without_a_lost_answer_are_definite() {
    let script = Script { exists: true, produce_always: Some(NOT_LEADER), ..Script::default() };
    let (client, script) = serve_until(script, Duration::from_millis(300)).await;
    let error = client.produce(record()).await.unwrap_err();
    assert_eq!(error.code(), Some(Reason::NotLeader), "{error}");
    assert!(error.is_definite(), "nothing was written: the batch's sequence may be reused");
    assert!(script.produces.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn a_sequence_refusal_after_a_lost_answer_stands() {
    // An appended batch would be in the producer's window: OUT_OF_ORDER_SEQUENCE answers for it.
    let out_of_order = (tonic::Code::FailedPrecondition, "OUT_OF_ORDER_SEQUENCE");
    let script = Script { exists: true, produce_errors: vec![LOST, out_of_order], ..Script::default() };
    let (client, script) = serve(script).await;
    let error = client.produce(record()).await.unwrap_err();
    assert_eq!(error.code(), Some(Reason::OutOfOrderSequence), "{error}");
    assert_eq!(script.produces.load(Ordering::SeqCst), 2);
}
