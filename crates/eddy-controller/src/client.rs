//! How a broker reaches the controller leader: try the last known leader, then the voters,
//! following NOT_CONTROLLER hints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_proto::internal::ControllerEnvelope;
use eddy_proto::internal::controller_rpc_client::ControllerRpcClient;
use eddy_raft::transport::{Peers, TransportError, decode, encode};

use crate::error::ControllerError;
use crate::rpc::{ControllerRequest, ControllerResult};

/// Calls the controller leader from any broker.
pub struct ControllerClient {
    voters: Vec<String>,
    peers: Arc<Peers>,
    leader: Mutex<Option<String>>,
    timeout: Duration,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient").field("voters", &self.voters).finish_non_exhaustive()
    }
}

/// Why one controller call got no answer.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("controller call to {address} timed out")]
    Timeout { address: String },
    #[error("controller call to {address} failed: {message}")]
    Failed { address: String, message: String },
}

impl ControllerClient {
    pub fn new(voters: Vec<String>, peers: Arc<Peers>, timeout: Duration) -> Self {
        Self { voters, peers, leader: Mutex::new(None), timeout }
    }

    async fn call_one(&self, address: &str, request: &ControllerRequest) -> Result<ControllerResult, CallError> {
        let channel = self.peers.channel(address)?;
        let mut client = ControllerRpcClient::new(channel)
            .max_decoding_message_size(eddy_limits::CONTROLLER_MESSAGE_MAX_BYTES)
            .max_encoding_message_size(eddy_limits::CONTROLLER_MESSAGE_MAX_BYTES);
        let envelope = ControllerEnvelope { payload: encode(request).into() };
        let response = tokio::time::timeout(self.timeout, client.call(envelope))
            .await
            .map_err(|_| CallError::Timeout { address: address.to_string() })?
            .map_err(|status| CallError::Failed { address: address.to_string(), message: status.message().into() })?;
        Ok(decode::<ControllerResult>(&response.into_inner().payload, "controller reply")?)
    }

    /// Sends `request` to the controller leader, wherever it is.
    pub async fn call(&self, request: &ControllerRequest) -> ControllerResult {
        let hint = self.leader.lock().expect("leader lock").clone();
        let mut candidates: Vec<String> = hint.into_iter().collect();
        candidates.extend(self.voters.iter().cloned());
        let mut last_error = String::from("no controller voters configured");
        // Each voter once, plus the leader hints they give: bounded by twice the voter count.
        let attempts_max = 2 * self.voters.len() + 1;
        let mut attempts = 0;
        while let Some(address) = candidates.first().cloned() {
            candidates.remove(0);
            attempts += 1;
            if attempts > attempts_max {
                break;
            }
            match self.call_one(&address, request).await {
                Ok(Err(ControllerError::NotController { leader_address, .. })) => {
                    if let Some(leader) = leader_address
                        && leader != address
                    {
                        candidates.insert(0, leader);
                    }
                    last_error = format!("{address} is not the controller leader");
                }
                Ok(result) => {
                    *self.leader.lock().expect("leader lock") = Some(address);
                    return result;
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        *self.leader.lock().expect("leader lock") = None;
        Err(ControllerError::Unavailable(last_error))
    }

    /// Sends a schema registry request to the controller leader, which holds the registry.
    pub async fn registry(
        &self,
        request: eddy_schema::api::RegistryRequest,
    ) -> Result<eddy_schema::api::RegistryReply, ControllerError> {
        match self.call(&crate::rpc::ControllerRequest::Registry(request)).await? {
            crate::rpc::ControllerReply::Registry(reply) => Ok(reply),
            other => Err(ControllerError::Unavailable(format!("unexpected controller reply {other:?}"))),
        }
    }
}
