//! The only place a tracing subscriber is installed: log lines, and — when an OTLP
//! endpoint is configured — the same spans exported as OpenTelemetry traces.

use tracing_subscriber::{
    fmt, fmt::writer::BoxMakeWriter, layer::SubscriberExt as _, util::SubscriberInitExt as _,
    EnvFilter, Layer as _,
};

pub use aof_config::{LogFormat, LogLevel, LogTarget};

/// AOF's own crates (log targets are module paths); `log.level` above info applies to
/// these, while libraries stay at info so a debug log is ours, not hyper's.
const OUR_CRATES: &[&str] = &[
    "aof",
    "aof_blueprints",
    "aof_coordinator",
    "aof_dashboard",
    "aof_executors",
    "aof_otel",
    "aof_runner",
    "aof_store",
    "aof_store_postgres",
    "aof_store_sqlite",
];

/// The filter when `RUST_LOG` is not set. The coordinator's request spans (`aof::http`)
/// go to traces, not to every log line.
fn default_filter(level: LogLevel) -> String {
    let base = match level {
        LogLevel::Debug | LogLevel::Trace => {
            let ours: Vec<String> = OUR_CRATES
                .iter()
                .map(|c| format!("{c}={}", level.as_str()))
                .collect();
            format!("info,{}", ours.join(","))
        }
        _ => level.as_str().to_string(),
    };
    format!("{base},tower_http=warn,sqlx=warn,aof::http=warn")
}

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
    level: LogLevel,
    otel: Option<&aof_otel::ExportConfig>,
) -> Option<aof_otel::Guard> {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter(level)));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_for_our_crates_only() {
        let f = default_filter(LogLevel::Debug);
        assert!(f.starts_with("info,aof=debug,"), "{f}");
        assert!(
            f.contains("aof_runner=debug") && f.contains("aof_coordinator=debug"),
            "{f}"
        );
        assert!(f.ends_with("aof::http=warn"), "{f}");
        assert!(default_filter(LogLevel::Warn).starts_with("warn,tower_http"));
        for l in [LogLevel::Error, LogLevel::Info, LogLevel::Trace] {
            EnvFilter::try_new(default_filter(l)).expect("a valid filter");
        }
    }
}
