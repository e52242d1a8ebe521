//! aof-executors: the `Executor` trait and the executors behind it.
//!
//! An executor turns one run into normalized `ExecEvent`s and an `Outcome`. It knows
//! nothing about HTTP, leases or the store: the runner drives it and reports.

pub mod approval;
pub mod claude;
pub mod command;
pub mod echo;
pub mod isolation;
pub mod model;
pub mod policy;
mod process;

pub use approval::{ApprovalAnswer, Approvals, Approver};
pub use isolation::{AgentProcess, AgentUser};
pub use process::ProcessLimits;

use std::{collections::BTreeMap, path::PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

/// What the runner hands an executor for one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub run_id: String,
    pub session_id: String,
    pub agent_name: Option<String>,
    pub prompt: String,
    pub parameters: serde_json::Value,
    pub project_dir: Option<String>,
    /// The executor's own session id from an earlier run, for resume.
    pub resume: Option<String>,
    /// The agent blueprint the coordinator resolved for this run, as it came.
    #[serde(default)]
    pub blueprint: Option<serde_json::Value>,
    /// The blueprint's `system_prompt`, when it has a non-empty one.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// The coordinator's orchestrator MCP endpoint (`<base>/mcp`), which agents get as
    /// the `agent-orchestrator` MCP server.
    #[serde(default)]
    pub orchestrator_mcp_url: Option<String>,
    /// For a resumed session whose executor asked for it (`wants_history`): the
    /// session's stored events so far, from the coordinator.
    #[serde(default)]
    pub history: Option<Vec<aof_wire::StoredEvent>>,
}

impl Job {
    /// Attach a resolved blueprint, taking the system prompt from it.
    pub fn with_blueprint(mut self, blueprint: Option<serde_json::Value>) -> Job {
        self.system_prompt = blueprint
            .as_ref()
            .and_then(|b| b.get("system_prompt"))
            .and_then(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        self.blueprint = blueprint;
        self
    }
}

/// Environment of one execution.
pub struct ExecCx {
    pub workdir: PathBuf,
    pub env: BTreeMap<String, String>,
    /// Runner → executor: stop gracefully. The runner cancels it; the executor only reads it.
    pub cancel: CancellationToken,
    /// Executor → runner: normalized output, in order. Dropped by the executor when done.
    pub events: mpsc::Sender<ExecEvent>,
    /// After `cancel`, how long a process gets between SIGTERM and SIGKILL.
    pub stop_grace: std::time::Duration,
    /// Executor state kept across runs and runner restarts (the runner's data dir).
    /// Each executor uses its own subdirectory. Not for anything an agent reads.
    pub state_dir: PathBuf,
    /// This session's private directory (0700, the agent user's when there is one),
    /// kept across its runs: state an agent process reads, such as the Claude CLI's
    /// config dir and MCP config. No other session's agent is pointed at it.
    pub session_dir: PathBuf,
    /// How agent processes start: limits, user, the runner variables they may see.
    pub agent: AgentProcess,
    /// Which tool calls wait for a human, and who to ask (`approval`).
    pub approval: Approvals,
}

/// Normalized output of an executor; the runner maps these onto AOF session events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The executor's own session id became known (for resume).
    SessionId {
        id: String,
    },
    Message {
        role: String,
        text: String,
    },
    /// Anything else, kept as it came.
    Raw {
        data: serde_json::Value,
    },
    /// An event the agent shaped itself: a JSON object with a string `event_type`, in the
    /// session-event vocabulary. The runner sets its `session_id` (and a missing
    /// `timestamp`); one that is not a valid event is posted as `raw`.
    Structured {
        event: serde_json::Value,
    },
    /// One line the agent wrote to stderr.
    Stderr {
        text: String,
    },
    /// What the run has used so far, as the model endpoint reports it. Each report is
    /// the run's running total (it replaces the previous one); the runner checks it
    /// against the run's limits and shows it on the session.
    Usage {
        usage: Usage,
    },
}

