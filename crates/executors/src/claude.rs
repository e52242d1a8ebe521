//! `claude_code`: runs the Claude Code CLI headless for each run.
//!
//! `claude -p --output-format stream-json --verbose`, the prompt on stdin, in the
//! session's working directory (stable per AOF session), `--resume <id>` when the run
//! continues a Claude session, `--mcp-config` with the blueprint's servers and the
//! coordinator's orchestrator (see `args`). Its state (`CLAUDE_CONFIG_DIR`: transcripts,
//! settings) and the run's MCP config live in the session's own private dir
//! (`ExecCx::session_dir`), so a resume works after a runner restart too and no
//! session's agent is pointed at another's transcripts or session token.
//!
//! The stream becomes events as `stream` describes. A stream silent for longer than
//! the stall timeout fails the run; so does a malformed line, a `result` that is an
//! error, or an exit without a result. A stop interrupts the CLI (SIGINT), then sends
//! SIGTERM and finally SIGKILL to its process group; the run ends `stopped`. Usage
//! (tokens per assistant message, then the result's totals and cost) is reported as
//! `ExecEvent::Usage`, so the runner can enforce the run's limits while it runs.

pub mod approval;
mod args;
mod stream;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use async_trait::async_trait;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{io::AsyncWriteExt, time::Instant};

pub use self::args::ORCHESTRATOR_SERVER;
use self::stream::StreamState;
use crate::{
    process::{command, next_line, push_tail, sleep_until, spawn_group, Group},
    AgentUser, ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome,
};

/// Where the CLI is when `program` is not set: this variable, else `claude` on `PATH`.
pub const CLAUDE_BIN_ENV: &str = "AOF_CLAUDE_BIN";

/// What `setting_sources` may name (the CLI's `--setting-sources` values).
const SETTING_SOURCES: &[&str] = &["user", "project", "local"];

/// Without output for this long, a run has stalled (a tool may legitimately work
/// silently for minutes, so this is generous).
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(900);

/// Settings of the `claude_code` executor, as a runner profile or in a blueprint's
/// `executor` (which overrides or only narrows the profile's, see `policy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaudeCodeConfig {
    /// The CLI; else `AOF_CLAUDE_BIN`, else `claude` on `PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `--permission-mode`: default, acceptEdits, bypassPermissions, plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disallowed_tools: Vec<String>,
    /// `--setting-sources`: which Claude settings files load (`user`, `project`,
    /// `local`); an empty list loads none (an isolated run). Unset: the CLI's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_sources: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// Seconds without any output before the run fails as stalled (default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_timeout_seconds: Option<f64>,
    /// Wall-clock limit of one run; none by default. Enforced by the runner with the
    /// run's other limits (see `ExecutorConfig::limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

impl ClaudeCodeConfig {
    pub fn program_or_default(&self) -> String {
        self.program
            .clone()
            .or_else(|| std::env::var(CLAUDE_BIN_ENV).ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "claude".into())
    }

    pub(crate) fn validate(&self) -> Result<(), ExecError> {
        if self.program.as_deref() == Some("") {
            return Err(ExecError::BadParameters(
                "claude_code: program must not be empty (leave it out to use AOF_CLAUDE_BIN or `claude` on PATH)".into(),
            ));
        }
        if let Some(bad) = self
            .setting_sources
            .iter()
            .flatten()
            .find(|s| !SETTING_SOURCES.contains(&s.as_str()))
        {
            return Err(ExecError::BadParameters(format!(
                "claude_code: setting_sources: {bad:?} is not one of user, project, local"
            )));
        }
        if self.max_turns == Some(0) {
            return Err(ExecError::BadParameters(
                "claude_code: max_turns must be at least 1".into(),
            ));
        }
        for (name, v) in [
            ("stall_timeout_seconds", self.stall_timeout_seconds),
            ("timeout_seconds", self.timeout_seconds),
        ] {
            crate::timeout(v)
                .map_err(|e| ExecError::BadParameters(format!("claude_code: {name}: {e}")))?;
        }
        Ok(())
    }

