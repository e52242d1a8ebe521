//! Typed sections over the merged strings: parsing, derived defaults, validation.
//! Every error names the setting as the user wrote it (`RUNNER_POLL_TIMEOUT=soon`,
//! `--listen nope`, or the file key and file).

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

// The coordinator's and the runner's sections exist only in builds with that part
// (aof-cli's features; Cargo.toml); everything else is shared.
#[cfg(feature = "coordinator")]
use aof_coordinator::{
    caps::CapsConfig,
    config::{AuthConfig, OidcConfig, PostgresUrl},
    CoordinatorConfig,
};
#[cfg(feature = "coordinator")]
use aof_core::RecoveryMode;
#[cfg(feature = "runner")]
use aof_executors::{claude::ClaudeCodeConfig, ExecutorConfig};
#[cfg(feature = "runner")]
use aof_runner::RunnerConfig;
#[cfg(feature = "coordinator")]
use aof_store_sqlite::Durability;

use crate::{err, Config, ConfigError, Entry, Source};

/// Where the CLI and runners find the coordinator.
#[derive(Clone)]
pub struct ApiConfig {
    /// Base URL without a trailing slash.
    pub url: String,
    /// Bearer token (`AOF_API_KEY`); never printed.
    pub key: Option<String>,
}

impl fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiConfig")
            .field("url", &self.url)
            .field("key", &self.key.as_ref().map(|_| "****"))
            .finish()
    }
}

/// `otel.*`, resolved: the OTLP/HTTP traces URL and the service name, if one was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtelSettings {
    pub traces_endpoint: String,
    pub service_name: Option<String>,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Compact,
    Json,
}

/// `log.target`: the stream logs are written to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTarget {
    Stderr,
    Stdout,
}

pub(crate) fn describe(key: &str, e: &Entry) -> String {
    // Error messages name the input, but never a secret in it.
    let raw = match crate::registry::find(key) {
        #[cfg(feature = "coordinator")]
        Some(s) if s.secret && key == "coordinator.database_url" => {
            aof_store_postgres::redact_url(&e.raw)
        }
        Some(s) if s.secret => "****".to_string(),
        _ => e.raw.clone(),
    };
    match &e.source {
        Source::Env { name, .. } => format!("{name}={raw}"),
        Source::Flag(flag) => format!("{flag} {raw}"),
        Source::File(p) => format!("{key} = {raw:?} in {}", p.display()),
        Source::Default => format!("{key} (default {raw:?})"),
    }
}

pub(crate) fn seconds(v: &str) -> Result<Duration, String> {
    let f: f64 = v
        .trim()
        .parse()
        .map_err(|_| "must be a number of seconds".to_string())?;
    if !(f > 0.0 && f < 1e9) {
        return Err("must be a number of seconds > 0".into());
    }
    Ok(Duration::from_secs_f64(f))
}

