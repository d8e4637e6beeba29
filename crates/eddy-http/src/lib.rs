//! The broker's HTTP listener (`--http-listen`): one axum server per broker, for every
//! HTTP-facing service of the broker: the REST API for records and administration with its
//! OpenAPI document ([`rest`], errors as [`problem`] details), the schema registry's REST API,
//! which follows the Confluent Schema Registry API so its clients, serializers and tools work
//! unchanged ([`registry`]), GraphQL with subscriptions and GraphiQL ([`graphql`]), and the
//! cluster's AsyncAPI document ([`asyncapi`]).
//!
//! API boundary: the paths, bodies and error codes here are a public contract (docs/schemas.md).
//! Handlers only translate: every decision is the broker's or the registry's.

pub mod asyncapi;
pub mod auth;
pub mod graphql;
pub mod problem;
pub mod registry;
pub mod rest;

use std::future::Future;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use eddy_broker::Broker;
use eddy_client::Client;

/// Every route of the broker's HTTP listener. `client` reaches the cluster (the REST API's
/// partition leaders and group coordinators).
pub fn router(broker: Broker, client: Arc<Client>) -> Router {
    let gateway = rest::Gateway::new(client);
    let (rest, openapi) = rest::routes(gateway.clone());
    let openapi = Arc::new(openapi);
    // The registry's router answers what no other route takes (its fallback is the API's 404).
    rest.route("/openapi.json", get(move || async move { axum::Json(openapi.as_ref().clone()) }))
        .merge(graphql::routes(gateway, broker.clone()))
        .merge(asyncapi::routes(broker.clone()))
        .merge(registry::routes(broker.clone()))
        .layer(axum::middleware::from_fn_with_state(broker, auth::authenticate))
        .layer(axum::middleware::from_fn(trace_request))
}

/// Takes the `traceparent` of a request and runs its handler inside a SERVER span that is its
/// child: a record produced by the request carries the trace on (REST, GraphQL mutations). Only
/// when the request came traced or this broker exports spans.
async fn trace_request(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use opentelemetry::context::FutureExt;
    use opentelemetry::trace::TraceContextExt;
    let parent = eddy_telemetry::propagation::from_http(request.headers());
    if !eddy_telemetry::exporting() && !parent.span().span_context().is_valid() {
        return next.run(request).await;
    }
    let route = match request.extensions().get::<axum::extract::MatchedPath>() {
        Some(path) => path.as_str().to_string(),
        None => request.uri().path().to_string(),
    };
    let span = eddy_telemetry::messaging::http_server(request.method().as_str(), &route, &parent);
    let response = next.run(request).with_context(span.context().clone()).await;
    let status = response.status();
    span.set_attribute(opentelemetry::KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
    match status.is_server_error() {
        true => span.fail(status.as_str(), status.to_string()),
        false => span.end(),
    }
    response
}

/// `router`, answering browsers' cross-origin requests (CORS) from `origins` (`*`: any; none:
/// no cross-origin access, the browser's default). Requests carry no credentials (no cookies are
/// used), so any origin may be named.
pub fn with_cors(router: Router, origins: &[String]) -> Router {
    use axum::http::{HeaderName, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return router;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::AUTHORIZATION,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static("traceparent"),
            HeaderName::from_static("tracestate"),
        ])
        .expose_headers([header::RETRY_AFTER, header::LOCATION])
        .max_age(std::time::Duration::from_secs(600));
    router.layer(layer)
}

/// Serves `router` on `listener`, over TLS when `tls` is given, until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Option<eddy_tls::ServerTls>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let connections = Connections { local, incoming: Box::pin(eddy_tls::incoming(listener, tls)) };
    axum::serve(connections, router.into_make_service_with_connect_info::<HttpPeer>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// What the listener knows of a request's connection (its address, and the client certificate
/// it presented over TLS), in every request's extensions as `ConnectInfo<HttpPeer>`.
#[derive(Clone, Debug)]
pub struct HttpPeer(pub eddy_tls::PeerInfo);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Connections>> for HttpPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, Connections>) -> Self {
        HttpPeer(stream.io().peer().clone())
    }
}

/// The HTTP listener's connections, plain or TLS (handshaken by `eddy_tls::incoming`, off the
/// accept path), as axum takes them.
pub struct Connections {
    local: std::net::SocketAddr,
    incoming: std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<eddy_tls::Conn>> + Send>>,
}

impl axum::serve::Listener for Connections {
    type Io = eddy_tls::Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match futures::StreamExt::next(&mut self.incoming).await {
                Some(Ok(conn)) => {
                    let remote = conn.peer().remote.unwrap_or(self.local);
                    return (conn, remote);
                }
                Some(Err(e)) => tracing::warn!(error = %e, "accepting an HTTP connection failed"),
                // The accept loop ended (it does only when this listener is dropped).
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
