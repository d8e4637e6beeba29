//! The Payment service: on InventoryReserved it charges the customer through a payment gateway
//! and publishes PaymentProcessed, or PaymentFailed when the gateway declines the card.
//!
//! The gateway is simulated, in the way real ones behave: it fails transiently at a
//! configurable rate (a timeout: the handler's retriable error, retried in place with backoff
//! and then through the retry topics `inventory.retry.1` and `.2`), declines some cards for good
//! (`tok_declined`, a business outcome: PaymentFailed), and takes an idempotency key (the order
//! id) so that charging again after a crash returns the first charge instead of charging twice.
//! Its ledger (`payment/gateway.jsonl`) stands for the provider's records: every line is a
//! charge made, which is what `duplicate_charges` is counted from.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eddy_client::processing::{HandlerError, Incoming};
use rand::Rng;
use serde_json::json;

use crate::events::{Event, INVENTORY, Meta, PAYMENTS, now_ms};
use crate::service::{self, Common, Connected};

/// The card token the gateway always declines.
pub const DECLINED_TOKEN: &str = "tok_declined";

#[derive(Debug, clap::Args)]
pub struct PaymentArgs {
    #[command(flatten)]
    pub common: Common,
    /// The share of gateway calls that fail transiently (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    pub failure_rate: f64,
}

/// Why the gateway did not charge.
#[derive(Debug)]
enum Refusal {
    /// The gateway timed out: try again.
    Transient,
    /// The card was declined: trying again cannot help.
    Declined,
}

struct Gateway {
    ledger: PathBuf,
    failure_rate: f64,
    /// Idempotency key -> charge id.
    charges: HashMap<String, String>,
}

impl Gateway {
    fn open(ledger: PathBuf, failure_rate: f64) -> std::io::Result<Gateway> {
        let charges = service::read_lines(&ledger)?
            .into_iter()
            .filter_map(|l| Some((l["idempotency_key"].as_str()?.to_string(), l["charge_id"].as_str()?.to_string())))
            .collect();
        Ok(Gateway { ledger, failure_rate, charges })
    }

    fn charge(&mut self, idempotency_key: &str, token: &str, amount_cents: u64) -> Result<String, Refusal> {
        if rand::rng().random_bool(self.failure_rate) {
            return Err(Refusal::Transient);
        }
        if token == DECLINED_TOKEN {
            return Err(Refusal::Declined);
        }
        if let Some(charge) = self.charges.get(idempotency_key) {
            return Ok(charge.clone());
        }
        let charge_id = format!("ch_{:016x}", rand::rng().random::<u64>());
        let line = json!({"charge_id": charge_id, "idempotency_key": idempotency_key, "amount_cents": amount_cents, "at_ms": now_ms()});
        service::append_line(&self.ledger, &line).map_err(|_| Refusal::Transient)?;
        self.charges.insert(idempotency_key.to_string(), charge_id.clone());
        Ok(charge_id)
    }
}

pub async fn run(args: PaymentArgs) -> Result<(), String> {
    if !(0.0..1.0).contains(&args.failure_rate) {
        return Err(format!("--failure-rate {} is not in [0, 1)", args.failure_rate));
    }
    let connected = Arc::new(args.common.connect("payment").await?);
    let gateway = Gateway::open(connected.dir.join("gateway.jsonl"), args.failure_rate).map_err(|e| e.to_string())?;
    let gateway = Arc::new(Mutex::new(gateway));
    let processor = service::processor(&connected, "payment", &[INVENTORY], true).await?;
    tracing::info!(failure_rate = args.failure_rate, "payment: charging reserved orders");
    let handler = move |incoming: Incoming| {
        let (connected, gateway) = (connected.clone(), gateway.clone());
        async move { handle(&connected, &gateway, incoming).await }
    };
    processor.run(handler, service::stopped()).await.map_err(|e| e.to_string())
}

async fn handle(connected: &Connected, gateway: &Mutex<Gateway>, incoming: Incoming) -> Result<(), HandlerError> {
    let Event::InventoryReserved { meta, total_cents, payment_token } = service::event_of(connected, &incoming).await?
    else {
        return Ok(());
    };
    let charged = gateway.lock().expect("gateway lock").charge(&meta.order_id, &payment_token, total_cents);
    let out = Meta {
        event_id: format!("{PAYMENTS}-{}", meta.order_id),
        order_id: meta.order_id.clone(),
        customer: meta.customer.clone(),
        occurred_ms: now_ms(),
    };
    let event = match charged {
        Ok(charge_id) => Event::PaymentProcessed { meta: out, charge_id, amount_cents: total_cents },
        Err(Refusal::Declined) => Event::PaymentFailed { meta: out, reason: "card_declined".into() },
        Err(Refusal::Transient) => return Err(HandlerError::retriable("payment gateway timed out")),
    };
    connected.publisher.publish(&event).await.map_err(|e| service::failed("publishing the payment", e))
}
