//! The only place a tracing subscriber is installed.

use tracing_subscriber::{fmt, fmt::writer::BoxMakeWriter, EnvFilter};

pub use aof_config::{LogFormat, LogTarget};

pub fn init(format: LogFormat, target: LogTarget, default_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{default_level},tower_http=warn,sqlx=warn")));
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
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Pretty => builder.pretty().init(),
        LogFormat::Compact => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