/// A run's token and cost tally (cumulative since the run started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cache reads and writes included (they are processed input).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// US dollars, when the executor knows the price (Claude Code reports it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Completed {
        result_text: Option<String>,
        result_data: Option<serde_json::Value>,
    },
    Failed {
        error: String,
    },
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("executor '{0}' is not available on this runner")]
    Unavailable(String),
    #[error("bad parameters: {0}")]
    BadParameters(String),
    #[error("executor failed: {0}")]
    Io(#[from] std::io::Error),
    /// The run's blueprint names an executor this runner cannot or may not use.
    #[error("blueprint executor: {0}")]
    Blueprint(String),
}

/// A started execution. `done` resolves once, after the executor has cleaned up.
pub struct Execution {
    pub done: JoinHandle<Result<Outcome, ExecError>>,
}

#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Stable name, used as the runner's `executor_profile` default and in logs.
    fn kind(&self) -> &'static str;
    /// Whether a resumed run needs the session's stored events in `Job::history` (an
    /// executor that keeps no conversation state of its own).
    fn wants_history(&self) -> bool {
        false
    }
    /// Whether it continues its own sessions (`Job::resume`); the runner then looks up
    /// the executor session id of a resumed AOF session.
    fn resumes(&self) -> bool {
        false
    }
    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError>;
}

/// Executor settings, one variant per executor, tagged by `kind`. Unknown keys are an
/// error, so a typo in a blueprint's `executor` fails the run instead of being ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecutorConfig {
    Echo,
    /// A plain command: prompt on stdin, each stdout line an assistant message (JSON
    /// lines with an `event_type` become events), exit status decides the outcome.
    Command {
        program: String,
        #[serde(default)]
        args: Vec<String>,
        /// Wall-clock limit of one run; past it the process group is stopped and the
        /// run fails. `None`: no limit.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_seconds: Option<f64>,
    },
    /// The Claude Code CLI, headless (see `claude`).
    ClaudeCode(claude::ClaudeCodeConfig),
    /// An OpenAI-compatible chat-completions endpoint with MCP tools (see `model`).
    ModelApi(model::ModelApiConfig),
}

impl ExecutorConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorConfig::Echo => "echo",
            ExecutorConfig::Command { .. } => "command",
            ExecutorConfig::ClaudeCode(_) => "claude_code",
            ExecutorConfig::ModelApi(_) => "model_api",
        }
    }

    /// What the runner announces as `executor.command` at registration.
    pub fn command_line(&self) -> String {
        match self {
            ExecutorConfig::Echo => "echo".into(),
            ExecutorConfig::Command { program, args, .. } => std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
            ExecutorConfig::ClaudeCode(c) => c.program_or_default(),
            ExecutorConfig::ModelApi(c) => format!("{} {}", c.base_url, c.model),
        }
    }

    /// The run limits this executor's own options ask for: `timeout_seconds` (command,
    /// claude_code, model_api) and model_api's `token_budget`. The runner enforces them
    /// together with the run's other limits, tightest first; executors do not.
    pub fn limits(&self) -> aof_wire::RunLimits {
        let (timeout_seconds, max_tokens) = match self {
            ExecutorConfig::Echo => (None, None),
            ExecutorConfig::Command {
                timeout_seconds, ..
            } => (*timeout_seconds, None),
            ExecutorConfig::ClaudeCode(c) => (c.timeout_seconds, None),
            ExecutorConfig::ModelApi(c) => (c.timeout_seconds, c.token_budget),
        };
        aof_wire::RunLimits {
            timeout_seconds,
            max_tokens,
            max_cost_usd: None,
        }
    }

    /// Settings that deserialize but cannot work.
    pub fn validate(&self) -> Result<(), ExecError> {
        match self {
            ExecutorConfig::Echo => Ok(()),
            ExecutorConfig::Command {
                program,
                timeout_seconds,
                ..
            } => {
                if program.is_empty() {
                    return Err(ExecError::BadParameters(
                        "command executor needs a program".into(),
                    ));
                }
                timeout(*timeout_seconds).map(|_| ())
            }
            ExecutorConfig::ClaudeCode(c) => c.validate(),
            ExecutorConfig::ModelApi(c) => c.validate(),
        }
    }

    /// The executor a resolved agent blueprint names under `executor`, if any. Only an
    /// object counts (anything else means "the runner's default"); one that does not
    /// parse or validate is an `ExecError::Blueprint` naming the problem.
    pub fn from_blueprint(
        blueprint: Option<&serde_json::Value>,
    ) -> Result<Option<ExecutorConfig>, ExecError> {
        let Some(exec @ serde_json::Value::Object(_)) = blueprint.and_then(|b| b.get("executor"))
        else {
            return Ok(None);
        };
        let cfg =
            ExecutorConfig::deserialize(exec).map_err(|e| ExecError::Blueprint(e.to_string()))?;
        cfg.validate().map_err(|e| match e {
            ExecError::BadParameters(m) => ExecError::Blueprint(m),
            other => other,
        })?;
        Ok(Some(cfg))
    }
}

