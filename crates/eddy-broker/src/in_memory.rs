//! A one-node cluster inside this process, keeping its data in memory: for runnable examples,
//! doc tests and experiments. Nothing it holds survives the process; run `eddy dev` for a real
//! local cluster.

use std::sync::Arc;

use eddy_raft::transport::TcpConnector;
use eddy_storage::MemKv;
use tokio::task::JoinHandle;

use crate::broker::{Broker, NodeEnv};
use crate::clock::SystemClock;
use crate::config::{BrokerConfig, ControllerVoter};

/// A running in-memory node; stopped when dropped.
pub struct InMemoryNode {
    /// The `host:port` clients connect to.
    pub address: String,
    broker: Broker,
    servers: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for InMemoryNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryNode").field("address", &self.address).finish_non_exhaustive()
    }
}

impl InMemoryNode {
    /// Starts a node on free ports of 127.0.0.1 (one for clients, one for its own Raft and
    /// controller traffic). It is its own controller; topics it creates have replication factor 1.
    /// Clients may connect at once: their requests are retried until the node has elected itself.
    pub async fn start() -> Result<InMemoryNode, Box<dyn std::error::Error + Send + Sync>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let internal_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let config = BrokerConfig {
            listen: listener.local_addr()?,
            internal_listen: internal_listener.local_addr()?,
            controller_voters: vec![ControllerVoter { id: 1, address: internal_listener.local_addr()?.to_string() }],
            offsets_partitions: 1,
            ..BrokerConfig::default()
        };
        config.validate()?;
        let env = NodeEnv {
            kv: Arc::new(MemKv::new()),
            connector: Arc::new(TcpConnector),
            clock: Arc::new(SystemClock),
            seed: eddy_raft::random_seed(),
        };
        let broker = Broker::start(config, env).await?;
        let serve = |routes: tonic::service::Routes, listener: tokio::net::TcpListener| {
            let incoming = eddy_tls::incoming(listener, None);
            tokio::spawn(async move {
                if let Err(e) = crate::server_builder().add_routes(routes).serve_with_incoming(incoming).await {
                    tracing::error!(error = %e, "the in-memory node's server failed");
                }
            })
        };
        let servers =
            [serve(broker.client_routes().await?, listener), serve(broker.internal_routes().await, internal_listener)];
        Ok(InMemoryNode { address, broker, servers })
    }

    /// Stops the node.
    pub async fn stop(self) {
        self.servers.iter().for_each(JoinHandle::abort);
        self.broker.shutdown().await;
    }
}

impl Drop for InMemoryNode {
    fn drop(&mut self) {
        self.servers.iter().for_each(JoinHandle::abort);
    }
}
