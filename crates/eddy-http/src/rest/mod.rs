//! The REST API: records (produce, read with long polling, a live stream as Server-Sent
//! Events) and administration (topics, cluster, groups), JSON in and out, errors as
//! `application/problem+json`. Its OpenAPI 3 document, served at `/openapi.json`, is generated
//! from the handlers and types below, so it cannot drift from what is served.
//!
//! The gateway is a client of the cluster like any other: it reaches partition leaders and
//! group coordinators through the Rust client library, so any broker answers for every topic.

pub mod admin;
pub mod groups;
pub mod model;
pub mod records;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use eddy_client::Client;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::problem::ProblemDetails;

/// The largest request body: a produce request of this many bytes of JSON (413 beyond).
pub const BODY_BYTES_MAX: usize = 32 << 20;

/// What every handler shares: the cluster client and the group members it keeps.
#[derive(Clone)]
pub struct Gateway {
    pub client: Arc<Client>,
    instances: Arc<groups::Instances>,
    /// The partition the next keyless produce request goes to (modulo the partition count).
    next_keyless: Arc<AtomicU32>,
}

impl Gateway {
    /// A gateway reaching the cluster through `client`. Call it within a Tokio runtime: it
    /// starts the task that retires idle group members.
    pub fn new(client: Arc<Client>) -> Gateway {
        let instances = Arc::new(groups::Instances::default());
        tokio::spawn(instances.clone().expire());
        Gateway { client, instances, next_keyless: Arc::new(AtomicU32::new(rand_start())) }
    }

    /// This gateway with a client that keeps the current task's credentials
    /// ([`Client::with_scoped_credentials`]), for work that outlives the request: a stream or
    /// subscription served to the caller.
    pub(crate) fn scoped(&self) -> Gateway {
        Gateway { client: Arc::new(self.client.with_scoped_credentials()), ..self.clone() }
    }

    pub(crate) fn next_partition(&self, partitions: u32) -> u32 {
        self.next_keyless.fetch_add(1, Ordering::Relaxed) % partitions.max(1)
    }
}

/// Spreads the keyless requests of brokers that start together.
fn rand_start() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Eddy REST API",
        description = "Produce, read and stream records, and administer topics and consumer groups. \
                       Errors are application/problem+json (RFC 9457) with the gRPC API's reason codes.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "records", description = "Produce, read and stream records"),
        (name = "topics", description = "Topics"),
        (name = "cluster", description = "Brokers and controller"),
        (name = "groups", description = "Consumer groups"),
    ),
    components(schemas(ProblemDetails, model::AcksParam, model::Encoding))
)]
struct ApiDoc;

/// The REST API's routes and its OpenAPI document.
pub fn routes(gateway: Gateway) -> (Router, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(records::produce))
        .routes(routes!(records::read))
        .routes(routes!(records::stream))
        .routes(routes!(admin::list_topics, admin::create_topic))
        .routes(routes!(admin::describe_topic, admin::delete_topic))
        .routes(routes!(admin::describe_cluster))
        .routes(routes!(admin::list_groups))
        .routes(routes!(admin::describe_group))
        .routes(routes!(groups::read))
        .routes(routes!(groups::commit))
        .routes(routes!(groups::remove))
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .with_state(gateway)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_string();
    (router, api)
}