pub(crate) fn boolean(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

pub(crate) fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

impl Config {
    /// Parses `key` with `f`; `None` when unset. Errors say which input was wrong.
    pub(crate) fn parse<T>(
        &self,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(e) => f(&e.raw)
                .map(Some)
                .map_err(|m| ConfigError(format!("{}: {m}", describe(key, e)))),
        }
    }

    fn parse_req<T>(
        &self,
        key: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        self.parse(key, f)?
            .ok_or_else(|| ConfigError(format!("{key} has no value (a bug)")))
    }

    pub(crate) fn string(&self, key: &str) -> Option<String> {
        self.get(key).map(|e| e.raw.clone())
    }

    /// `data_dir`.
    pub fn data_dir(&self) -> PathBuf {
        PathBuf::from(self.string("data_dir").unwrap_or_default())
    }

    /// A path that defaults to `<data_dir>/<name>`; a `data_dir` from a higher layer
    /// than the path's own value wins (so `--data-dir` relocates everything).
    fn under_data_dir(&self, key: &str, name: &str) -> PathBuf {
        let dir = self.get("data_dir");
        match self.get(key) {
            Some(e) if dir.is_none_or(|d| e.source.rank() >= d.source.rank()) => {
                PathBuf::from(&e.raw)
            }
            _ => self.data_dir().join(name),
        }
    }

    /// `coordinator.database_url` over `db_path`: a `postgres://` URL selects PostgreSQL;
    /// `sqlite://PATH` names the SQLite file (`sqlite://` alone keeps `db_path`).
    #[cfg(feature = "coordinator")]
    fn database(&self) -> Result<(PathBuf, Option<PostgresUrl>), ConfigError> {
        let db_path = self.under_data_dir("coordinator.db_path", "observability.db");
        let url = self.parse("coordinator.database_url", |v| {
            let v = v.trim();
            if aof_store_postgres::is_postgres_url(v) {
                Ok(Err(PostgresUrl(v.to_string())))
            } else if let Some(path) = v.strip_prefix("sqlite://") {
                Ok(Ok(path.to_string()))
            } else {
                Err("must be postgres://USER@HOST:PORT/DB or sqlite://PATH".into())
            }
        })?;
        Ok(match url {
            None => (db_path, None),
            Some(Err(pg)) => (db_path, Some(pg)),
            Some(Ok(path)) if path.is_empty() => (db_path, None),
            Some(Ok(path)) => (PathBuf::from(path), None),
        })
    }

    /// Where the CLI talks to: the first of `api.url`'s coordinators.
    pub fn api(&self) -> Result<ApiConfig, ConfigError> {
        let url = self.api_urls()?.swap_remove(0);
        Ok(ApiConfig {
            url,
            key: self.string("api.key"),
        })
    }

    /// `api.url`: one coordinator URL, or several (comma separated) sharing one store;
    /// a runner fails over between them in this order.
    pub fn api_urls(&self) -> Result<Vec<String>, ConfigError> {
        self.parse_req("api.url", |v| {
            v.split(',')
                .map(|u| {
                    let u = u.trim().trim_end_matches('/');
                    if u.starts_with("http://") || u.starts_with("https://") {
                        Ok(u.to_string())
                    } else if u.is_empty() {
                        Err("has an empty URL in its list".to_string())
                    } else {
                        Err(format!("{u:?} must start with http:// or https://"))
                    }
                })
                .collect()
        })
    }

    /// `dashboard.listen`: where `aof dashboard` serves.
    /// `coordinator.shutdown_timeout`: how long a stop may take, for every server
    /// command (`aof coordinator`, `aof up`, `aof dashboard`).
    pub fn shutdown_timeout(&self) -> Result<Duration, ConfigError> {
        // An hour at most: a stop that may take longer is a hang by another name.
        self.parse_req("coordinator.shutdown_timeout", |v| {
            seconds(v)
                .ok()
                .filter(|d| *d <= Duration::from_secs(3600))
                .ok_or_else(|| "must be a number of seconds, > 0 and at most 3600".to_string())
        })
    }

    pub fn dashboard_listen(&self) -> Result<SocketAddr, ConfigError> {
        self.parse_req("dashboard.listen", |v| {
            SocketAddr::from_str(v.trim())
                .map_err(|_| "must be ADDRESS:PORT, e.g. 0.0.0.0:8080".to_string())
        })
    }

    pub fn log_format(&self) -> Result<LogFormat, ConfigError> {
        self.parse_req("log.format", |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "pretty" => Ok(LogFormat::Pretty),
                "compact" => Ok(LogFormat::Compact),
                "json" => Ok(LogFormat::Json),
                _ => Err("must be pretty, compact or json".into()),
            }
        })
    }

    pub fn log_target(&self) -> Result<LogTarget, ConfigError> {
        self.parse_req("log.target", |v| {
            match v.trim().to_ascii_lowercase().as_str() {
                "stderr" => Ok(LogTarget::Stderr),
                "stdout" => Ok(LogTarget::Stdout),
                _ => Err("must be stderr or stdout".into()),
            }
        })
    }

    /// `otel.*`: where traces are exported, or `None` (the default: no export).
    pub fn otel(&self) -> Result<Option<OtelSettings>, ConfigError> {
        let url = |v: &str| {
            let v = v.trim();
            match v.split_once("://") {
                Some(("http" | "https", rest)) if !rest.is_empty() => Ok(v.to_string()),
                _ => Err("must be an http:// or https:// URL".to_string()),
            }
        };
        let traces = self.parse("otel.traces_endpoint", url)?;
        let base = self.parse("otel.endpoint", url)?;
        let Some(traces_endpoint) =
            traces.or_else(|| base.map(|b| format!("{}/v1/traces", b.trim_end_matches('/'))))
        else {
            return Ok(None);
        };
        Ok(Some(OtelSettings {
            traces_endpoint,
            service_name: self
                .string("otel.service_name")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        }))
    }

    #[cfg(feature = "coordinator")]
    pub fn coordinator(&self) -> Result<CoordinatorConfig, ConfigError> {
        let d = CoordinatorConfig::default();
        let secs = |key: &str| self.parse(key, seconds);
        let heartbeat_interval =
            secs("coordinator.heartbeat_interval")?.unwrap_or(d.heartbeat_interval);
        let lease_ttl = secs("coordinator.lease_ttl")?.unwrap_or(heartbeat_interval * 3);
        let sweep_interval = secs("coordinator.sweep_interval")?
            .unwrap_or((lease_ttl / 4).min(Duration::from_secs(5)));
        let (db_path, postgres_url) = self.database()?;
        let cfg = CoordinatorConfig {
            listen: self.parse_req("coordinator.listen", |v| {
                SocketAddr::from_str(v.trim())
                    .map_err(|_| "must be ADDRESS:PORT, e.g. 127.0.0.1:8765".to_string())
            })?,
            db_path,
            postgres_url,
            agents_dir: self.under_data_dir("coordinator.agents_dir", "agents"),
            durability: self.parse_req("coordinator.sqlite_synchronous", |v| {
                Durability::from_str(v.trim()).map_err(|_| "must be normal or full".to_string())
            })?,
            poll_timeout: secs("coordinator.poll_timeout")?.unwrap_or(d.poll_timeout),
            heartbeat_interval,
            stale_threshold: secs("coordinator.stale_threshold")?.unwrap_or(d.stale_threshold),
            remove_threshold: secs("coordinator.remove_threshold")?.unwrap_or(d.remove_threshold),
            no_match_timeout: secs("coordinator.no_match_timeout")?.unwrap_or(d.no_match_timeout),
            retention: self.parse("coordinator.retention_days", |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|d| (1..=36_500).contains(d))
                    .map(|d| Duration::from_secs(d * 86_400))
                    .ok_or_else(|| "must be a whole number of days, 1 to 36500".to_string())
            })?,
            audit_retention: self.parse_req("coordinator.audit_retention_days", |v| {
                match v.trim().parse::<u64>() {
                    Ok(0) => Ok(None),
                    Ok(d) if d <= 36_500 => Ok(Some(Duration::from_secs(d * 86_400))),
                    _ => Err("must be a whole number of days, 0 (forever) to 36500".to_string()),
                }
            })?,
            recovery: self.parse_req("coordinator.recovery_mode", |v| {
                RecoveryMode::from_str(v).map_err(|_| "must be none, stale or all".to_string())
            })?,
            lease_ttl,
            sweep_interval,
            cors_origins: self
                .string("coordinator.cors_origins")
                .unwrap_or(d.cors_origins),
            allowed_hosts: self
                .string("coordinator.allowed_hosts")
                .map(|v| list(&v).iter().map(|h| h.to_ascii_lowercase()).collect())
                .unwrap_or_default(),
            max_body_bytes: self.parse_req("coordinator.max_body_bytes", |v| {
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| "must be a byte count > 0".to_string())
            })?,
            placeholder_env: self
                .string("coordinator.placeholder_env")
                .map(|v| list(&v))
                .unwrap_or_default(),
            project_dir_roots: self
                .string("coordinator.project_dir_roots")
                .map(|v| list(&v).into_iter().map(PathBuf::from).collect())
                .unwrap_or_default(),
            insecure_listen: self.parse_req("coordinator.insecure_listen", boolean)?,
            docs_enabled: self.parse_req("coordinator.docs_enabled", boolean)?,
            auth: self.auth()?,
            caps: self.caps()?,
            shutdown_timeout: self.shutdown_timeout()?,
        };
        cfg.validate().map_err(ConfigError)?;
        Ok(cfg)
    }

    /// `coordinator.max_*_per_key`: caps on long-lived requests per credential.
    #[cfg(feature = "coordinator")]
    fn caps(&self) -> Result<CapsConfig, ConfigError> {
        let n = |key| {
            self.parse_req(key, |v| {
                v.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| "must be a whole number, at least 1".to_string())
            })
        };
        Ok(CapsConfig {
            streams: n("coordinator.max_streams_per_key")?,
            polls: n("coordinator.max_polls_per_key")?,
            mcp_waits: n("coordinator.max_mcp_waits_per_key")?,
        })
    }

    /// `[auth]`; OIDC is on when any of its keys is set, and then needs all three.
    #[cfg(feature = "coordinator")]
    pub fn auth(&self) -> Result<AuthConfig, ConfigError> {
        let oidc_keys = ["auth.oidc_issuer", "auth.oidc_audience", "auth.oidc_jwks"];
        let set: Vec<Option<String>> = oidc_keys.iter().map(|k| self.string(k)).collect();
        let oidc = match (&set[0], &set[1], &set[2]) {
            (Some(issuer), Some(audience), Some(jwks)) => Some(OidcConfig {
                issuer: issuer.trim().to_string(),
                audience: audience.trim().to_string(),
                jwks: jwks.trim().to_string(),
                role_claim: self.string("auth.oidc_role_claim").unwrap_or_default(),
            }),
            (None, None, None) => None,
            _ => {
                let missing: Vec<String> = oidc_keys
                    .iter()
                    .zip(&set)
                    .filter(|(_, v)| v.is_none())
                    .map(|(k, _)| match *k {
                        "auth.oidc_audience" => {
                            format!("{k} (AOF_OIDC_AUDIENCE or AUTH0_AUDIENCE)")
                        }
                        "auth.oidc_issuer" => format!("{k} (AOF_OIDC_ISSUER or AUTH0_DOMAIN)"),
                        _ => format!("{k} (AOF_OIDC_JWKS or AUTH0_DOMAIN)"),
                    })
                    .collect();
                return err(format!(
                    "OIDC needs auth.oidc_issuer, auth.oidc_audience and auth.oidc_jwks; missing: {}",
                    missing.join(", ")
                ));
            }
        };
        if let Some(o) = &oidc {
            aof_coordinator::auth::oidc::check_jwks_source(&o.jwks).map_err(ConfigError)?;
        }
        let enabled = self.parse_req("auth.enabled", boolean)?;
        if oidc.is_some() && !enabled {
            return err("auth.oidc_* is set but auth is off: set AUTH_ENABLED=true");
        }
        Ok(AuthConfig {
            enabled,
            metrics_public: self.parse_req("auth.metrics_public", boolean)?,
            cookie_secure: self.parse_req("auth.cookie_secure", boolean)?,
            oidc,
        })
    }

    /// The runner's settings; `url` overrides `api.url` (`aof up` passes its own address).
    #[cfg(feature = "runner")]
    pub fn runner(&self, url: Option<String>) -> Result<RunnerConfig, ConfigError> {
        let urls = match url {
            Some(u) => vec![u],
            None => self.api_urls()?,
        };
        let max_concurrent = self.parse_req("runner.max_concurrent", |v| {
            v.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| "must be a whole number, at least 1".to_string())
        })?;
        let stop_grace = self.parse_req("runner.stop_grace", |v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..3600.0).contains(f))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| "must be between 0 and 3600 seconds".to_string())
        })?;
        let drain_timeout = self.parse_req("runner.drain_timeout", |v| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|f| (0.0..86400.0).contains(f))
                .map(Duration::from_secs_f64)
                .ok_or_else(|| "must be between 0 and 86400 seconds".to_string())
        })?;
        let run_limits = aof_runner::RunLimits {
            timeout_seconds: self.parse("runner.run_timeout", |v| {
                seconds(v).map(|d| d.as_secs_f64())
            })?,
            max_tokens: self.parse("runner.run_max_tokens", |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| "must be a whole number of tokens, at least 1".to_string())
            })?,
            max_cost_usd: self.parse("runner.run_max_cost_usd", |v| {
                v.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite() && *c > 0.0)
                    .ok_or_else(|| "must be a positive number of dollars".to_string())
            })?,
        };
        let executor_name = self.string("runner.executor").unwrap_or_default();
        // A reference profile (`PROFILE`) names the executor and the announced profile.
        let (executor, executor_name, executor_announce) = match self.profile_executor()? {
            Some(p) => (p.executor, p.name, Some(p.announce)),
            None => (self.executor(&executor_name)?, executor_name, None),
        };
        let project_dir = match self.string("runner.project_dir") {
            Some(p) => PathBuf::from(p),
            None => std::env::current_dir()
                .map_err(|e| ConfigError(format!("cannot read the current directory: {e}")))?,
        };
        Ok(RunnerConfig {
            urls,
            tags: self
                .string("runner.tags")
                .map(|t| list(&t))
                .unwrap_or_default(),
            require_matching_tags: self.parse_req("runner.require_matching_tags", boolean)?,
            max_concurrent,
            hostname: self
                .string("runner.hostname")
                .unwrap_or_else(machine_hostname),
            project_dir: project_dir.display().to_string(),
            executor_profile: self.string("runner.profile").unwrap_or(executor_name),
            executor,
            executor_announce,
            allow_blueprint_executors: self
                .parse_req("runner.allow_blueprint_executors", boolean)?,
            workspace_root: self.under_data_dir("runner.workspace", "workspaces"),
            workspace: self.workspace()?,
            limits: self.process_limits()?,
            agent_user: self
                .string("runner.agent_user")
                .filter(|u| !u.trim().is_empty()),
            agent_env: self
                .string("runner.agent_env")
                .map(|e| list(&e))
                .unwrap_or_default(),
            state_dir: self.data_dir().join("runner"),
            stop_grace,
            drain_timeout,
            run_limits,
            approval_floor: self
                .parse("runner.approval_floor", approval_floor)?
                .unwrap_or_default(),
            oauth: self.oauth()?,
            api_key: self.string("api.key").map(aof_runner::ApiKey),
        })
    }

    #[cfg(feature = "runner")]
    fn workspace(&self) -> Result<aof_runner::WorkspaceSettings, ConfigError> {
        Ok(aof_runner::WorkspaceSettings {
            git_repo: self
                .string("runner.workspace_git_repo")
                .filter(|r| !r.trim().is_empty())
                .map(PathBuf::from),
            git_base: self.string("runner.workspace_git_base"),
            cleanup: self.parse_req("runner.workspace_cleanup", |v| v.parse())?,
            max_age: self.parse("runner.workspace_max_age", seconds)?,
        })
    }

    #[cfg(feature = "runner")]
    fn process_limits(&self) -> Result<aof_executors::ProcessLimits, ConfigError> {
        let n = |key| {
            self.parse(key, |v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| "must be a whole number, at least 1".to_string())
            })
        };
        Ok(aof_executors::ProcessLimits {
            address_space: n("runner.rlimit_as")?,
            cpu_seconds: n("runner.rlimit_cpu")?,
            open_files: n("runner.rlimit_nofile")?,
            processes: n("runner.rlimit_nproc")?,
            prlimit: None,
        })
    }

    #[cfg(feature = "runner")]
    fn executor(&self, name: &str) -> Result<ExecutorConfig, ConfigError> {
        let exec = self.get("runner.executor").expect("has a default");
        let command = self.get("runner.command");
        match (name.trim(), command) {
            ("echo", _) if self.get("runner.command_timeout").is_some() => err(format!(
                "{}: only applies to executor `command`",
                describe(
                    "runner.command_timeout",
                    self.get("runner.command_timeout").expect("checked")
                )
            )),
            ("echo", None) => Ok(ExecutorConfig::Echo),
            ("claude_code", None) => Ok(ExecutorConfig::ClaudeCode(ClaudeCodeConfig {
                program: self.string("runner.claude_bin").filter(|p| !p.is_empty()),
                model: self.string("runner.claude_model"),
                permission_mode: self.string("runner.claude_permission_mode"),
                allowed_tools: self
                    .string("runner.claude_allowed_tools")
                    .map(|t| list(&t))
                    .unwrap_or_default(),
                stall_timeout_seconds: self.parse("runner.claude_stall_timeout", |v| {
                    seconds(v).map(|d| d.as_secs_f64())
                })?,
                ..Default::default()
            })),
            ("command", Some(c)) => {
                let mut words = shell_words::split(&c.raw)
                    .map_err(|e| ConfigError(format!("{}: {e}", describe("runner.command", c))))?
                    .into_iter();
                let Some(program) = words.next() else {
                    return err(format!("{}: is empty", describe("runner.command", c)));
                };
                Ok(ExecutorConfig::Command {
                    program,
                    args: words.collect(),
                    timeout_seconds: self.parse("runner.command_timeout", |v| {
                        seconds(v).map(|d| d.as_secs_f64())
                    })?,
                })
            }
            ("command", None) => err(format!(
                "{}: needs runner.command (--command \"PROGRAM ARGS…\")",
                describe("runner.executor", exec)
            )),
            ("echo" | "claude_code", Some(c)) => err(format!(
                "{}: only applies to executor `command`",
                describe("runner.command", c)
            )),
            _ => err(format!(
                "{}: unknown executor (this build has: echo, command, claude_code)",
                describe("runner.executor", exec)
            )),
        }
    }
}

/// `runner.approval_floor`: a JSON policy, or comma-separated tool patterns.
#[cfg(feature = "runner")]
fn approval_floor(v: &str) -> Result<aof_executors::approval::ApprovalPolicy, String> {
    let v = v.trim();
    let policy = if v.starts_with('{') {
        serde_json::from_str(v).map_err(|e| format!("not a JSON policy: {e}"))?
    } else {
        serde_json::json!({ "tools": list(v) })
    };
    aof_executors::approval::ApprovalPolicy::parse(&policy)
}

#[cfg(feature = "runner")]
fn machine_hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".into())
}
