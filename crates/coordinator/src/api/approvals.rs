//! `/approvals` and `/sessions/{id}/approvals` (issue #25): a runner asks under its
//! run's lease and waits; viewers read; operators and admins decide. The rules are in
//! `crate::approvals`; who may call each route is in its `x-aof-grants`.

use std::time::Duration;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use aof_store::{approvals::ApprovalQuery, Writer};
use aof_wire::{
    approval::{Approval, ApprovalDecision, ApprovalList, ApprovalRequest, ApprovalStatus},
    error::ErrorCode,
};

use super::fence::{Lease, RunnerLease};
use crate::{
    approvals::{self, Ask},
    auth::{policy::Grant, Caller},
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

/// Most approvals one list answers.
const MAX_LIST: i64 = 500;

fn validation(field: &str, msg: &str, input: serde_json::Value) -> ApiError {
    ApiError::Validation(serde_json::json!([{
        "type": "value_error", "loc": ["query", field], "msg": msg, "input": input,
    }]))
}

/// `?wait=` seconds, 0 to 30.
fn wait_of(q: &QueryMap) -> ApiResult<Duration> {
    let w = q.int("wait")?.unwrap_or(0);
    let max = approvals::MAX_WAIT.as_secs() as i64;
    if !(0..=max).contains(&w) {
        return Err(validation(
            "wait",
            &format!("wait must be between 0 and {max} seconds"),
            w.into(),
        ));
    }
    Ok(Duration::from_secs(w as u64))
}

#[utoipa::path(post, path = "/sessions/{id}/approvals", extensions(("x-aof-grants" = json!([Grant::LeasedRunner])), ("x-aof-audit-action" = json!("approval.request"))), tag = "approvals", params(("id" = String, Path, description = "Session id"), ("x-aof-lease-token" = Option<String>, Header, description = "The run's lease token"), ("x-aof-run-id" = Option<String>, Header, description = "The run asking; must equal the body's run_id")), request_body = aof_wire::approval::ApprovalRequest, responses((status = 201, description = "Requested: the session waits for a decision", body = aof_wire::approval::Approval), (status = 200, description = "This run asked with this request_key before: the stored approval", body = aof_wire::approval::Approval), (status = 404, description = "No such run in this session", body = aof_wire::ErrorBody), (status = 409, description = "lease_conflict: the run is not running under this lease", body = aof_wire::ErrorBody), (status = 413, description = "tool_input too large", body = aof_wire::ErrorBody), (status = 422, description = "invalid_approval", body = aof_wire::ErrorBody)))]
pub(crate) async fn request(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(req): JsonBody<ApprovalRequest>,
) -> ApiResult<(StatusCode, Json<Approval>)> {
    let Lease { token, run_id } = lease;
    if run_id.as_ref().is_some_and(|r| *r != req.run_id) {
        return Err(ApiError::Conflict(
            "x-aof-run-id names another run than the body's run_id".into(),
            ErrorCode::LeaseConflict,
        ));
    }
    // With a lease the store checks it in the write's transaction; without one (auth
    // off, an admin) the coordinator asks for the run, which must still be running.
    let who = match token {
        Some(t) => {
            let rec = st.store.get_run(&req.run_id).await?;
            let runner_id = rec.and_then(|r| r.run.runner_id).unwrap_or_default();
            Some(Writer {
                runner_id,
                lease_token: Some(t),
            })
        }
        None => None,
    };
    let ask = Ask {
        session_id: id,
        run_id: req.run_id,
        tool_name: req.tool_name,
        tool_input: req.tool_input,
        request_key: req.request_key,
        timeout_seconds: req.timeout_seconds,
        on_timeout: req.on_timeout,
    };
    let (a, created) = approvals::request(&st, ask, who.as_ref()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(a)))
}

