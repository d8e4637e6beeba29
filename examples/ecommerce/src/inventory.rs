//! The Inventory service: on OrderCreated it reserves stock for every item, or rejects the order
//! when any item is short, and publishes InventoryReserved or InventoryRejected.
//!
//! Its store is a journal of decisions (`inventory/decisions.jsonl`, one fsynced line per
//! order): stock on hand is the starting stock less what was reserved. A decision is written
//! before its event is published, and an order already decided is answered with the same event
//! (same event id) again: an OrderCreated redelivered after a crash neither reserves twice nor
//! decides differently.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eddy_client::processing::{HandlerError, Incoming};
use serde_json::json;

use crate::events::{Event, INVENTORY, Meta, ORDERS, now_ms};
use crate::service::{self, Common, Connected};

/// The catalogue: SKU, price in cents, and starting stock (`None`: the `--stock` setting).
pub const CATALOGUE: [(&str, u64, Option<u64>); 6] = [
    ("mug", 1_200, None),
    ("tee", 2_500, None),
    ("hoodie", 5_900, None),
    ("poster", 900, None),
    ("sticker", 300, None),
    // A limited edition: once it is gone, orders for it are rejected.
    ("limited-print", 9_900, Some(10)),
];

/// The price of a SKU, when the catalogue has it.
pub fn price_of(sku: &str) -> Option<u64> {
    CATALOGUE.iter().find(|(s, _, _)| *s == sku).map(|(_, price, _)| *price)
}

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Starting stock of every SKU without its own.
    #[arg(long, default_value_t = 1_000_000)]
    pub stock: u64,
}

/// A decision as the journal keeps it.
#[derive(Debug, Clone)]
enum Decision {
    Reserved,
    Rejected(String),
}

struct Store {
    path: PathBuf,
    on_hand: HashMap<String, u64>,
    decided: HashMap<String, Decision>,
}

impl Store {
    fn open(path: PathBuf, stock: u64) -> std::io::Result<Store> {
        let mut on_hand: HashMap<String, u64> =
            CATALOGUE.iter().map(|(sku, _, own)| (sku.to_string(), own.unwrap_or(stock))).collect();
        let mut decided = HashMap::new();
        for line in service::read_lines(&path)? {
            let Some(order) = line["order_id"].as_str() else { continue };
            let decision = match line["decision"].as_str() {
                Some("reserved") => {
                    for item in line["items"].as_array().into_iter().flatten() {
                        let (Some(sku), Some(quantity)) = (item["sku"].as_str(), item["quantity"].as_u64()) else {
                            continue;
                        };
                        if let Some(left) = on_hand.get_mut(sku) {
                            *left = left.saturating_sub(quantity);
                        }
                    }
                    Decision::Reserved
                }
                _ => Decision::Rejected(line["reason"].as_str().unwrap_or("rejected").to_string()),
            };
            decided.insert(order.to_string(), decision);
        }
        Ok(Store { path, on_hand, decided })
    }

    /// Decides an order once: reserves its items when all are in stock.
    fn decide(&mut self, order_id: &str, items: &[crate::events::Item]) -> std::io::Result<Decision> {
        if let Some(decision) = self.decided.get(order_id) {
            return Ok(decision.clone());
        }
        let short =
            items.iter().find(|item| self.on_hand.get(&item.sku).copied().unwrap_or(0) < u64::from(item.quantity));
        let decision = match short {
            Some(item) => Decision::Rejected(format!("out of stock: {}", item.sku)),
            None => Decision::Reserved,
        };
        let line = match &decision {
            Decision::Reserved => json!({"order_id": order_id, "decision": "reserved", "items": items}),
            Decision::Rejected(reason) => json!({"order_id": order_id, "decision": "rejected", "reason": reason}),
        };
        service::append_line(&self.path, &line)?;
        if let Decision::Reserved = decision {
            for item in items {
                if let Some(left) = self.on_hand.get_mut(&item.sku) {
                    *left -= u64::from(item.quantity);
                }
            }
        }
        self.decided.insert(order_id.to_string(), decision.clone());
        Ok(decision)
    }
}

pub async fn run(args: InventoryArgs) -> Result<(), String> {
    let connected = Arc::new(args.common.connect("inventory").await?);
    let store = Store::open(connected.dir.join("decisions.jsonl"), args.stock).map_err(|e| e.to_string())?;
    let store = Arc::new(Mutex::new(store));
    let processor = service::processor(&connected, "inventory", &[ORDERS], false).await?;
    tracing::info!("inventory: reserving stock for orders");
    let handler = move |incoming: Incoming| {
        let (connected, store) = (connected.clone(), store.clone());
        async move { handle(&connected, &store, incoming).await }
    };
    let result = processor.run(handler, service::stopped()).await;
    result.map_err(|e| e.to_string())
}

async fn handle(connected: &Connected, store: &Mutex<Store>, incoming: Incoming) -> Result<(), HandlerError> {
    let Event::OrderCreated { meta, items, total_cents, payment_token } =
        service::event_of(connected, &incoming).await?
    else {
        return Ok(());
    };
    let decision = store
        .lock()
        .expect("store lock")
        .decide(&meta.order_id, &items)
        .map_err(|e| HandlerError::retriable(format!("writing the decision: {e}")))?;
    let out = Meta {
        event_id: format!("{INVENTORY}-{}", meta.order_id),
        order_id: meta.order_id.clone(),
        customer: meta.customer.clone(),
        occurred_ms: now_ms(),
    };
    let event = match decision {
        Decision::Reserved => Event::InventoryReserved { meta: out, total_cents, payment_token },
        Decision::Rejected(reason) => Event::InventoryRejected { meta: out, reason },
    };
    connected.publisher.publish(&event).await.map_err(|e| service::failed("publishing the decision", e))
}