    /// `self` (a blueprint's settings) over `profile` (the runner's): each setting the
    /// blueprint gives wins, the rest come from the profile. Only where blueprints may
    /// choose executors; otherwise `policy::refine_claude` narrows the profile instead.
    pub fn merged_over(&self, profile: &ClaudeCodeConfig) -> ClaudeCodeConfig {
        let pick_list = |mine: &Vec<String>, theirs: &Vec<String>| {
            if mine.is_empty() {
                theirs.clone()
            } else {
                mine.clone()
            }
        };
        ClaudeCodeConfig {
            program: self.program.clone().or(profile.program.clone()),
            model: self.model.clone().or(profile.model.clone()),
            permission_mode: self
                .permission_mode
                .clone()
                .or(profile.permission_mode.clone()),
            allowed_tools: pick_list(&self.allowed_tools, &profile.allowed_tools),
            disallowed_tools: pick_list(&self.disallowed_tools, &profile.disallowed_tools),
            setting_sources: self
                .setting_sources
                .clone()
                .or(profile.setting_sources.clone()),
            max_turns: self.max_turns.or(profile.max_turns),
            stall_timeout_seconds: self.stall_timeout_seconds.or(profile.stall_timeout_seconds),
            timeout_seconds: self.timeout_seconds.or(profile.timeout_seconds),
        }
    }
}

/// How long the CLI may linger after its `result` line before it is stopped (an MCP
/// connection can keep it from exiting); the result stands either way.
const AFTER_RESULT_GRACE: Duration = Duration::from_secs(10);

pub struct ClaudeExecutor {
    cfg: ClaudeCodeConfig,
    stall: Duration,
    after_result: Duration,
}

impl ClaudeExecutor {
    pub fn new(cfg: ClaudeCodeConfig) -> Result<ClaudeExecutor, ExecError> {
        cfg.validate()?;
        Ok(ClaudeExecutor {
            stall: crate::timeout(cfg.stall_timeout_seconds)?.unwrap_or(DEFAULT_STALL_TIMEOUT),
            after_result: AFTER_RESULT_GRACE,
            cfg,
        })
    }
}

/// The session's private files for one run, made before the CLI starts (blocking IO):
/// its config dir `<session_dir>/claude` (created 0700 if missing, the agent user's),
/// and the run's MCP config, 0600 and the agent user's (it holds the session token).
/// The session dir may belong to the agent: nothing in it is followed, re-moded or
/// chowned by path — new entries are made with `O_EXCL` and chowned through their
/// handle or before anything else can reach them.
struct SessionFiles {
    config_dir: PathBuf,
    mcp_path: PathBuf,
}

impl SessionFiles {
    fn prepare(
        session_dir: &Path,
        legacy_config: &Path,
        job: &Job,
        mcp: &[u8],
        user: Option<&AgentUser>,
    ) -> std::io::Result<SessionFiles> {
        use std::os::unix::fs::DirBuilderExt;
        if !session_dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(session_dir)?;
        }
        let config_dir = session_dir.join("claude");
        match std::fs::DirBuilder::new().mode(0o700).create(&config_dir) {
            Ok(()) => {
                // New, so nobody else can reach it yet: adopt this session's Claude
                // conversation from the shared dir of earlier versions, then hand over.
                if let Some(id) = &job.resume {
                    adopt_legacy_transcript(legacy_config, &config_dir, id);
                }
                if let Some(u) = user {
                    u.chown_tree(&config_dir)?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let mcp_path = session_dir.join(format!("mcp-{}.json", job.run_id));
        write_private(&mcp_path, mcp, user)?;
        Ok(SessionFiles {
            config_dir,
            mcp_path,
        })
    }
}

/// Write a file readable by the agent only (0600, the agent user's): any old entry is
/// removed and the new one created with `O_EXCL`, so a planted symlink is never followed.
fn write_private(path: &Path, contents: &[u8], user: Option<&AgentUser>) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if let Some(u) = user {
        std::os::unix::fs::fchown(&f, Some(u.uid), Some(u.gid))?;
    }
    f.write_all(contents)?;
    f.flush()
}

/// Before each session had its own config dir, all shared `<state>/claude/config`:
/// copy the resumed conversation (`projects/<dir>/<id>.jsonl`) from there, so a session
/// started before the upgrade still resumes. Best effort: a miss only means the CLI
/// starts a new conversation, as it would for any unknown id.
fn adopt_legacy_transcript(legacy_config: &Path, config_dir: &Path, id: &str) {
    let file = format!("{id}.jsonl");
    if id.contains('/') || id.starts_with('.') {
        return;
    }
    let Ok(projects) = std::fs::read_dir(legacy_config.join("projects")) else {
        return;
    };
    for project in projects.flatten() {
        let from = project.path().join(&file);
        if !from.is_file() {
            continue;
        }
        let to = config_dir.join("projects").join(project.file_name());
        let copied =
            std::fs::create_dir_all(&to).and_then(|()| std::fs::copy(&from, to.join(&file)));
        match copied {
            Ok(_) => tracing::info!(
                claude_session = id,
                "adopted the conversation from the shared config dir"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "cannot adopt the conversation from the shared config dir")
            }
        }
    }
}

