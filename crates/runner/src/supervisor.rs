//! The runner's main loop: register → poll → dispatch, the heartbeat beside it, and the
//! shutdown sequence (a graceful drain that hands back what does not finish in time).

use std::{sync::Arc, time::Duration};

use aof_wire::{HeartbeatRequest, PollResponse, RegisterRequest, RegisterResponse, Run};
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

use crate::{active::StopReason, backoff::Backoff, client::Polled, execution, Shared};

/// Added to the coordinator's poll timeout, so a slow but healthy long-poll is not cut off.
const POLL_SLACK: Duration = Duration::from_secs(15);
/// After the executors' stop grace, how long stopped runs get to deliver and report.
const REPORT_GRACE: Duration = Duration::from_secs(5);
/// Floor of the heartbeat period, whatever the coordinator announces.
const MIN_HEARTBEAT: Duration = Duration::from_millis(200);
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// Why a registration's poll loop ended.
enum PollEnd {
    Shutdown,
    Reregister,
}

/// The runner's instance id, kept in `<workspace>/.runner-instance` so a runner that is
/// killed and started again on the same workspace is the same instance (its old
/// registration is not a live duplicate). A second runner on the same workspace would
/// share it: one workspace is one runner. Falls back to a fresh id if the file can't be used.
async fn instance_id(workspace: &std::path::Path) -> String {
    let path = workspace.join(".runner-instance");
    if let Ok(id) = tokio::fs::read_to_string(&path).await {
        let id = id.trim();
        if !id.is_empty() {
            return id.to_string();
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    let written = async {
        tokio::fs::create_dir_all(workspace).await?;
        tokio::fs::write(&path, &id).await
    }
    .await;
    if let Err(e) = written {
        tracing::warn!(error = %e, path = %path.display(), "cannot keep the runner instance id; a restart will wait for the old registration to go stale");
    }
    id
}

pub(crate) async fn supervise(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    hurry: CancellationToken,
) -> anyhow::Result<()> {
    // Lets us register again after a coordinator restart, or after this runner itself
    // crashed and restarted on the same workspace, without being taken for a duplicate.
    let instance_id = instance_id(&shared.cfg.workspace_root).await;
    let tracker = TaskTracker::new();
    let mut last_reg: Option<RegisterResponse> = None;
    // Kept alive through the shutdown drain, so leases of stopping runs stay renewed.
    let mut heartbeat: Option<(CancellationToken, tokio::task::JoinHandle<()>)> = None;

    let result = loop {
        let reg = match register(&shared, &instance_id, &shutdown).await {
            Ok(Some(reg)) => reg,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        last_reg = Some(reg.clone());
        // Cancelled by shutdown, or by the heartbeat when the coordinator forgot us.
        let session = shutdown.child_token();
        let hb_stop = CancellationToken::new();
        let every = heartbeat_every(reg.heartbeat_interval_seconds, reg.lease_ttl_seconds);
        let hb = tokio::spawn(
            heartbeat_loop(
                shared.clone(),
                reg.runner_id.clone(),
                every,
                hb_stop.clone(),
                session.clone(),
            )
            .instrument(tracing::info_span!("heartbeat", aof.runner.id = %reg.runner_id)),
        );
        if let Some((old_stop, old)) = heartbeat.replace((hb_stop, hb)) {
            old_stop.cancel();
            let _ = old.await;
        }
        match poll_loop(&shared, &reg, &tracker, &shutdown, &session, true).await {
            PollEnd::Shutdown => break Ok(()),
            PollEnd::Reregister => tracing::info!(runner_id = %reg.runner_id, "registering again"),
        }
    };

    drain(&shared, &tracker, last_reg.as_ref(), &hurry).await;
    if let Some((stop, hb)) = heartbeat {
        stop.cancel();
        let _ = hb.await;
    }
    if let Some(id) = last_reg.map(|r| r.runner_id) {
        match timeout(DEREGISTER_TIMEOUT, shared.client.deregister(&id)).await {
            Ok(Ok(())) => tracing::info!(runner_id = %id, "deregistered"),
            Ok(Err(e)) => tracing::debug!(runner_id = %id, error = %e, "deregister failed"),
            Err(_) => tracing::debug!(runner_id = %id, "deregister timed out"),
        }
    }
    result
}

/// Register, retrying until accepted or shutdown (`None`). A refusal other than a
/// duplicate-runner conflict is a configuration problem and ends the runner.
async fn register(
    shared: &Shared,
    instance_id: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<RegisterResponse>> {
    let cfg = &shared.cfg;
    let executor = cfg.executor_announce.clone().unwrap_or_else(|| {
        serde_json::Map::from_iter([
            ("type".to_string(), serde_json::json!("autonomous")),
            (
                "command".to_string(),
                serde_json::json!(cfg.executor.command_line()),
            ),
        ])
    });
    let req = RegisterRequest {
        hostname: cfg.hostname.clone(),
        project_dir: cfg.project_dir.clone(),
        executor_profile: cfg.executor_profile.clone(),
        executor: Some(executor),
        tags: (!cfg.tags.is_empty()).then(|| cfg.tags.clone()),
        // Left out when false, as the reference's own runner does by default.
        require_matching_tags: cfg.require_matching_tags.then_some(true),
        instance_id: Some(instance_id.to_string()),
    };
    let mut backoff = Backoff::default();
    loop {
        let res = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(None),
            r = shared.client.register(&req) => r,
        };
        match res {
            Ok(resp) => {
                // None: the reference coordinator, which speaks the base protocol.
                if let Some(v) = resp.protocol_version {
                    if v < aof_wire::MIN_PROTOCOL_VERSION {
                        anyhow::bail!(
                            "coordinator at {} speaks protocol {v}; this runner speaks {} and needs {} or newer: upgrade the coordinator",
                            shared.client.base(),
                            aof_wire::PROTOCOL_VERSION,
                            aof_wire::MIN_PROTOCOL_VERSION
                        );
                    }
                }
                tracing::info!(
                    runner_id = %resp.runner_id,
                    poll_timeout_s = resp.poll_timeout_seconds,
                    heartbeat_interval_s = resp.heartbeat_interval_seconds,
                    lease_ttl_s = ?resp.lease_ttl_seconds,
                    "registered"
                );
                return Ok(Some(resp));
            }
            Err(e) if e.is_retryable() || e.status_code() == Some(409) => {
                tracing::warn!(url = %shared.client.base(), error = %e, code = e.code(), "registration failed; retrying");
            }
            Err(e @ crate::client::ClientError::Token(_)) => {
                anyhow::bail!("cannot get a token to register with: {e}")
            }
            Err(e) => anyhow::bail!(
                "coordinator at {} refused registration: {e}",
                shared.client.base()
            ),
        }
        if !backoff.wait(shutdown).await {
            return Ok(None);
        }
    }
}

/// Long-poll while a slot is free, and dispatch what comes back. `take_runs: false`
/// (draining) long-polls for stops only.
async fn poll_loop(
    shared: &Arc<Shared>,
    reg: &RegisterResponse,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    session: &CancellationToken,
    take_runs: bool,
) -> PollEnd {
    let end = || {
        if shutdown.is_cancelled() {
            PollEnd::Shutdown
        } else {
            PollEnd::Reregister
        }
    };
    let poll_timeout = Duration::from_secs(reg.poll_timeout_seconds) + POLL_SLACK;
    let mut backoff = Backoff::default();
    loop {
        // With every slot busy we still long-poll, for stops only, so a stop reaches a
        // full runner at once; that poll is dropped when a slot frees (it can't carry a run).
        let full = shared.active.len() >= shared.cfg.max_concurrent;
        let accept_runs = take_runs && !full;
        let res = tokio::select! {
            biased;
            _ = session.cancelled() => return end(),
            _ = shared.active.slot_free(shared.cfg.max_concurrent), if take_runs && full => continue,
            r = shared.client.poll(&reg.runner_id, accept_runs, poll_timeout) => r,
        };
        match res {
            Ok(Polled::Nothing) => backoff.reset(),
            // Our coordinator is stopping. A next one (`--url` repeated) is polled at
            // once; with one URL, the next poll finds it gone and backs off as usual.
            Ok(Polled::Draining) => {
                backoff.reset();
                tracing::info!(runner_id = %reg.runner_id, next = %shared.client.base(), "coordinator is stopping; polling again");
            }
            Ok(Polled::Got(PollResponse::Run { run })) => {
                backoff.reset();
                dispatch(shared, *run, &reg.runner_id, tracker);
            }
            Ok(Polled::Got(PollResponse::Stop { stop_sessions })) => {
                backoff.reset();
                let found = shared
                    .active
                    .stop_sessions(&stop_sessions, StopReason::Requested);
                tracing::info!(sessions = ?stop_sessions, found, "coordinator asked to stop sessions");
            }
            Ok(Polled::Got(PollResponse::Deregistered { .. })) => {
                tracing::warn!(runner_id = %reg.runner_id, "coordinator deregistered this runner");
                return PollEnd::Reregister;
            }
            // The coordinator was replaced by one that no longer speaks our protocol:
            // registering again ends the runner with the coordinator's explanation.
            Err(e)
                if matches!(e.status_code(), Some(401 | 404))
                    || e.code() == Some("protocol_unsupported") =>
            {
                tracing::warn!(runner_id = %reg.runner_id, error = %e, code = e.code(), "coordinator does not know this runner");
                return PollEnd::Reregister;
            }
            Err(e) => {
                tracing::warn!(runner_id = %reg.runner_id, error = %e, code = e.code(), "poll failed; backing off");
                if !backoff.wait(session).await {
                    return end();
                }
            }
        }
    }
}

fn dispatch(shared: &Arc<Shared>, run: Run, runner_id: &str, tracker: &TaskTracker) {
    let Some(control) = shared.active.insert(&run, &shared.abandon) else {
        tracing::warn!(run_id = %run.run_id, "run is already executing here; ignoring");
        return;
    };
    let span = tracing::info_span!(
        "run",
        aof.run.id = %run.run_id,
        aof.session.id = %run.session_id,
        aof.runner.id = %runner_id,
        aof.executor = %shared.cfg.executor.kind(),
        aof.attempt = run.attempt,
    );
    // OpenTelemetry: the execution is a child of the run's creation, one trace per run.
    if let Some(tp) = &run.traceparent {
        aof_otel::set_parent_traceparent(&span, tp);
    }
    tracker.spawn(
        execution::execute(shared.clone(), run, runner_id.to_string(), control).instrument(span),
    );
}

/// Often enough that a lease survives two lost heartbeats.
fn heartbeat_every(interval_s: u64, lease_ttl_s: Option<u64>) -> Duration {
    let mut every = Duration::from_secs(interval_s);
    if let Some(ttl) = lease_ttl_s {
        every = every.min(Duration::from_secs(ttl) / 3);
    }
    every.max(MIN_HEARTBEAT)
}

async fn heartbeat_loop(
    shared: Arc<Shared>,
    runner_id: String,
    every: Duration,
    stop: CancellationToken,
    session: CancellationToken,
) {
    // At most one heartbeat in flight; a hung one must not delay the next for long.
    let request_timeout = every.clamp(Duration::from_secs(1), Duration::from_secs(10));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let req = HeartbeatRequest {
            runner_id: runner_id.clone(),
            leases: Some(shared.active.leases()),
        };
        let res = tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            r = shared.client.heartbeat(&req, request_timeout) => r,
        };
        match res {
            Ok(resp) if !resp.revoked.is_empty() => {
                tracing::warn!(runs = ?resp.revoked, "coordinator revoked leases; stopping those runs");
                shared.active.revoke(&resp.revoked);
            }
            Ok(_) => {}
            Err(e) if matches!(e.status_code(), Some(401 | 404)) => {
                tracing::warn!(error = %e, code = e.code(), "coordinator does not know this runner");
                session.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, code = e.code(), "heartbeat failed"),
        }
    }
}

/// The graceful drain: no new runs; active runs get `drain_timeout` to finish (stops
/// still arrive through a stops-only long-poll); at the deadline, or at once on `hurry`
/// (a second signal), the rest are stopped and handed back to the coordinator, which
/// requeues them for another runner. They get the stop grace plus a little to report;
/// then what is left is abandoned (its coordinator is probably gone).
async fn drain(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    reg: Option<&RegisterResponse>,
    hurry: &CancellationToken,
) {
    tracker.close();
    let active = shared.active.len();
    if active > 0 {
        let limit = shared.cfg.drain_timeout;
        tracing::info!(
            active,
            drain_timeout_s = limit.as_secs_f64(),
            "draining: no new runs; waiting for active runs to finish (a second signal hands them back now)"
        );
        let done = CancellationToken::new();
        let stops = async {
            if let Some(reg) = reg {
                poll_loop(shared, reg, tracker, &done, &done, false).await;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tracker.wait() => tracing::info!("drained: every active run finished"),
            _ = tokio::time::sleep(limit) => tracing::warn!(
                active = shared.active.len(),
                "drain deadline reached; stopping the remaining runs and handing them back"
            ),
            _ = hurry.cancelled() => tracing::warn!(
                active = shared.active.len(),
                "second signal; stopping the remaining runs and handing them back"
            ),
            _ = stops => {}
        }
    }
    shared.active.stop_all(StopReason::Handback);
    let deadline = shared.cfg.stop_grace + REPORT_GRACE;
    if timeout(deadline, tracker.wait()).await.is_err() {
        tracing::warn!(
            active = shared.active.len(),
            "runs did not finish reporting in time; abandoning them"
        );
        shared.abandon.cancel();
        let _ = timeout(Duration::from_secs(1), tracker.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_period() {
        assert_eq!(heartbeat_every(10, None), Duration::from_secs(10));
        assert_eq!(heartbeat_every(10, Some(15)), Duration::from_secs(5));
        assert_eq!(heartbeat_every(2, Some(30)), Duration::from_secs(2));
        assert_eq!(heartbeat_every(0, None), MIN_HEARTBEAT);
        assert_eq!(heartbeat_every(10, Some(0)), MIN_HEARTBEAT);
    }
}
