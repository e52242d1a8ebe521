//! The registry: every AOF setting, once. Loading, `aof config show` and the
//! documentation table are all driven by [`SETTINGS`]; nothing else may name an
//! environment variable or a file key.

/// The reference's project directory; its `.agent-orchestrator` is the default data dir.
pub const PROJECT_DIR_ENV: &str = "AGENT_ORCHESTRATOR_PROJECT_DIR";

/// The reference's Auth0 tenant and API audience: mapped onto `auth.oidc_*` (coordinator,
/// with auth on) and the runner's token endpoint (`reference::auth0`).
pub const AUTH0_DOMAIN_ENV: &str = "AUTH0_DOMAIN";
pub const AUTH0_AUDIENCE_ENV: &str = "AUTH0_AUDIENCE";

/// The default of a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A literal value, layered like any other (shown by `aof config show`).
    Value(&'static str),
    /// No value; the typed section derives one. The text says how (for the table).
    Derived(&'static str),
}

/// One setting: its file key, environment names, flag, default and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// Dotted key in the TOML file (`coordinator.listen` is `listen` under `[coordinator]`).
    pub key: &'static str,
    /// Our environment variable (`AOF_…`); read before the aliases.
    pub env: &'static str,
    /// The AOF reference's names for the same setting, still accepted.
    pub aliases: &'static [&'static str],
    /// Command-line flag, for the commands that have it.
    pub flag: Option<&'static str>,
    pub default: DefaultValue,
    /// Printed masked by `aof config show`.
    pub secret: bool,
    /// One line for the table.
    pub doc: &'static str,
}

const fn s(
    key: &'static str,
    env: &'static str,
    aliases: &'static [&'static str],
    flag: Option<&'static str>,
    default: DefaultValue,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env,
        aliases,
        flag,
        default,
        secret: false,
        doc,
    }
}

use DefaultValue::{Derived, Value};

/// The config file itself (`--config` / `AOF_CONFIG`); not a key in the file.
pub const CONFIG_FLAG: &str = "--config";
pub const CONFIG_ENV: &str = "AOF_CONFIG";

