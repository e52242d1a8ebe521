//! `log.level`, including the reference's boolean `DEBUG_LOGGING` and `VERBOSE`.

use crate::{sections::boolean, Config, ConfigError};

/// `log.level`: how much AOF's own crates log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl Config {
    /// `log.level`; `None`: the command's default. The reference's `DEBUG_LOGGING` and
    /// `VERBOSE` are booleans: true is debug, false the default.
    pub fn log_level(&self) -> Result<Option<LogLevel>, ConfigError> {
        self.parse("log.level", |v| {
            let v = v.trim().to_ascii_lowercase();
            Ok(match v.as_str() {
                "error" => Some(LogLevel::Error),
                "warn" | "warning" => Some(LogLevel::Warn),
                "info" => Some(LogLevel::Info),
                "debug" => Some(LogLevel::Debug),
                "trace" => Some(LogLevel::Trace),
                other => match boolean(other) {
                    Ok(true) => Some(LogLevel::Debug),
                    Ok(false) => None,
                    Err(_) => {
                        return Err(
                            "must be error, warn, info, debug, trace, true or false".to_string()
                        )
                    }
                },
            })
        })
        .map(Option::flatten)
    }
}
