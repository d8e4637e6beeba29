//! W3C trace context in record headers, gRPC metadata and HTTP headers.
//!
//! Always the W3C format (`traceparent`, `tracestate`), whatever global propagator an
//! application set: records outlive the process that wrote them, and every consumer of every
//! language must be able to read their context.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, trace::SpanContext};
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The header naming the trace and the span a record (or request) belongs to.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor-specific trace state that travels with [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// Whether `name` is one of the trace-context headers.
pub fn is_trace_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(TRACEPARENT) || name.eq_ignore_ascii_case(TRACESTATE)
}

/// The two trace-context values, read once.
struct Carried {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Extractor for Carried {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent.as_deref(),
            TRACESTATE => self.tracestate.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

#[derive(Default)]
struct Written {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

/// The context carried by `get` (which answers a header's value by its lower-case name): a
/// remote span context when a valid `traceparent` is there, else an empty context.
pub fn extract(get: impl Fn(&str) -> Option<String>) -> Context {
    let carried = Carried { traceparent: get(TRACEPARENT), tracestate: get(TRACESTATE) };
    if carried.traceparent.is_none() {
        return Context::new();
    }
    TraceContextPropagator::new().extract(&carried)
}

/// The span context carried by `get`, when there is a valid one.
pub fn extract_span_context(get: impl Fn(&str) -> Option<String>) -> Option<SpanContext> {
    let cx = extract(get);
    let span_context = cx.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// Writes the context's span as `traceparent` (and `tracestate` when it has one) through `set`.
/// Writes nothing when the context has no valid span (tracing is off and nothing came in).
pub fn inject(cx: &Context, mut set: impl FnMut(&'static str, String)) {
    if !cx.span().span_context().is_valid() {
        return;
    }
    let mut written = Written::default();
    TraceContextPropagator::new().inject_context(cx, &mut written);
    if let Some(traceparent) = written.traceparent {
        set(TRACEPARENT, traceparent);
    }
    if let Some(tracestate) = written.tracestate {
        set(TRACESTATE, tracestate);
    }
}

/// The context carried by a record's headers (`name`, `value` pairs; names compared without
/// regard to case).
pub fn from_record_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Context {
    extract(|wanted| {
        headers
            .clone()
            .into_iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .and_then(|(_, value)| std::str::from_utf8(value).ok().map(str::to_string))
    })
}

/// The span context a record's headers carry, when they carry a valid one.
pub fn record_span_context<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])> + Clone) -> Option<SpanContext> {
    let span_context = from_record_headers(headers).span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// The context carried by gRPC request metadata.
pub fn from_metadata(metadata: &tonic::metadata::MetadataMap) -> Context {
    extract(|key| metadata.get(key).and_then(|v| v.to_str().ok()).map(str::to_string))
}

/// Writes the context into gRPC request metadata.
pub fn inject_metadata(cx: &Context, metadata: &mut tonic::metadata::MetadataMap) {
    inject(cx, |key, value| {
        if let Ok(value) = value.parse() {
            metadata.insert(key, value);
        }
    });
}

/// The context carried by HTTP request headers.
pub fn from_http(headers: &http::HeaderMap) -> Context {
    extract(|key| headers.get(key).and_then(|v| v.to_str().ok()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceFlags, TraceId, TraceState};

    fn remote() -> Context {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "x")]).unwrap(),
        );
        Context::new().with_remote_span_context(span_context)
    }

    #[test]
    fn a_context_goes_through_record_headers_and_back() {
        let mut headers: Vec<(String, Vec<u8>)> = vec![("k".into(), b"v".to_vec())];
        inject(&remote(), |name, value| headers.push((name.to_string(), value.into_bytes())));
        assert_eq!(
            headers[1],
            ("traceparent".into(), b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec())
        );
        assert_eq!(headers[2], ("tracestate".into(), b"vendor=x".to_vec()));
        let back = from_record_headers(headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        assert_eq!(back.span().span_context(), remote().span().span_context());
    }

    #[test]
    fn nothing_is_written_without_a_valid_span_and_garbage_reads_as_none() {
        let mut written = Vec::new();
        inject(&Context::new(), |name, value| written.push((name, value)));
        assert!(written.is_empty());
        let junk = [("TraceParent", b"00-zz-00f067aa0ba902b7-01".as_slice())];
        assert!(!from_record_headers(junk.iter().copied()).span().span_context().is_valid());
        assert!(extract_span_context(|_| None).is_none());
    }

    #[test]
    fn metadata_and_http_headers_carry_it_too() {
        let mut metadata = tonic::metadata::MetadataMap::new();
        inject_metadata(&remote(), &mut metadata);
        assert_eq!(from_metadata(&metadata).span().span_context(), remote().span().span_context());
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse().unwrap());
        assert_eq!(from_http(&headers).span().span_context().trace_id(), remote().span().span_context().trace_id());
    }
}
