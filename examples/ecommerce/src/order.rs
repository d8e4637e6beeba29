//! The Order service: the customer-facing REST API.
//!
//! - `POST /orders` validates an order and publishes OrderCreated (keyed by its order id). With
//!   an `Idempotency-Key` header the order id follows from the key, so a client that retries a
//!   request whose answer it lost creates one order, not two.
//! - `GET /orders/{id}` answers the order's state and history; `GET /orders` every order's state.
//!
//! The state is event-sourced: the service keeps no database, it reads all four topics from the
//! beginning at start (rebuilding every order) and then follows them, folding each event into
//! its order. An event seen twice (same event id) counts once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use eddy_client::{Consumer, ConsumerConfig, SeekTo, TopicPartition};
use opentelemetry::trace::{FutureExt, TraceContextExt, Tracer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::{self, Event, Item, Meta, TOPICS, now_ms};
use crate::inventory::price_of;
use crate::service::{self, Common, Connected};

#[derive(Debug, clap::Args)]
pub struct OrderArgs {
    #[command(flatten)]
    pub common: Common,
    /// Where the REST API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// Most lines in one order, and most of one SKU in a line.
const ITEMS_MAX: usize = 50;
const QUANTITY_MAX: u32 = 100;

/// An order as its events built it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderState {
    pub order_id: String,
    pub status: &'static str,
    pub customer: String,
    pub items: Vec<Item>,
    pub total_cents: u64,
    /// Every terminal outcome seen: exactly one once the order is done.
    pub outcomes: BTreeSet<&'static str>,
    pub history: Vec<Value>,
    #[serde(skip)]
    seen: HashSet<String>,
}

impl OrderState {
    /// Folds one event in; false when it was seen before.
    fn apply(&mut self, event: &Event) -> bool {
        let meta = event.meta();
        if !self.seen.insert(meta.event_id.clone()) {
            return false;
        }
        self.order_id.clone_from(&meta.order_id);
        if self.customer.is_empty() {
            self.customer.clone_from(&meta.customer);
        }
        let (status, rank, terminal) = match event {
            Event::OrderCreated { items, total_cents, .. } => {
                self.items.clone_from(items);
                self.total_cents = *total_cents;
                ("PENDING", 0, false)
            }
            Event::InventoryReserved { .. } => ("RESERVED", 1, false),
            Event::PaymentProcessed { .. } => ("PAID", 2, false),
            Event::InventoryRejected { .. } => ("REJECTED", 3, true),
            Event::PaymentFailed { .. } => ("PAYMENT_FAILED", 3, true),
            Event::OrderShipped { .. } => ("SHIPPED", 3, true),
        };
        if terminal {
            self.outcomes.insert(status);
        }
        // Topics are read side by side, so a later step may be read first: the furthest step
        // wins.
        if rank >= rank_of(self.status) {
            self.status = status;
        }
        self.history
            .push(json!({"type": event.type_name(), "event_id": meta.event_id, "occurred_ms": meta.occurred_ms}));
        self.history.sort_by_key(|h| h["occurred_ms"].as_i64());
        true
    }
}

fn rank_of(status: &str) -> u8 {
    match status {
        "" | "PENDING" => 0,
        "RESERVED" => 1,
        "PAID" => 2,
        _ => 3,
    }
}

type Orders = Arc<Mutex<BTreeMap<String, OrderState>>>;

#[derive(Clone)]
struct App {
    connected: Arc<Connected>,
    orders: Orders,
}

pub async fn run(args: OrderArgs) -> Result<(), String> {
    let connected = Arc::new(args.common.connect("order").await?);
    let orders: Orders = Arc::default();
    let view = tokio::spawn(follow(connected.clone(), orders.clone()));
    let app = App { connected: connected.clone(), orders };
    let router = Router::new()
        .route("/orders", get(list).post(create))
        .route("/orders/{id}", get(show))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("{}: {e}", args.listen))?;
    tracing::info!(listen = %args.listen, "order: REST API up");
    let served = axum::serve(listener, router).with_graceful_shutdown(service::stopped()).await;
    view.abort();
    connected.publisher.close().await;
    served.map_err(|e| e.to_string())
}

