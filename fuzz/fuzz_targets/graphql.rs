//! What `/graphql` reads from the network: a GraphQL document (GET's `query=` or a POST body's
//! `query`), a POST body as JSON (query, operation name, variables), and a WebSocket's
//! `connection_init` payload with its credentials. Documents run against the served schema
//! (parsing, validation, the depth and complexity limits, argument checks), with a client that
//! reaches no cluster: a resolver's call fails at once, and no input may panic on the way.
//! The first byte picks the input.

#![no_main]

use std::sync::{Arc, OnceLock};

use eddy_client::{Client, ClientConfig, ClientError, ClientResult, Connect};
use eddy_http::graphql::{EddySchema, init_authorization, schema};
use eddy_http::rest::Gateway;
use futures::StreamExt as _;
use libfuzzer_sys::fuzz_target;

/// Connects to nothing: every call the schema makes fails without touching a network.
struct Nowhere;

impl Connect for Nowhere {
    fn connect(&self, _: &str, _: &ClientConfig) -> ClientResult<tonic::transport::Channel> {
        Err(ClientError::Invalid("fuzzing: no cluster".into()))
    }
}

struct Served {
    runtime: tokio::runtime::Runtime,
    schema: EddySchema,
}

fn served() -> &'static Served {
    static SERVED: OnceLock<Served> = OnceLock::new();
    SERVED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let schema = runtime.block_on(async {
            let client = Client::with_connector(vec!["127.0.0.1:1".into()], ClientConfig::default(), Nowhere)
                .expect("a client");
            schema(Gateway::new(Arc::new(client)))
        });
        Served { runtime, schema }
    })
}

/// Runs the request `make` makes as a query or mutation, and as a subscription (its first
/// item).
fn run(make: impl Fn() -> async_graphql::Request) {
    let served = served();
    served.runtime.block_on(async {
        let _ = served.schema.execute(make()).await;
        let _ = served.schema.execute_stream(make()).next().await;
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(body) else { return };
            let _ = async_graphql::parser::parse_query(text);
            run(|| async_graphql::Request::new(text));
        }
        1 => {
            if serde_json::from_slice::<async_graphql::Request>(body).is_err() {
                return;
            }
            run(|| serde_json::from_slice(body).expect("it decoded a moment ago"));
        }
        _ => {
            let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else { return };
            let _ = init_authorization(&payload);
        }
    }
});
