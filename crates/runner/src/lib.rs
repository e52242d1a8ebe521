//! aof-runner: registers with a coordinator, long-polls for runs, executes them with an
//! `aof_executors` executor and reports back — events in order, exactly once per
//! idempotency key, fenced by the run's lease.
//!
//! Tasks and their policies:
//! - supervisor (`run`): register, poll, dispatch; on shutdown drains (no new runs,
//!   active ones get `drain_timeout` to finish, the rest are stopped and handed back to
//!   the coordinator), waits for them with a deadline, deregisters.
//! - heartbeat (one per registration): renews leases; errors are logged and the next tick
//!   tries again; a 401 ends the registration so the supervisor registers anew.
//! - execution (one per run) with its outbox delivery task: retries while the coordinator
//!   is unreachable; cancelled by stop, shutdown or lease loss; abandoned at the deadline.

mod active;
mod approval;
mod backoff;
mod client;
mod execution;
mod limits;
mod oauth;
mod outbox;
mod supervisor;
mod workspace;

pub use workspace::{Cleanup, WorkspaceError, WorkspaceSettings};

pub use aof_wire::RunLimits;

use std::{path::PathBuf, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{active::Active, client::Client};

/// How a runner process is set up; filled by the CLI.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Coordinator base URLs, e.g. `http://127.0.0.1:8765`: one, or several coordinators
    /// on one shared store. The runner talks to one at a time, in this order, and moves
    /// to the next when a request gets no answer (see `client`).
    pub urls: Vec<String>,
    pub tags: Vec<String>,
    /// Take only runs that demand at least one of `tags` (`runner.require_matching_tags`).
    pub require_matching_tags: bool,
    /// How many runs execute at once (at least 1).
    pub max_concurrent: usize,
    pub hostname: String,
    pub project_dir: String,
    pub executor_profile: String,
    /// Executor settings for `aof_executors::build`: the default executor, for runs
    /// whose agent blueprint names none.
    pub executor: aof_executors::ExecutorConfig,
    /// The `executor` object announced at registration (an AOF reference profile's type,
    /// command and config); `None`: type `autonomous` and the executor's command line.
    pub executor_announce: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether a run's agent blueprint may choose its executor (`executor` in the
    /// blueprint, e.g. `{"kind": "command", "program": "python3", "args": ["x.py"]}`).
    /// When false, a run whose blueprint names an executor fails with a clear reason
    /// instead of running a command the runner's operator didn't configure.
    pub allow_blueprint_executors: bool,
    /// Each session runs in `workspace_root/<session_id>`.
    pub workspace_root: PathBuf,
    /// Git worktrees, cleanup and the age sweep of those directories.
    pub workspace: WorkspaceSettings,
    /// Resource limits applied to every agent process.
    pub limits: aof_executors::ProcessLimits,
    /// `runner.agent_user`: a user name, `uid` or `uid:gid` every agent process runs
    /// as (the runner must start as root; it refuses to start otherwise). Keeps agents
    /// out of the runner's own process (`/proc/<pid>/environ` holds its key) and files.
    pub agent_user: Option<String>,
    /// `runner.agent_env`: variables of the runner's environment agents get besides
    /// the base allow-list (`aof_executors::isolation`); `AOF_*` never.
    pub agent_env: Vec<String>,
    /// Executor state kept across runs and restarts (e.g. the Claude CLI's sessions).
    pub state_dir: PathBuf,
    /// After a stop, how long a process gets between SIGTERM and SIGKILL. The runner
    /// aborts an executor that still has not finished `STOP_BACKSTOP` later.
    pub stop_grace: Duration,
    /// On shutdown, how long active runs get to finish; what is still running then is
    /// stopped and handed back to the coordinator (`release`) for another runner.
    pub drain_timeout: Duration,
    /// Limits of every run (`AOF_RUN_TIMEOUT`, `AOF_RUN_MAX_TOKENS`,
    /// `AOF_RUN_MAX_COST_USD`); an agent's `limits` or the executor's own options may
    /// tighten them (see `limits`).
    pub run_limits: aof_wire::RunLimits,
    /// `runner.approval_floor`: tools whose calls always wait for a human on this
    /// runner, whatever the blueprint says (`ApprovalPolicy::with_floor`: blueprints
    /// can add tools, never remove these, lengthen the timeout or turn a deny into an
    /// approve). Empty: only the blueprint's `approval`.
    pub approval_floor: aof_wire::approval::ApprovalPolicy,
    /// API key (role `runner`) sent as `Authorization: Bearer` on every request.
    pub api_key: Option<ApiKey>,
    /// Instead of `api_key`: bearer tokens from an OAuth token endpoint (the AOF
    /// reference's Auth0 machine-to-machine runners).
    pub oauth: Option<ClientCredentials>,
}