#[async_trait]
impl Executor for ClaudeExecutor {
    fn kind(&self) -> &'static str {
        "claude_code"
    }

    fn resumes(&self) -> bool {
        true
    }

    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        approval::check(&self.cfg, &job, &cx.approval)?;
        let program = self.cfg.program_or_default();
        // Absolute: the CLI runs in the session's workdir, not the runner's.
        let session_dir = std::path::absolute(&cx.session_dir)?;
        let legacy_config = std::path::absolute(&cx.state_dir)?
            .join("claude")
            .join("config");
        let token = cx.env.get("AOF_SESSION_TOKEN").map(String::as_str);
        let floor = approval::floor_header(&cx.approval);
        let mcp = args::mcp_config(&job, token, floor.as_deref()).to_string();
        let (j, user) = (job.clone(), cx.agent.user.clone());
        let files = tokio::task::spawn_blocking(move || {
            SessionFiles::prepare(
                &session_dir,
                &legacy_config,
                &j,
                mcp.as_bytes(),
                user.as_ref(),
            )
        })
        .await
        .map_err(std::io::Error::other)??;
        let mcp_path = files.mcp_path.clone();

        let mut cmd = command(&program, &cx.agent);
        cmd.args(args::arguments(&self.cfg, &job, &mcp_path))
            .args(approval::arguments(&cx.approval))
            .current_dir(&cx.workdir)
            .envs(args::environment(
                std::env::vars(),
                &cx,
                &job,
                &files.config_dir,
            ))
            .envs(approval::tool_timeout(&cx.approval));
        let mut child = match spawn_group(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&mcp_path).await;
                return Err(ExecError::Unavailable(format!(
                    "cannot start Claude Code '{program}': {e} (install it, or set {CLAUDE_BIN_ENV} or the executor's `program`)"
                )));
            }
        };
        tracing::info!(program = %program, resume = job.resume.is_some(), "claude started");
        if let Some(mut stdin) = child.stdin.take() {
            let prompt = job.prompt.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(prompt.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        let run = ClaudeRun {
            group: Group::new(child),
            stall: approval::stall(self.stall, &cx.approval),
            after_result: self.after_result,
            mcp_path,
        };
        Ok(Execution {
            done: tokio::spawn(run.supervise(cx)),
        })
    }
}

struct ClaudeRun {
    group: Group,
    stall: Duration,
    after_result: Duration,
    /// Removed when the run ends.
    mcp_path: PathBuf,
}

/// Why the process is being stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancelled,
    /// Still running well after its result.
    Lingered,
    Stalled(Duration),
}

impl ClaudeRun {
    async fn supervise(mut self, cx: ExecCx) -> Result<Outcome, ExecError> {
        let outcome = self.read(&cx).await;
        let _ = tokio::fs::remove_file(&self.mcp_path).await;
        outcome
    }

