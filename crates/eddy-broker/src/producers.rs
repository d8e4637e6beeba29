//! InitProducer: ids and epochs for idempotent producers.
//!
//! An unnamed producer gets a fresh id from a block this broker took from the controller (a
//! controller write per thousand producers, not per producer, as Kafka's KIP-730), and bumps its
//! own epoch through any broker: its id belongs to it alone. A named producer (Kafka's
//! `transactional.id`) goes through the controller, which keeps the name's id and current epoch
//! in the replicated metadata: each initialization bumps the epoch and so fences the previous
//! instance. Fencing then happens in two places: a partition refuses a batch of an older epoch
//! than one it has appended (at once, for every partition the new instance has written to), and
//! a broker refuses a batch whose epoch is older than the metadata it holds (for the others, as
//! soon as the metadata reaches the broker).

use std::ops::Range;

use eddy_controller::{
    ClusterMetadata, ControllerClient, ControllerReply, ControllerRequest, PRODUCER_ID_BLOCK, ProducerIdEpoch,
};
use eddy_proto::v1;
use tokio::sync::Mutex;

use crate::error::BrokerError;

/// The block of producer ids this broker hands out.
#[derive(Debug, Default)]
pub struct ProducerIds {
    block: Mutex<Range<u64>>,
}

impl ProducerIds {
    /// Answers an InitProducer request.
    pub async fn init(
        &self,
        controller: &ControllerClient,
        metadata: &ClusterMetadata,
        request: v1::InitProducerRequest,
    ) -> Result<ProducerIdEpoch, BrokerError> {
        let current = request.current.map(|c| ProducerIdEpoch { producer_id: c.producer_id, epoch: c.epoch });
        if !request.producer_name.is_empty() {
            let call = ControllerRequest::InitNamedProducer { name: request.producer_name, current };
            return match controller.call(&call).await? {
                ControllerReply::ProducerInitialized(initialized) => Ok(initialized),
                other => Err(BrokerError::Internal(format!("the controller answered InitProducer with {other:?}"))),
            };
        }
        match current {
            Some(current) if metadata.producer_epoch(current.producer_id).is_some() => {
                Err(BrokerError::InvalidRequest(format!(
                    "producer id {} belongs to a named producer: initialize it with its name",
                    current.producer_id
                )))
            }
            Some(current) if current.producer_id == 0 => {
                Err(BrokerError::InvalidRequest("producer id 0 is never handed out".into()))
            }
            Some(current) if current.epoch < u32::MAX => {
                Ok(ProducerIdEpoch { producer_id: current.producer_id, epoch: current.epoch + 1 })
            }
            // No id yet, or its epochs are used up: a fresh id.
            _ => Ok(ProducerIdEpoch { producer_id: self.next_id(controller).await?, epoch: 0 }),
        }
    }

    async fn next_id(&self, controller: &ControllerClient) -> Result<u64, BrokerError> {
        let mut block = self.block.lock().await;
        if block.is_empty() {
            let call = ControllerRequest::AllocateProducerIds { count: PRODUCER_ID_BLOCK };
            *block = match controller.call(&call).await? {
                ControllerReply::ProducerIds { first, count } => first..first + count,
                other => {
                    return Err(BrokerError::Internal(format!("the controller answered an id block with {other:?}")));
                }
            };
        }
        Ok(block.next().expect("a block is never empty"))
    }
}

/// Refuses a batch from an epoch older than its named producer's current one, as far as the
/// metadata this broker holds knows.
pub fn check_not_fenced(metadata: &ClusterMetadata, producer: &v1::ProducerIdentity) -> Result<(), BrokerError> {
    match metadata.producer_epoch(producer.producer_id) {
        Some(current_epoch) if producer.epoch < current_epoch => Err(BrokerError::ProducerFenced { current_epoch }),
        _ => Ok(()),
    }
}
