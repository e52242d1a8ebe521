//! Coordinator settings, already parsed. Loading them (file, environment names, flags,
//! derived defaults) is `aof-config`'s job, so every name lives in one registry there;
//! the defaults here are the ones it documents.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use aof_core::RecoveryMode;
use aof_store_sqlite::Durability;

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub listen: SocketAddr,
    /// SQLite file (`AGENT_ORCHESTRATOR_DB_PATH`); unused with `postgres_url`.
    pub db_path: PathBuf,
    /// `AOF_DATABASE_URL=postgres://…`: the store is PostgreSQL instead of SQLite.
    pub postgres_url: Option<PostgresUrl>,
    /// Agent blueprint directory (`AGENT_ORCHESTRATOR_AGENTS_DIR`, `<data_dir>/agents`).
    pub agents_dir: PathBuf,
    /// `AOF_SQLITE_SYNCHRONOUS`: normal (default) or full.
    pub durability: Durability,
    /// Longest a runner's long-poll is held (`RUNNER_POLL_TIMEOUT`, 30 s).
    pub poll_timeout: Duration,
    /// Told to runners at registration (`RUNNER_HEARTBEAT_INTERVAL`, 60 s).
    pub heartbeat_interval: Duration,
    /// Silent this long → `stale` (`RUNNER_STALE_THRESHOLD`, 120 s).
    pub stale_threshold: Duration,
    /// Silent this long → removed, its runs failed (`RUNNER_REMOVE_THRESHOLD`, 600 s).
    pub remove_threshold: Duration,
    /// A pending run no runner matches fails after this (`RUN_NO_MATCH_TIMEOUT`, 300 s).
    pub no_match_timeout: Duration,
    /// Ended sessions idle this long are purged hourly (`AOF_RETENTION_DAYS`; None: never).
    pub retention: Option<Duration>,
    /// Audit entries older than this are purged hourly (`AOF_AUDIT_RETENTION_DAYS`,
    /// 90 days; None: kept forever).
    pub audit_retention: Option<Duration>,
    /// What an expired lease does to its run (`RUN_RECOVERY_MODE`, stale).
    pub recovery: RecoveryMode,
    /// How long a claim stays valid without a heartbeat (`AOF_LEASE_TTL`, default 3 heartbeats).
    pub lease_ttl: Duration,
    /// How often leases and timeouts are checked (`RUNNER_LIFECYCLE_INTERVAL`; default lease/4, ≤ 5 s).
    pub sweep_interval: Duration,
    /// `CORS_ORIGINS`, comma separated; empty (default): same origin only; `*` (only
    /// when set explicitly) allows any origin to read, never with credentials.
    pub cors_origins: String,
    /// Host names the API answers with auth off besides `localhost` and IP addresses,
    /// and `/mcp` always besides loopback (`AOF_ALLOWED_HOSTS`, lowercase, no port):
    /// the DNS-rebinding defence (`auth::browser`).
    pub allowed_hosts: Vec<String>,
    /// Largest request body accepted, bytes (`AOF_MAX_BODY_BYTES`, 4 MiB).
    pub max_body_bytes: usize,
    /// Environment variables blueprints may read as `${env.NAME}` (`AOF_PLACEHOLDER_ENV`,
    /// comma separated; default none — the coordinator's environment never leaks otherwise).
    pub placeholder_env: Vec<String>,
    /// `project_dir` values must lie inside one of these (`AOF_PROJECT_DIR_ROOTS`,
    /// absolute paths); empty (default): any path is accepted, as before.
    pub project_dir_roots: Vec<PathBuf>,
    /// Listen on a non-loopback address with auth off (`--insecure-listen`); warned about.
    pub insecure_listen: bool,
    /// Serve the interactive API page at `/docs` (`DOCS_ENABLED`, default off).
    pub docs_enabled: bool,
    pub auth: AuthConfig,
    /// Concurrent streams, long-polls and MCP waits per credential (`crate::caps`).
    pub caps: crate::caps::CapsConfig,
    /// How long a stop may take, from the signal to the exit (`AOF_SHUTDOWN_TIMEOUT`,
    /// 10 s): what is still open then is cut (`crate::stopping`).
    pub shutdown_timeout: Duration,
}

/// A PostgreSQL URL; `Debug` hides its passwords (`user:***@`, `password=***`).
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(pub String);

impl std::fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = aof_store_postgres::redact_url(&self.0);
        write!(f, "PostgresUrl({masked:?})")
    }
}