pub(crate) fn timeout(seconds: Option<f64>) -> Result<Option<std::time::Duration>, ExecError> {
    seconds
        .map(|s| {
            std::time::Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    ExecError::BadParameters(format!(
                        "timeout_seconds must be a positive number of seconds, not {s}"
                    ))
                })
        })
        .transpose()
}

/// The factory: settings in, executor out.
pub fn build(cfg: &ExecutorConfig) -> Result<Box<dyn Executor>, ExecError> {
    cfg.validate()?;
    match cfg {
        ExecutorConfig::Echo => Ok(Box::new(echo::EchoExecutor)),
        ExecutorConfig::Command { program, args, .. } => Ok(Box::new(command::CommandExecutor {
            program: program.clone(),
            args: args.clone(),
        })),
        ExecutorConfig::ClaudeCode(c) => Ok(Box::new(claude::ClaudeExecutor::new(c.clone())?)),
        ExecutorConfig::ModelApi(c) => Ok(Box::new(model::ModelExecutor::new(c.clone())?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from_bp(bp: serde_json::Value) -> Result<Option<ExecutorConfig>, String> {
        ExecutorConfig::from_blueprint(Some(&bp)).map_err(|e| e.to_string())
    }

    #[test]
    fn blueprint_executor_parsing() {
        assert_eq!(ExecutorConfig::from_blueprint(None).unwrap(), None);
        // No `executor`, or not an object: the runner's default.
        assert_eq!(from_bp(json!({"name": "a"})), Ok(None));
        assert_eq!(from_bp(json!({"executor": null})), Ok(None));
        assert_eq!(from_bp(json!({"executor": "command"})), Ok(None));
        assert_eq!(
            from_bp(json!({"executor": {"kind": "echo"}})),
            Ok(Some(ExecutorConfig::Echo))
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "command", "program": "python3"}})),
            Ok(Some(ExecutorConfig::Command {
                program: "python3".into(),
                args: vec![],
                timeout_seconds: None
            }))
        );
        assert_eq!(
            from_bp(json!({"executor": {
                "kind": "command", "program": "python3", "args": ["x.py"], "timeout_seconds": 30
            }})),
            Ok(Some(ExecutorConfig::Command {
                program: "python3".into(),
                args: vec!["x.py".into()],
                timeout_seconds: Some(30.0)
            }))
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "foo"}})),
            Err("blueprint executor: unknown variant `foo`, expected one of `echo`, `command`, `claude_code`, `model_api`".into())
        );
        assert_eq!(
            from_bp(json!({"executor": {"program": "x"}})),
            Err("blueprint executor: missing field `kind`".into())
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "command"}})),
            Err("blueprint executor: missing field `program`".into())
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "command", "program": "x", "arg": []}})),
            Err("blueprint executor: unknown field `arg`, expected one of `program`, `args`, `timeout_seconds`".into())
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "command", "program": ""}})),
            Err("blueprint executor: command executor needs a program".into())
        );
        assert_eq!(
            from_bp(
                json!({"executor": {"kind": "command", "program": "x", "timeout_seconds": -1}})
            ),
            Err(
                "blueprint executor: timeout_seconds must be a positive number of seconds, not -1"
                    .into()
            )
        );
        assert!(from_bp(
            json!({"executor": {"kind": "command", "program": "x", "timeout_seconds": 0}})
        )
        .is_err());
    }

    #[test]
    fn claude_code_settings_parse_and_merge() {
        let cfg = from_bp(json!({"executor": {
            "kind": "claude_code", "model": "sonnet", "allowed_tools": ["Bash"], "max_turns": 4
        }}))
        .unwrap()
        .unwrap();
        let ExecutorConfig::ClaudeCode(bp) = &cfg else {
            panic!("{cfg:?}")
        };
        assert_eq!(bp.model.as_deref(), Some("sonnet"));
        assert_eq!(bp.allowed_tools, ["Bash"]);
        assert_eq!(cfg.kind(), "claude_code");
        let profile = claude::ClaudeCodeConfig {
            model: Some("opus".into()),
            permission_mode: Some("acceptEdits".into()),
            disallowed_tools: vec!["WebFetch".into()],
            ..Default::default()
        };
        let merged = bp.merged_over(&profile);
        assert_eq!(merged.model.as_deref(), Some("sonnet"));
        assert_eq!(merged.permission_mode.as_deref(), Some("acceptEdits"));
        assert_eq!(merged.disallowed_tools, ["WebFetch"]);
        assert_eq!(merged.max_turns, Some(4));
        assert!(
            from_bp(json!({"executor": {"kind": "claude_code", "modle": "x"}}))
                .unwrap_err()
                .contains("unknown field `modle`")
        );
        assert_eq!(
            from_bp(json!({"executor": {"kind": "claude_code", "max_turns": 0}})),
            Err("blueprint executor: claude_code: max_turns must be at least 1".into())
        );
        assert!(
            from_bp(json!({"executor": {"kind": "claude_code", "stall_timeout_seconds": -1}}))
                .unwrap_err()
                .contains("stall_timeout_seconds")
        );
        let round: ExecutorConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(round, cfg);
        assert_eq!(build(&cfg).unwrap().kind(), "claude_code");
    }

    #[test]
    fn build_checks_and_command_line() {
        let cfg = ExecutorConfig::Command {
            program: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            timeout_seconds: Some(1.5),
        };
        assert_eq!(build(&cfg).unwrap().kind(), "command");
        assert_eq!(cfg.command_line(), "sh -c true");
        // Round trip: what the runner announces or stores parses back.
        let back: ExecutorConfig =
            serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        let bad = ExecutorConfig::Command {
            program: "sh".into(),
            args: vec![],
            timeout_seconds: Some(f64::NAN),
        };
        assert!(matches!(build(&bad), Err(ExecError::BadParameters(_))));
        assert_eq!(build(&ExecutorConfig::Echo).unwrap().kind(), "echo");
    }

    #[test]
    fn job_takes_the_system_prompt_from_its_blueprint() {
        let job = Job {
            run_id: "r".into(),
            session_id: "s".into(),
            agent_name: None,
            prompt: String::new(),
            parameters: json!({}),
            project_dir: None,
            resume: None,
            blueprint: None,
            system_prompt: None,
            orchestrator_mcp_url: None,
            history: None,
        };
        let j = job
            .clone()
            .with_blueprint(Some(json!({"system_prompt": "be kind"})));
        assert_eq!(j.system_prompt.as_deref(), Some("be kind"));
        assert!(j.blueprint.is_some());
        let j = job
            .clone()
            .with_blueprint(Some(json!({"system_prompt": ""})));
        assert_eq!(j.system_prompt, None);
        assert_eq!(job.with_blueprint(None).system_prompt, None);
    }
}
