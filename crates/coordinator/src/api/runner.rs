//! The runner protocol: register, long-poll (woken, never sleep-polled), reports,
//! heartbeats with lease renewal, runner list and removal.

use crate::auth::policy::{Audit, Grant};
use aof_wire::error::ErrorCode;
use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use sha2::{Digest, Sha256};

use aof_core::SessionStatus;
use aof_store::{PollState, RunReport, Writer};
use aof_wire::{
    api::{OkResponse, RemoveRunnerResponse},
    runner::*,
};

use super::fence::{Lease, RunnerLease};
use crate::{
    auth::{self, Caller},
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

/// Refuses a runner whose `X-AOF-Protocol` is below what we still speak. No header: a
/// reference runner, which speaks the base protocol. A newer runner is let in; it reads
/// our version from the registration answer and decides itself whether it can speak down.
fn check_protocol(headers: &HeaderMap) -> ApiResult<()> {
    let Some(raw) = headers.get(aof_wire::PROTOCOL_HEADER) else {
        return Ok(());
    };
    let version = raw
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "X-AOF-Protocol must be a protocol version number".into(),
                ErrorCode::InvalidProtocolVersion,
            )
        })?;
    if version < aof_wire::MIN_PROTOCOL_VERSION {
        return Err(ApiError::BadRequest(
            format!(
                "runner speaks protocol {version}; this coordinator speaks {} and accepts {} or newer: upgrade the runner",
                aof_wire::PROTOCOL_VERSION,
                aof_wire::MIN_PROTOCOL_VERSION
            ),
            ErrorCode::ProtocolUnsupported,
        ));
    }
    Ok(())
}

/// Runner ids are derived from what the runner is, like the reference: the same runner
/// restarting gets the same id.
fn derive_runner_id(req: &RegisterRequest) -> String {
    let identity = format!(
        "{}:{}:{}",
        req.hostname, req.project_dir, req.executor_profile
    );
    let digest = Sha256::digest(identity.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("lnch_{hex}")
}

#[utoipa::path(post, path = "/runner/register", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit-action" = json!("runner.register"))), tag = "runner", request_body = aof_wire::runner::RegisterRequest, responses((status = 200, description = "Registered", body = aof_wire::runner::RegisterResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 403, description = "project_dir outside the allowed roots, a runner id bound to another key (runner_not_bound), or tags outside a scoped key's (runner_out_of_scope)", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 413, description = "Metadata too large", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn register(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<(crate::audit::Target, Json<RegisterResponse>)> {
    check_protocol(&headers)?;
    crate::limits::register(&st.cfg.project_dir_roots, &req)?;
    let id = derive_runner_id(&req);
    auth::bind_runner(&st, &caller, &id, req.tags.as_deref().unwrap_or_default()).await?;
    st.store.register_runner(&id, &req).await?;
    tracing::info!(runner_id = %id, hostname = %req.hostname, "runner registered");
    st.wake_runners();
    Ok((
        crate::audit::Target(id.clone()),
        Json(RegisterResponse {
            runner_id: id,
            poll_endpoint: "/runner/runs".into(),
            poll_timeout_seconds: st.cfg.poll_timeout.as_secs().max(1),
            heartbeat_interval_seconds: st.cfg.heartbeat_interval.as_secs().max(1),
            lease_ttl_seconds: Some(st.cfg.lease_ttl.as_secs().max(1)),
            protocol_version: Some(aof_wire::PROTOCOL_VERSION),
        }),
    ))
}

