//! One run on this runner, start to report: `started`, the executor with its outbox,
//! then `completed`, `failed` or `stopped` — unless the lease was lost on the way.

use std::sync::Arc;

use aof_executors::{
    policy, ExecCx, ExecError, ExecEvent, Execution, Executor, ExecutorConfig, Job, Outcome,
};
use aof_wire::{CompletedBody, Event, FailedBody, Run, RunnerIdBody, StoppedBody};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::Instrument;

use crate::{
    active::{RunControl, StopReason},
    backoff::{retry, Attempt},
    client::{ClientError, RunRef},
    limits::{self, Budget},
    outbox::{self, DeliveryEnd, Outbox},
    Shared,
};

/// Capacity of the executor → runner channel; the outbox behind it is unbounded.
const EXEC_EVENTS_CAPACITY: usize = 256;

/// Removes the run from the active set however the task ends, panics included, so
/// the slot and its lease in heartbeats are always released.
struct SlotGuard {
    shared: Arc<Shared>,
    run_id: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.shared.active.remove(&self.run_id);
    }
}

/// The whole life of one run. Runs inside the `run` span set up by the caller.
pub(crate) async fn execute(
    shared: Arc<Shared>,
    run: Run,
    runner_id: String,
    control: Arc<RunControl>,
) {
    let _slot = SlotGuard {
        shared: shared.clone(),
        run_id: run.run_id.clone(),
    };
    let rref = RunRef::from(&run);
    let client = &shared.client;

    let body = RunnerIdBody {
        runner_id: runner_id.clone(),
    };
    match retry("started", &control.interrupt, || {
        client.report(&rref, "started", &body)
    })
    .await
    {
        Attempt::Done(()) => {}
        Attempt::Interrupted => {
            tracing::info!("run interrupted before it started");
            return;
        }
        Attempt::Rejected(e) => {
            // Not ours any more (lease gone, run cancelled): leave it to the coordinator.
            tracing::warn!(error = %e, code = e.code(), "coordinator refused start; dropping run");
            return;
        }
    }
    tracing::info!("run started");

    let (tx, rx) = mpsc::unbounded_channel();
    // Its own task, so a slow coordinator never holds up reading the executor's output.
    let delivery = tokio::spawn(
        outbox::deliver(client.clone(), rref.clone(), rx, control.clone())
            .instrument(tracing::Span::current()),
    );
    let mut outbox = Outbox::new(
        tx,
        &rref,
        &shared.cfg.hostname,
        &shared.cfg.executor_profile,
        run.project_dir.clone(),
    );
    outbox.push_event(Event::message(
        &run.session_id,
        "user",
        run.prompt().unwrap_or(""),
    ));

    let outcome = drive(&shared, &run, &control, &mut outbox).await;
    if let Outcome::Completed {
        result_text,
        result_data,
    } = &outcome
    {
        outbox.push_event(outbox::result_event(
            &run.session_id,
            result_text.clone(),
            result_data.clone(),
        ));
    }
    drop(outbox);
    let end = delivery.await.unwrap_or(DeliveryEnd::Interrupted);

    if control.lease_lost() {
        tracing::warn!("lease lost; not reporting");
        return;
    }
    if end == DeliveryEnd::Interrupted {
        tracing::warn!("gave up delivering events; not reporting");
        return;
    }
    let end = crate::workspace::RunEnd::from(&outcome);
    report(&shared, &rref, runner_id, outcome, &control).await;
    let other_runs = || shared.active.runs_of_session(&run.session_id) > 1;
    shared
        .workspaces
        .finish(&run.session_id, end, other_runs)
        .await;
}

