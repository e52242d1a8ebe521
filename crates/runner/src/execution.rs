//! One run on this runner, start to report: `started`, the executor with its outbox,
//! then `completed`, `failed` or `stopped` — unless the lease was lost on the way.
//!
//! Here the loop of one execution; its parts: `policy` (which executor), `placeholders`
//! (what the blueprint leaves for the runner), `resume` (what a resumed run reads
//! first), `report` (what the coordinator is told).

mod placeholders;
mod policy;
mod report;
mod resume;

use std::sync::Arc;

use aof_executors::{
    approval::ApprovalPolicy, Approvals, ExecCx, ExecError, ExecEvent, Execution, Job, Outcome,
};
use aof_wire::{Event, Run};
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tracing::Instrument;

use crate::{
    active::RunControl,
    approval::HttpApprover,
    backoff::{retry, Attempt},
    client::RunRef,
    limits::{self, Budget},
    outbox::{self, DeliveryEnd, Outbox},
    Shared,
};
use placeholders::{fill_runner_placeholders, orchestrator_mcp_url};
use policy::executor_for;
pub(crate) use report::Report;
use resume::{history, resume_id};

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

    let started = Report::Started;
    match retry(started.path(), &control.interrupt, || {
        client.report(&rref, &started, &runner_id)
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
    report::report_end(&shared, &rref, &runner_id, outcome, &control).await;
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
    let policy = match ApprovalPolicy::from_blueprint(blueprint.as_ref()) {
        Ok(p) => p.with_floor(&shared.cfg.approval_floor),
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
        approval: Approvals {
            approver: Some(Arc::new(HttpApprover {
                client: shared.client.clone(),
                run: RunRef::from(run),
                policy: policy.clone(),
                cancel: exec_cancel.clone(),
            })),
            policy,
            floor: shared.cfg.approval_floor.clone(),
        },
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

#[cfg(test)]
mod claude_tests;
