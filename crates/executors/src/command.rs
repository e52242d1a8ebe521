//! `command`: runs a program per run, in the session's working directory.
//!
//! - The prompt goes to stdin (and `AOF_PROMPT`); the job is also in the environment:
//!   `AOF_RUN_ID`, `AOF_SESSION_ID`, `AOF_AGENT_NAME`, `AOF_PARAMETERS` (JSON),
//!   `AOF_SYSTEM_PROMPT` and `AOF_BLUEPRINT` (JSON) when the run has them.
//! - Each stdout line becomes an assistant message, except JSON objects with a string
//!   `event_type`: those are structured events, and `{"event_type": "result", …}` sets
//!   the run's result (`result_text`, `result_data`) instead of the collected plain lines.
//! - Each stderr line becomes a `Stderr` event; its tail goes into the failure message.
//! - Exit 0 completes the run, anything else fails it.
//!
//! The child leads its own process group so a stop reaches everything it started:
//! SIGTERM to the group, then SIGKILL to the group after `stop_grace`. A run past its
//! wall-clock `timeout` is stopped the same way and fails.

mod lines;

use std::{process::Stdio, time::Duration};

use async_trait::async_trait;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::{
    io::AsyncWriteExt,
    process::{Child, ChildStderr, ChildStdout, Command},
    time::Instant,
};

use self::lines::{Line, LineReader};
use crate::{ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome};

/// Most of stdout kept as the result text, and of stderr kept for the failure message.
const RESULT_CAP: usize = 64 * 1024;
const STDERR_TAIL: usize = 4 * 1024;

pub struct CommandExecutor {
    pub program: String,
    pub args: Vec<String>,
    /// Wall-clock limit of one run; `None`: none.
    pub timeout: Option<Duration>,
}

fn signal_group(pgid: u32, sig: Signal) {
    // The group may be gone already; that is the goal, not an error.
    let _ = killpg(Pid::from_raw(pgid as i32), sig);
}

fn push_capped(buf: &mut String, line: &str, cap: usize) {
    if buf.len() < cap {
        if !buf.is_empty() {
            buf.push('\n');
        }
        buf.push_str(line);
    }
}

fn push_tail(tail: &mut String, line: &str) {
    tail.push_str(line);
    tail.push('\n');
    if tail.len() > STDERR_TAIL {
        let mut cut = tail.len() - STDERR_TAIL;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail.drain(..cut);
    }
}

/// The job's environment. Optional variables are removed when absent, so a value the
/// runner itself inherited never reaches the program as if it were the run's.
fn job_env(cmd: &mut Command, job: &Job) {
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
    for (key, value) in optional {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("AOF_PROMPT", &job.prompt)
        .env("AOF_RUN_ID", &job.run_id)
        .env("AOF_SESSION_ID", &job.session_id)
        .env("AOF_PARAMETERS", job.parameters.to_string());
}

#[async_trait]
impl Executor for CommandExecutor {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).current_dir(&cx.workdir).envs(&cx.env);
        job_env(&mut cmd, &job);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
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
            pgid: child.id().unwrap_or(0),
            stdout: child.stdout.take().map(LineReader::new),
            stderr: child.stderr.take().map(LineReader::new),
            child,
            timeout: self.timeout,
        };
        Ok(Execution {
            done: tokio::spawn(process.supervise(cx)),
        })
    }
}

struct Process {
    child: Child,
    pgid: u32,
    /// `None` once at its end, or abandoned after a SIGKILL (a grandchild may hold it).
    stdout: Option<LineReader<ChildStdout>>,
    stderr: Option<LineReader<ChildStderr>>,
    timeout: Option<Duration>,
}

/// Why the process is being stopped.
#[derive(Clone, Copy)]
enum Stop {
    Cancelled,
    TimedOut(Duration),
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_line<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<LineReader<R>>,
) -> Option<String> {
    match r {
        Some(r) => r.next().await,
        None => None,
    }
}

impl Process {
    /// Read both streams until they end, then reap the process and decide the outcome.
    async fn supervise(mut self, cx: ExecCx) -> Result<Outcome, ExecError> {
        let mut text = String::new();
        let mut result: Option<(Option<String>, Option<serde_json::Value>)> = None;
        let mut tail = String::new();
        let mut stop: Option<Stop> = None;
        let deadline = self.timeout.map(|t| (Instant::now() + t, t));
        let mut kill_at: Option<Instant> = None;
        loop {
            tokio::select! {
                line = next_line(&mut self.stdout), if self.stdout.is_some() => {
                    let Some(line) = line else {
                        self.stdout = None;
                        continue;
                    };
                    let ev = match lines::classify(line) {
                        Line::Text(text_line) => {
                            push_capped(&mut text, &text_line, RESULT_CAP);
                            ExecEvent::Message { role: "assistant".into(), text: text_line }
                        }
                        Line::Event(event) => ExecEvent::Structured { event },
                        Line::Result { text, data } => {
                            result = Some((text, data));
                            continue;
                        }
                    };
                    let _ = cx.events.send(ev).await;
                }
                line = next_line(&mut self.stderr), if self.stderr.is_some() => {
                    let Some(line) = line else {
                        self.stderr = None;
                        continue;
                    };
                    push_tail(&mut tail, &line);
                    let _ = cx.events.send(ExecEvent::Stderr { text: line }).await;
                }
                status = self.child.wait(), if self.stdout.is_none() && self.stderr.is_none() => {
                    let status = status?;
                    return Ok(match stop {
                        Some(Stop::TimedOut(t)) => Outcome::Failed {
                            error: format!("timed out after {}s", t.as_secs_f64()),
                        },
                        Some(Stop::Cancelled) => Outcome::Stopped,
                        None if status.success() => {
                            let (result_text, result_data) = result.unwrap_or((Some(text), None));
                            Outcome::Completed { result_text, result_data }
                        }
                        None => {
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
                _ = cx.cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Cancelled);
                    kill_at = Some(self.terminate(cx.stop_grace));
                }
                _ = sleep_until(deadline.map(|d| d.0)), if stop.is_none() && deadline.is_some() => {
                    let limit = deadline.map_or(Duration::ZERO, |d| d.1);
                    tracing::info!(pgid = self.pgid, limit_ms = limit.as_millis() as u64, "run timed out; stopping its process group");
                    stop = Some(Stop::TimedOut(limit));
                    kill_at = Some(self.terminate(cx.stop_grace));
                }
                _ = sleep_until(kill_at), if kill_at.is_some() => {
                    tracing::warn!(pgid = self.pgid, "process ignored SIGTERM; sending SIGKILL to its group");
                    signal_group(self.pgid, Signal::SIGKILL);
                    kill_at = None;
                    // The pipes may be held open by a grandchild; stop reading them.
                    self.stdout = None;
                    self.stderr = None;
                }
            }
        }
    }

    /// SIGTERM the group; returns when to SIGKILL it.
    fn terminate(&self, grace: Duration) -> Instant {
        signal_group(self.pgid, Signal::SIGTERM);
        Instant::now() + grace
    }
}

/// Used by tests: is a process id alive?
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests;
