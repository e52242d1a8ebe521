//! AOF configuration: one registry of settings ([`registry::SETTINGS`]) and one merge,
//! `defaults < TOML file (--config / AOF_CONFIG) < environment (AOF_* then reference
//! aliases) < flags`. Values are layered as strings with their source; typed sections
//! ([`Config::coordinator`], [`Config::runner`], …) parse and validate them and name the
//! setting and its source in every error.
//!
//! This crate owns precedence. It must not read the process environment itself (callers
//! pass a lookup function, so tests need no global state) nor parse command lines.

mod log_level;
#[cfg(feature = "runner")]
mod profile;
pub mod reference;
pub mod registry;
#[cfg(feature = "runner")]
mod runner_ref;
mod sections;

use std::{collections::BTreeMap, fmt, path::PathBuf};

pub use log_level::LogLevel;
pub use registry::{markdown_table, Setting, SETTINGS};
pub use sections::{ApiConfig, LogFormat, LogTarget, OtelSettings};

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    /// The variable that won, and any other set names of the same setting it beat.
    Env {
        name: &'static str,
        over: Vec<&'static str>,
    },
    Flag(&'static str),
}

impl Source {
    fn rank(&self) -> u8 {
        match self {
            Source::Default => 0,
            Source::File(_) => 1,
            Source::Env { .. } => 2,
            Source::Flag(_) => 3,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env { name, over } if over.is_empty() => write!(f, "env {name}"),
            Source::Env { name, over } => write!(f, "env {name} (over {})", over.join(", ")),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration error, one line naming the setting and where its value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(msg: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(msg.into()))
}

/// One merged value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub raw: String,
    pub source: Source,
}

/// The inputs of a merge. Flags are `(file key, value)` pairs for the flags the user
/// actually gave; the registry names the flag for display.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// `--config PATH`, if given (else `AOF_CONFIG` is read).
    pub config_path: Option<PathBuf>,
    pub flags: Vec<(&'static str, String)>,
}

/// The merged settings.
#[derive(Debug, Clone)]
pub struct Config {
    values: BTreeMap<&'static str, Entry>,
    /// The TOML file that was read, if any.
    pub file: Option<PathBuf>,
    /// The AOF reference's variables that are set (`reference::REFERENCE_VARS`); read by
    /// the runner's settings only.
    #[cfg_attr(not(feature = "runner"), allow(dead_code))]
    reference: BTreeMap<&'static str, String>,
    /// What a server logs as warnings at start (`Config::warnings`).
    warnings: Vec<String>,
}

impl Config {
    /// Merges defaults, the file, the environment (through `env`) and `inputs.flags`.
    pub fn load(
        inputs: &Inputs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // Empty variables count as unset: `FOO= aof …` should not be an error.
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let mut values = BTreeMap::new();
        for s in SETTINGS {
            if let registry::DefaultValue::Value(v) = s.default {
                values.insert(
                    s.key,
                    Entry {
                        raw: v.to_string(),
                        source: Source::Default,
                    },
                );
            }
        }
        let file = inputs
            .config_path
            .clone()
            .or_else(|| env(registry::CONFIG_ENV).map(PathBuf::from));
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            for (key, raw) in parse_file(&text, path)? {
                values.insert(
                    key,
                    Entry {
                        raw,
                        source: Source::File(path.clone()),
                    },
                );
            }
        }
        for s in SETTINGS {
            let set: Vec<(&'static str, String)> = std::iter::once(s.env)
                .chain(s.aliases.iter().copied())
                .filter_map(|name| env(name).map(|v| (name, v)))
                .collect();
            if let Some((name, raw)) = set.first() {
                let over = set[1..].iter().map(|(n, _)| *n).collect();
                values.insert(
                    s.key,
                    Entry {
                        raw: raw.clone(),
                        source: Source::Env { name, over },
                    },
                );
            }
        }
        // The reference keeps its state in `$AGENT_ORCHESTRATOR_PROJECT_DIR/.agent-orchestrator`;
        // that counts only where nothing more specific set the data dir.
        if let Some(project) = env(registry::PROJECT_DIR_ENV) {
            if values
                .get("data_dir")
                .is_none_or(|e| e.source == Source::Default)
            {
                let dir = PathBuf::from(project).join(".agent-orchestrator");
                values.insert(
                    "data_dir",
                    Entry {
                        raw: dir.display().to_string(),
                        source: Source::Env {
                            name: registry::PROJECT_DIR_ENV,
                            over: Vec::new(),
                        },
                    },
                );
            }
        }
        let reference = reference::collect(env);
        let mut warnings = reference::refused_warnings(&reference);
        for (key, raw) in &inputs.flags {
            let s = registry::find(key)
                .unwrap_or_else(|| panic!("flag for unknown setting `{key}` (a bug)"));
            values.insert(
                s.key,
                Entry {
                    raw: raw.clone(),
                    source: Source::Flag(s.flag.unwrap_or("--?")),
                },
            );
        }
        // Like the reference, Auth0 settings count only with auth on (a runner reads
        // AUTH0_DOMAIN for its token endpoint instead, see `runner`).
        if values
            .get("auth.enabled")
            .is_some_and(|e| sections::boolean(&e.raw) == Ok(true))
        {
            reference::map_auth0(&reference, &mut values, &mut warnings);
        }
        Ok(Config {
            values,
            file,
            reference,
            warnings,
        })
    }