/// Start the executor and feed its events into the outbox until it is done.
async fn drive(shared: &Shared, run: &Run, control: &RunControl, outbox: &mut Outbox) -> Outcome {
    if control.cancel.is_cancelled() {
        return Outcome::Stopped;
    }
    // The coordinator in use now (after a failover, not the first URL).
    let orchestrator_mcp_url = orchestrator_mcp_url(shared.client.base().as_str());
    let blueprint = run
        .resolved_agent_blueprint
        .as_ref()
        .map(|b| fill_runner_placeholders(b, &orchestrator_mcp_url));
    let (executor, executor_limits) = match executor_for(
        shared.cfg.allow_blueprint_executors,
        &shared.executor,
        &shared.cfg.executor,
        blueprint.as_ref(),
    ) {
        Ok(chosen) => chosen,
        Err(error) => {
            tracing::warn!(%error, "cannot use the blueprint's executor");
            return Outcome::Failed { error };
        }
    };
    let limits = match limits::for_run(shared.cfg.run_limits, executor_limits, blueprint.as_ref()) {
        Ok(limits) => limits,
        Err(error) => return Outcome::Failed { error },
    };
    let dirs = match shared.workspaces.prepare(&run.session_id).await {
        Ok(dirs) => dirs,
        Err(e) => {
            tracing::warn!(error = %e, "cannot prepare the session's workspace");
            return Outcome::Failed {
                error: format!("cannot prepare the workspace: {e}"),
            };
        }
    };
    let (tx, mut rx) = mpsc::channel(EXEC_EVENTS_CAPACITY);
    // Its own token, so a run limit can stop the executor as a stop would.
    let exec_cancel = control.cancel.child_token();
    let cx = ExecCx {
        workdir: dirs.workdir,
        // The agent calls the coordinator as this session (MCP), never with our key.
        env: run
            .session_token
            .iter()
            .map(|t| ("AOF_SESSION_TOKEN".to_string(), t.clone()))
            .chain(trace_env(run))
            .collect(),
        cancel: exec_cancel.clone(),
        events: tx,
        stop_grace: shared.cfg.stop_grace,
        state_dir: shared.cfg.state_dir.clone(),
        session_dir: dirs.session_dir,
        agent: shared.agent.clone(),
    };
    let resume = match resume_id(shared, run, control, executor.resumes()).await {
        Ok(resume) => resume,
        Err(outcome) => return outcome,
    };
    let history = match history(shared, run, control, executor.as_ref()).await {
        Ok(history) => history,
        Err(outcome) => return outcome,
    };
    let parameters = match &run.parameters {
        serde_json::Value::Object(_) => run.parameters.clone(),
        _ => serde_json::Value::Object(Default::default()),
    };
    let job = Job {
        run_id: run.run_id.clone(),
        session_id: run.session_id.clone(),
        agent_name: run.agent_name.clone(),
        prompt: run.prompt().unwrap_or("").to_string(),
        parameters,
        project_dir: run.project_dir.clone(),
        resume,
        blueprint: None,
        system_prompt: None,
        orchestrator_mcp_url: Some(orchestrator_mcp_url),
        history,
    }
    .with_blueprint(blueprint);
    let mut budget = Budget::new(limits, Instant::now());
    let Execution { mut done } = match executor.start(job, cx).await {
        Ok(ex) => ex,
        Err(e) => {
            tracing::warn!(error = %e, "executor failed to start");
            return failed(e);
        }
    };
    outbox.push_events(budget.start_event(&run.session_id));

    // The executor escalates SIGTERM → SIGKILL within stop_grace; this is the backstop.
    let grace = shared.cfg.stop_grace + STOP_BACKSTOP;
    let mut kill_at: Option<Instant> = None;
    let mut events_open = true;
    let res = loop {
        if let Some(breach) = budget.exceeded().filter(|_| kill_at.is_none()) {
            tracing::warn!(%breach, "run limit exceeded; stopping execution");
            exec_cancel.cancel();
            kill_at = Some(Instant::now() + grace);
        }
        tokio::select! {
            // Events first, so everything sent before `done` resolved is queued in order.
            biased;
            ev = rx.recv(), if events_open => match ev {
                Some(ev) => push_exec(outbox, &mut budget, &run.session_id, ev),
                None => events_open = false,
            },
            _ = sleep_until(budget.deadline()), if kill_at.is_none() && budget.deadline().is_some() => {
                outbox.push_event(budget.time_out(&run.session_id));
            }
            res = &mut done => break joined(res),
            _ = control.cancel.cancelled(), if kill_at.is_none() => {
                tracing::info!(reason = ?control.reason(), "stopping execution");
                kill_at = Some(Instant::now() + grace);
            }
            _ = sleep_until(kill_at), if kill_at.is_some() => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "executor ignored stop; aborting it");
                break abort(done);
            }
            _ = control.interrupt.cancelled() => break abort(done),
        }
    };
    // Whatever the executor sent before finishing is still owed to the session.
    while let Ok(ev) = rx.try_recv() {
        push_exec(outbox, &mut budget, &run.session_id, ev);
    }
    budget.outcome(res, control.cancel.is_cancelled())
}

