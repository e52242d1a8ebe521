//! The only place a tracing subscriber is installed: log lines, and — when an OTLP
//! endpoint is configured — the same spans exported as OpenTelemetry traces.

use tracing_subscriber::{
    fmt, fmt::writer::BoxMakeWriter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    EnvFilter, Layer as _,
};

pub use aof_config::{LogFormat, LogTarget};

/// What the exported spans are filtered by: our spans and events at info, not the
/// libraries' internals (and never the exporter's own HTTP client, which would feed
/// on itself). Independent of `RUST_LOG`, so quiet logs do not mean missing traces.
const OTEL_FILTER: &str =
    "info,tower_http=warn,sqlx=warn,hyper=warn,h2=warn,reqwest=warn,rmcp=warn,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

/// Installs the subscriber. Returns the exporter's guard when traces are exported:
/// call [`aof_otel::Guard::shutdown`] once the servers have stopped, to flush.
pub fn init(
    format: LogFormat,
    target: LogTarget,
    default_level: &str,
    otel: Option<&aof_otel::ExportConfig>,
) -> Option<aof_otel::Guard> {
    // The coordinator's request spans (`aof::http`) go to traces, not to every log line.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{default_level},tower_http=warn,sqlx=warn,aof::http=warn"
        ))
    });
    // Colour only for a person at a terminal; log files and collectors get plain text.
    // Containers log to stdout (`AOF_LOG_TARGET=stdout`), where their collectors look.
    let (writer, ansi) = match target {
        LogTarget::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ),
        LogTarget::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::IsTerminal::is_terminal(&std::io::stdout()),
        ),
    };
    let base = fmt::layer().with_writer(writer).with_ansi(ansi);
    let logs = match format {
        LogFormat::Pretty => base.pretty().boxed(),
        LogFormat::Compact => base.compact().boxed(),
        LogFormat::Json => base.json().flatten_event(true).boxed(),
    }
    .with_filter(filter);
    let registry = tracing_subscriber::registry().with(logs);
    let Some(cfg) = otel else {
        registry.init();
        return None;
    };
    match aof_otel::layer(cfg) {
        Ok((layer, guard)) => {
            registry
                .with(layer.with_filter(EnvFilter::new(OTEL_FILTER)))
                .init();
            tracing::info!(
                endpoint = %cfg.traces_endpoint,
                service = %cfg.service_name,
                "exporting traces over OTLP/HTTP"
            );
            Some(guard)
        }
        Err(e) => {
            registry.init();
            // Traces are optional: the service runs without them, and says why.
            tracing::warn!(error = %e, "OpenTelemetry export disabled");
            None
        }
    }
}
