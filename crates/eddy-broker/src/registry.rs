//! The schema registry, as a broker serves it: the controller leader holds the registry (its
//! state is part of the controller's Raft state machine), so every request is forwarded there
//! and answered with the leader's reply; any broker answers any request.

use eddy_controller::{ControllerError, ControllerReply, ControllerRequest};
use eddy_schema::RegistryError;
use eddy_schema::api::{RegistryReply, RegistryRequest};

use crate::Broker;

impl Broker {
    /// Serves one schema registry request through the controller leader.
    pub async fn registry(&self, request: RegistryRequest) -> Result<RegistryReply, RegistryError> {
        match self.inner.controller_client.call(&ControllerRequest::Registry(request)).await {
            Ok(ControllerReply::Registry(reply)) => Ok(reply),
            Ok(other) => Err(RegistryError::Forwarding(format!("unexpected controller reply {other:?}"))),
            Err(ControllerError::Registry(e)) => Err(e),
            Err(e) => Err(RegistryError::Forwarding(e.to_string())),
        }
    }
}
