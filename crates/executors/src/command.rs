//! `command`: runs a program per run. The prompt goes to stdin (and `AOF_PROMPT`), each
//! stdout line becomes an assistant message, exit 0 completes with the output as result.
//!
//! The child leads its own process group so a stop reaches everything it started:
//! SIGTERM to the group, then SIGKILL to the group after `stop_grace`.

use std::process::Stdio;

use async_trait::async_trait;
use nix::{
    sys::signal::{killpg, Signal},
    unistd::Pid,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::Command,
};

use crate::{ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome};

/// Most of stdout kept as the result text, and of stderr kept for the failure message.
const RESULT_CAP: usize = 64 * 1024;
const STDERR_TAIL: usize = 4 * 1024;

pub struct CommandExecutor {
    pub program: String,
    pub args: Vec<String>,
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

#[async_trait]
impl Executor for CommandExecutor {
    fn kind(&self) -> &'static str {
        "command"
    }

    async fn start(&self, job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .current_dir(&cx.workdir)
            .envs(&cx.env)
            .env("AOF_PROMPT", &job.prompt)
            .env("AOF_RUN_ID", &job.run_id)
            .env("AOF_SESSION_ID", &job.session_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| ExecError::Unavailable(format!("cannot start '{}': {e}", self.program)))?;
        let pgid = child.id().unwrap_or(0);
        let mut stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let prompt = job.prompt.clone();
        let done = tokio::spawn(async move {
            if let Some(mut s) = stdin.take() {
                // A program that does not read stdin closes it; that is fine.
                let _ = s.write_all(prompt.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            let err_task = tokio::spawn(async move {
                let mut tail = String::new();
                if let Some(e) = stderr {
                    let mut lines = BufReader::new(e).lines();
                    while let Ok(Some(l)) = lines.next_line().await {
                        tail.push_str(&l);
                        tail.push('\n');
                        if tail.len() > STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
                tail
            });
            let mut out = String::new();
            let mut lines = stdout.map(|s| BufReader::new(s).lines());
            let mut stopping = false;
            let mut kill_at: Option<tokio::time::Instant> = None;
            loop {
                tokio::select! {
                    line = async { lines.as_mut().unwrap().next_line().await }, if lines.is_some() => {
                        match line {
                            Ok(Some(l)) => {
                                push_capped(&mut out, &l, RESULT_CAP);
                                let ev = ExecEvent::Message { role: "assistant".into(), text: l };
                                let _ = cx.events.send(ev).await;
                            }
                            _ => lines = None,
                        }
                    }
                    status = child.wait(), if lines.is_none() => {
                        let status = status?;
                        let stderr_tail = err_task.await.unwrap_or_default();
                        if stopping {
                            return Ok(Outcome::Stopped);
                        }
                        return Ok(if status.success() {
                            Outcome::Completed { result_text: Some(out), result_data: None }
                        } else {
                            let code = status.code().map_or_else(|| "a signal".to_string(), |c| format!("code {c}"));
                            let tail = stderr_tail.trim();
                            Outcome::Failed {
                                error: if tail.is_empty() {
                                    format!("Process exited with {code}")
                                } else {
                                    format!("Process exited with {code}: {tail}")
                                },
                            }
                        });
                    }
                    _ = cx.cancel.cancelled(), if !stopping => {
                        stopping = true;
                        signal_group(pgid, Signal::SIGTERM);
                        kill_at = Some(tokio::time::Instant::now() + cx.stop_grace);
                    }
                    _ = async { tokio::time::sleep_until(kill_at.unwrap()).await }, if kill_at.is_some() => {
                        tracing::warn!(pgid, "process ignored SIGTERM; sending SIGKILL to its group");
                        signal_group(pgid, Signal::SIGKILL);
                        kill_at = None;
                        // stdout may be held open by a grandchild; stop reading it.
                        lines = None;
                    }
                }
            }
        });
        Ok(Execution { done })
    }
}

/// Used by tests: is a process id alive?
pub fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(Pid::from_raw(pid), None).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn job(prompt: &str) -> Job {
        Job {
            run_id: "run_1".into(),
            session_id: "ses_1".into(),
            agent_name: None,
            prompt: prompt.into(),
            parameters: serde_json::json!({}),
            project_dir: None,
            resume: None,
        }
    }

    fn sh(script: &str) -> CommandExecutor {
        CommandExecutor {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    fn cx(dir: &std::path::Path, cancel: CancellationToken) -> (ExecCx, mpsc::Receiver<ExecEvent>) {
        let (tx, rx) = mpsc::channel(64);
        (
            ExecCx {
                workdir: dir.to_path_buf(),
                env: Default::default(),
                cancel,
                events: tx,
                stop_grace: Duration::from_millis(300),
            },
            rx,
        )
    }

    #[tokio::test]
    async fn stdout_lines_become_messages_and_exit_codes_map() {
        let dir = tempfile::tempdir().unwrap();
        let (c, mut rx) = cx(dir.path(), CancellationToken::new());
        let ex = sh("read p; echo \"got $p\"; echo second; pwd >&2")
            .start(job("hello"), c)
            .await
            .unwrap();
        let out = ex.done.await.unwrap().unwrap();
        assert_eq!(
            out,
            Outcome::Completed {
                result_text: Some("got hello\nsecond".into()),
                result_data: None
            }
        );
        assert_eq!(
            rx.recv().await,
            Some(ExecEvent::Message {
                role: "assistant".into(),
                text: "got hello".into()
            })
        );
        assert_eq!(
            rx.recv().await,
            Some(ExecEvent::Message {
                role: "assistant".into(),
                text: "second".into()
            })
        );

        let (c, _rx) = cx(dir.path(), CancellationToken::new());
        let ex = sh("echo broken >&2; exit 3")
            .start(job(""), c)
            .await
            .unwrap();
        assert_eq!(
            ex.done.await.unwrap().unwrap(),
            Outcome::Failed {
                error: "Process exited with code 3: broken".into()
            }
        );

        let (c, _rx) = cx(dir.path(), CancellationToken::new());
        let missing = CommandExecutor {
            program: "/nonexistent/aof-x".into(),
            args: vec![],
        };
        assert!(matches!(
            missing.start(job(""), c).await,
            Err(ExecError::Unavailable(_))
        ));
    }

    #[tokio::test]
    async fn stop_terms_the_whole_group_then_kills_it() {
        let dir = tempfile::tempdir().unwrap();
        // A well-behaved program: exits on SIGTERM; its background child must die too.
        let cancel = CancellationToken::new();
        let (c, mut rx) = cx(dir.path(), cancel.clone());
        let ex = sh("sleep 300 & echo $!; trap 'exit 0' TERM; wait")
            .start(job(""), c)
            .await
            .unwrap();
        let Some(ExecEvent::Message { text, .. }) = rx.recv().await else {
            panic!("no pid line")
        };
        let grandchild: i32 = text.trim().parse().unwrap();
        assert!(alive(grandchild));
        cancel.cancel();
        assert_eq!(ex.done.await.unwrap().unwrap(), Outcome::Stopped);
        // SIGTERM went to the group: the background sleep is gone too (reaped by init).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(grandchild) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(grandchild), "grandchild survived the stop");

        // A program that ignores SIGTERM is killed after the grace period.
        let cancel = CancellationToken::new();
        let (c, mut rx) = cx(dir.path(), cancel.clone());
        let ex = sh("trap '' TERM; echo ready; while :; do sleep 0.05; done")
            .start(job(""), c)
            .await
            .unwrap();
        assert!(rx.recv().await.is_some());
        cancel.cancel();
        let out = tokio::time::timeout(Duration::from_secs(20), ex.done)
            .await
            .expect("killed in time");
        assert_eq!(out.unwrap().unwrap(), Outcome::Stopped);
    }
}
