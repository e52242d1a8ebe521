-- OpenTelemetry: the W3C traceparent of the span that created the run, so the runner's
-- execution joins the same trace. NULL when the coordinator exports no traces.
ALTER TABLE runs ADD COLUMN traceparent TEXT;
