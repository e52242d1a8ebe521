//! `aof runner`: dials out to a coordinator, long-polls, executes runs.

use aof_config::Config;

#[derive(clap::Args, Debug, Clone)]
pub struct RunnerArgs {
    /// Coordinator URL (default: AOF_URL / AGENT_ORCHESTRATOR_API_URL, else
    /// http://127.0.0.1:8765). Repeat it (or give AOF_URL=A,B) for coordinators sharing
    /// one database: the runner uses one at a time and moves to the next when it gets
    /// no answer.
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    #[command(flatten)]
    pub opts: RunnerOpts,
}

/// Runner flags shared by `aof runner` and `aof up`; all optional, merged by `aof-config`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunnerOpts {
    /// Tags this runner offers (comma separated); runs may demand them.
    #[arg(long, value_name = "A,B")]
    pub tags: Option<String>,
    /// Take only runs that demand at least one of --tags.
    #[arg(long)]
    pub require_matching_tags: bool,
    /// Runs executed at once [default: 4].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<String>,
    /// Executor for runs: echo, command (see --command) or claude_code (settings
    /// `runner.claude_*`) [default: echo].
    #[arg(long)]
    pub executor: Option<String>,
    /// For `--executor command`: the program and its arguments, shell-quoted
    /// (e.g. `--command "python3 agent.py --fast"`). The prompt arrives on stdin.
    #[arg(long)]
    pub command: Option<String>,
    /// For `--executor command`: seconds one run may take before it is stopped and fails.
    #[arg(long, value_name = "SECS")]
    pub command_timeout: Option<String>,
    /// Executor profile name announced to the coordinator (default: the profile
    /// file's name, else the executor).
    #[arg(long)]
    pub profile: Option<String>,
    /// An AOF reference executor profile to run: a path, or NAME for
    /// <AOF_PROFILES_DIR>/NAME.json (echo and Claude Code profiles).
    #[arg(long, value_name = "FILE|NAME")]
    pub profile_file: Option<String>,
    /// Project directory announced to the coordinator (default: current dir).
    #[arg(long, value_name = "DIR")]
    pub project_dir: Option<String>,
    /// Root of per-session working directories [default: <data-dir>/workspaces].
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<String>,
    /// Host name announced to the coordinator (default: this machine's).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Seconds a stopped run gets to end before it is killed [default: 5].
    #[arg(long, value_name = "SECS")]
    pub stop_grace: Option<String>,
    /// On SIGTERM: seconds active runs get to finish before the rest are handed back
    /// (a second signal skips the wait) [default: 20].
    #[arg(long, value_name = "SECS")]
    pub drain_timeout: Option<String>,
}

impl RunnerOpts {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        [
            ("runner.tags", &self.tags),
            ("runner.max_concurrent", &self.max_concurrent),
            ("runner.executor", &self.executor),
            ("runner.command", &self.command),
            ("runner.command_timeout", &self.command_timeout),
            ("runner.profile", &self.profile),
            ("runner.profile_file", &self.profile_file),
            ("runner.project_dir", &self.project_dir),
            ("runner.workspace", &self.workspace),
            ("runner.hostname", &self.hostname),
            ("runner.stop_grace", &self.stop_grace),
            ("runner.drain_timeout", &self.drain_timeout),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .chain(
            self.require_matching_tags
                .then(|| ("runner.require_matching_tags", "true".to_string())),
        )
        .collect()
    }
}

impl RunnerArgs {
    pub fn flags(&self) -> Vec<(&'static str, String)> {
        let mut f: Vec<(&'static str, String)> = Vec::new();
        if !self.urls.is_empty() {
            f.push(("api.url", self.urls.join(",")));
        }
        f.extend(self.opts.flags());
        f
    }
}

pub async fn run(_args: RunnerArgs, cfg: &Config) -> anyhow::Result<u8> {
    let rcfg = super::runner_config(cfg, None).await?;
    let (shutdown, hurry) = super::signals();
    aof_runner::run_draining(rcfg, shutdown, hurry).await?;
    Ok(0)
}
