//! The e-commerce example: five services reacting to each other's events over Eddy, and `run`,
//! which starts everything, places orders and checks the outcome. See examples/ecommerce/README.md.

mod events;
mod inventory;
mod notification;
mod order;
mod payment;
mod run;
mod service;
mod shipping;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The e-commerce example's services, and a driver that runs them all.
#[derive(Debug, Parser)]
#[command(name = "ecommerce", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster (or use EDDY_BROKERS) and the five services, place orders, wait for
    /// every outcome and print a JSON summary; non-zero exit when anything is stuck or doubled.
    Run(run::RunArgs),
    /// The Order service: POST /orders, GET /orders/{id}, state rebuilt from the events.
    Order(order::OrderArgs),
    /// The Inventory service: reserves stock on OrderCreated.
    Inventory(inventory::InventoryArgs),
    /// The Payment service: charges on InventoryReserved through a flaky gateway.
    Payment(payment::PaymentArgs),
    /// The Notification service: e-mails (to an outbox) on orders and payments.
    Notification(notification::NotificationArgs),
    /// The Shipping service: ships paid orders.
    Shipping(shipping::ShippingArgs),
}

impl Command {
    fn service(&self) -> Option<(&'static str, &service::Common)> {
        match self {
            Command::Run(_) => None,
            Command::Order(a) => Some(("order", &a.common)),
            Command::Inventory(a) => Some(("inventory", &a.common)),
            Command::Payment(a) => Some(("payment", &a.common)),
            Command::Notification(a) => Some(("notification", &a.common)),
            Command::Shipping(a) => Some(("shipping", &a.common)),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        // A service exports its spans when given a collector: one trace follows an order from
        // POST /orders through every service.
        let telemetry = match cli.command.service() {
            Some((name, common)) if common.otlp_endpoint.is_some() => {
                let config = eddy_telemetry::export::ExportConfig {
                    endpoint: common.otlp_endpoint.clone().unwrap_or_default(),
                    service_name: format!("ecommerce-{name}"),
                    instance_id: None,
                    sample_ratio: 1.0,
                };
                Some(eddy_telemetry::export::install(&config).map_err(|e| e.to_string())?)
            }
            _ => None,
        };
        let result = match cli.command {
            Command::Run(args) => run::run(args).await.and_then(|ok| if ok { Ok(()) } else { Err(String::new()) }),
            Command::Order(args) => order::run(args).await,
            Command::Inventory(args) => inventory::run(args).await,
            Command::Payment(args) => payment::run(args).await,
            Command::Notification(args) => notification::run(args).await,
            Command::Shipping(args) => shipping::run(args).await,
        };
        if let Some(telemetry) = telemetry {
            telemetry.shutdown().await;
        }
        result
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_empty() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
