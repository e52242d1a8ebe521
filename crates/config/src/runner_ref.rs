//! The runner settings that come from the AOF reference's way of configuring a runner:
//! its executor profile files (`PROFILE`) and Auth0 client credentials
//! (`AUTH0_DOMAIN`, `AUTH0_RUNNER_CLIENT_ID`/`SECRET`, `AUTH0_AUDIENCE`).

use std::{net::IpAddr, path::PathBuf};

use aof_executors::{claude::ClaudeCodeConfig, ExecutorConfig};
use serde_json::{Map, Value};

use crate::{
    err, profile,
    registry::{AUTH0_AUDIENCE_ENV, AUTH0_DOMAIN_ENV},
    sections::describe,
    Config, ConfigError, Source,
};

/// The executor a reference profile gives, after AOF's explicit settings.
pub(crate) struct ProfileExecutor {
    pub name: String,
    pub executor: ExecutorConfig,
    pub announce: Map<String, Value>,
}

impl Config {
    /// Set by the user (any layer but the default).
    fn explicit(&self, key: &str) -> bool {
        self.get(key).is_some_and(|e| e.source != Source::Default)
    }

    /// `runner.profile_file`, loaded (blocking file IO); `None` when unset.
    pub(crate) fn profile_executor(&self) -> Result<Option<ProfileExecutor>, ConfigError> {
        let Some(entry) = self.get("runner.profile_file") else {
            return Ok(None);
        };
        let dir = PathBuf::from(self.string("runner.profiles_dir").unwrap_or_default());
        let p = profile::load(&entry.raw, &dir)
            .map_err(|m| ConfigError(format!("{}: {m}", describe("runner.profile_file", entry))))?;
        // A profile picks the executor; an explicit different one is a contradiction.
        if self.explicit("runner.executor") {
            let exec = self.get("runner.executor").expect("explicit");
            if exec.raw.trim() != p.executor.kind() {
                return err(format!(
                    "{} contradicts {} (a {} profile): set one of them",
                    describe("runner.executor", exec),
                    describe("runner.profile_file", entry),
                    p.executor.kind()
                ));
            }
        }
        for key in ["runner.command", "runner.command_timeout"] {
            if let Some(e) = self.get(key) {
                return err(format!(
                    "{}: only applies to executor `command`, not to {} (a {} profile)",
                    describe(key, e),
                    describe("runner.profile_file", entry),
                    p.executor.kind()
                ));
            }
        }
        let executor = match p.executor {
            // AOF's own claude settings, where given, go over the profile's.
            ExecutorConfig::ClaudeCode(from_profile) => {
                let ours = ClaudeCodeConfig {
                    program: self.string("runner.claude_bin").filter(|p| !p.is_empty()),
                    model: self.string("runner.claude_model"),
                    permission_mode: self.string("runner.claude_permission_mode"),
                    allowed_tools: self
                        .string("runner.claude_allowed_tools")
                        .map(|t| crate::sections::list(&t))
                        .unwrap_or_default(),
                    stall_timeout_seconds: if self.explicit("runner.claude_stall_timeout") {
                        self.parse("runner.claude_stall_timeout", |v| {
                            crate::sections::seconds(v).map(|d| d.as_secs_f64())
                        })?
                    } else {
                        None
                    },
                    ..Default::default()
                };
                ExecutorConfig::ClaudeCode(ours.merged_over(&from_profile))
            }
            other => other,
        };
        Ok(Some(ProfileExecutor {
            announce: profile::announce(&p.kind, &executor),
            name: p.name,
            executor,
        }))
    }

    /// The runner's OAuth client credentials (`runner.oauth_*`, or the reference's
    /// `AUTH0_*`); `None` when no client id or secret is set.
    pub(crate) fn oauth(&self) -> Result<Option<aof_runner::ClientCredentials>, ConfigError> {
        let id = self.string("runner.oauth_client_id");
        let secret = self.string("runner.oauth_client_secret");
        if id.is_none() && secret.is_none() {
            return Ok(None);
        }
        let token_url = self.string("runner.oauth_token_url").or_else(|| {
            self.reference_var(AUTH0_DOMAIN_ENV)
                .map(|d| format!("{}/oauth/token", crate::reference::auth0_base(d)))
        });
        let audience = self
            .string("auth.oidc_audience")
            .or_else(|| self.reference_var(AUTH0_AUDIENCE_ENV).map(str::to_string));
        let (Some(client_id), Some(client_secret), Some(token_url), Some(audience)) =
            (id, secret, token_url, audience)
        else {
            let mut missing = Vec::new();
            for (key, names) in [
                (
                    "runner.oauth_client_id",
                    "AOF_OAUTH_CLIENT_ID or AUTH0_RUNNER_CLIENT_ID",
                ),
                (
                    "runner.oauth_client_secret",
                    "AOF_OAUTH_CLIENT_SECRET or AUTH0_RUNNER_CLIENT_SECRET",
                ),
            ] {
                if self.get(key).is_none() {
                    missing.push(format!("{key} ({names})"));
                }
            }
            if self.get("runner.oauth_token_url").is_none()
                && self.reference_var(AUTH0_DOMAIN_ENV).is_none()
            {
                missing.push("runner.oauth_token_url (AOF_OAUTH_TOKEN_URL or AUTH0_DOMAIN)".into());
            }
            if self.get("auth.oidc_audience").is_none()
                && self.reference_var(AUTH0_AUDIENCE_ENV).is_none()
            {
                missing.push("auth.oidc_audience (AOF_OIDC_AUDIENCE or AUTH0_AUDIENCE)".into());
            }
            return err(format!(
                "runner client credentials need a client id and secret, a token URL and an audience; missing: {}",
                missing.join(", ")
            ));
        };
        if self.get("api.key").is_some() {
            return err(
                "the runner has both AOF_API_KEY and OAuth client credentials \
                 (runner.oauth_client_id, AUTH0_RUNNER_CLIENT_ID): set one of them",
            );
        }
        check_token_url(&token_url)?;
        Ok(Some(aof_runner::ClientCredentials {
            token_url,
            client_id,
            client_secret: aof_runner::ApiKey(client_secret),
            audience,
        }))
    }
}

/// The secret goes to the token endpoint: https, or http only to a loopback host.
fn check_token_url(url: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError(format!("runner.oauth_token_url {url:?}: {why}"));
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("must be an https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.is_empty() {
        return Err(bad("has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http"
            if bare.eq_ignore_ascii_case("localhost")
                || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) =>
        {
            Ok(())
        }
        "http" => Err(bad(
            "is plain http to a non-loopback host: the client secret would cross the network in the clear; use https://",
        )),
        _ => Err(bad("must be an https:// URL")),
    }
}

#[cfg(test)]
mod tests;
