//! `command`: runs a program per run, in the session's working directory.
//!
//! - The prompt goes to stdin (and `AOF_PROMPT`); the job is also in the environment:
//!   `AOF_RUN_ID`, `AOF_SESSION_ID`, `AOF_AGENT_NAME`, `AOF_PARAMETERS` (JSON),
//!   `AOF_SYSTEM_PROMPT` and `AOF_BLUEPRINT` (JSON) when the run has them, with
//!   `AOF_SESSION_TOKEN` and the allow-listed part of the runner's environment
//!   (`isolation`): nothing else the runner inherited.
//! - Each stdout line becomes an assistant message, except JSON objects with a string
//!   `event_type`: those are structured events, and `{"event_type": "result", …}` sets
//!   the run's result (`result_text`, `result_data`) instead of the collected plain lines.
//! - Each stderr line becomes a `Stderr` event; its tail goes into the failure message.
//! - `{"event_type": "usage", "input_tokens": …, "output_tokens": …, "cost_usd": …}`
//!   reports the run's usage so far (a program calling a model itself), which the
//!   runner checks against the run's limits.
//! - Exit 0 completes the run, anything else fails it.
//!
//! The child leads its own process group so a stop reaches everything it started:
//! SIGTERM to the group, then SIGKILL to the group after `stop_grace`. Run limits
//! (the `timeout_seconds` option among them) are the runner's: it stops the run the
//! same way when one is exceeded.

mod lines;

use std::collections::BTreeMap;

use async_trait::async_trait;
use nix::{sys::signal::Signal, unistd::Pid};
use tokio::io::AsyncWriteExt;

use self::lines::Line;
use crate::{
    isolation::{self, ExecutorEnv},
    process::{command, next_line, push_tail, sleep_until, spawn_group, Group},
    ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome,
};

/// Most of stdout kept as the result text.
const RESULT_CAP: usize = 64 * 1024;

pub struct CommandExecutor {
    pub program: String,
    pub args: Vec<String>,
}

fn push_capped(buf: &mut String, line: &str, cap: usize) {
    if buf.len() < cap {
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(line);
    }
}

/// The program's environment: the allow-listed runner variables and the run's own
/// (`isolation::environment`), then the job. Nothing else of the runner's reaches it.
fn environment(
    inherited: impl IntoIterator<Item = (String, String)>,
    cx: &ExecCx,
    job: &Job,
) -> BTreeMap<String, String> {
    let mut env = isolation::environment(
        inherited,
        ExecutorEnv::default(),
        &cx.agent,
        &cx.session_dir,
        &cx.env,
    );
    let agent_name = job.agent_name.clone().or_else(|| {
        job.blueprint
            .as_ref()
            .and_then(|b| b.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
    });
    let optional = [
        ("AOF_AGENT_NAME", agent_name),
        ("AOF_SYSTEM_PROMPT", job.system_prompt.clone()),
        (
            "AOF_BLUEPRINT",
            job.blueprint.as_ref().map(|b| b.to_string()),
        ),
    ];
    env.extend(
        optional
            .into_iter()
            .filter_map(|(k, v)| Some((k.into(), v?))),
    );
    env.extend([
        ("AOF_PROMPT".into(), job.prompt.clone()),
        ("AOF_RUN_ID".into(), job.run_id.clone()),
        ("AOF_SESSION_ID".into(), job.session_id.clone()),
        ("AOF_PARAMETERS".into(), job.parameters.to_string()),
    ]);
    env
}

#[async_trait]
impl Executor for CommandExecutor {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        let mut cmd = command(&self.program, &cx.agent);
        cmd.args(&self.args)
            .current_dir(&cx.workdir)
            .envs(environment(std::env::vars(), &cx, &job));
        let mut child = spawn_group(&mut cmd)
            .map_err(|e| ExecError::Unavailable(format!("cannot start '{}': {e}", self.program)))?;
        if let Some(mut stdin) = child.stdin.take() {
            // Its own task: a program that never reads stdin must not block the rest.
            // One that closes it early just ends the write; that is fine.
            tokio::spawn(async move {
                let _ = stdin.write_all(job.prompt.as_bytes()).await;
                let _ = stdin.shutdown().await;
            });
        }
        let process = Process {
            group: Group::new(child),
        };
        Ok(Execution {
            done: tokio::spawn(process.supervise(cx)),
        })
    }
}

struct Process {
    group: Group,
}

impl Process {
    /// Read both streams until they end, then reap the process and decide the outcome.
    async fn supervise(mut self, cx: ExecCx) -> Result<Outcome, ExecError> {
        let mut text = String::new();
        let mut result: Option<(Option<String>, Option<serde_json::Value>)> = None;
        let mut tail = String::new();
        let mut stopping = false;
        let g = &mut self.group;
        loop {
            let step_at = g.step_at();
            tokio::select! {
                line = next_line(&mut g.stdout), if g.stdout.is_some() => {
                    let Some(line) = line else {
                        g.stdout = None;
                        continue;
                    };
                    let ev = match lines::classify(line) {
                        Line::Text(text_line) => {
                            push_capped(&mut text, &text_line, RESULT_CAP);
                            ExecEvent::Message { role: "assistant".into(), text: text_line }
                        }
                        Line::Event(event) => ExecEvent::Structured { event },
                        Line::Usage(usage) => ExecEvent::Usage { usage },
                        Line::Result { text, data } => {
                            result = Some((text, data));
                            continue;
                        }
                    };
                    let _ = cx.events.send(ev).await;
                }
                line = next_line(&mut g.stderr), if g.stderr.is_some() => {
                    let Some(line) = line else {
                        g.stderr = None;
                        continue;
                    };
                    push_tail(&mut tail, &line);
                    let _ = cx.events.send(ExecEvent::Stderr { text: line }).await;
                }
                status = g.child.wait(), if g.drained() => {
                    let status = status?;
                    return Ok(match stopping {
                        true => Outcome::Stopped,
                        false if status.success() => {
                            let (result_text, result_data) = result.unwrap_or((Some(text), None));
                            Outcome::Completed { result_text, result_data }
                        }
                        false => {
                            let code = status
                                .code()
                                .map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
                            let tail = tail.trim();
                            Outcome::Failed {
                                error: if tail.is_empty() {
                                    format!("Process exited with {code}")
                                } else {
                                    format!("Process exited with {code}: {tail}")
                                },
                            }
                        }
                    });
                }
                _ = cx.cancel.cancelled(), if !stopping => {
                    stopping = true;
                    g.stop(Signal::SIGTERM, cx.stop_grace);
                }
                _ = sleep_until(step_at), if step_at.is_some() => g.escalate(cx.stop_grace),
            }
        }
    }
}

/// Used by tests: is a process id alive?
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests;