/// Reads the four topics from the beginning and keeps following them.
async fn follow(connected: Arc<Connected>, orders: Orders) {
    loop {
        if let Err(e) = follow_once(&connected, &orders).await {
            tracing::warn!(error = %e, "order: reading the events failed; starting over");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn follow_once(connected: &Connected, orders: &Orders) -> eddy_client::ClientResult<()> {
    let mut partitions = Vec::new();
    for topic in TOPICS {
        for p in 0..connected.client.partition_count(topic).await? {
            partitions.push(TopicPartition::new(topic, p));
        }
    }
    let config = ConsumerConfig { fetch_max_wait: Duration::from_millis(200), ..ConsumerConfig::default() };
    let mut consumer = Consumer::assign(connected.client.clone(), &partitions, config).await?;
    for tp in &partitions {
        consumer.seek(tp, SeekTo::Earliest).await?;
    }
    loop {
        for record in consumer.poll().await? {
            match events::decode(&connected.registry, &record.value).await {
                Ok(event) => {
                    let order_id = event.meta().order_id.clone();
                    orders.lock().expect("orders lock").entry(order_id).or_default().apply(&event);
                }
                Err(e) => {
                    tracing::warn!(topic = record.topic, offset = record.offset, error = %e, "order: skipping an undecodable record")
                }
            }
        }
    }
}

/// `POST /orders`'s body.
#[derive(Debug, Deserialize)]
struct NewOrder {
    customer: String,
    items: Vec<NewItem>,
    payment_token: String,
}

#[derive(Debug, Deserialize)]
struct NewItem {
    sku: String,
    quantity: u32,
}

/// An RFC 9457 problem answer.
fn problem(status: StatusCode, title: &str, detail: String) -> Response {
    let body = json!({"type": "about:blank", "title": title, "status": status.as_u16(), "detail": detail});
    (status, [(header::CONTENT_TYPE, "application/problem+json")], body.to_string()).into_response()
}

fn validate(order: &NewOrder) -> Result<Vec<Item>, String> {
    let customer = order.customer.trim();
    let (user, domain) = customer.split_once('@').unwrap_or_default();
    if user.is_empty() || domain.is_empty() {
        return Err(format!("customer {:?} is not an e-mail address", order.customer));
    }
    if order.items.is_empty() || order.items.len() > ITEMS_MAX {
        return Err(format!("an order has 1 to {ITEMS_MAX} items; this one has {}", order.items.len()));
    }
    if order.payment_token.trim().is_empty() {
        return Err("payment_token is empty".into());
    }
    order
        .items
        .iter()
        .map(|item| {
            let price = price_of(&item.sku).ok_or_else(|| format!("unknown sku {:?}", item.sku))?;
            if item.quantity == 0 || item.quantity > QUANTITY_MAX {
                return Err(format!("quantity {} of {} is not 1 to {QUANTITY_MAX}", item.quantity, item.sku));
            }
            Ok(Item { sku: item.sku.clone(), quantity: item.quantity, price_cents: price })
        })
        .collect()
}

/// An order id: from the idempotency key when there is one.
fn order_id(idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(key) => {
            let hash =
                key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
            format!("ord-{hash:016x}")
        }
        None => format!("ord-{:016x}", rand::random::<u64>()),
    }
}

async fn create(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let order: NewOrder = match serde_json::from_slice(&body) {
        Ok(order) => order,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Malformed order", e.to_string()),
    };
    let items = match validate(&order) {
        Ok(items) => items,
        Err(detail) => return problem(StatusCode::UNPROCESSABLE_ENTITY, "Invalid order", detail),
    };
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).filter(|k| !k.is_empty());
    let order_id = order_id(key);
    if let Some(existing) = app.orders.lock().expect("orders lock").get(&order_id).filter(|o| !o.items.is_empty()) {
        return (StatusCode::OK, Json(json!({"order_id": order_id, "status": existing.status}))).into_response();
    }
    let total_cents = items.iter().map(|i| i.price_cents * u64::from(i.quantity)).sum();
    let event = Event::OrderCreated {
        meta: Meta {
            event_id: format!("{}-{order_id}", events::ORDERS),
            order_id: order_id.clone(),
            customer: order.customer.trim().to_string(),
            occurred_ms: now_ms(),
        },
        items,
        total_cents,
        payment_token: order.payment_token,
    };
    // The order's trace starts here: the event carries it on to every service.
    let span = opentelemetry::global::tracer("ecommerce-order").start("POST /orders");
    let cx = opentelemetry::Context::current_with_span(span);
    let published = app.connected.publisher.publish(&event).with_context(cx.clone()).await;
    cx.span().end();
    if let Err(e) = published {
        return problem(StatusCode::SERVICE_UNAVAILABLE, "Order not placed", e.to_string());
    }
    app.orders.lock().expect("orders lock").entry(order_id.clone()).or_default().apply(&event);
    let location = format!("/orders/{order_id}");
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(json!({"order_id": order_id, "status": "PENDING"})))
        .into_response()
}

async fn show(State(app): State<App>, Path(id): Path<String>) -> Response {
    match app.orders.lock().expect("orders lock").get(&id) {
        Some(order) => Json(order.clone()).into_response(),
        None => problem(StatusCode::NOT_FOUND, "No such order", format!("order {id:?} is unknown")),
    }
}

async fn list(State(app): State<App>) -> Response {
    let orders = app.orders.lock().expect("orders lock");
    let all: Vec<Value> =
        orders.values().map(|o| json!({"order_id": o.order_id, "status": o.status, "outcomes": o.outcomes})).collect();
    Json(json!({"orders": all})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(step: &str) -> Meta {
        Meta { event_id: format!("{step}-o1"), order_id: "o1".into(), customer: "a@b.c".into(), occurred_ms: 1 }
    }

    #[test]
    fn the_furthest_step_wins_and_repeats_count_once() {
        let mut order = OrderState::default();
        let shipped = Event::OrderShipped { meta: meta("shipping"), tracking_number: "T".into() };
        assert!(order.apply(&shipped));
        assert!(order.apply(&Event::InventoryReserved {
            meta: meta("inventory"),
            total_cents: 5,
            payment_token: "t".into()
        }));
        assert_eq!(order.status, "SHIPPED");
        assert!(!order.apply(&shipped));
        assert_eq!(order.history.len(), 2);
        assert_eq!(order.outcomes.len(), 1);
    }

    #[test]
    fn orders_are_validated_field_by_field() {
        let order = |customer: &str, sku: &str, quantity: u32, token: &str| NewOrder {
            customer: customer.into(),
            items: vec![NewItem { sku: sku.into(), quantity }],
            payment_token: token.into(),
        };
        assert!(validate(&order("a@b.c", "mug", 2, "tok")).is_ok());
        assert!(validate(&order("nobody", "mug", 2, "tok")).unwrap_err().contains("e-mail"));
        assert!(validate(&order("a@b.c", "yacht", 1, "tok")).unwrap_err().contains("unknown sku"));
        assert!(validate(&order("a@b.c", "mug", 0, "tok")).unwrap_err().contains("quantity"));
        assert!(validate(&order("a@b.c", "mug", 1, " ")).unwrap_err().contains("payment_token"));
        assert_eq!(order_id(Some("k1")), order_id(Some("k1")));
        assert_ne!(order_id(Some("k1")), order_id(Some("k2")));
    }
}