/// Long-poll: returns at once if there is a stop or a run for this runner, else waits
/// for a wake-up (new run, stop, requeue; taken here or, relayed by the store, on another
/// coordinator) up to the poll timeout, then answers 204.
#[utoipa::path(get, path = "/runner/runs", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit-action" = json!("runner.poll"))), tag = "runner", params(("runner_id" = String, Query, description = "The polling runner"), ("accept_runs" = Option<bool>, Query, description = "AOF-RS: false when all slots are busy (stops only)")), responses((status = 200, description = "A run, stops or deregistration", body = aof_wire::runner::PollResponse), (status = 204, description = "Nothing within the poll timeout; with `X-AOF-Draining: 1` the coordinator is stopping and answered at once: poll again (another coordinator, if there is one)"), (status = 400, description = "Unsupported runner protocol version", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn poll(
    State(st): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: QueryMap,
) -> ApiResult<Response> {
    // Checked on every poll too: the coordinator may have been upgraded under a runner.
    check_protocol(&headers)?;
    let runner_id = q.require("runner_id")?.to_string();
    auth::check_runner(&st, &caller, &runner_id).await?;
    let _slot = st.caps.acquire(crate::caps::Kind::Poll, &caller.0)?;
    // A scoped key's runner passes over runs outside its scope; they stay pending.
    let scope = auth::runner_scope(&st, &caller).await?;
    let accept_runs = q.bool("accept_runs", true)?;
    let deadline = tokio::time::Instant::now() + st.cfg.poll_timeout;
    let ttl =
        chrono::Duration::from_std(st.cfg.lease_ttl).map_err(|e| ApiError::Internal(e.into()))?;
    let mut wake = st.wake.subscribe();
    let draining = st.stopping.draining();
    loop {
        // Stopping: nothing is taken (a run or stop in an answer the runner may never
        // read would wait for its lease), and the runner goes elsewhere at once.
        if draining.is_cancelled() {
            return Ok(draining_answer());
        }
        // Mark the current generation seen *before* looking, so a wake-up that lands
        // between the look and the wait is not missed.
        wake.borrow_and_update();
        // One read answers "who is this, is it being removed, are stops waiting".
        let runner = match st.store.poll_state(&runner_id).await? {
            PollState::Unknown => {
                return Err(ApiError::Unauthorized(
                    "Runner not registered".into(),
                    ErrorCode::RunnerNotRegistered,
                ))
            }
            PollState::Deregister => {
                st.store.take_deregistration(&runner_id).await?;
                return Ok(Json(PollResponse::Deregistered { deregistered: true }).into_response());
            }
            PollState::Ready { runner, has_stops } => {
                if has_stops {
                    let stops = st.store.take_stops(&runner_id).await?;
                    if !stops.is_empty() {
                        return Ok(Json(PollResponse::Stop {
                            stop_sessions: stops,
                        })
                        .into_response());
                    }
                }
                runner
            }
        };
        if accept_runs {
            if let Some(mut rec) = st.store.claim_run_scoped(&runner, ttl, &scope).await? {
                rec.run.session_token =
                    auth::mint_session_token(&st, &rec.run.run_id, &rec.run.session_id).await?;
                let waited = chrono::DateTime::parse_from_rfc3339(&rec.run.created_at)
                    .map(|t| {
                        (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                            .num_microseconds()
                            .unwrap_or(0) as f64
                            / 1e6
                    })
                    .unwrap_or(0.0);
                st.metrics.observe_dispatch(waited);
                tracing::info!(run_id = %rec.run.run_id, %runner_id, attempt = rec.run.attempt, "run dispatched");
                return Ok(Json(PollResponse::Run {
                    run: Box::new(rec.run),
                })
                .into_response());
            }
        }
        let parked = Parked::new(&st.metrics);
        tokio::select! {
            changed = wake.changed() => {
                if changed.is_err() {
                    return Ok(StatusCode::NO_CONTENT.into_response());
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Ok(StatusCode::NO_CONTENT.into_response());
            }
            _ = draining.cancelled() => return Ok(draining_answer()),
        }
        drop(parked);
    }
}

/// "Nothing for you here; poll again elsewhere": a 204 any runner understands, marked
/// for ours (`DRAINING_HEADER`) so it does not wait before the next poll.
fn draining_answer() -> Response {
    (
        StatusCode::NO_CONTENT,
        [(aof_wire::runner::DRAINING_HEADER, "1")],
    )
        .into_response()
}

/// Counts a parked long-poll for as long as it waits (also if the client goes away).
struct Parked<'a>(&'a crate::metrics::Metrics);

impl<'a> Parked<'a> {
    fn new(m: &'a crate::metrics::Metrics) -> Self {
        m.polls_waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Parked(m)
    }
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.0
            .polls_waiting
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Who reports on a run: the body's runner id, bound to the caller, with the lease
/// `RunnerLease` checked before the body was read (required of runner-role callers).
async fn writer(
    st: &AppState,
    caller: &Caller,
    runner_id: String,
    lease: Lease,
) -> ApiResult<Writer> {
    auth::check_runner(st, caller, &runner_id).await?;
    Ok(Writer {
        runner_id,
        lease_token: lease.token,
    })
}

fn ok() -> Json<OkResponse> {
    Json(OkResponse { ok: true })
}

#[utoipa::path(post, path = "/runner/runs/{run_id}/started", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit" = json!(Audit::Refusals))), tag = "runner", params(("run_id" = String, Path, description = "Run id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing; required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: if sent, must name the path's run")), request_body = aof_wire::runner::RunnerIdBody, responses((status = 200, description = "Recorded", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound: not one of this key's runners; forbidden: a runner credential without the run's lease token", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn started(
    State(st): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(body): JsonBody<RunnerIdBody>,
) -> ApiResult<Json<OkResponse>> {
    let who = writer(&st, &caller, body.runner_id, lease).await?;
    st.store.report(&run_id, &who, RunReport::Started).await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/runner/runs/{run_id}/completed", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit" = json!(Audit::Refusals))), tag = "runner", params(("run_id" = String, Path, description = "Run id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing; required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: if sent, must name the path's run")), request_body = aof_wire::runner::CompletedBody, responses((status = 200, description = "Recorded", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound: not one of this key's runners; forbidden: a runner credential without the run's lease token", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn completed(
    State(st): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(body): JsonBody<CompletedBody>,
) -> ApiResult<Json<OkResponse>> {
    let session_status = match body.session_status.as_deref() {
        None => None,
        Some("idle") => Some(SessionStatus::Idle),
        Some("finished") => Some(SessionStatus::Finished),
        Some(other) => {
            return Err(ApiError::Validation(serde_json::json!([{
                "type": "literal_error", "loc": ["body", "session_status"],
                "msg": "Input should be 'idle' or 'finished'", "input": other,
            }])))
        }
    };
    let who = writer(&st, &caller, body.runner_id, lease).await?;
    st.store
        .report(&run_id, &who, RunReport::Completed { session_status })
        .await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/runner/runs/{run_id}/failed", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit" = json!(Audit::Refusals))), tag = "runner", params(("run_id" = String, Path, description = "Run id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing; required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: if sent, must name the path's run")), request_body = aof_wire::runner::FailedBody, responses((status = 200, description = "Recorded", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound: not one of this key's runners; forbidden: a runner credential without the run's lease token", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn failed(
    State(st): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(body): JsonBody<FailedBody>,
) -> ApiResult<Json<OkResponse>> {
    let who = writer(&st, &caller, body.runner_id, lease).await?;
    st.store
        .report(&run_id, &who, RunReport::Failed { error: body.error })
        .await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/runner/runs/{run_id}/stopped", extensions(("x-aof-grants" = json!([Grant::Runner]))), tag = "runner", params(("run_id" = String, Path, description = "Run id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing; required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: if sent, must name the path's run")), request_body = aof_wire::runner::StoppedBody, responses((status = 200, description = "Recorded", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound: not one of this key's runners; forbidden: a runner credential without the run's lease token", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn stopped(
    State(st): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(body): JsonBody<StoppedBody>,
) -> ApiResult<Json<OkResponse>> {
    let who = writer(&st, &caller, body.runner_id, lease).await?;
    st.store
        .report(
            &run_id,
            &who,
            RunReport::Stopped {
                signal: body.signal,
            },
        )
        .await?;
    Ok(ok())
}

/// AOF-RS: a draining runner hands back a run it stopped unfinished; it goes back to
/// `pending` for another runner (the next claim is attempt n+1), or fails when
/// `RUN_RECOVERY_MODE=none`. Fenced by the lease token like every report.
#[utoipa::path(post, path = "/runner/runs/{run_id}/release", extensions(("x-aof-grants" = json!([Grant::Runner]))), tag = "runner", params(("run_id" = String, Path, description = "Run id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing; required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: if sent, must name the path's run")), request_body = aof_wire::runner::RunnerIdBody, responses((status = 200, description = "Released", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound: not one of this key's runners; forbidden: a runner credential without the run's lease token", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Not held by this runner or lease, or already resolved", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn release(
    State(st): State<AppState>,
    caller: Caller,
    Path(run_id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(body): JsonBody<RunnerIdBody>,
) -> ApiResult<Json<OkResponse>> {
    let requeue = st.cfg.recovery.requeue_released();
    let runner_id = body.runner_id.clone();
    let who = writer(&st, &caller, body.runner_id, lease).await?;
    let rec = st
        .store
        .report(&run_id, &who, RunReport::Released { requeue })
        .await?;
    tracing::info!(%run_id, %runner_id, status = %rec.status, "run handed back by its runner");
    st.wake_runners();
    Ok(ok())
}

#[utoipa::path(post, path = "/runner/sessions/{id}/status", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit-action" = json!("runner.session.status")), ("x-aof-audit" = json!(Audit::Refusals))), tag = "runner", params(("id" = String, Path, description = "Session id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the lease of the session's run (required of runner credentials when auth is on)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: that run")), request_body = aof_wire::runner::SessionStatusBody, responses((status = 200, description = "Recorded", body = aof_wire::api::OkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 403, description = "runner_not_bound, or forbidden: a runner credential without the lease", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn session_status(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    // The lease of the session's run (kept after a normal end; the store requires that
    // run to be the session's latest, ended, and this runner's).
    _lease: RunnerLease,
    JsonBody(body): JsonBody<SessionStatusBody>,
) -> ApiResult<Json<OkResponse>> {
    auth::check_runner(&st, &caller, &body.runner_id).await?;
    let status = match body.status.as_str() {
        "finished" => SessionStatus::Finished,
        "failed" => SessionStatus::Failed,
        // A reference runner whose idle process ignored the shutdown request and had to
        // be killed, after a stop.
        "stopped" => SessionStatus::Stopped,
        other => {
            return Err(ApiError::Validation(serde_json::json!([{
                "type": "literal_error", "loc": ["body", "status"],
                "msg": "Input should be 'finished', 'failed' or 'stopped'", "input": other,
            }])))
        }
    };
    st.store
        .set_session_status(&id, &body.runner_id, status)
        .await?;
    Ok(ok())
}

