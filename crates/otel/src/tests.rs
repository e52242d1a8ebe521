use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt as _;

use super::*;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn without_the_layer_nothing_is_propagated() {
    let span = tracing::info_span!("x");
    set_parent_traceparent(&span, TP);
    let _g = span.enter();
    assert!(current_headers().is_empty());
    assert_eq!(traceparent(&span), None);
    assert_eq!(
        trace_id(TP).as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(trace_id("garbage"), None);
}

#[test]
fn a_span_joins_the_trace_it_is_given_and_passes_it_on() {
    // A provider without an exporter: contexts are real, nothing leaves the process.
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("run");
        set_parent_traceparent(&span, TP);
        let mine = traceparent(&span).expect("a context");
        assert_eq!(trace_id(&mine), trace_id(TP));
        assert_ne!(mine, TP, "the span has its own id under the given parent");
        let _g = span.enter();
        let headers = current_headers();
        assert_eq!(headers.get("traceparent").unwrap().to_str().unwrap(), mine);

        let child = tracing::info_span!("from_headers");
        set_parent_from_headers(&child, &headers);
        assert_eq!(span_trace_id(&child), trace_id(TP));
        drop(_g);
        // An invalid header leaves a fresh root: no error, no panic.
        let orphan = tracing::info_span!("orphan");
        set_parent_traceparent(&orphan, "00-zz");
        assert_ne!(span_trace_id(&orphan), trace_id(TP));
    });
}

#[test]
fn traces_url_appends_the_signal_path() {
    assert_eq!(
        traces_url("http://collector:4318/"),
        "http://collector:4318/v1/traces"
    );
}