/// Every setting, in the order the table and `aof config show` list them.
pub static SETTINGS: &[Setting] = &[
    s(
        "api.url",
        "AOF_URL",
        &["AGENT_ORCHESTRATOR_API_URL"],
        Some("--url"),
        Value("http://127.0.0.1:8765"),
        "where runners and the CLI find the coordinator; several, comma separated (`--url` repeated for `aof runner`), for coordinators sharing one PostgreSQL database: a runner fails over between them, the CLI uses the first",
    ),
    Setting {
        secret: true,
        ..s(
            "api.key",
            "AOF_API_KEY",
            &[],
            None,
            Derived("none"),
            "sent by the CLI as `Authorization: Bearer`; secret, shown masked",
        )
    },
    s(
        "auth.enabled",
        "AOF_AUTH_ENABLED",
        &["AUTH_ENABLED"],
        None,
        Value("false"),
        "require a credential (API key, session cookie, OIDC token) on every route but `/health`, `/ready`; see SECURITY.md",
    ),
    s(
        "auth.metrics_public",
        "AOF_METRICS_PUBLIC",
        &[],
        None,
        Value("true"),
        "with auth on, `/metrics` answers without a credential (false: viewer role needed)",
    ),
    s(
        "auth.cookie_secure",
        "AOF_COOKIE_SECURE",
        &[],
        None,
        Value("false"),
        "mark the browser session cookie `Secure` (set it when served over HTTPS)",
    ),
    s(
        "auth.oidc_issuer",
        "AOF_OIDC_ISSUER",
        &[],
        None,
        Derived("none (OIDC off)"),
        "accept OIDC JWTs from this issuer (`iss`); needs `oidc_audience` and `oidc_jwks`. With auth on and `AUTH0_DOMAIN` set (the reference's): `https://$AUTH0_DOMAIN/` where this is unset",
    ),
    s(
        "auth.oidc_audience",
        "AOF_OIDC_AUDIENCE",
        &[],
        None,
        Derived("none"),
        "required `aud` of OIDC JWTs (and the audience a runner asks its tokens for); `AUTH0_AUDIENCE` where this is unset",
    ),
    s(
        "auth.oidc_jwks",
        "AOF_OIDC_JWKS",
        &[],
        None,
        Derived("none"),
        "the issuer's JWKS: an `https://` URL (fetched at start and on an unknown `kid`) or a file. With auth on and `AUTH0_DOMAIN` set: `https://$AUTH0_DOMAIN/.well-known/jwks.json` where this is unset",
    ),
    s(
        "auth.oidc_role_claim",
        "AOF_OIDC_ROLE_CLAIM",
        &[],
        None,
        Value("roles"),
        "JWT claim holding the role(s): admin, operator, viewer or runner (string or list)",
    ),
    s(
        "data_dir",
        "AOF_DATA_DIR",
        &[],
        Some("--data-dir"),
        Value(".agent-orchestrator"),
        "state directory (database, agents, runner workspaces); if unset, `$AGENT_ORCHESTRATOR_PROJECT_DIR/.agent-orchestrator` when that is set",
    ),
    s(
        "log.format",
        "AOF_LOG_FORMAT",
        &[],
        Some("--log-format"),
        Value("compact"),
        "log format: pretty, compact or json (filter with `RUST_LOG`)",
    ),
    s(
        "log.target",
        "AOF_LOG_TARGET",
        &[],
        None,
        Value("stderr"),
        "where logs go: `stderr` or `stdout` (the container images use stdout)",
    ),
    s(
        "log.level",
        "AOF_LOG_LEVEL",
        &["DEBUG_LOGGING", "VERBOSE"],
        None,
        Derived("info for `up`, `coordinator`, `runner`, `dashboard`; warn for other commands"),
        "`error`, `warn`, `info`, `debug` or `trace` for AOF's own logs (libraries stay at info); `true` means debug and `false` the default, as the reference's `DEBUG_LOGGING` and `VERBOSE` say it. `RUST_LOG`, when set, wins",
    ),
    // OpenTelemetry: the standard OTEL_* names work as aliases.
    s(
        "otel.endpoint",
        "AOF_OTEL_ENDPOINT",
        &["OTEL_EXPORTER_OTLP_ENDPOINT"],
        None,
        Derived("none: no traces exported"),
        "OTLP/HTTP (protobuf) collector base URL, e.g. `http://collector:4318`; spans go to `<url>/v1/traces`",
    ),
    s(
        "otel.traces_endpoint",
        "AOF_OTEL_TRACES_ENDPOINT",
        &["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"],
        None,
        Derived("`<otel.endpoint>/v1/traces`"),
        "full OTLP/HTTP traces URL (used as is); wins over `otel.endpoint`",
    ),
    s(
        "otel.service_name",
        "AOF_OTEL_SERVICE_NAME",
        &["OTEL_SERVICE_NAME"],
        None,
        Derived("aof-coordinator, aof-runner, or aof for `aof up`"),
        "`service.name` of the exported spans",
    ),
    s(
        "coordinator.listen",
        "AOF_LISTEN",
        &[],
        Some("--listen"),
        Value("127.0.0.1:8765"),
        "address the API listens on (port 0 picks a free port)",
    ),
    s(
        "coordinator.insecure_listen",
        "AOF_INSECURE_LISTEN",
        &[],
        Some("--insecure-listen"),
        Value("false"),
        "allow a non-loopback `listen` with auth off (logs a warning); otherwise refused",
    ),
    s(
        "coordinator.db_path",
        "AOF_DB_PATH",
        &["AGENT_ORCHESTRATOR_DB_PATH"],
        None,
        Derived("`<data_dir>/observability.db`"),
        "SQLite file; a `data_dir` set on a higher layer wins",
    ),
    Setting {
        secret: true,
        ..s(
            "coordinator.database_url",
            "AOF_DATABASE_URL",
            &[],
            None,
            Derived("none (SQLite at `db_path`)"),
            "`postgres://…`: keep everything in PostgreSQL (coordinators may share it); `sqlite://PATH` or unset: SQLite; secret, shown masked",
        )
    },
    s(
        "coordinator.agents_dir",
        "AOF_AGENTS_DIR",
        &["AGENT_ORCHESTRATOR_AGENTS_DIR"],
        Some("--agents-dir"),
        Derived("`<data_dir>/agents`"),
        "agent blueprint directory; a `data_dir` set on a higher layer wins",
    ),
    s(
        "coordinator.sqlite_synchronous",
        "AOF_SQLITE_SYNCHRONOUS",
        &[],
        Some("--sqlite-synchronous"),
        Value("normal"),
        "`normal`: survives process crashes; `full`: fsync per commit, also power loss",
    ),
    s(
        "coordinator.poll_timeout",
        "AOF_POLL_TIMEOUT",
        &["RUNNER_POLL_TIMEOUT"],
        None,
        Value("30"),
        "seconds a runner long-poll is held before 204",
    ),
    s(
        "coordinator.heartbeat_interval",
        "AOF_HEARTBEAT_INTERVAL",
        &["RUNNER_HEARTBEAT_INTERVAL"],
        None,
        Value("60"),
        "seconds; told to runners at registration",
    ),
    s(
        "coordinator.lease_ttl",
        "AOF_LEASE_TTL",
        &[],
        None,
        Derived("3 × heartbeat_interval"),
        "seconds a claim stays valid without a heartbeat",
    ),
    s(
        "coordinator.stale_threshold",
        "AOF_STALE_THRESHOLD",
        &["RUNNER_STALE_THRESHOLD"],
        None,
        Value("120"),
        "seconds of silence before a runner shows `stale` (may be replaced)",
    ),
    s(
        "coordinator.remove_threshold",
        "AOF_REMOVE_THRESHOLD",
        &["RUNNER_REMOVE_THRESHOLD"],
        None,
        Value("600"),
        "seconds of silence before a runner is removed and its runs failed",
    ),
    s(
        "coordinator.sweep_interval",
        "AOF_SWEEP_INTERVAL",
        &["RUNNER_LIFECYCLE_INTERVAL"],
        None,
        Derived("min(lease_ttl / 4, 5)"),
        "seconds between sweeps of leases and timeouts",
    ),
    s(
        "coordinator.no_match_timeout",
        "AOF_NO_MATCH_TIMEOUT",
        &["RUN_NO_MATCH_TIMEOUT"],
        None,
        Value("300"),
        "seconds before a pending run no runner matches fails",
    ),
    s(
        "coordinator.retention_days",
        "AOF_RETENTION_DAYS",
        &[],
        None,
        Derived("off"),
        "days without activity after which ended sessions (finished, failed, stopped) are purged with their runs and events, checked hourly; off when unset",
    ),
    s(
        "coordinator.audit_retention_days",
        "AOF_AUDIT_RETENTION_DAYS",
        &[],
        None,
        Value("90"),
        "days audit log entries are kept (purged hourly); 0 keeps them forever",
    ),
    s(
        "coordinator.recovery_mode",
        "AOF_RECOVERY_MODE",
        &["RUN_RECOVERY_MODE"],
        None,
        Value("stale"),
        "what an expired lease does: `none`, `stale` or `all`",
    ),
    s(
        "coordinator.cors_origins",
        "AOF_CORS_ORIGINS",
        &["CORS_ORIGINS"],
        None,
        Derived("none (same origin only)"),
        "comma-separated origins (`https://dash.example.com`) whose pages may call the API (with the cookie, and writes); `*` lets any page read without credentials (refused with auth off on a non-loopback `listen`)",
    ),
    s(
        "coordinator.allowed_hosts",
        "AOF_ALLOWED_HOSTS",
        &[],
        None,
        Derived("none"),
        "comma-separated host names (no port) the API answers with auth off besides `localhost` and IP addresses (other `Host`s: 403 `host_not_allowed`, against DNS rebinding; `/health`, `/ready` answer any), e.g. `coordinator` in compose; `/mcp` (auth on too) answers only loopback and these",
    ),
    s(
        "coordinator.max_body_bytes",
        "AOF_MAX_BODY_BYTES",
        &[],
        None,
        Value("4194304"),
        "largest request body, bytes (4 MiB)",
    ),
    s(
        "coordinator.placeholder_env",
        "AOF_PLACEHOLDER_ENV",
        &[],
        None,
        Derived("none"),
        "comma-separated environment variables blueprints may read as `${env.NAME}`",
    ),
    s(
        "coordinator.project_dir_roots",
        "AOF_PROJECT_DIR_ROOTS",
        &[],
        None,
        Derived("none (any path)"),
        "comma-separated absolute paths; a `project_dir` (runs, runners, sessions) outside them is refused (403 `project_dir_not_allowed`)",
    ),
    s(
        "coordinator.docs_enabled",
        "AOF_DOCS_ENABLED",
        &["DOCS_ENABLED"],
        None,
        Value("false"),
        "serve an interactive API page (Swagger UI, its files built in: works offline) at `/docs`, over `/openapi.json`; it needs what `/openapi.json` needs (a viewer credential with auth on)",
    ),
    // Caps on long-lived requests per credential (API key, OIDC subject, session token;
    // with auth off everyone shares one count); beyond a cap: 429 with `Retry-After`.
    s(
        "coordinator.max_streams_per_key",
        "AOF_MAX_STREAMS_PER_KEY",
        &[],
        None,
        Value("64"),
        "open `GET /sse/sessions` streams one credential may hold at once; beyond: 429 `too_many_streams`",
    ),
    s(
        "coordinator.max_polls_per_key",
        "AOF_MAX_POLLS_PER_KEY",
        &[],
        None,
        Value("256"),
        "runner long-polls (`GET /runner/runs`) one credential may hold at once, one per runner sharing the key; beyond: 429 `too_many_polls` (the runner of `aof up` is exempt)",
    ),
    s(
        "coordinator.max_mcp_waits_per_key",
        "AOF_MAX_MCP_WAITS_PER_KEY",
        &[],
        None,
        Value("64"),
        "orchestrator MCP calls in `mode: sync` (waiting for a child session) one credential may hold at once; beyond: tool error `too_many_waits`",
    ),
    s(
        "coordinator.shutdown_timeout",
        "AOF_SHUTDOWN_TIMEOUT",
        &[],
        None,
        Value("10"),
        "seconds a stop (SIGTERM, Ctrl-C) may take: `/ready` turns 503, streams and long-polls are told to go, in-flight writes commit; what is still open then is cut and named in the log, and the process exits 0. Also bounds `aof dashboard`; `aof up` adds its runner's `drain_timeout`",
    ),
    s(
        "runner.tags",
        "AOF_RUNNER_TAGS",
        &["RUNNER_TAGS"],
        Some("--tags"),
        Derived("none"),
        "comma-separated tags this runner offers; runs may demand them",
    ),
    s(
        "runner.require_matching_tags",
        "AOF_REQUIRE_MATCHING_TAGS",
        &["REQUIRE_MATCHING_TAGS"],
        Some("--require-matching-tags"),
        Value("false"),
        "take only runs that demand at least one of this runner's tags",
    ),
    s(
        "runner.max_concurrent",
        "AOF_MAX_CONCURRENT",
        &[],
        Some("--max-concurrent"),
        Value("4"),
        "runs executed at once",
    ),
    s(
        "runner.executor",
        "AOF_EXECUTOR",
        &[],
        Some("--executor"),
        Value("echo"),
        "executor for runs: `echo`, `command` or `claude_code`",
    ),
    s(
        "runner.command",
        "AOF_COMMAND",
        &[],
        Some("--command"),
        Derived("none"),
        "for `executor = command`: program and arguments, shell-quoted; prompt on stdin",
    ),
    s(
        "runner.command_timeout",
        "AOF_COMMAND_TIMEOUT",
        &[],
        Some("--command-timeout"),
        Derived("none"),
        "for `executor = command`: seconds one run may take before it is stopped and fails",
    ),
    s(
        "runner.claude_bin",
        "AOF_CLAUDE_BIN",
        &[],
        None,
        Derived("`claude` on PATH"),
        "for `executor = claude_code`: the Claude Code CLI",
    ),
    s(
        "runner.claude_model",
        "AOF_CLAUDE_MODEL",
        &[],
        None,
        Derived("the CLI's"),
        "for `executor = claude_code`: model (`--model`)",
    ),
    s(
        "runner.claude_permission_mode",
        "AOF_CLAUDE_PERMISSION_MODE",
        &[],
        None,
        Derived("the CLI's"),
        "for `executor = claude_code`: `--permission-mode` (default, acceptEdits, bypassPermissions, plan)",
    ),
    s(
        "runner.claude_allowed_tools",
        "AOF_CLAUDE_ALLOWED_TOOLS",
        &[],
        None,
        Derived("none"),
        "for `executor = claude_code`: comma-separated tools allowed without asking (`--allowedTools`)",
    ),
    s(
        "runner.claude_stall_timeout",
        "AOF_CLAUDE_STALL_TIMEOUT",
        &[],
        None,
        Value("900"),
        "for `executor = claude_code`: seconds without output before a run fails as stalled",
    ),
    s(
        "runner.allow_blueprint_executors",
        "AOF_ALLOW_BLUEPRINT_EXECUTORS",
        &[],
        None,
        Value("true"),
        "whether an agent blueprint may choose the executor (e.g. a command) for its runs",
    ),
    s(
        "runner.profile",
        "AOF_EXECUTOR_PROFILE",
        &[],
        Some("--profile"),
        Derived("the `profile_file`'s name, else the executor"),
        "executor profile name announced to the coordinator",
    ),
    s(
        "runner.profile_file",
        "AOF_PROFILE_FILE",
        &["PROFILE"],
        Some("--profile-file"),
        Derived("none"),
        "an AOF reference executor profile (JSON: `type`, `command`, `config`): a path, or a name read as `<profiles_dir>/<name>.json`. Its echo or Claude Code executor (`model`, `permission_mode`, `setting_sources`, and AOF's own `claude_code` keys) becomes this runner's executor and its name the announced `profile`; explicit `AOF_CLAUDE_*` settings win. Other executors (procedural, custom commands) are refused at start",
    ),
    s(
        "runner.profiles_dir",
        "AOF_PROFILES_DIR",
        &[],
        None,
        Value("profiles"),
        "where `profile_file` names are looked up (relative to the working directory)",
    ),
    s(
        "runner.project_dir",
        "AOF_PROJECT_DIR",
        &["PROJECT_DIR"],
        Some("--project-dir"),
        Derived("current directory"),
        "project directory announced to the coordinator",
    ),
    s(
        "runner.workspace",
        "AOF_WORKSPACE",
        &[],
        Some("--workspace"),
        Derived("`<data_dir>/workspaces`"),
        "root of per-session working directories",
    ),
    s(
        "runner.workspace_git_repo",
        "AOF_WORKSPACE_GIT_REPO",
        &[],
        None,
        Derived("none"),
        "a git repository: each session's workspace is a worktree of it on branch `aof/<session_id>`",
    ),
    s(
        "runner.workspace_git_base",
        "AOF_WORKSPACE_GIT_BASE",
        &[],
        None,
        Value("HEAD"),
        "what a new session's branch starts from (a ref of `runner.workspace_git_repo`)",
    ),
    s(
        "runner.workspace_cleanup",
        "AOF_WORKSPACE_CLEANUP",
        &[],
        None,
        Value("never"),
        "when a session's workspace is removed after a run: `never`, `on_success` or `always` (worktree branches are kept)",
    ),
    s(
        "runner.workspace_max_age",
        "AOF_WORKSPACE_MAX_AGE",
        &[],
        None,
        Derived("none (no sweep)"),
        "seconds after which an unused workspace of a session not running here is removed",
    ),
    s(
        "runner.rlimit_as",
        "AOF_RUN_RLIMIT_AS",
        &[],
        None,
        Derived("unlimited"),
        "address-space limit of every agent process, bytes (applied with util-linux `prlimit`)",
    ),
    s(
        "runner.rlimit_cpu",
        "AOF_RUN_RLIMIT_CPU",
        &[],
        None,
        Derived("unlimited"),
        "CPU-time limit of every agent process, seconds",
    ),
    s(
        "runner.rlimit_nofile",
        "AOF_RUN_RLIMIT_NOFILE",
        &[],
        None,
        Derived("unlimited"),
        "open-file limit of every agent process",
    ),
    s(
        "runner.rlimit_nproc",
        "AOF_RUN_RLIMIT_NPROC",
        &[],
        None,
        Derived("unlimited"),
        "process limit of every agent process (counts all processes of the runner's user)",
    ),
    // runner.agent_user / runner.agent_env: agent isolation (issue #20, attack 6).
    s(
        "runner.agent_user",
        "AOF_RUNNER_AGENT_USER",
        &[],
        None,
        Derived("none (agents run as the runner's user)"),
        "run every agent process as this user (name, `uid` or `uid:gid`), so agents cannot read the runner's process (`/proc/<pid>/environ`, its key) or its files; the runner must start as root and refuses to start otherwise. Without it, run each runner in its own container or as its own user",
    ),
    s(
        "runner.agent_env",
        "AOF_RUNNER_AGENT_ENV",
        &[],
        None,
        Derived("none"),
        "comma-separated variables of the runner's environment agents get besides the base (PATH, HOME, USER, LANG, LC_*, TZ, TERM, TMPDIR, proxies, CA files) and their executor's own (Claude Code: `ANTHROPIC_*`, `CLAUDE_CODE_*`); never `AOF_*`",
    ),
    // runner.approval_floor: human approval of tool calls (issue #25).
    s(
        "runner.approval_floor",
        "AOF_RUNNER_APPROVAL_FLOOR",
        &[],
        None,
        Derived("none (only the blueprint's `approval`)"),
        "tools whose calls always wait for a human approval on this runner, whatever the blueprint says: comma-separated tool patterns (`*` matches any run of characters, e.g. `Bash,mcp__github__*`) or a JSON policy `{\"tools\": [...], \"timeout_seconds\": 600, \"on_timeout\": \"deny\"}`; a blueprint may add tools but not remove these, wait longer or approve on timeout",
    ),
    s(
        "runner.hostname",
        "AOF_HOSTNAME",
        &[],
        Some("--hostname"),
        Derived("this machine's"),
        "host name announced to the coordinator",
    ),
    s(
        "runner.oauth_token_url",
        "AOF_OAUTH_TOKEN_URL",
        &[],
        None,
        Derived("`https://$AUTH0_DOMAIN/oauth/token` when `AUTH0_DOMAIN` is set"),
        "OAuth 2.0 token endpoint the runner gets its bearer tokens from (client credentials, with `auth.oidc_audience` / `AUTH0_AUDIENCE` as `audience`); https, or http on loopback only. Tokens are cached and renewed before they expire",
    ),
    s(
        "runner.oauth_client_id",
        "AOF_OAUTH_CLIENT_ID",
        &["AUTH0_RUNNER_CLIENT_ID"],
        None,
        Derived("none (the runner sends `api.key`, if any)"),
        "client id for the token endpoint; set with `oauth_client_secret` instead of `api.key`. The tokens must carry the `runner` role in `auth.oidc_role_claim`",
    ),
    Setting {
        secret: true,
        ..s(
            "runner.oauth_client_secret",
            "AOF_OAUTH_CLIENT_SECRET",
            &["AUTH0_RUNNER_CLIENT_SECRET"],
            None,
            Derived("none"),
            "client secret for the token endpoint; secret, shown masked",
        )
    },
    s(
        "runner.run_timeout",
        "AOF_RUN_TIMEOUT",
        &[],
        None,
        Derived("none"),
        "seconds any run may take (every executor); past it the run is stopped and fails. An agent's `limits` or the executor's own `timeout_seconds` may set a tighter one",
    ),
    s(
        "runner.run_max_tokens",
        "AOF_RUN_MAX_TOKENS",
        &[],
        None,
        Derived("none"),
        "tokens (input + output, as the executor reports them) any run may use; past it the run is stopped and fails. The tightest of this, the agent's and the executor's wins",
    ),
    s(
        "runner.run_max_cost_usd",
        "AOF_RUN_MAX_COST_USD",
        &[],
        None,
        Derived("none"),
        "US dollars any run may cost (executors that report a price: claude_code, a command's usage lines); past it the run is stopped and fails",
    ),
    s(
        "runner.stop_grace",
        "AOF_STOP_GRACE",
        &[],
        Some("--stop-grace"),
        Value("5"),
        "seconds a stopped run gets between SIGTERM and SIGKILL",
    ),
    s(
        "runner.drain_timeout",
        "AOF_RUNNER_DRAIN_TIMEOUT",
        &[],
        Some("--drain-timeout"),
        Value("20"),
        "on SIGTERM/SIGINT: seconds active runs get to finish before the rest are stopped and handed back to the coordinator for another runner (a second signal skips the wait); keep it plus `stop_grace` and a few seconds of reporting inside the pod's `terminationGracePeriodSeconds` (Kubernetes default 30 s; `deploy/kubernetes` sets 40)",
    ),
    s(
        "dashboard.listen",
        "AOF_DASHBOARD_LISTEN",
        &[],
        Some("--listen"),
        Value("127.0.0.1:8080"),
        "`aof dashboard`: address the standalone dashboard listens on; it forwards API calls to `api.url`",
    ),
];

/// The setting with this file key.
pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// The generated markdown table of every setting (README and ARCHITECTURE.md embed it).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| file key | flag | environment (reference alias) | default | meaning |\n\
         |---|---|---|---|---|\n",
    );
    out.push_str(&format!(
        "| — | `{CONFIG_FLAG}` | `{CONFIG_ENV}` | none | TOML file holding the keys below |\n"
    ));
    for s in SETTINGS {
        let flag = s.flag.map_or("—".to_string(), |f| format!("`{f}`"));
        let mut env = format!("`{}`", s.env);
        for a in s.aliases {
            env.push_str(&format!(", `{a}`"));
        }
        let default = match s.default {
            Value(v) => format!("`{v}`"),
            Derived(d) => d.to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {flag} | {env} | {default} | {} |\n",
            s.key, s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_envs_and_flags_are_unique() {
        let mut names: Vec<&str> = SETTINGS
            .iter()
            .flat_map(|s| std::iter::once(s.env).chain(s.aliases.iter().copied()))
            .collect();
        names.push(CONFIG_ENV);
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "an environment name is used twice");
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len());
        assert!(SETTINGS.iter().all(|s| s.env.starts_with("AOF_")));
    }
}