/// `[auth]`: API keys, browser cookies, optional OIDC. See SECURITY.md.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `AUTH_ENABLED`: every route but `/health`, `/ready` (and `/metrics` when
    /// `metrics_public`) needs a credential.
    pub enabled: bool,
    /// `/metrics` answers without a credential (`AOF_METRICS_PUBLIC`, default true).
    pub metrics_public: bool,
    /// Add `Secure` to the session cookie (`AOF_COOKIE_SECURE`); set it behind HTTPS.
    pub cookie_secure: bool,
    pub oidc: Option<OidcConfig>,
}

/// OIDC bearer tokens (JWT, RS256 or ES256) accepted next to API keys.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud`.
    pub audience: String,
    /// JWKS: an `http(s)://` URL (fetched at start and on an unknown `kid`) or a file.
    pub jwks: String,
    /// Claim holding the role(s): a string or a list of admin/operator/viewer/runner.
    pub role_claim: String,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        let heartbeat = Duration::from_secs(60);
        CoordinatorConfig {
            listen: "127.0.0.1:8765".parse().expect("valid default address"),
            db_path: PathBuf::from(".agent-orchestrator/observability.db"),
            postgres_url: None,
            agents_dir: PathBuf::from(".agent-orchestrator/agents"),
            durability: Durability::Normal,
            poll_timeout: Duration::from_secs(30),
            heartbeat_interval: heartbeat,
            stale_threshold: Duration::from_secs(120),
            remove_threshold: Duration::from_secs(600),
            no_match_timeout: Duration::from_secs(300),
            retention: None,
            audit_retention: Some(Duration::from_secs(90 * 86_400)),
            recovery: RecoveryMode::Stale,
            lease_ttl: heartbeat * 3,
            sweep_interval: Duration::from_secs(5),
            cors_origins: String::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 << 20,
            placeholder_env: Vec::new(),
            project_dir_roots: Vec::new(),
            insecure_listen: false,
            docs_enabled: false,
            auth: AuthConfig {
                metrics_public: true,
                ..AuthConfig::default()
            },
            caps: crate::caps::CapsConfig::default(),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

impl CoordinatorConfig {
    /// Cross-field checks; the message names the settings involved.
    pub fn validate(&self) -> Result<(), String> {
        if self.lease_ttl < self.sweep_interval {
            return Err("coordinator.lease_ttl (AOF_LEASE_TTL) must be at least coordinator.sweep_interval (RUNNER_LIFECYCLE_INTERVAL)".into());
        }
        if self.stale_threshold > self.remove_threshold {
            return Err("coordinator.stale_threshold (RUNNER_STALE_THRESHOLD) must not exceed coordinator.remove_threshold (RUNNER_REMOVE_THRESHOLD)".into());
        }
        if let Some(r) = self.project_dir_roots.iter().find(|r| !r.is_absolute()) {
            return Err(format!(
                "coordinator.project_dir_roots (AOF_PROJECT_DIR_ROOTS): '{}' is not an absolute path",
                r.display()
            ));
        }
        if !self.auth.enabled && !self.listen.ip().is_loopback() && !self.insecure_listen {
            return Err(format!(
                "refusing to listen on {} with auth off: anyone who can reach it could run agents. \
                 Turn auth on (AUTH_ENABLED=true, see SECURITY.md), listen on 127.0.0.1, \
                 or pass --insecure-listen (AOF_INSECURE_LISTEN=true) if a proxy in front authenticates",
                self.listen
            ));
        }
        if !self.auth.enabled && !self.listen.ip().is_loopback() && self.cors_origins.trim() == "*"
        {
            return Err(format!(
                "refusing coordinator.cors_origins (CORS_ORIGINS) = * with auth off \
                 (AUTH_ENABLED=false) on {}: any web page could read the API. List the exact \
                 origins of your dashboards, turn auth on, or listen on 127.0.0.1",
                self.listen
            ));
        }
        if let Some(e) = self
            .allowed_hosts
            .iter()
            .find_map(|h| crate::auth::browser::allowed_host_entry(h).err())
        {
            return Err(format!(
                "coordinator.allowed_hosts (AOF_ALLOWED_HOSTS): {e}"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod postgres_url_tests {
    use super::PostgresUrl;

    #[test]
    fn debug_masks_every_password() {
        for url in [
            "postgres://u:s3cretpw@h/db",
            "postgres://u@h/db?password=s3cretpw",
            "postgres://u@h/db?sslmode=disable&password=s3cretpw",
            "postgres://u@h/db?sslpassword=s3cretpw",
        ] {
            let shown = format!("{:?}", PostgresUrl(url.into()));
            assert!(!shown.contains("s3cretpw"), "{shown}");
            assert!(shown.contains("***") && shown.contains("@h/db"), "{shown}");
        }
    }
}
