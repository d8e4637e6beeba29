//! The internal `ControllerRpc` tonic service.

use std::sync::Arc;

use eddy_proto::internal::ControllerEnvelope;
use eddy_proto::internal::controller_rpc_server::ControllerRpc;
use eddy_raft::transport::{decode, encode};
use tonic::{Request, Response, Status};

use crate::controller::Controller;
use crate::error::ControllerError;
use crate::rpc::{ControllerRequest, ControllerResult};

/// Serves controller requests on every node; only controller voters have a [`Controller`].
pub struct ControllerRpcService {
    controller: Option<Arc<Controller>>,
}

impl ControllerRpcService {
    pub fn new(controller: Option<Arc<Controller>>) -> Self {
        Self { controller }
    }
}

#[tonic::async_trait]
impl ControllerRpc for ControllerRpcService {
    async fn call(&self, request: Request<ControllerEnvelope>) -> Result<Response<ControllerEnvelope>, Status> {
        // Over mutual TLS the caller is the broker its certificate names, and only that one.
        let caller = eddy_tls::peer_broker(eddy_tls::peer_info(&request)).map_err(Status::permission_denied)?;
        let request: ControllerRequest = decode(&request.into_inner().payload, "controller request")
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if let (Some(caller), ControllerRequest::Heartbeat(heartbeat)) = (caller, &request)
            && heartbeat.broker_id != caller
        {
            tracing::warn!(
                caller,
                claimed = heartbeat.broker_id,
                address = %heartbeat.address,
                "refused a heartbeat for another broker's node id"
            );
            return Err(Status::permission_denied(format!(
                "the certificate of broker {caller} cannot register or heartbeat broker {}",
                heartbeat.broker_id
            )));
        }
        let result: ControllerResult = match &self.controller {
            Some(controller) => controller.handle(request).await,
            None => Err(ControllerError::NotController { leader_id: None, leader_address: None }),
        };
        Ok(Response::new(ControllerEnvelope { payload: encode(&result).into() }))
    }
}
