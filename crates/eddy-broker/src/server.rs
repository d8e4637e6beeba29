//! The gRPC services a node serves, on two listeners that never share a service:
//!
//! - the client listener: the client API and groups API, gRPC health and reflection (v1 and
//!   v1alpha, of the public services only);
//! - the inter-broker listener: the Raft transport and the controller RPCs, with gRPC health.
//!
//! A client that reaches the client port cannot speak Raft or register a broker: those services
//! are not routed there (UNIMPLEMENTED), so the inter-broker port can be kept on a network only
//! brokers reach.

use std::sync::Arc;
use std::time::Duration;

use eddy_controller::ControllerRpcService;
use eddy_proto::internal::controller_rpc_server::ControllerRpcServer;
use eddy_proto::internal::raft_transport_server::RaftTransportServer;
use eddy_proto::v1::eddy_server::EddyServer;
use eddy_proto::v1::groups_server::GroupsServer;
use eddy_proto::v1::security_server::SecurityServer;
use eddy_raft::transport::RaftTransportService;
use tonic::service::Routes;

use crate::api::EddyApi;
use crate::broker::{Broker, GroupRouter};
use crate::groups_api::GroupsApi;
use crate::security_api::SecurityApi;

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

impl Broker {
    /// The services of the client listener, ready for `server_builder().add_routes(..)`.
    pub async fn client_routes(&self) -> Result<Routes, tonic_reflection::server::Error> {
        let config = &self.inner.config;
        let api = EddyServer::new(EddyApi::new(self))
            .max_decoding_message_size(config.batch_size_max_bytes as usize + REQUEST_OVERHEAD_BYTES)
            .max_encoding_message_size(FETCH_BYTES_MAX as usize + REQUEST_OVERHEAD_BYTES);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<EddyServer<EddyApi>>().await;
        let reflection = public_reflection().build_v1()?;
        // grpcio's reflection client, Postman and older grpcurl speak only v1alpha.
        let reflection_v1alpha = public_reflection().build_v1alpha()?;
        let groups_api = GroupsApi::new(self);
        tokio::spawn(groups_api.clone().export_metrics(self.inner.stopping.subscribe()));
        let groups = GroupsServer::new(groups_api);
        let security = SecurityServer::new(SecurityApi::new(EddyApi::new(self)));
        let routes = Routes::new(api)
            .add_service(groups)
            .add_service(security)
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha);
        Ok(routes)
    }

    /// The services of the inter-broker listener: the Raft transport of every group on this node
    /// and the controller RPCs, ready for `server_builder().add_routes(..)`.
    pub async fn internal_routes(&self) -> Routes {
        let raft = RaftTransportServer::new(RaftTransportService::new(Arc::new(GroupRouter {
            broker: self.clone(),
            api: EddyApi::new(self),
        })))
        .max_decoding_message_size(RAFT_MESSAGE_MAX_BYTES)
        .max_encoding_message_size(RAFT_MESSAGE_MAX_BYTES);
        let controller = ControllerRpcServer::new(ControllerRpcService::new(self.inner.controller.clone()))
            .max_decoding_message_size(CONTROLLER_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(CONTROLLER_MESSAGE_MAX_BYTES);
        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<RaftTransportServer<RaftTransportService>>().await;
        Routes::new(raft).add_service(controller).add_service(health)
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
