//! The AOF reference's environment variables — everything its coordinator, runner
//! images and compose files read — each with what AOF does with it. This one table
//! drives the start-up warnings, the README's variable table (`aof config table
//! --reference`) and a test that every reference alias in the registry is listed here.

use std::collections::BTreeMap;

use crate::{
    registry::{AUTH0_AUDIENCE_ENV, AUTH0_DOMAIN_ENV},
    Entry, Source,
};

/// Which part of the reference reads the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Coordinator,
    Runner,
    /// Build arguments of the reference dashboard's image.
    Dashboard,
    /// Read by the reference's compose files only.
    Compose,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Coordinator => "coordinator",
            Part::Runner => "runner",
            Part::Dashboard => "dashboard build",
            Part::Compose => "compose file",
        }
    }
}

/// What AOF does with a reference variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Read as an alias of this setting (file key; see the registry).
    Alias(&'static str),
    /// Read and turned into these settings, as the text says.
    Mapped(&'static [&'static str], &'static str),
    /// Works unchanged without being an AOF setting (passed to agents, or read by the
    /// reference dashboard's build), as the text says.
    Unchanged(&'static str),
    /// Not supported: set, it gets one warning at start saying what to use instead.
    Refused(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct RefVar {
    pub name: &'static str,
    pub part: Part,
    pub handling: Handling,
}

const fn v(name: &'static str, part: Part, handling: Handling) -> RefVar {
    RefVar {
        name,
        part,
        handling,
    }
}

use Handling::{Alias, Mapped, Refused, Unchanged};
use Part::{Compose, Coordinator, Dashboard, Runner};

const NO_REAPER: &str = "AOF has no session reaper: every claimed run holds a lease, and a run whose runner falls silent for `AOF_LEASE_TTL` is requeued or failed (`AOF_RECOVERY_MODE`); a runner silent for `AOF_REMOVE_THRESHOLD` is removed and its runs failed";
const NO_RUNNER_MCP: &str = "AOF runners run no MCP server of their own: agents reach the coordinator's `/mcp` with their run's session token";
const DASHBOARD_BUILD: &str = "a build argument of the reference dashboard, which works against AOF when built with AOF's URL; AOF's own dashboard (`/ui`, same origin) needs none";

/// Every variable the reference's processes, images and compose files read.
pub static REFERENCE_VARS: &[RefVar] = &[
    v("AUTH_ENABLED", Coordinator, Alias("auth.enabled")),
    v(
        AUTH0_DOMAIN_ENV,
        Coordinator,
        Mapped(
            &["auth.oidc_issuer", "auth.oidc_jwks", "runner.oauth_token_url"],
            "with auth on: OIDC issuer `https://DOMAIN/` and JWKS `https://DOMAIN/.well-known/jwks.json` (a loopback domain uses http); a runner's token endpoint `https://DOMAIN/oauth/token`. `AOF_OIDC_*` set too win, with a warning if they differ",
        ),
    ),
    v(
        AUTH0_AUDIENCE_ENV,
        Coordinator,
        Mapped(
            &["auth.oidc_audience"],
            "the `aud` OIDC tokens must carry, and the `audience` a runner asks its tokens for; `AOF_OIDC_AUDIENCE` wins, with a warning if they differ",
        ),
    ),
    v(
        "AGENT_ORCHESTRATOR_DB_PATH",
        Coordinator,
        Alias("coordinator.db_path"),
    ),
    v(
        "AGENT_ORCHESTRATOR_AGENTS_DIR",
        Coordinator,
        Alias("coordinator.agents_dir"),
    ),
    v(
        crate::registry::PROJECT_DIR_ENV,
        Coordinator,
        Mapped(
            &["data_dir"],
            "`data_dir` becomes `$AGENT_ORCHESTRATOR_PROJECT_DIR/.agent-orchestrator` unless set otherwise",
        ),
    ),
    v("CORS_ORIGINS", Coordinator, Alias("coordinator.cors_origins")),
    v("DEBUG_LOGGING", Coordinator, Alias("log.level")),
    v("DOCS_ENABLED", Coordinator, Alias("coordinator.docs_enabled")),
    v(
        "RUNNER_POLL_TIMEOUT",
        Coordinator,
        Alias("coordinator.poll_timeout"),
    ),
    v(
        "RUNNER_HEARTBEAT_INTERVAL",
        Coordinator,
        Alias("coordinator.heartbeat_interval"),
    ),
    v(
        "RUNNER_STALE_THRESHOLD",
        Coordinator,
        Alias("coordinator.stale_threshold"),
    ),
    v(
        "RUNNER_REMOVE_THRESHOLD",
        Coordinator,
        Alias("coordinator.remove_threshold"),
    ),
    v(
        "RUNNER_LIFECYCLE_INTERVAL",
        Coordinator,
        Alias("coordinator.sweep_interval"),
    ),
    v(
        "RUN_NO_MATCH_TIMEOUT",
        Coordinator,
        Alias("coordinator.no_match_timeout"),
    ),
    v(
        "RUN_RECOVERY_MODE",
        Coordinator,
        Alias("coordinator.recovery_mode"),
    ),
    v("REAPER_INTERVAL", Coordinator, Refused(NO_REAPER)),
    v("REAPER_GRACE_PERIOD", Coordinator, Refused(NO_REAPER)),
    v("REAPER_STALE_RUNNING", Coordinator, Refused(NO_REAPER)),
    v("REAPER_STALE_STOPPING", Coordinator, Refused(NO_REAPER)),
    v("AGENT_ORCHESTRATOR_API_URL", Runner, Alias("api.url")),
    v("PROJECT_DIR", Runner, Alias("runner.project_dir")),
    v("RUNNER_TAGS", Runner, Alias("runner.tags")),
    v("PROFILE", Runner, Alias("runner.profile_file")),
    v(
        "REQUIRE_MATCHING_TAGS",
        Runner,
        Alias("runner.require_matching_tags"),
    ),
    v("VERBOSE", Runner, Alias("log.level")),
    v(
        "AUTH0_RUNNER_CLIENT_ID",
        Runner,
        Alias("runner.oauth_client_id"),
    ),
    v(
        "AUTH0_RUNNER_CLIENT_SECRET",
        Runner,
        Alias("runner.oauth_client_secret"),
    ),
    v(
        "POLL_TIMEOUT",
        Runner,
        Refused("the coordinator decides how long a poll is held (`AOF_POLL_TIMEOUT` or `RUNNER_POLL_TIMEOUT` on the coordinator) and AOF runners wait for it"),
    ),
    v(
        "HEARTBEAT_INTERVAL",
        Runner,
        Refused("the coordinator tells runners its heartbeat interval at registration (`AOF_HEARTBEAT_INTERVAL` or `RUNNER_HEARTBEAT_INTERVAL` on the coordinator)"),
    ),
    v("MCP_PORT", Runner, Refused(NO_RUNNER_MCP)),
    v("EXTERNAL_MCP_URL", Runner, Refused(NO_RUNNER_MCP)),
    v(
        "AGENT_ORCHESTRATOR_ENABLE_LOGGING",
        Runner,
        Refused("AOF executors write no log files of their own: every event of a run is in the coordinator (`aof sessions events`), the runner logs at `AOF_LOG_LEVEL`"),
    ),
    v(
        "CLAUDE_CODE_OAUTH_TOKEN",
        Runner,
        Unchanged("passed to the Claude Code CLI of `claude_code` runs (their environment allow-list takes `CLAUDE_CODE_*` and `ANTHROPIC_*`)"),
    ),
    v(
        "VITE_AGENT_ORCHESTRATOR_API_URL",
        Dashboard,
        Unchanged(DASHBOARD_BUILD),
    ),
    v(
        "VITE_DOCUMENT_SERVER_URL",
        Dashboard,
        Unchanged("a build argument of the reference dashboard for the reference's document server, which is not part of AOF"),
    ),
    v(
        "VITE_AUTH0_DOMAIN",
        Dashboard,
        Unchanged("a build argument of the reference dashboard (its login); AOF checks its tokens with `AUTH0_DOMAIN` / `AUTH0_AUDIENCE` or `AOF_OIDC_*`"),
    ),
    v("VITE_AUTH0_CLIENT_ID", Dashboard, Unchanged(DASHBOARD_BUILD)),
    v("VITE_AUTH0_AUDIENCE", Dashboard, Unchanged(DASHBOARD_BUILD)),
    v(
        "HOST_WORKSPACE",
        Compose,
        Unchanged("compose's own: the host folder mounted at the runner's `/workspace`"),
    ),
];

/// The recognised reference variables that are set (non-empty), by name.
pub(crate) fn collect(env: impl Fn(&str) -> Option<String>) -> BTreeMap<&'static str, String> {
    REFERENCE_VARS
        .iter()
        .filter_map(|r| env(r.name).map(|v| (r.name, v)))
        .collect()
}

/// One warning per refused variable that is set, naming it and what to use instead.
pub(crate) fn refused_warnings(set: &BTreeMap<&'static str, String>) -> Vec<String> {
    REFERENCE_VARS
        .iter()
        .filter(|r| set.contains_key(r.name))
        .filter_map(|r| match r.handling {
            Refused(instead) => Some(format!(
                "{} (a setting of the AOF reference's {}) is not supported and is ignored: {instead}",
                r.name,
                r.part.name()
            )),
            _ => None,
        })
        .collect()
}

/// `AUTH0_DOMAIN` as a base URL without a trailing slash: the reference always speaks
/// https to it; a bare loopback host (a local test issuer) gets http, as the OIDC code
/// allows only there. An explicit scheme is kept (checked where the URL is used).
pub(crate) fn auth0_base(domain: &str) -> String {
    let d = domain.trim().trim_end_matches('/');
    if d.starts_with("https://") || d.starts_with("http://") {
        return d.to_string();
    }
    let host = d.split('/').next().unwrap_or("");
    let host = match host.rsplit_once(':') {
        // `[::1]:8443` or `host:8443`, not a bare IPv6 address.
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    };
    format!("{}://{d}", if loopback { "http" } else { "https" })
}

/// With auth on, fills `auth.oidc_issuer`, `auth.oidc_jwks` and `auth.oidc_audience`
/// from `AUTH0_DOMAIN` / `AUTH0_AUDIENCE` where nothing else set them; where something
/// did and says otherwise, it wins and a warning says so.
pub(crate) fn map_auth0(
    set: &BTreeMap<&'static str, String>,
    values: &mut BTreeMap<&'static str, Entry>,
    warnings: &mut Vec<String>,
) {
    let mut wanted: Vec<(&'static str, &'static str, String)> = Vec::new();
    if let Some(domain) = set.get(AUTH0_DOMAIN_ENV) {
        let base = auth0_base(domain);
        wanted.push(("auth.oidc_issuer", AUTH0_DOMAIN_ENV, format!("{base}/")));
        wanted.push((
            "auth.oidc_jwks",
            AUTH0_DOMAIN_ENV,
            format!("{base}/.well-known/jwks.json"),
        ));
    }
    if let Some(aud) = set.get(AUTH0_AUDIENCE_ENV) {
        wanted.push((
            "auth.oidc_audience",
            AUTH0_AUDIENCE_ENV,
            aud.trim().to_string(),
        ));
    }
    for (key, name, raw) in wanted {
        match values.get(key) {
            Some(e) if e.source != Source::Default => {
                if e.raw.trim() != raw {
                    warnings.push(format!(
                        "{key} = {:?} ({}) wins over {name}, which would make it {raw:?}",
                        e.raw, e.source
                    ));
                }
            }
            _ => {
                values.insert(
                    key,
                    Entry {
                        raw,
                        source: Source::Env {
                            name,
                            over: Vec::new(),
                        },
                    },
                );
            }
        }
    }
}

/// The README's table of the reference's variables.
pub fn markdown_table() -> String {
    let mut out =
        String::from("| reference variable | read by (reference) | in AOF |\n|---|---|---|\n");
    for r in REFERENCE_VARS {
        let what = match r.handling {
            Alias(key) => {
                let env = crate::registry::find(key).map_or("?", |s| s.env);
                format!("accepted: alias of `{env}` (`{key}`)")
            }
            Mapped(keys, how) => format!(
                "mapped to {}: {how}",
                keys.iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Unchanged(how) => format!("accepted: {how}"),
            Refused(instead) => format!("refused (one warning at start): {instead}"),
        };
        out.push_str(&format!("| `{}` | {} | {what} |\n", r.name, r.part.name()));
    }
    out
}

#[cfg(test)]
mod tests;
