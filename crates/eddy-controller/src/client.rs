//! How a broker reaches the controller leader: try the last known leader, then the seeds,
//! following NOT_CONTROLLER hints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use eddy_proto::internal::ControllerEnvelope;
use eddy_proto::internal::controller_rpc_client::ControllerRpcClient;
use eddy_raft::transport::{Peers, decode, encode};

use crate::error::ControllerError;
use crate::rpc::{ControllerRequest, ControllerResult};

/// Calls the controller leader from any broker.
pub struct ControllerClient {
    seeds: Vec<String>,
    peers: Arc<Peers>,
    leader: Mutex<Option<String>>,
    timeout: Duration,
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient").field("seeds", &self.seeds).finish_non_exhaustive()
    }
}

impl ControllerClient {
    pub fn new(seeds: Vec<String>, peers: Arc<Peers>, timeout: Duration) -> Self {
        Self { seeds, peers, leader: Mutex::new(None), timeout }
    }

    async fn call_one(&self, address: &str, request: &ControllerRequest) -> Result<ControllerResult, String> {
        let channel = self.peers.channel(address).map_err(|e| e.to_string())?;
        let mut client = ControllerRpcClient::new(channel).max_decoding_message_size(256 << 20);
        let envelope = ControllerEnvelope { payload: encode(request).into() };
        let response = tokio::time::timeout(self.timeout, client.call(envelope))
            .await
            .map_err(|_| format!("controller call to {address} timed out"))?
            .map_err(|status| format!("controller call to {address} failed: {}", status.message()))?;
        decode::<ControllerResult>(&response.into_inner().payload, "controller reply")
    }

    /// Sends `request` to the controller leader, wherever it is.
    pub async fn call(&self, request: &ControllerRequest) -> ControllerResult {
        let hint = self.leader.lock().expect("leader lock").clone();
        let mut candidates: Vec<String> = hint.into_iter().collect();
        candidates.extend(self.seeds.iter().cloned());
        let mut last_error = String::from("no controller seeds configured");
        // Each seed once, plus the leader hints they give: bounded by twice the seed count.
        let attempts_max = 2 * self.seeds.len() + 1;
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
                Err(e) => last_error = e,
            }
        }
        *self.leader.lock().expect("leader lock") = None;
        Err(ControllerError::Unavailable(last_error))
    }
}
