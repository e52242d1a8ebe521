//! OpenTelemetry for AOF, optional: OTLP/HTTP (protobuf) export of the `tracing` spans,
//! and W3C trace-context (`traceparent`) propagation between coordinator, runner and
//! agents, so that a run — and the child runs its agent starts — is one trace.
//!
//! Off unless an endpoint is configured. Without the layer installed, every helper
//! here is a no-op: spans carry no OpenTelemetry context, so nothing is injected,
//! stored or exported.

use opentelemetry::{
    propagation::TextMapPropagator,
    trace::{TraceContextExt as _, TracerProvider as _},
    Context,
};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The environment variable an agent process finds its trace context in (the
/// convention OpenTelemetry's environment-carrier specification settles on).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

/// Where and as whom spans are exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportConfig {
    /// The full OTLP/HTTP traces URL (`…/v1/traces`).
    pub traces_endpoint: String,
    pub service_name: String,
}

#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry exporter: {0}")]
pub struct InitError(String);

/// Keeps the exporter alive; [`Guard::shutdown`] flushes what is still buffered.
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Guard {
    /// Flushes and stops the exporter. Blocks (up to the export timeout): call it
    /// outside the async runtime, once the servers have stopped.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "OpenTelemetry: flushing spans at shutdown failed");
        }
    }
}

/// The `tracing` layer that turns spans into OpenTelemetry spans and exports them in
/// batches (the SDK's own thread, blocking HTTP client: no async runtime needed, so
/// spans ended during shutdown are still sent).
pub fn layer<S>(
    cfg: &ExportConfig,
) -> Result<
    (
        tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>,
        Guard,
    ),
    InitError,
>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(cfg.traces_endpoint.clone())
        .with_headers(Default::default())
        .build()
        .map_err(|e| InitError(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("aof");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // Our spans are few and named; the per-span thread and source-location
        // attributes would only add bytes.
        .with_threads(false)
        .with_location(false);
    Ok((layer, Guard { provider }))
}

/// The traces URL for an OTLP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` semantics:
/// the signal path is appended).
pub fn traces_url(base: &str) -> String {
    format!("{}/v1/traces", base.trim_end_matches('/'))
}

fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// `traceparent` (and `tracestate`) headers for the current span; empty when it has
/// no OpenTelemetry context.
pub fn current_headers() -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        propagator().inject_context(&cx, &mut HeaderInjector(&mut headers));
    }
    headers
}

/// Makes `span` a child of the context the request headers carry, if any. Call it
/// before the span is first entered.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &http::HeaderMap) {
    set_parent(span, propagator().extract(&HeaderExtractor(headers)));
}

/// Makes `span` a child of the W3C `traceparent` string, if it is a valid one.
pub fn set_parent_traceparent(span: &tracing::Span, traceparent: &str) {
    set_parent(span, parse(traceparent));
}

fn set_parent(span: &tracing::Span, cx: Context) {
    if cx.span().span_context().is_valid() {
        // Fails only without the layer or once started: then the span keeps its parent.
        let _ = span.set_parent(cx);
    }
}

fn parse(traceparent: &str) -> Context {
    let carrier = std::collections::HashMap::from([(
        "traceparent".to_string(),
        traceparent.trim().to_string(),
    )]);
    propagator().extract(&carrier)
}

/// `span`'s context as a W3C `traceparent`, to store with a run or hand to a process;
/// `None` when the span has no OpenTelemetry context (export off).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    propagator().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The trace id (32 hex digits) of a `traceparent`, if it is a valid one.
pub fn trace_id(traceparent: &str) -> Option<String> {
    valid_trace_id(&parse(traceparent))
}

/// The trace id of `span`, if it has an OpenTelemetry context.
pub fn span_trace_id(span: &tracing::Span) -> Option<String> {
    valid_trace_id(&span.context())
}

fn valid_trace_id(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

#[cfg(test)]
mod tests;
