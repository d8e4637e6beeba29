//! The Shipping service: on PaymentProcessed it ships the order and publishes OrderShipped
//! (event id `shipping-<order>`, so a repeat after a crash is recognised downstream).

use std::sync::Arc;

use eddy_client::processing::{HandlerError, Incoming};

use crate::events::{Event, Meta, PAYMENTS, SHIPPING, now_ms};
use crate::service::{self, Common, Connected};

#[derive(Debug, clap::Args)]
pub struct ShippingArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: ShippingArgs) -> Result<(), String> {
    let connected = Arc::new(args.common.connect("shipping").await?);
    let processor = service::processor(&connected, "shipping", &[PAYMENTS], false).await?;
    tracing::info!("shipping: shipping paid orders");
    let handler = move |incoming: Incoming| {
        let connected = connected.clone();
        async move { handle(&connected, incoming).await }
    };
    processor.run(handler, service::stopped()).await.map_err(|e| e.to_string())
}

async fn handle(connected: &Connected, incoming: Incoming) -> Result<(), HandlerError> {
    let Event::PaymentProcessed { meta, .. } = service::event_of(connected, &incoming).await? else {
        return Ok(());
    };
    // The tracking number follows from the order: shipping twice names the same parcel.
    let tracking_number = format!("TRK-{:08X}", crc(&meta.order_id));
    let event = Event::OrderShipped {
        meta: Meta {
            event_id: format!("{SHIPPING}-{}", meta.order_id),
            order_id: meta.order_id,
            customer: meta.customer,
            occurred_ms: now_ms(),
        },
        tracking_number,
    };
    connected.publisher.publish(&event).await.map_err(|e| service::failed("publishing the shipment", e))
}

/// A small stable hash (FNV-1a, 32 bits).
fn crc(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}