    /// Reads the process environment (the CLI's entry point).
    pub fn from_process(inputs: &Inputs) -> Result<Config, ConfigError> {
        Config::load(inputs, |k| std::env::var(k).ok())
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        debug_assert!(registry::find(key).is_some(), "unknown setting {key}");
        self.values.get(key)
    }

    /// Warnings for a server to log at start: each AOF reference variable that is set but
    /// not supported (naming what to use instead), and each reference setting overruled
    /// by a different AOF one.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A recognised AOF reference variable's value, if set (non-empty).
    #[cfg(feature = "runner")]
    fn reference_var(&self, name: &str) -> Option<&str> {
        self.reference.get(name).map(String::as_str)
    }

    /// Notes for the log: settings set under two names, and which one won.
    pub fn shadowed(&self) -> Vec<String> {
        self.values
            .values()
            .filter_map(|e| match &e.source {
                Source::Env { name, over } if !over.is_empty() => {
                    Some(format!("{name} wins over {}", over.join(", ")))
                }
                _ => None,
            })
            .collect()
    }

    /// Every setting with its merged value (secrets masked) and source, in registry
    /// order; `None` where the setting is unset and derived.
    pub fn show(&self) -> Vec<Shown> {
        SETTINGS
            .iter()
            .map(|s| {
                let e = self.values.get(s.key);
                Shown {
                    setting: s,
                    value: e.map(|e| {
                        if s.secret {
                            "****".to_string()
                        } else {
                            e.raw.clone()
                        }
                    }),
                    source: e.map_or(Source::Default, |e| e.source.clone()),
                }
            })
            .collect()
    }
}

/// A row of `aof config show`.
#[derive(Debug, Clone)]
pub struct Shown {
    pub setting: &'static Setting,
    pub value: Option<String>,
    pub source: Source,
}

impl Shown {
    /// The value to print: the merged one, or how the default is derived.
    pub fn display_value(&self) -> String {
        match (&self.value, self.setting.default) {
            (Some(v), _) => v.clone(),
            (None, registry::DefaultValue::Derived(d)) => format!("({})", d.replace('`', "")),
            (None, registry::DefaultValue::Value(v)) => v.to_string(),
        }
    }
}

/// Flattens a TOML document to `(dotted key, string value)`; unknown keys are errors.
fn parse_file(
    text: &str,
    path: &std::path::Path,
) -> Result<Vec<(&'static str, String)>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError(format!(
            "config file {}: {}",
            path.display(),
            e.message().trim()
        ))
    })?;
    let mut out = Vec::new();
    flatten(&table, "", path, &mut out)?;
    Ok(out)
}

fn flatten(
    table: &toml::Table,
    prefix: &str,
    path: &std::path::Path,
    out: &mut Vec<(&'static str, String)>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = format!("{prefix}{k}");
        if let toml::Value::Table(t) = v {
            if !SETTINGS
                .iter()
                .any(|s| s.key.starts_with(&format!("{key}.")))
            {
                return err(format!(
                    "config file {}: unknown section `[{key}]`",
                    path.display()
                ));
            }
            flatten(t, &format!("{key}."), path, out)?;
            continue;
        }
        let Some(s) = registry::find(&key) else {
            return err(format!(
                "config file {}: unknown key `{key}` (see `aof config table` for the keys)",
                path.display()
            ));
        };
        let raw = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    toml::Value::Integer(i) => Ok(i.to_string()),
                    _ => err(format!(
                        "config file {}: `{key}` must be a list of strings",
                        path.display()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return err(format!(
                    "config file {}: `{key}` cannot be a {}",
                    path.display(),
                    other.type_str()
                ))
            }
        };
        out.push((s.key, raw));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