#[utoipa::path(get, path = "/sessions/{id}/approvals/{approval_id}", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::LeasedRunner]))), tag = "approvals", params(("id" = String, Path, description = "Session id"), ("approval_id" = String, Path, description = "Approval id"), ("wait" = Option<i64>, Query, description = "Seconds (0 to 30) to wait for a decision before answering; pending after that"), ("x-aof-lease-token" = Option<String>, Header, description = "A runner: the lease of the session's run"), ("x-aof-run-id" = Option<String>, Header, description = "A runner: the run")), responses((status = 200, description = "The approval, decided or (after the wait) pending", body = aof_wire::approval::Approval), (status = 404, description = "Not found (or not of this session)", body = aof_wire::ErrorBody), (status = 409, description = "lease_conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn session_one(
    State(st): State<AppState>,
    Path((id, approval_id)): Path<(String, String)>,
    RunnerLease(lease): RunnerLease,
    q: QueryMap,
) -> ApiResult<Json<Approval>> {
    let wait = wait_of(&q)?;
    // A runner sees only the approvals of the run it holds.
    let mine =
        |a: &Approval| a.session_id == id && lease.run_id.as_ref().is_none_or(|r| *r == a.run_id);
    let a = st
        .store
        .get_approval(&approval_id)
        .await?
        .filter(mine)
        .ok_or_else(approvals::not_found)?;
    if wait.is_zero() || a.status != ApprovalStatus::Pending {
        return Ok(Json(a));
    }
    Ok(Json(approvals::wait(&st, &approval_id, wait).await?))
}

#[utoipa::path(get, path = "/approvals", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "approvals", params(("session_id" = Option<String>, Query, description = "Only this session's"), ("status" = Option<String>, Query, description = "pending, approved or denied"), ("limit" = Option<i64>, Query, description = "At most this many (1 to 500, default 100)")), responses((status = 200, description = "Newest first", body = aof_wire::approval::ApprovalList), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Json<ApprovalList>> {
    let status = match q.get("status") {
        None | Some("all") => None,
        Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            validation(
                "status",
                "status must be pending, approved, denied or all",
                s.into(),
            )
        })?),
    };
    let limit = q.int("limit")?.unwrap_or(100);
    if !(1..=MAX_LIST).contains(&limit) {
        return Err(validation(
            "limit",
            &format!("limit must be between 1 and {MAX_LIST}"),
            limit.into(),
        ));
    }
    let query = ApprovalQuery {
        session_id: q.get("session_id").map(str::to_string),
        status,
        limit,
    };
    let approvals = st.store.list_approvals(&query).await?;
    Ok(Json(ApprovalList { approvals }))
}

#[utoipa::path(get, path = "/approvals/{approval_id}", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "approvals", params(("approval_id" = String, Path, description = "Approval id"), ("wait" = Option<i64>, Query, description = "Seconds (0 to 30) to wait for a decision before answering")), responses((status = 200, description = "The approval", body = aof_wire::approval::Approval), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_one(
    State(st): State<AppState>,
    Path(approval_id): Path<String>,
    q: QueryMap,
) -> ApiResult<Json<Approval>> {
    let wait = wait_of(&q)?;
    let a = st
        .store
        .get_approval(&approval_id)
        .await?
        .ok_or_else(approvals::not_found)?;
    if wait.is_zero() || a.status != ApprovalStatus::Pending {
        return Ok(Json(a));
    }
    Ok(Json(approvals::wait(&st, &approval_id, wait).await?))
}

#[utoipa::path(post, path = "/approvals/{approval_id}", extensions(("x-aof-grants" = json!([Grant::Operator])), ("x-aof-audit-action" = json!("approval.decide"))), tag = "approvals", params(("approval_id" = String, Path, description = "Approval id")), request_body = aof_wire::approval::ApprovalDecision, responses((status = 200, description = "Decided: the agent goes on", body = aof_wire::approval::Approval), (status = 403, description = "Only operators and admins decide (viewers, runners and session tokens may not)", body = aof_wire::ErrorBody), (status = 404, description = "approval_not_found", body = aof_wire::ErrorBody), (status = 409, description = "approval_decided: decided before (by a person, the timeout or the run's end)", body = aof_wire::ErrorBody), (status = 413, description = "updated_input too large", body = aof_wire::ErrorBody), (status = 422, description = "invalid_approval (updated_input with deny, a message too long)", body = aof_wire::ErrorBody)))]
pub(crate) async fn decide(
    State(st): State<AppState>,
    Path(approval_id): Path<String>,
    Caller(who): Caller,
    JsonBody(d): JsonBody<ApprovalDecision>,
) -> ApiResult<Json<Approval>> {
    Ok(Json(approvals::decide(&st, &approval_id, d, &who).await?))
}
