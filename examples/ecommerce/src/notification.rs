//! The Notification service: on OrderCreated, PaymentProcessed and PaymentFailed it "sends" an
//! e-mail, by appending it to its outbox (`notification/outbox.jsonl`, one fsynced line per
//! e-mail, which a mailer would drain).
//!
//! The outbox is also its memory of what was sent: an event whose id is in the outbox already
//! (redelivered after a crash between sending and committing) sends nothing, so every event
//! gives exactly one e-mail.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use eddy_client::processing::{HandlerError, Incoming};
use serde_json::json;

use crate::events::{Event, ORDERS, PAYMENTS, now_ms};
use crate::service::{self, Common, Connected};

#[derive(Debug, clap::Args)]
pub struct NotificationArgs {
    #[command(flatten)]
    pub common: Common,
}

struct Outbox {
    path: PathBuf,
    sent: HashSet<String>,
}

impl Outbox {
    fn open(path: PathBuf) -> std::io::Result<Outbox> {
        let sent =
            service::read_lines(&path)?.iter().filter_map(|l| l["event_id"].as_str().map(String::from)).collect();
        Ok(Outbox { path, sent })
    }

    /// Sends the e-mail for `event_id` unless it was sent.
    fn send(&mut self, event_id: &str, order_id: &str, to: &str, subject: &str) -> std::io::Result<bool> {
        if self.sent.contains(event_id) {
            return Ok(false);
        }
        let mail = json!({"event_id": event_id, "order_id": order_id, "to": to, "subject": subject, "at_ms": now_ms()});
        service::append_line(&self.path, &mail)?;
        self.sent.insert(event_id.to_string());
        Ok(true)
    }
}

pub async fn run(args: NotificationArgs) -> Result<(), String> {
    let connected = Arc::new(args.common.connect("notification").await?);
    let outbox = Arc::new(Mutex::new(Outbox::open(connected.dir.join("outbox.jsonl")).map_err(|e| e.to_string())?));
    let processor = service::processor(&connected, "notification", &[ORDERS, PAYMENTS], false).await?;
    tracing::info!("notification: e-mailing customers");
    let handler = move |incoming: Incoming| {
        let (connected, outbox) = (connected.clone(), outbox.clone());
        async move { handle(&connected, &outbox, incoming).await }
    };
    processor.run(handler, service::stopped()).await.map_err(|e| e.to_string())
}

async fn handle(connected: &Connected, outbox: &Mutex<Outbox>, incoming: Incoming) -> Result<(), HandlerError> {
    let event = service::event_of(connected, &incoming).await?;
    let subject = match &event {
        Event::OrderCreated { .. } => "We received your order".to_string(),
        Event::PaymentProcessed { amount_cents, .. } => {
            format!("Payment of {}.{:02} received", amount_cents / 100, amount_cents % 100)
        }
        Event::PaymentFailed { reason, .. } => format!("Your payment did not go through ({reason})"),
        _ => return Ok(()),
    };
    let meta = event.meta();
    outbox
        .lock()
        .expect("outbox lock")
        .send(&meta.event_id, &meta.order_id, &meta.customer, &subject)
        .map_err(|e| HandlerError::retriable(format!("writing the outbox: {e}")))?;
    Ok(())
}
