//! The broker's HTTP listener (`--http-listen`): one axum server per broker, for every
//! HTTP-facing service of the broker. Today it carries the schema registry's REST API, which
//! follows the Confluent Schema Registry API so its clients, serializers and tools work
//! unchanged ([`registry`]), and the cluster's AsyncAPI document ([`asyncapi`]).
//!
//! API boundary: the paths, bodies and error codes here are a public contract (docs/schemas.md).
//! Handlers only translate: every decision is the broker's or the registry's.

pub mod asyncapi;
pub mod registry;

use std::future::Future;

use axum::Router;
use eddy_broker::Broker;

/// Every route of the broker's HTTP listener.
pub fn router(broker: Broker) -> Router {
    // The registry's router answers what no other route takes (its fallback is the API's 404).
    asyncapi::routes(broker.clone()).merge(registry::routes(broker))
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
