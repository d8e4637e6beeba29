//! Exporting spans over OTLP/gRPC: what `eddy server --otlp-endpoint` and the CLI's
//! `--otlp-endpoint` install (feature `export`; the settings and their checks are always there).
//!
//! Spans are batched and sent in the background (the SDK's batch processor: every 5 s or every
//! 512 spans, at most 2,048 queued; beyond that new spans are dropped, never the broker's work
//! slowed). Sampling is parent-based: a trace that came in sampled (its `traceparent` says so)
//! is recorded, one that came in unsampled is not, and a trace started here is recorded with
//! the configured probability.

#[cfg(feature = "export")]
use std::time::Duration;

#[cfg(feature = "export")]
use opentelemetry::{KeyValue, global};
#[cfg(feature = "export")]
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
#[cfg(feature = "export")]
use opentelemetry_sdk::Resource;
#[cfg(feature = "export")]
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// Where spans go and which are kept.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The OTLP/gRPC collector, e.g. `http://127.0.0.1:4317`.
    pub endpoint: String,
    /// `service.name` of every span (`eddy-broker`, `eddy-cli`).
    pub service_name: String,
    /// `service.instance.id` (the broker's node id), when there is one.
    pub instance_id: Option<String>,
    /// The share of traces started here that are recorded, 0 to 1.
    pub sample_ratio: f64,
}

/// Why tracing could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the OTLP endpoint {endpoint:?} is not an http:// or https:// URL with a host: {problem}")]
    Endpoint { endpoint: String, problem: String },
    #[error("the trace sample ratio must be between 0 and 1, not {0}")]
    SampleRatio(f64),
    #[error("the OTLP exporter could not be built: {0}")]
    Build(String),
}

/// Checks an endpoint the way [`install`] will use it, so a bad one is refused at start-up.
pub fn validate_endpoint(endpoint: &str) -> Result<(), ExportError> {
    let problem = |problem: &str| ExportError::Endpoint { endpoint: endpoint.to_string(), problem: problem.into() };
    let uri: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| problem(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(problem("the scheme must be http or https")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(problem("no host"));
    }
    Ok(())
}

/// Checks a sample ratio.
pub fn validate_sample_ratio(ratio: f64) -> Result<(), ExportError> {
    match (0.0..=1.0).contains(&ratio) {
        true => Ok(()),
        false => Err(ExportError::SampleRatio(ratio)),
    }
}

/// Installed tracing: the global tracer provider exports until [`Telemetry::shutdown`], which
/// sends what is still queued.
#[cfg(feature = "export")]
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

#[cfg(feature = "export")]
impl Telemetry {
    /// Sends the spans still queued (waiting up to the exporter's timeout) and stops exporting.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK's shutdown blocks until the export is done; the export runs on this runtime.
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
                eprintln!("warning: the last spans could not be exported: {e}");
            }
        })
        .await;
        crate::set_exporting(false);
    }
}

/// Installs the global tracer provider exporting to `config.endpoint`. Call it inside the Tokio
/// runtime (the exporter's gRPC client runs on it).
#[cfg(feature = "export")]
pub fn install(config: &ExportConfig) -> Result<Telemetry, ExportError> {
    validate_endpoint(&config.endpoint)?;
    validate_sample_ratio(config.sample_ratio)?;
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(config.endpoint.clone())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| ExportError::Build(e.to_string()))?;
    let mut resource = Resource::builder().with_service_name(config.service_name.clone());
    if let Some(id) = &config.instance_id {
        resource = resource.with_attribute(KeyValue::new("service.instance.id", id.clone()));
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sample_ratio))))
        .with_resource(resource.build())
        .build();
    global::set_tracer_provider(provider.clone());
    crate::set_exporting(true);
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_and_ratios_are_checked() {
        validate_endpoint("http://127.0.0.1:4317").unwrap();
        validate_endpoint("https://collector.example:4317").unwrap();
        for bad in ["", "127.0.0.1:4317", "grpc://x:1", "http://", "not a url"] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
        validate_sample_ratio(0.0).unwrap();
        validate_sample_ratio(1.0).unwrap();
        assert!(validate_sample_ratio(1.5).is_err());
        assert!(validate_sample_ratio(f64::NAN).is_err());
    }
}
