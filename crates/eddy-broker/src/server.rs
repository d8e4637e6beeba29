//! The gRPC services a node serves on its one address: the client API and groups API, the Raft transport, the
//! controller RPCs, gRPC health and reflection (v1 and v1alpha, of the public services).

use std::sync::Arc;
use std::time::Duration;

use eddy_controller::ControllerRpcService;
use eddy_proto::internal::controller_rpc_server::ControllerRpcServer;
use eddy_proto::internal::raft_transport_server::RaftTransportServer;
use eddy_proto::v1::eddy_server::EddyServer;
use eddy_proto::v1::groups_server::GroupsServer;
use eddy_raft::transport::RaftTransportService;
use tonic::service::Routes;

use crate::api::EddyApi;
use crate::broker::{Broker, GroupRouter};
use crate::groups_api::GroupsApi;

use eddy_limits::{CONTROLLER_MESSAGE_MAX_BYTES, FETCH_BYTES_MAX, RAFT_MESSAGE_MAX_BYTES, REQUEST_OVERHEAD_BYTES};

/// The tonic server every node serves its routes with, in production and in the simulation.
/// Its HTTP/2 keep-alive closes connections whose peer went silent (lost power, or a link that
/// dropped a segment), freeing their streams instead of holding them until the process exits.
pub fn server_builder() -> tonic::transport::Server {
    use eddy_raft::transport::{PEER_KEEPALIVE_INTERVAL_MS, PEER_KEEPALIVE_TIMEOUT_MS};
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .max_concurrent_streams(eddy_limits::CONNECTION_STREAMS_MAX)
        .http2_keepalive_interval(Some(Duration::from_millis(PEER_KEEPALIVE_INTERVAL_MS)))
        .http2_keepalive_timeout(Some(Duration::from_millis(PEER_KEEPALIVE_TIMEOUT_MS)))
}

/// The connections `listener` accepts, each with TCP_NODELAY set, for
/// `server_builder().serve_with_incoming*`. The builder's own `tcp_nodelay` applies only to
/// listeners it binds itself. Without it, Nagle's algorithm held the last small write of an
/// answer (HTTP/2 writes headers, data and trailers apart) until the peer's delayed ACK: tens of
/// milliseconds on every Raft round trip and every produce answer (a produce with 256 records in
/// flight had a p50 of 44 ms and 7k records/s on one partition; 5 ms and 48k/s with it).
pub fn nodelay_incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), |stream| {
        if let Ok(stream) = &stream
            && let Err(e) = stream.set_nodelay(true)
        {
            tracing::warn!(error = %e, "TCP_NODELAY could not be set on an accepted connection");
        }
        stream
    })
}

impl Broker {
    /// Every service of the node, ready for `tonic::transport::Server::builder().add_routes(..)`.
    pub async fn routes(&self) -> Result<Routes, tonic_reflection::server::Error> {
        let config = &self.inner.config;
        let api = EddyServer::new(EddyApi::new(self))
            .max_decoding_message_size(config.batch_size_max_bytes as usize + REQUEST_OVERHEAD_BYTES)
            .max_encoding_message_size(FETCH_BYTES_MAX as usize + REQUEST_OVERHEAD_BYTES);
        let raft = RaftTransportServer::new(RaftTransportService::new(Arc::new(GroupRouter { broker: self.clone() })))
            .max_decoding_message_size(RAFT_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(RAFT_MESSAGE_MAX_BYTES);
        let controller = ControllerRpcServer::new(ControllerRpcService::new(self.inner.controller.clone()))
            .max_decoding_message_size(CONTROLLER_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(CONTROLLER_MESSAGE_MAX_BYTES);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<EddyServer<EddyApi>>().await;
        let reflection = public_reflection().build_v1()?;
        // grpcio's reflection client, Postman and older grpcurl speak only v1alpha.
        let reflection_v1alpha = public_reflection().build_v1alpha()?;
        let groups_api = GroupsApi::new(self);
        tokio::spawn(groups_api.clone().export_metrics(self.inner.stopping.subscribe()));
        let groups = GroupsServer::new(groups_api);
        let mut routes = Routes::new(api);
        routes = routes
            .add_service(groups)
            .add_service(raft)
            .add_service(controller)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha);
        Ok(routes)
    }
}

/// gRPC reflection over the client-facing services only (Eddy's, health and reflection itself):
/// the node-to-node ones are neither listed nor described.
fn public_reflection() -> tonic_reflection::server::Builder<'static> {
    let builder = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(eddy_proto::PUBLIC_FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    eddy_proto::PUBLIC_SERVICES.iter().fold(builder, |b, name| b.with_service_name(*name))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn accepted_connections_do_not_delay_small_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut incoming = Box::pin(super::nodelay_incoming(listener));
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let accepted = tokio_stream::StreamExt::next(&mut incoming).await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap(), "TCP_NODELAY is set on accepted connections");
    }
}
