//! `aof runner`: dials out to a coordinator, long-polls, executes runs.

use std::{path::PathBuf, time::Duration};

use aof_runner::RunnerConfig;

#[derive(clap::Args, Debug, Clone)]
pub struct RunnerArgs {
    /// Coordinator URL (default: AGENT_ORCHESTRATOR_API_URL, else http://127.0.0.1:8765).
    #[arg(long)]
    pub url: Option<String>,
    #[command(flatten)]
    pub opts: RunnerOpts,
}

/// Runner settings shared by `aof runner` and `aof up`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunnerOpts {
    /// Tags this runner offers (comma separated); runs may demand them.
    #[arg(long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Runs executed at once.
    #[arg(long, default_value_t = 4)]
    pub max_concurrent: usize,
    /// Executor for runs: echo, or command (see --command).
    #[arg(long, default_value = "echo")]
    pub executor: String,
    /// For `--executor command`: the program and its arguments, shell-quoted
    /// (e.g. `--command "python3 agent.py --fast"`). The prompt arrives on stdin.
    #[arg(long)]
    pub command: Option<String>,
    /// Executor profile name announced to the coordinator (default: the executor).
    #[arg(long)]
    pub profile: Option<String>,
    /// Project directory announced to the coordinator (default: current dir).
    #[arg(long)]
    pub project_dir: Option<PathBuf>,
    /// Root of per-session working directories.
    #[arg(long)]
    pub workspace: Option<PathBuf>,
    /// Host name announced to the coordinator (default: this machine's).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Seconds a stopped run gets to end before it is killed.
    #[arg(long, default_value_t = 5.0)]
    pub stop_grace: f64,
}

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

impl RunnerOpts {
    fn executor_config(&self) -> anyhow::Result<aof_executors::ExecutorConfig> {
        use aof_executors::ExecutorConfig;
        match (self.executor.as_str(), &self.command) {
            ("echo", None) => Ok(ExecutorConfig::Echo),
            ("command", Some(line)) => {
                let mut words = shell_words::split(line)
                    .map_err(|e| anyhow::anyhow!("--command: {e}"))?
                    .into_iter();
                let program = words
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--command is empty"))?;
                Ok(ExecutorConfig::Command {
                    program,
                    args: words.collect(),
                })
            }
            ("command", None) => {
                anyhow::bail!("--executor command needs --command \"PROGRAM ARGS…\"")
            }
            ("echo", Some(_)) => anyhow::bail!("--command only applies to --executor command"),
            (other, _) => {
                anyhow::bail!("unknown executor '{other}' (this build has: echo, command)")
            }
        }
    }

    pub fn config(&self, url: String, data_dir: &std::path::Path) -> anyhow::Result<RunnerConfig> {
        if self.max_concurrent == 0 {
            anyhow::bail!("--max-concurrent must be at least 1");
        }
        if !(self.stop_grace >= 0.0 && self.stop_grace < 3600.0) {
            anyhow::bail!("--stop-grace must be between 0 and 3600 seconds");
        }
        let project_dir = match &self.project_dir {
            Some(p) => p.clone(),
            None => std::env::var("PROJECT_DIR")
                .map(PathBuf::from)
                .or_else(|_| std::env::current_dir())?,
        };
        let mut tags = self.tags.clone();
        if tags.is_empty() {
            if let Ok(t) = std::env::var("RUNNER_TAGS") {
                tags = t
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
            }
        }
        Ok(RunnerConfig {
            url,
            tags,
            max_concurrent: self.max_concurrent,
            hostname: self.hostname.clone().unwrap_or_else(machine_hostname),
            project_dir: project_dir.display().to_string(),
            executor_profile: self
                .profile
                .clone()
                .unwrap_or_else(|| self.executor.clone()),
            executor: self.executor_config()?,
            workspace_root: self
                .workspace
                .clone()
                .unwrap_or_else(|| data_dir.join("workspaces")),
            stop_grace: Duration::from_secs_f64(self.stop_grace),
        })
    }
}

pub async fn run(args: RunnerArgs) -> anyhow::Result<u8> {
    let url = args.url.clone().unwrap_or_else(super::env_url);
    let cfg = args
        .opts
        .config(url, std::path::Path::new(".agent-orchestrator"))?;
    let shutdown = super::shutdown_on_signals();
    aof_runner::run(cfg, shutdown).await?;
    Ok(0)
}