#[utoipa::path(post, path = "/runner/heartbeat", extensions(("x-aof-grants" = json!([Grant::Runner])), ("x-aof-audit-action" = json!("runner.heartbeat")), ("x-aof-audit" = json!(Audit::Refusals))), tag = "runner", request_body = aof_wire::runner::HeartbeatRequest, responses((status = 200, description = "Leases renewed", body = aof_wire::runner::HeartbeatResponse), (status = 401, description = "Runner not registered", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn heartbeat(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> ApiResult<Json<HeartbeatResponse>> {
    auth::check_runner(&st, &caller, &req.runner_id).await?;
    let ttl =
        chrono::Duration::from_std(st.cfg.lease_ttl).map_err(|e| ApiError::Internal(e.into()))?;
    let revoked = st
        .store
        .heartbeat(&req.runner_id, req.leases.as_deref(), ttl)
        .await?;
    if !revoked.is_empty() {
        tracing::warn!(runner_id = %req.runner_id, runs = ?revoked, "heartbeat named leases it no longer holds");
    }
    Ok(Json(HeartbeatResponse { ok: true, revoked }))
}

#[utoipa::path(get, path = "/runners", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "runners",
    params(
        ("status" = Option<aof_wire::runner::RunnerStatus>, Query, description = "AOF-RS: only online or only stale runners"),
        ("q" = Option<String>, Query, description = "AOF-RS: case-insensitive text in the runner id, host, project dir, profile or tags (at most 256 characters)"),
        ("limit" = Option<i64>, Query, description = "AOF-RS: one page of this many runners, 1 to 500 (default 50 when only `cursor` is given)"),
        ("cursor" = Option<String>, Query, description = "AOF-RS: the `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Registered runners in registration order: all of them, or one page with `next_cursor` when `limit` or `cursor` is given", body = aof_wire::runner::RunnerList),
        (status = 422, description = "Validation error (status, limit, cursor or q)", body = aof_wire::ErrorBody)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Json<RunnerList>> {
    let stale = chrono::Duration::from_std(st.cfg.stale_threshold)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let filter = super::paging::runner_filter(&q)?;
    let (after, limit) = super::paging::runner_page(&q)?.unwrap_or((None, i64::MAX));
    // Unpaged: the whole (filtered) list in one read, as the AOF reference answers it.
    let page = st
        .store
        .list_runners_page(stale, &filter, after, limit)
        .await?;
    Ok(Json(RunnerList {
        runners: page.runners,
        next_cursor: page.next.as_ref().map(super::paging::encode_runner),
    }))
}

#[utoipa::path(delete, path = "/runners/{runner_id}", extensions(("x-aof-grants" = json!([Grant::Operator, Grant::Runner])), ("x-aof-audit-action" = json!("runner.deregister"))), tag = "runners", params(("runner_id" = String, Path, description = "Runner id"), ("self" = Option<bool>, Query, description = "true: remove now (the runner itself); false: mark for deregistration")), responses((status = 200, description = "Removed or marked", body = aof_wire::api::RemoveRunnerResponse), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn remove(
    State(st): State<AppState>,
    caller: Caller,
    Path(runner_id): Path<String>,
    q: QueryMap,
) -> ApiResult<Json<RemoveRunnerResponse>> {
    // Operators remove any runner; a runner key only its own (a no-op for others).
    auth::check_runner(&st, &caller, &runner_id).await?;
    let self_ = q.bool("self", false)?;
    st.store.remove_runner(&runner_id, self_).await?;
    st.wake_runners();
    let (message, by) = if self_ {
        ("Runner deregistered", "self")
    } else {
        ("Runner marked for deregistration", "external")
    };
    Ok(Json(RemoveRunnerResponse {
        ok: true,
        message: message.into(),
        initiated_by: by.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runner_id_is_stable_and_prefixed() {
        let req = RegisterRequest {
            hostname: "h".into(),
            project_dir: "/p".into(),
            executor_profile: "echo".into(),
            ..Default::default()
        };
        let a = derive_runner_id(&req);
        assert_eq!(a, derive_runner_id(&req));
        assert!(a.starts_with("lnch_") && a.len() == 17, "{a}");
        let other = RegisterRequest {
            hostname: "h2".into(),
            ..req
        };
        assert_ne!(a, derive_runner_id(&other));
    }
}
