//! Coordinator settings. Defaults and environment names follow the AOF reference.

use std::{net::SocketAddr, path::PathBuf, str::FromStr, time::Duration};

use aof_core::RecoveryMode;
use aof_store_sqlite::Durability;

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub listen: SocketAddr,
    /// SQLite file (`AGENT_ORCHESTRATOR_DB_PATH`).
    pub db_path: PathBuf,
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
    /// What an expired lease does to its run (`RUN_RECOVERY_MODE`, stale).
    pub recovery: RecoveryMode,
    /// How long a claim stays valid without a heartbeat (`AOF_LEASE_TTL`, default 3 heartbeats).
    pub lease_ttl: Duration,
    /// How often leases and timeouts are checked (`RUNNER_LIFECYCLE_INTERVAL`; default lease/4, ≤ 5 s).
    pub sweep_interval: Duration,
    /// `CORS_ORIGINS`, comma separated; `*` allows any.
    pub cors_origins: String,
    /// Largest request body accepted, bytes (`AOF_MAX_BODY_BYTES`, 4 MiB).
    pub max_body_bytes: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        let heartbeat = Duration::from_secs(60);
        CoordinatorConfig {
            listen: "127.0.0.1:8765".parse().expect("valid default address"),
            db_path: PathBuf::from(".agent-orchestrator/observability.db"),
            durability: Durability::Normal,
            poll_timeout: Duration::from_secs(30),
            heartbeat_interval: heartbeat,
            stale_threshold: Duration::from_secs(120),
            remove_threshold: Duration::from_secs(600),
            no_match_timeout: Duration::from_secs(300),
            recovery: RecoveryMode::Stale,
            lease_ttl: heartbeat * 3,
            sweep_interval: Duration::from_secs(5),
            cors_origins: "*".into(),
            max_body_bytes: 4 << 20,
        }
    }
}

fn secs(v: &str, name: &str) -> Result<Duration, String> {
    let f: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("{name} must be a number of seconds, got '{v}'"))?;
    if !(f > 0.0 && f < 1e9) {
        return Err(format!("{name} must be > 0, got '{v}'"));
    }
    Ok(Duration::from_secs_f64(f))
}

impl CoordinatorConfig {
    /// Applies the environment over `self` through `get` (so tests need not touch the process env).
    pub fn apply_env(mut self, get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        if let Some(v) = get("AGENT_ORCHESTRATOR_DB_PATH") {
            self.db_path = PathBuf::from(v);
        }
        if let Some(v) = get("AOF_SQLITE_SYNCHRONOUS") {
            self.durability = Durability::from_str(&v)?;
        }
        let mut lease_set = false;
        for (name, field) in [
            ("RUNNER_POLL_TIMEOUT", &mut self.poll_timeout),
            ("RUNNER_HEARTBEAT_INTERVAL", &mut self.heartbeat_interval),
            ("RUNNER_STALE_THRESHOLD", &mut self.stale_threshold),
            ("RUNNER_REMOVE_THRESHOLD", &mut self.remove_threshold),
            ("RUN_NO_MATCH_TIMEOUT", &mut self.no_match_timeout),
        ] {
            if let Some(v) = get(name) {
                *field = secs(&v, name)?;
            }
        }
        if let Some(v) = get("AOF_LEASE_TTL") {
            self.lease_ttl = secs(&v, "AOF_LEASE_TTL")?;
            lease_set = true;
        }
        if !lease_set {
            self.lease_ttl = self.heartbeat_interval * 3;
        }
        self.sweep_interval = (self.lease_ttl / 4).min(Duration::from_secs(5));
        if let Some(v) = get("RUNNER_LIFECYCLE_INTERVAL") {
            self.sweep_interval = secs(&v, "RUNNER_LIFECYCLE_INTERVAL")?;
        }
        if let Some(v) = get("RUN_RECOVERY_MODE") {
            self.recovery = RecoveryMode::from_str(&v)?;
        }
        if let Some(v) = get("CORS_ORIGINS") {
            self.cors_origins = v;
        }
        if let Some(v) = get("AOF_MAX_BODY_BYTES") {
            self.max_body_bytes = v
                .parse()
                .map_err(|_| format!("AOF_MAX_BODY_BYTES must be a byte count, got '{v}'"))?;
        }
        Ok(self)
    }

    pub fn from_env() -> Result<Self, String> {
        CoordinatorConfig::default().apply_env(|k| std::env::var(k).ok())
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.lease_ttl < self.sweep_interval {
            return Err("lease TTL must be at least the sweep interval".into());
        }
        if self.stale_threshold > self.remove_threshold {
            return Err("RUNNER_STALE_THRESHOLD must not exceed RUNNER_REMOVE_THRESHOLD".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_errors() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = CoordinatorConfig::default()
            .apply_env(env(&[
                ("RUNNER_HEARTBEAT_INTERVAL", "2"),
                ("RUN_RECOVERY_MODE", "all"),
            ]))
            .unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(2));
        assert_eq!(c.lease_ttl, Duration::from_secs(6));
        assert_eq!(c.sweep_interval, Duration::from_millis(1500));
        assert_eq!(c.recovery, RecoveryMode::All);
        let err = CoordinatorConfig::default()
            .apply_env(env(&[("RUNNER_POLL_TIMEOUT", "soon")]))
            .unwrap_err();
        assert!(err.contains("RUNNER_POLL_TIMEOUT"));
        assert!(CoordinatorConfig::default()
            .apply_env(env(&[("RUN_RECOVERY_MODE", "maybe")]))
            .is_err());
    }
}
