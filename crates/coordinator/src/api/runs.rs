//! `/runs`: create (with parameter validation and demand merging), list, get, stop.

use crate::auth::policy::Grant;
use aof_wire::error::ErrorCode;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use aof_wire::{run::RunList, Run, RunCreate, RunCreateResponse};

use crate::{
    audit::Target,
    auth::Caller,
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

#[utoipa::path(post, path = "/runs", extensions(("x-aof-grants" = json!([Grant::Operator, Grant::SessionSpawn]))), tag = "runs", request_body = aof_wire::RunCreate, responses((status = 201, description = "Run created", body = aof_wire::RunCreateResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 403, description = "project_dir outside the allowed roots, or a session token outside its session", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 413, description = "Parameters or metadata too large", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<RunCreate>,
) -> ApiResult<(StatusCode, Target, Json<RunCreateResponse>)> {
    let rec = crate::runs::create_run(&st, &caller.0, req, Vec::new()).await?;
    Ok((
        StatusCode::CREATED,
        Target(rec.run.run_id.clone()),
        Json(RunCreateResponse {
            run_id: rec.run.run_id,
            session_id: rec.run.session_id,
            status: rec.status,
        }),
    ))
}

/// What `GET /runs` shows: the poll-only fields are dropped, as in the reference.
pub(crate) fn public(mut run: Run) -> Run {
    run.scope = None;
    run.resolved_agent_blueprint = None;
    run.lease_token = None;
    run.session_token = None;
    run
}

/// Without `limit` or `cursor`: every run (as the AOF reference answers). With either:
/// one page, its `status` checked against the enum (422 when unknown), and `next_cursor`.
#[utoipa::path(get, path = "/runs", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "runs",
    params(
        ("status" = Option<String>, Query, description = "Only runs with this status (with `limit` or `cursor`: one of the run status values, else 422)"),
        ("session_id" = Option<String>, Query, description = "AOF-RS: only this session's runs"),
        ("limit" = Option<i64>, Query, description = "AOF-RS: one page of this many runs, 1 to 500 (default 50 when only `cursor` is given)"),
        ("cursor" = Option<String>, Query, description = "AOF-RS: the `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Runs newest first: all of them, or one page with `next_cursor` when `limit` or `cursor` is given", body = aof_wire::run::RunList),
        (status = 422, description = "Validation error (status, limit or cursor)", body = aof_wire::ErrorBody)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Json<RunList>> {
    if let Some((before, limit)) = super::paging::run_page(&q)? {
        let status = match q.get("status") {
            None => None,
            Some(v) => Some(v.parse::<aof_core::RunStatus>().map_err(|_| {
                super::paging::invalid("status", "Input should be a run status", v)
            })?),
        };
        let session = q.get("session_id").filter(|s| !s.is_empty());
        let page = st
            .store
            .list_runs_page(status, session, before, limit)
            .await?;
        return Ok(Json(RunList {
            runs: page.runs.into_iter().map(public).collect(),
            next_cursor: page.next.map(|n| n.to_string()),
        }));
    }
    let runs = st
        .store
        .list_runs(q.get("status"), q.get("session_id"))
        .await?;
    Ok(Json(RunList {
        runs: runs.into_iter().map(public).collect(),
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/runs/{run_id}", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "runs", params(("run_id" = String, Path, description = "Run id")), responses((status = 200, description = "The run", body = aof_wire::Run), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_one(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Run>> {
    let rec = st.store.get_run(&run_id).await?.ok_or(ApiError::NotFound(
        "Run not found".into(),
        ErrorCode::RunNotFound,
    ))?;
    Ok(Json(public(rec.run)))
}

#[utoipa::path(post, path = "/runs/{run_id}/stop", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "runs", params(("run_id" = String, Path, description = "Run id")), responses((status = 200, description = "Stop applied or under way", body = aof_wire::api::StopResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn stop(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<aof_store::StopOutcome>> {
    let out = st.store.stop_run(&run_id).await?;
    st.wake_runners();
    Ok(Json(out))
}
