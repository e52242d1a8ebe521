//! The only place a tracing subscriber is installed.

use tracing_subscriber::{fmt, EnvFilter};

pub use aof_config::LogFormat;

pub fn init(format: LogFormat, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},tower_http=warn,sqlx=warn")));
    // Colour only for a person at a terminal; log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Pretty => builder.pretty().init(),
        LogFormat::Compact => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
