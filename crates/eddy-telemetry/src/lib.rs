//! OpenTelemetry for Eddy.
//!
//! Three parts, used by the client, the broker and the gateways alike:
//!
//! - [`propagation`]: the W3C trace context (`traceparent`, `tracestate`) written into and read
//!   from record headers, gRPC metadata and HTTP headers. A record carries the context of the
//!   span that sent it, so whoever consumes it, whenever, continues its trace.
//! - [`messaging`]: the spans, named and attributed as the OpenTelemetry semantic conventions
//!   for messaging describe (`send orders` of kind PRODUCER, `process orders` of kind CONSUMER
//!   linked to the record's context, the broker's `produce`/`append`/`commit` and `fetch`).
//! - [`export`]: the settings of tracing and, with the feature `export`, the SDK tracer provider with an OTLP/gRPC exporter and a
//!   parent-based ratio sampler, installed by the broker and the CLI when given an endpoint.
//!
//! Spans go to the global tracer provider. Without one installed (the default), spans cost
//! almost nothing and record nothing, and no trace context is written anywhere unless one came
//! in: tracing is off until an application or `--otlp-endpoint` turns it on.

pub mod messaging;
pub mod propagation;

pub mod export;

use std::sync::atomic::{AtomicBool, Ordering};

pub use opentelemetry::Context;

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process installed an exporter (see [`export::install`]). Work done only for
/// spans (reading a batch's trace contexts to link them) is skipped when it did not.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Marks the process as exporting spans: for applications that install their own tracer
/// provider and want the broker-side extras (links to the records a fetch returned).
pub fn set_exporting(on: bool) {
    EXPORTING.store(on, Ordering::Relaxed);
}
