//! `echo`: emits the prompt back as events. Used by tests, benchmarks and `aof up`
//! before real executors are configured.
//!
//! Knobs (all optional) let tests and benchmarks shape a run: `echo_events` (how many
//! assistant messages, default 1), `echo_delay_ms` (pause before each), `echo_fail`
//! (fail with this message at the end). They come from run parameters, or — since runs
//! without an agent schema may only carry `prompt` — from a first prompt line
//! `!echo {"echo_events": 3}`; the rest of the prompt is what gets echoed.

use std::time::Duration;

use async_trait::async_trait;

use crate::{ExecCx, ExecError, ExecEvent, Execution, Executor, Job, Outcome};

pub struct EchoExecutor;

#[derive(Debug)]
struct Knobs {
    events: u64,
    delay: Duration,
    fail: Option<String>,
}

fn knobs(params: &serde_json::Value) -> Result<Knobs, ExecError> {
    let get_u64 = |k: &str, default: u64| -> Result<u64, ExecError> {
        match params.get(k) {
            None | Some(serde_json::Value::Null) => Ok(default),
            Some(v) => v.as_u64().ok_or_else(|| {
                ExecError::BadParameters(format!("{k} must be a non-negative integer"))
            }),
        }
    };
    let events = get_u64("echo_events", 1)?;
    if events > 100_000 {
        return Err(ExecError::BadParameters(
            "echo_events must be <= 100000".into(),
        ));
    }
    Ok(Knobs {
        events,
        delay: Duration::from_millis(get_u64("echo_delay_ms", 0)?),
        fail: params
            .get("echo_fail")
            .and_then(|v| v.as_str())
            .map(str::to_string),
    })
}

#[async_trait]
impl Executor for EchoExecutor {
    fn kind(&self) -> &'static str {
        "echo"
    }

    async fn start(&self, mut job: Job, cx: ExecCx) -> Result<Execution, ExecError> {
        let knobs = match job.prompt.strip_prefix("!echo ") {
            Some(rest) => {
                let (line, text) = rest.split_once('\n').unwrap_or((rest, ""));
                let params: serde_json::Value = serde_json::from_str(line)
                    .map_err(|e| ExecError::BadParameters(format!("!echo line: {e}")))?;
                let k = knobs(&params)?;
                job.prompt = text.to_string();
                k
            }
            None => knobs(&job.parameters)?,
        };
        let done = tokio::spawn(async move {
            let session = job
                .resume
                .clone()
                .unwrap_or_else(|| format!("echo-{}", job.session_id));
            let _ = cx.events.send(ExecEvent::SessionId { id: session }).await;
            for i in 0..knobs.events {
                if !knobs.delay.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(knobs.delay) => {}
                        _ = cx.cancel.cancelled() => return Ok(Outcome::Stopped),
                    }
                }
                if cx.cancel.is_cancelled() {
                    return Ok(Outcome::Stopped);
                }
                let text = if knobs.events == 1 {
                    job.prompt.clone()
                } else {
                    format!("{} [{}]", job.prompt, i + 1)
                };
                let msg = ExecEvent::Message {
                    role: "assistant".into(),
                    text,
                };
                if cx.events.send(msg).await.is_err() {
                    // The runner dropped the receiver: it is going away.
                    return Ok(Outcome::Stopped);
                }
            }
            Ok(match knobs.fail {
                Some(error) => Outcome::Failed { error },
                None => Outcome::Completed {
                    result_text: Some(job.prompt.clone()),
                    result_data: None,
                },
            })
        });
        Ok(Execution { done })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn job(params: serde_json::Value) -> Job {
        Job {
            run_id: "run_1".into(),
            session_id: "ses_1".into(),
            agent_name: None,
            prompt: "hi".into(),
            parameters: params,
            project_dir: None,
            resume: None,
            blueprint: None,
            system_prompt: None,
            orchestrator_mcp_url: None,
            history: None,
        }
    }

    fn cx(cancel: CancellationToken) -> (ExecCx, mpsc::Receiver<ExecEvent>) {
        let (tx, rx) = mpsc::channel(16);
        let cx = ExecCx {
            workdir: std::env::temp_dir(),
            env: Default::default(),
            cancel,
            events: tx,
            stop_grace: std::time::Duration::from_secs(1),
            state_dir: std::env::temp_dir(),
            session_dir: std::env::temp_dir(),
            agent: Default::default(),
            approval: Default::default(),
        };
        (cx, rx)
    }

    #[tokio::test]
    async fn echoes_prompt_then_completes() {
        let (cx, mut rx) = cx(CancellationToken::new());
        let ex = EchoExecutor
            .start(job(serde_json::json!({})), cx)
            .await
            .unwrap();
        let outcome = ex.done.await.unwrap().unwrap();
        assert_eq!(
            rx.recv().await,
            Some(ExecEvent::SessionId {
                id: "echo-ses_1".into()
            })
        );
        assert_eq!(
            rx.recv().await,
            Some(ExecEvent::Message {
                role: "assistant".into(),
                text: "hi".into()
            })
        );
        assert_eq!(rx.recv().await, None);
        assert!(matches!(outcome, Outcome::Completed { result_text: Some(t), .. } if t == "hi"));
    }

    #[tokio::test]
    async fn cancel_stops_and_fail_knob_fails() {
        let cancel = CancellationToken::new();
        let (c, _rx) = cx(cancel.clone());
        let params = serde_json::json!({"echo_events": 5, "echo_delay_ms": 60_000});
        let ex = EchoExecutor.start(job(params), c).await.unwrap();
        cancel.cancel();
        assert_eq!(ex.done.await.unwrap().unwrap(), Outcome::Stopped);

        let (c, _rx) = cx(CancellationToken::new());
        let ex = EchoExecutor
            .start(job(serde_json::json!({"echo_fail": "boom"})), c)
            .await
            .unwrap();
        assert_eq!(
            ex.done.await.unwrap().unwrap(),
            Outcome::Failed {
                error: "boom".into()
            }
        );

        let (c, _rx) = cx(CancellationToken::new());
        let err = EchoExecutor
            .start(job(serde_json::json!({"echo_events": "x"})), c)
            .await;
        assert!(matches!(err, Err(ExecError::BadParameters(_))));
    }

    #[tokio::test]
    async fn knobs_from_prompt_line() {
        let (c, mut rx) = cx(CancellationToken::new());
        let mut j = job(serde_json::json!({}));
        j.prompt = "!echo {\"echo_events\": 2}\nhello".into();
        let ex = EchoExecutor.start(j, c).await.unwrap();
        ex.done.await.unwrap().unwrap();
        rx.recv().await; // session id
        let texts: Vec<ExecEvent> = [rx.recv().await, rx.recv().await]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(
            texts,
            vec![
                ExecEvent::Message {
                    role: "assistant".into(),
                    text: "hello [1]".into()
                },
                ExecEvent::Message {
                    role: "assistant".into(),
                    text: "hello [2]".into()
                },
            ]
        );
        let (c, _rx) = cx(CancellationToken::new());
        let mut j = job(serde_json::json!({}));
        j.prompt = "!echo {not json\nx".into();
        assert!(matches!(
            EchoExecutor.start(j, c).await,
            Err(ExecError::BadParameters(_))
        ));
    }
}