    async fn read(&mut self, cx: &ExecCx) -> Result<Outcome, ExecError> {
        let mut st = StreamState::default();
        let mut tail = String::new();
        let mut stop: Option<Stop> = None;
        let mut stall_at = Instant::now() + self.stall;
        let mut linger_until: Option<Instant> = None;
        let g = &mut self.group;
        loop {
            let step_at = g.step_at();
            tokio::select! {
                line = next_line(&mut g.stdout), if g.stdout.is_some() => {
                    let Some(line) = line else {
                        g.stdout = None;
                        continue;
                    };
                    stall_at = Instant::now() + self.stall;
                    for ev in st.line(&line) {
                        let _ = cx.events.send(ev).await;
                    }
                    if st.result.is_some() && linger_until.is_none() {
                        linger_until = Some(Instant::now() + self.after_result);
                    }
                }
                line = next_line(&mut g.stderr), if g.stderr.is_some() => {
                    let Some(line) = line else {
                        g.stderr = None;
                        continue;
                    };
                    stall_at = Instant::now() + self.stall;
                    push_tail(&mut tail, &line);
                    let _ = cx.events.send(ExecEvent::Stderr { text: line }).await;
                }
                status = g.child.wait(), if g.drained() => {
                    let status = status?;
                    return Ok(outcome(stop, status, &st, tail.trim()));
                }
                _ = cx.cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Cancelled);
                    g.stop(Signal::SIGINT, cx.stop_grace);
                }
                _ = sleep_until(linger_until), if stop.is_none() && linger_until.is_some() => {
                    tracing::info!(pgid = g.pgid, "claude still running after its result; stopping it");
                    stop = Some(Stop::Lingered);
                    g.stop(Signal::SIGTERM, cx.stop_grace);
                }
                _ = tokio::time::sleep_until(stall_at), if stop.is_none() => {
                    tracing::warn!(pgid = g.pgid, stall_s = self.stall.as_secs_f64(), "claude stream stalled; stopping it");
                    stop = Some(Stop::Stalled(self.stall));
                    g.stop(Signal::SIGTERM, cx.stop_grace);
                }
                _ = sleep_until(step_at), if step_at.is_some() => g.escalate(cx.stop_grace),
            }
        }
    }
}

/// The run's outcome once the process has exited.
fn outcome(
    stop: Option<Stop>,
    status: std::process::ExitStatus,
    st: &StreamState,
    tail: &str,
) -> Outcome {
    let failed = |error: String| Outcome::Failed { error };
    let with_tail = |msg: String| {
        if tail.is_empty() {
            msg
        } else {
            format!("{msg}: {tail}")
        }
    };
    match stop {
        Some(Stop::Cancelled) => return Outcome::Stopped,
        Some(Stop::Stalled(d)) => {
            return failed(format!(
                "Claude Code stream stalled: no output for {}s (stall_timeout_seconds); the process was stopped",
                d.as_secs_f64()
            ))
        }
        Some(Stop::Lingered) | None => {}
    }
    // Stopped by us after its result: the exit status is ours, not the CLI's verdict.
    let exited_ok = status.success() || matches!(stop, Some(Stop::Lingered));
    if st.malformed > 0 {
        return failed(format!(
            "Claude Code wrote {} malformed stream-json line(s) (kept as raw events); first: {}",
            st.malformed,
            st.first_malformed.as_deref().unwrap_or("")
        ));
    }
    let code = status
        .code()
        .map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
    let Some(result) = &st.result else {
        return failed(with_tail(format!(
            "Claude Code exited with {code} before its result"
        )));
    };
    let text = result
        .get("result")
        .and_then(Value::as_str)
        .map(str::to_string);
    let subtype = result
        .get("subtype")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let is_error = result.get("is_error").and_then(Value::as_bool) == Some(true);
    if subtype != "success" || is_error || !exited_ok {
        // The CLI's own words: the result text, else its `errors`, else stderr.
        let errors = result
            .get("errors")
            .and_then(Value::as_array)
            .map(|e| {
                e.iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .filter(|e| !e.is_empty());
        let head = format!("Claude Code ended with {subtype} (exit {code})");
        return failed(match text.filter(|t| !t.is_empty()).or(errors) {
            Some(detail) => format!("{head}: {detail}"),
            None => with_tail(head),
        });
    }
    let keys = [
        "session_id",
        "usage",
        "total_cost_usd",
        "duration_ms",
        "duration_api_ms",
        "num_turns",
        "stop_reason",
        "modelUsage",
    ];
    let data: serde_json::Map<String, Value> = keys
        .iter()
        .filter_map(|k| result.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    Outcome::Completed {
        result_text: text,
        result_data: Some(json!(data)),
    }
}

#[cfg(test)]
mod tests;
