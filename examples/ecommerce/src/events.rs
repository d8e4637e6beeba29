//! The events of the order flow, defined once: their Rust types, their JSON Schemas
//! (`schemas/*.json`, registered in the schema registry under `<topic>-ecommerce.<Type>`, the
//! `topic_record` strategy, so the brokers refuse a value that does not match) and the topics
//! they travel on.
//!
//! Every event is keyed by its order id (so one order's events stay in order on each topic) and
//! carries its `event_id` in the value and in the `ce_id` header, where the processors'
//! processed-id stores find it. Event ids are derived from the order id and the step
//! (`inventory-<order>`, `payment-<order>`, ...): a service that publishes again after a crash
//! publishes the same id, and every consumer recognises the repeat.

use std::sync::Arc;

use bytes::Bytes;
use eddy_client::schema::SchemaRegistry;
use eddy_client::{Client, ClientError, ClientResult, Producer, ProducerConfig, ProducerRecord, Reason};
use eddy_schema::{SchemaInput, SchemaType};
use serde::{Deserialize, Serialize};

/// OrderCreated.
pub const ORDERS: &str = "orders";
/// InventoryReserved, InventoryRejected.
pub const INVENTORY: &str = "inventory";
/// PaymentProcessed, PaymentFailed.
pub const PAYMENTS: &str = "payments";
/// OrderShipped.
pub const SHIPPING: &str = "shipping";
/// Every topic of the flow.
pub const TOPICS: [&str; 4] = [ORDERS, INVENTORY, PAYMENTS, SHIPPING];

/// The header carrying an event's id (CloudEvents' `id` in Kafka binding form).
pub const EVENT_ID_HEADER: &str = "ce_id";

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub quantity: u32,
    pub price_cents: u64,
}

/// What every event carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub event_id: String,
    pub order_id: String,
    pub customer: String,
    pub occurred_ms: i64,
}

/// An event of the order flow. Serialized with a `type` field naming the variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderCreated {
        #[serde(flatten)]
        meta: Meta,
        items: Vec<Item>,
        total_cents: u64,
        payment_token: String,
    },
    InventoryReserved {
        #[serde(flatten)]
        meta: Meta,
        total_cents: u64,
        payment_token: String,
    },
    InventoryRejected {
        #[serde(flatten)]
        meta: Meta,
        reason: String,
    },
    PaymentProcessed {
        #[serde(flatten)]
        meta: Meta,
        charge_id: String,
        amount_cents: u64,
    },
    PaymentFailed {
        #[serde(flatten)]
        meta: Meta,
        reason: String,
    },
    OrderShipped {
        #[serde(flatten)]
        meta: Meta,
        tracking_number: String,
    },
}

/// Every event type: its name, topic and JSON Schema.
pub const TYPES: [(&str, &str, &str); 6] = [
    ("OrderCreated", ORDERS, include_str!("../schemas/OrderCreated.json")),
    ("InventoryReserved", INVENTORY, include_str!("../schemas/InventoryReserved.json")),
    ("InventoryRejected", INVENTORY, include_str!("../schemas/InventoryRejected.json")),
    ("PaymentProcessed", PAYMENTS, include_str!("../schemas/PaymentProcessed.json")),
    ("PaymentFailed", PAYMENTS, include_str!("../schemas/PaymentFailed.json")),
    ("OrderShipped", SHIPPING, include_str!("../schemas/OrderShipped.json")),
];

impl Event {
    pub fn meta(&self) -> &Meta {
        match self {
            Event::OrderCreated { meta, .. }
            | Event::InventoryReserved { meta, .. }
            | Event::InventoryRejected { meta, .. }
            | Event::PaymentProcessed { meta, .. }
            | Event::PaymentFailed { meta, .. }
            | Event::OrderShipped { meta, .. } => meta,
        }
    }

    /// The variant's name, as in the `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::OrderCreated { .. } => "OrderCreated",
            Event::InventoryReserved { .. } => "InventoryReserved",
            Event::InventoryRejected { .. } => "InventoryRejected",
            Event::PaymentProcessed { .. } => "PaymentProcessed",
            Event::PaymentFailed { .. } => "PaymentFailed",
            Event::OrderShipped { .. } => "OrderShipped",
        }
    }

    /// The topic the event travels on.
    pub fn topic(&self) -> &'static str {
        let name = self.type_name();
        TYPES.iter().find(|(t, _, _)| *t == name).map(|(_, topic, _)| *topic).expect("every type has a topic")
    }

    /// The registry subject of the event's schema (`topic_record` strategy).
    pub fn subject(&self) -> String {
        subject(self.topic(), self.type_name())
    }
}

