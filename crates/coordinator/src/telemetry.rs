//! Request spans for OpenTelemetry: one per HTTP request, named by its route, child of
//! the caller's `traceparent` when it sends one (runners do for a run's requests).

use axum::{body::Body, extract::MatchedPath, http::Request, response::Response};

/// The span of one request. Target `aof::http`: exported as a trace, kept out of the
/// log lines by the default filter.
pub(crate) fn request_span(req: &Request<Body>) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        target: "aof::http",
        "request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    aof_otel::set_parent_from_headers(&span, req.headers());
    span
}

pub(crate) fn record_status(res: &Response, _latency: std::time::Duration, span: &tracing::Span) {
    span.record("http.response.status_code", res.status().as_u16());
}