/// An executor event into the outbox; usage reports go through the run's budget,
/// which logs a `usage` event when the tally changes.
fn push_exec(outbox: &mut Outbox, budget: &mut Budget, session_id: &str, ev: ExecEvent) {
    match ev {
        ExecEvent::Usage { usage } => outbox.push_events(budget.record(usage, session_id)),
        ev => outbox.push_exec(ev),
    }
}

/// `TRACEPARENT` for the agent: this execution's span (its trace context), else the
/// run's own when this runner exports no traces, so the agent's children still join.
fn trace_env(run: &Run) -> Option<(String, String)> {
    aof_otel::traceparent(&tracing::Span::current())
        .or_else(|| run.traceparent.clone())
        .map(|tp| (aof_otel::TRACEPARENT_ENV.to_string(), tp))
}

/// The coordinator's orchestrator MCP endpoint, which agents reach as `agent-orchestrator`.
fn orchestrator_mcp_url(base: &str) -> String {
    format!("{}/mcp", base.trim_end_matches('/'))
}

/// The blueprint with the placeholders the coordinator leaves for the runner filled.
fn fill_runner_placeholders(
    blueprint: &serde_json::Value,
    orchestrator_mcp_url: &str,
) -> serde_json::Value {
    use serde_json::Value;
    match blueprint {
        Value::String(s) => {
            Value::String(s.replace("${runner.orchestrator_mcp_url}", orchestrator_mcp_url))
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| fill_runner_placeholders(v, orchestrator_mcp_url))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), fill_runner_placeholders(v, orchestrator_mcp_url)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// For a `resume_session` run, the executor's own session id recorded on the session
/// (bound by an earlier run), read from the coordinator so it survives a runner
/// restart. `None` for a new session or one never bound. `Err` is the run's outcome.
async fn resume_id(
    shared: &Shared,
    run: &Run,
    control: &RunControl,
    executor_resumes: bool,
) -> Result<Option<String>, Outcome> {
    if run.run_type != aof_wire::RunType::ResumeSession || !executor_resumes {
        return Ok(None);
    }
    let token = run.session_token.as_deref();
    match retry("session", &control.interrupt, || {
        shared.client.session(&run.session_id, token)
    })
    .await
    {
        Attempt::Done(session) => {
            if session.executor_session_id.is_none() {
                tracing::warn!("resumed session has no executor session; starting a new one");
            }
            Ok(session.executor_session_id)
        }
        Attempt::Interrupted => Err(Outcome::Stopped),
        Attempt::Rejected(e) => Err(Outcome::Failed {
            error: format!("cannot read the session to resume it: {e}"),
        }),
    }
}

/// For a `resume_session` run on an executor that keeps no conversation of its own
/// (`wants_history`), the session's stored events: the coordinator's log is the
/// conversation, so any runner can continue it. `Err` is the run's outcome.
async fn history(
    shared: &Shared,
    run: &Run,
    control: &RunControl,
    executor: &dyn Executor,
) -> Result<Option<Vec<aof_wire::StoredEvent>>, Outcome> {
    if run.run_type != aof_wire::RunType::ResumeSession || !executor.wants_history() {
        return Ok(None);
    }
    let token = run.session_token.as_deref();
    match retry("events", &control.interrupt, || {
        shared.client.events(&run.session_id, token)
    })
    .await
    {
        Attempt::Done(events) => Ok(Some(events)),
        Attempt::Interrupted => Err(Outcome::Stopped),
        Attempt::Rejected(e) => Err(Outcome::Failed {
            error: format!("cannot read the session's events to resume it: {e}"),
        }),
    }
}

/// The executor for this run and the run limits its own options ask for: the one its
/// blueprint names under `executor`, built for this run, or else the runner's default —
/// as `aof_executors::policy` decides (with `allow_blueprint_executors` off a blueprint
/// may only narrow the runner's Claude profile). `Err` is the run's failure message.
fn executor_for(
    allow_blueprint_executors: bool,
    default: &Arc<dyn Executor>,
    default_cfg: &ExecutorConfig,
    blueprint: Option<&serde_json::Value>,
) -> Result<(Arc<dyn Executor>, aof_wire::RunLimits), String> {
    match policy::for_run(allow_blueprint_executors, default_cfg, blueprint) {
        Ok(None) => Ok((default.clone(), default_cfg.limits())),
        Ok(Some(cfg)) => {
            tracing::info!(executor = cfg.kind(), command = %cfg.command_line(), "using the blueprint's executor");
            aof_executors::build(&cfg)
                .map(|ex| (Arc::from(ex), cfg.limits()))
                .map_err(|e| format!("blueprint executor: {e}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Extra time past `stop_grace` before an executor that ignores its cancel is aborted.
const STOP_BACKSTOP: std::time::Duration = std::time::Duration::from_secs(2);

fn joined(res: Result<Result<Outcome, ExecError>, tokio::task::JoinError>) -> Outcome {
    match res {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "executor failed");
            failed(e)
        }
        Err(e) if e.is_cancelled() => Outcome::Stopped,
        Err(e) => {
            tracing::error!(error = %e, "executor task panicked");
            Outcome::Failed {
                error: format!("executor crashed: {e}"),
            }
        }
    }
}

fn abort(done: JoinHandle<Result<Outcome, ExecError>>) -> Outcome {
    done.abort();
    Outcome::Stopped
}

fn failed(e: ExecError) -> Outcome {
    Outcome::Failed {
        error: e.to_string(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Send the final report, retrying while the coordinator is unreachable.
async fn report(
    shared: &Shared,
    run: &RunRef,
    runner_id: String,
    outcome: Outcome,
    control: &RunControl,
) {
    let client = &shared.client;
    let interrupt = &control.interrupt;
    // Drain deadline: whatever did not complete goes back to the coordinator for another
    // runner (an executor killed by our stop may also end as `failed`).
    if control.reason() == Some(StopReason::Handback)
        && !matches!(outcome, Outcome::Completed { .. })
    {
        return hand_back(shared, run, runner_id, control).await;
    }
    let (what, res): (&'static str, Attempt<()>) = match outcome {
        Outcome::Completed { .. } => {
            let body = CompletedBody {
                runner_id,
                status: "success".into(),
                session_status: None,
            };
            (
                "completed",
                retry("completed", interrupt, || {
                    client.report(run, "completed", &body)
                })
                .await,
            )
        }
        Outcome::Failed { error } => {
            let body = FailedBody { runner_id, error };
            (
                "failed",
                retry("failed", interrupt, || client.report(run, "failed", &body)).await,
            )
        }
        Outcome::Stopped => {
            let signal = match control.reason() {
                Some(StopReason::Handback) => "shutdown",
                _ => "SIGTERM",
            };
            let body = StoppedBody {
                runner_id,
                signal: signal.into(),
            };
            (
                "stopped",
                retry("stopped", interrupt, || {
                    client.report(run, "stopped", &body)
                })
                .await,
            )
        }
    };
    match res {
        Attempt::Done(()) => tracing::info!(outcome = what, "run reported"),
        Attempt::Interrupted => tracing::warn!(outcome = what, "gave up reporting run"),
        Attempt::Rejected(e) => log_rejected(what, &e),
    }
}

/// `release` the run. A coordinator without that route (the AOF reference) gets the
/// base protocol's `stopped` report instead.
async fn hand_back(shared: &Shared, run: &RunRef, runner_id: String, control: &RunControl) {
    let client = &shared.client;
    let body = RunnerIdBody {
        runner_id: runner_id.clone(),
    };
    match retry("release", &control.interrupt, || {
        client.report(run, "release", &body)
    })
    .await
    {
        Attempt::Done(()) => tracing::info!("run handed back to the coordinator"),
        Attempt::Interrupted => tracing::warn!("gave up handing the run back"),
        Attempt::Rejected(e)
            if matches!(e.status_code(), Some(404 | 405))
                && matches!(e.code(), None | Some("route_not_found")) =>
        {
            tracing::info!("coordinator cannot take runs back; reporting stopped");
            let body = StoppedBody {
                runner_id,
                signal: "shutdown".into(),
            };
            match retry("stopped", &control.interrupt, || {
                client.report(run, "stopped", &body)
            })
            .await
            {
                Attempt::Done(()) => tracing::info!(outcome = "stopped", "run reported"),
                Attempt::Interrupted => tracing::warn!("gave up reporting run"),
                Attempt::Rejected(e) => log_rejected("stopped", &e),
            }
        }
        Attempt::Rejected(e) => log_rejected("release", &e),
    }
}

/// 404/409/400 mean the lease is gone or the run was already resolved: expected
/// after a revocation race, so not an error.
fn log_rejected(what: &'static str, e: &ClientError) {
    tracing::warn!(outcome = what, error = %e, code = e.code(), "coordinator refused report; giving up");
}

#[cfg(test)]
mod claude_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blueprint_chooses_the_executor() {
        let default: Arc<dyn Executor> = Arc::new(aof_executors::echo::EchoExecutor);
        let echo = ExecutorConfig::Echo;
        let pick = |allow: bool, bp: serde_json::Value| {
            executor_for(allow, &default, &echo, Some(&bp)).map(|(ex, _)| ex)
        };

        // No blueprint, no `executor`, or not an object: the default itself.
        assert!(Arc::ptr_eq(
            &executor_for(true, &default, &echo, None).unwrap().0,
            &default
        ));
        assert!(Arc::ptr_eq(
            &pick(true, json!({"name": "a"})).unwrap(),
            &default
        ));
        assert!(Arc::ptr_eq(
            &pick(false, json!({"executor": "x"})).unwrap(),
            &default
        ));

        let (chosen, limits) = executor_for(
            true,
            &default,
            &echo,
            Some(&json!({"executor": {"kind": "command", "program": "sh", "timeout_seconds": 5}})),
        )
        .unwrap();
        assert_eq!(chosen.kind(), "command");
        assert!(!Arc::ptr_eq(&chosen, &default));
        assert_eq!(limits.timeout_seconds, Some(5.0));

        let err = pick(true, json!({"executor": {"kind": "foo"}}))
            .err()
            .unwrap();
        assert_eq!(
            err,
            "blueprint executor: unknown variant `foo`, expected one of `echo`, `command`, `claude_code`, `model_api`"
        );

        let err = pick(
            false,
            json!({"executor": {"kind": "command", "program": "sh"}}),
        )
        .err()
        .unwrap();
        assert!(err.contains("allow_blueprint_executors is off"), "{err}");

        // A Claude runner: a blueprint may narrow tools and turns even when locked, but
        // not pick the program, model or a wider permission mode; the profile's own
        // limits stay when the blueprint asks for looser ones.
        let claude_cfg = ExecutorConfig::ClaudeCode(aof_executors::claude::ClaudeCodeConfig {
            model: Some("opus".into()),
            timeout_seconds: Some(5.0),
            ..Default::default()
        });
        let claude: Arc<dyn Executor> = aof_executors::build(&claude_cfg).unwrap().into();
        let narrow = json!({"executor": {"kind": "claude_code", "allowed_tools": ["Read"],
            "max_turns": 2, "timeout_seconds": 500}});
        let (chosen, limits) = executor_for(false, &claude, &claude_cfg, Some(&narrow)).unwrap();
        assert_eq!(chosen.kind(), "claude_code");
        assert!(!Arc::ptr_eq(&chosen, &claude));
        assert_eq!(limits.timeout_seconds, Some(5.0));
        for bp in [
            json!({"executor": {"kind": "claude_code", "program": "/bin/sh"}}),
            json!({"executor": {"kind": "claude_code", "model": "sonnet"}}),
            json!({"executor": {"kind": "claude_code", "permission_mode": "bypassPermissions"}}),
        ] {
            let err = executor_for(false, &claude, &claude_cfg, Some(&bp))
                .err()
                .unwrap();
            assert!(err.contains("allow_blueprint_executors is off"), "{err}");
        }
        // On an echo runner the same narrowing blueprint is a choice of executor.
        assert!(executor_for(false, &default, &echo, Some(&narrow)).is_err());
    }

    #[test]
    fn runner_placeholders_are_filled() {
        let url = orchestrator_mcp_url("http://127.0.0.1:8765/");
        assert_eq!(url, "http://127.0.0.1:8765/mcp");
        let bp = json!({"mcp_servers": {"o": {"url": "${runner.orchestrator_mcp_url}",
            "config": {"list": ["x ${runner.orchestrator_mcp_url}", 1]}}}, "n": null});
        assert_eq!(
            fill_runner_placeholders(&bp, &url),
            json!({"mcp_servers": {"o": {"url": "http://127.0.0.1:8765/mcp",
                "config": {"list": ["x http://127.0.0.1:8765/mcp", 1]}}}, "n": null})
        );
    }
}