fn subject(topic: &str, type_name: &str) -> String {
    format!("{topic}-ecommerce.{type_name}")
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Creates the flow's topics (3 partitions, replicated up to 3 ways, schema-validated values)
/// and registers the event schemas; what exists already is left as it is.
pub async fn setup(client: &Client, registry: &SchemaRegistry) -> ClientResult<()> {
    let brokers = client.describe_cluster().await?.brokers.len().max(1) as u32;
    let replication = brokers.min(3);
    for topic in TOPICS {
        let configs = [
            ("value.schema.validation".to_string(), "true".to_string()),
            ("value.subject.name.strategy".to_string(), "topic_record".to_string()),
        ]
        .into_iter()
        .collect();
        match client.create_topic_with_configs(topic, 3, replication, configs).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(Reason::TopicAlreadyExists) => {}
            Err(e) => return Err(e),
        }
    }
    for (name, topic, schema) in TYPES {
        let input = SchemaInput { schema_type: SchemaType::Json, schema: schema.to_string(), references: Vec::new() };
        registry.register(&subject(topic, name), &input).await?;
    }
    Ok(())
}

/// Decodes a record's value (the registry's wire format) into an event.
pub async fn decode(registry: &SchemaRegistry, value: &[u8]) -> ClientResult<Event> {
    registry.deserialize(value).await
}

/// Publishes events, each to its topic, keyed by its order id, with its id in `ce_id`.
pub struct Publisher {
    client: Arc<Client>,
    registry: Arc<SchemaRegistry>,
    producers: tokio::sync::Mutex<std::collections::HashMap<&'static str, Arc<Producer>>>,
}

impl Publisher {
    pub fn new(client: Arc<Client>, registry: Arc<SchemaRegistry>) -> Self {
        Publisher { client, registry, producers: Default::default() }
    }

    async fn producer(&self, topic: &'static str) -> ClientResult<Arc<Producer>> {
        let mut producers = self.producers.lock().await;
        if let Some(producer) = producers.get(topic) {
            return Ok(producer.clone());
        }
        let config = ProducerConfig { idempotent: true, ..ProducerConfig::default() };
        let producer = Arc::new(Producer::new(self.client.clone(), topic, config).await?);
        producers.insert(topic, producer.clone());
        Ok(producer)
    }

    /// Publishes `event` and waits until it is acknowledged (acks=all).
    pub async fn publish(&self, event: &Event) -> ClientResult<()> {
        let value = self.registry.serialize(&event.subject(), event).await?;
        let meta = event.meta();
        let record = ProducerRecord {
            key: Some(Bytes::from(meta.order_id.clone())),
            value: Bytes::from(value),
            headers: vec![(EVENT_ID_HEADER.to_string(), Bytes::from(meta.event_id.clone()))],
            ..ProducerRecord::default()
        };
        let delivery = self.producer(event.topic()).await?.send(record).await?;
        delivery.await.unwrap_or_else(|_| Err(ClientError::Invalid("the producer stopped".into())))?;
        Ok(())
    }

    pub async fn close(&self) {
        let producers: Vec<Arc<Producer>> = self.producers.lock().await.drain().map(|(_, p)| p).collect();
        for producer in producers {
            if let Ok(producer) = Arc::try_unwrap(producer) {
                producer.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta { event_id: "e1".into(), order_id: "o1".into(), customer: "a@example.com".into(), occurred_ms: 5 }
    }

    #[test]
    fn events_serialize_flat_with_their_type() {
        let event = Event::PaymentFailed { meta: meta(), reason: "card_declined".into() };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "PaymentFailed");
        assert_eq!(json["event_id"], "e1");
        assert_eq!(json["order_id"], "o1");
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
        assert_eq!(event.topic(), PAYMENTS);
        assert_eq!(event.subject(), "payments-ecommerce.PaymentFailed");
    }

    #[test]
    fn every_schema_names_its_type_and_requires_the_common_fields() {
        for (name, _, schema) in TYPES {
            let schema: serde_json::Value = serde_json::from_str(schema).unwrap();
            assert_eq!(schema["title"], format!("ecommerce.{name}"));
            assert_eq!(schema["properties"]["type"]["const"], name);
            let required: Vec<&str> =
                schema["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
            for field in ["type", "event_id", "order_id"] {
                assert!(required.contains(&field), "{name} requires {field}");
            }
        }
    }
}