/// OAuth 2.0 client credentials (`runner.oauth_*`, the reference's `AUTH0_*`); the
/// tokens must carry the `runner` role for the coordinator.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: ApiKey,
    pub audience: String,
}

/// A credential that never prints: `Debug` shows `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(pub String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("****")
    }
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            urls: vec!["http://127.0.0.1:8765".into()],
            tags: Vec::new(),
            require_matching_tags: false,
            max_concurrent: 1,
            hostname: "localhost".into(),
            project_dir: ".".into(),
            executor_profile: "echo".into(),
            executor: aof_executors::ExecutorConfig::Echo,
            executor_announce: None,
            allow_blueprint_executors: true,
            workspace_root: std::env::temp_dir().join("aof-workspaces"),
            workspace: WorkspaceSettings::default(),
            limits: aof_executors::ProcessLimits::default(),
            agent_user: None,
            agent_env: Vec::new(),
            state_dir: std::env::temp_dir().join("aof-runner-state"),
            stop_grace: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(20),
            run_limits: aof_wire::RunLimits::default(),
            approval_floor: Default::default(),
            api_key: None,
            oauth: None,
        }
    }
}

/// What every task of the runner shares.
pub(crate) struct Shared {
    pub cfg: RunnerConfig,
    pub client: Client,
    /// The default executor; a blueprint-chosen one is built per run.
    pub executor: Arc<dyn aof_executors::Executor>,
    /// How agent processes start (limits, user, passed variables), for every run.
    pub agent: aof_executors::AgentProcess,
    pub active: Active,
    pub workspaces: workspace::Workspaces,
    /// Fired when shutdown stops waiting for deliveries; parent of every run's interrupt.
    pub abandon: CancellationToken,
}

/// Run the runner until `shutdown` is cancelled, then drain (see `run_draining`, with no
/// way to hurry it), deregister and return. Returns early only on a fatal configuration
/// error.
pub async fn run(cfg: RunnerConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    run_draining(cfg, shutdown, CancellationToken::new()).await
}

/// `run` with a graceful drain: after `shutdown`, active runs get `drain_timeout` to
/// finish (no new runs are taken, stops still arrive); then, or at once when `hurry` is
/// cancelled, the rest are stopped and handed back to the coordinator.
pub async fn run_draining(
    mut cfg: RunnerConfig,
    shutdown: CancellationToken,
    hurry: CancellationToken,
) -> anyhow::Result<()> {
    if cfg.max_concurrent == 0 {
        anyhow::bail!("max_concurrent must be at least 1");
    }
    // First: a runner that cannot keep agents out of its own process must not start.
    let agent_user = match cfg.agent_user.clone().filter(|u| !u.trim().is_empty()) {
        Some(spec) => {
            let user =
                tokio::task::spawn_blocking(move || aof_executors::AgentUser::resolve(&spec))
                    .await?
                    .map_err(anyhow::Error::msg)?;
            tracing::info!(uid = user.uid, gid = user.gid, name = ?user.name, "agents run as their own user");
            Some(user)
        }
        None => None,
    };
    if let Some(bad) = cfg
        .agent_env
        .iter()
        .find(|n| aof_executors::isolation::never_passed(n))
    {
        anyhow::bail!(
            "runner.agent_env: {bad} cannot be passed to agents (AOF_* variables hold the runner's own settings and credentials)"
        );
    }
    cfg.limits = cfg.limits.resolve().await.map_err(anyhow::Error::msg)?;
    let workspaces =
        workspace::Workspaces::open(&cfg.workspace_root, &cfg.workspace, agent_user.clone())
            .await?;
    let mut client = Client::new(&cfg.urls, cfg.api_key.as_ref())?;
    if let Some(creds) = cfg.oauth.clone() {
        client = client.with_tokens(oauth::Tokens::new(creds)?);
    }
    let executor: Arc<dyn aof_executors::Executor> = aof_executors::build(&cfg.executor)?.into();
    let agent = aof_executors::AgentProcess {
        limits: cfg.limits.clone(),
        user: agent_user,
        pass_env: cfg.agent_env.clone(),
    };
    let shared = Arc::new(Shared {
        cfg,
        client,
        executor,
        agent,
        active: Active::default(),
        workspaces,
        abandon: CancellationToken::new(),
    });
    let sweeper = tokio::spawn(workspace::sweep_loop(shared.clone(), shutdown.clone()));
    let res = supervisor::supervise(shared, shutdown, hurry).await;
    sweeper.abort();
    res
}
