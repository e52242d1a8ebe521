//! aof-executors: the `Executor` trait and the executors behind it.
//!
//! An executor turns one run into normalized `ExecEvent`s and an `Outcome`. It knows
//! nothing about HTTP, leases or the store: the runner drives it and reports.

pub mod command;
pub mod echo;

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
}

/// A started execution. `done` resolves once, after the executor has cleaned up.
pub struct Execution {
    pub done: JoinHandle<Result<Outcome, ExecError>>,
}

#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// Stable name, used as the runner's `executor_profile` default and in logs.
    fn kind(&self) -> &'static str;
    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError>;
}

/// Executor settings, one variant per executor, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExecutorConfig {
    Echo,
    /// A plain command: prompt on stdin, each stdout line an assistant message.
    Command {
        program: String,
        args: Vec<String>,
    },
}

impl ExecutorConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            ExecutorConfig::Echo => "echo",
            ExecutorConfig::Command { .. } => "command",
        }
    }

    /// What the runner announces as `executor.command` at registration.
    pub fn command_line(&self) -> String {
        match self {
            ExecutorConfig::Echo => "echo".into(),
            ExecutorConfig::Command { program, args } => std::iter::once(program.as_str())
                .chain(args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// The factory: settings in, executor out.
pub fn build(cfg: &ExecutorConfig) -> Result<Box<dyn Executor>, ExecError> {
    match cfg {
        ExecutorConfig::Echo => Ok(Box::new(echo::EchoExecutor)),
        ExecutorConfig::Command { program, args } => {
            if program.is_empty() {
                return Err(ExecError::BadParameters(
                    "command executor needs a program".into(),
                ));
            }
            Ok(Box::new(command::CommandExecutor {
                program: program.clone(),
                args: args.clone(),
            }))
        }
    }
}
