//! `/sessions`: reads, events (append with idempotency and fencing), bind, metadata,
//! stop and delete.

use crate::auth::policy::{Audit, Grant};
use aof_wire::error::ErrorCode;
use std::sync::atomic::Ordering;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures::TryStreamExt as _;

use aof_core::SessionStatus;
use aof_store::EventWrite;
use aof_wire::{
    api::{
        AffinityResponse, DeleteSessionResponse, DeletedCounts, EventPosted, SessionOkResponse,
        StatusResponse,
    },
    event::EventList,
    session::{BindRequest, MetadataPatch, SessionEnvelope},
    Event, SessionResult,
};

use super::fence::{Lease, RunnerLease};
use crate::{
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

fn not_found() -> ApiError {
    ApiError::NotFound("Session not found".into(), ErrorCode::SessionNotFound)
}

/// What the single and the batch event post both check of each event.
pub(super) fn check_event(session_id: &str, event: &Event) -> ApiResult<()> {
    if event.session_id != session_id {
        return Err(ApiError::BadRequest(
            "Event session_id must match URL session_id".into(),
            ErrorCode::SessionIdMismatch,
        ));
    }
    if event.event_type.is_empty() || event.event_type.len() > 64 {
        return Err(ApiError::BadRequest(
            "event_type must be 1 to 64 characters".into(),
            ErrorCode::InvalidEventType,
        ));
    }
    // The approval events are the coordinator's record of a decision: an agent or a
    // runner writing one could fake an approval in the timeline.
    if event.event_type.starts_with("approval_") {
        return Err(ApiError::BadRequest(
            "event types approval_* are written by the coordinator only".into(),
            ErrorCode::InvalidEventType,
        ));
    }
    crate::limits::event(event)
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let key = headers
        .get(aof_wire::IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > 200) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 200 characters".into(),
            ErrorCode::InvalidIdempotencyKey,
        ));
    }
    Ok(key)
}

pub(super) fn posted(stored: Option<aof_wire::StoredEvent>) -> EventPosted {
    match stored {
        Some(ev) => EventPosted {
            ok: true,
            id: Some(ev.id),
            seq: Some(ev.seq),
            duplicate: None,
        },
        None => EventPosted {
            ok: true,
            id: None,
            seq: None,
            duplicate: Some(true),
        },
    }
}

/// Without `limit` or `cursor`: the whole list, as the AOF reference answers it, written
/// to the socket a store page at a time (`session_list`). A store error after the first
/// page cuts the body short (the status line is already out): the client sees invalid
/// JSON, never a wrong list. With either: one page and its `next_cursor`.
#[utoipa::path(get, path = "/sessions", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "sessions",
    params(
        ("parent" = Option<String>, Query, description = "Only children of this session"),
        ("status" = Option<aof_core::SessionStatus>, Query, description = "AOF-RS: only sessions in this status"),
        ("agent" = Option<String>, Query, description = "AOF-RS: only sessions of this agent (exact name)"),
        ("q" = Option<String>, Query, description = "AOF-RS: case-insensitive text in the session id, agent name, host or project dir (at most 256 characters)"),
        ("limit" = Option<i64>, Query, description = "AOF-RS: one page of this many sessions, 1 to 500 (default 50 when only `cursor` is given)"),
        ("cursor" = Option<String>, Query, description = "AOF-RS: the `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "Sessions newest first: all of them, or one page with `next_cursor` when `limit` or `cursor` is given", body = aof_wire::session::SessionList),
        (status = 422, description = "Validation error (status, limit, cursor or a filter text)", body = aof_wire::ErrorBody)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Response> {
    let filter = super::paging::session_filter(&q)?;
    if let Some((after, limit)) = super::paging::page(&q)? {
        let page = super::session_list::one_page(&*st.store, &filter, after, limit).await?;
        return Ok(Json(page).into_response());
    }
    let body = super::session_list::chunks(st.store.clone(), filter)
        .await?
        .map_err(|e| {
            tracing::warn!(error = %e, "GET /sessions: store failed after the first page");
            std::io::Error::other(e.to_string())
        });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

#[utoipa::path(get, path = "/sessions/{id}", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::OwnSession]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "The session", body = aof_wire::session::SessionEnvelope), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionEnvelope>> {
    let session = st.store.get_session(&id).await?.ok_or_else(not_found)?;
    Ok(Json(SessionEnvelope { session }))
}

#[utoipa::path(get, path = "/sessions/{id}/status", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::OwnSession]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Status, or not_existent", body = aof_wire::api::StatusResponse)))]
pub(crate) async fn status(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusResponse>> {
    let status = st
        .store
        .get_session(&id)
        .await?
        .map_or_else(|| "not_existent".to_string(), |s| s.status.to_string());
    Ok(Json(StatusResponse { status }))
}

#[utoipa::path(get, path = "/sessions/{id}/result", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::OwnSession]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Latest result event", body = aof_wire::SessionResult), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn result(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionResult>> {
    let session = st.store.get_session(&id).await?.ok_or_else(not_found)?;
    if !matches!(
        session.status,
        SessionStatus::Finished | SessionStatus::Idle
    ) {
        return Err(ApiError::BadRequest(
            "Session not finished or idle".into(),
            ErrorCode::SessionNotFinished,
        ));
    }
    let result = st
        .store
        .session_result(&id)
        .await?
        .ok_or(ApiError::NotFound(
            "No result found".into(),
            ErrorCode::NoResult,
        ))?;
    Ok(Json(result))
}

#[utoipa::path(get, path = "/sessions/{id}/affinity", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Where the session's executor state lives", body = aof_wire::api::AffinityResponse), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn affinity(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<AffinityResponse>> {
    let affinity = st.store.affinity(&id).await?.ok_or_else(not_found)?;
    Ok(Json(AffinityResponse { affinity }))
}

#[utoipa::path(post, path = "/sessions/{id}/bind", extensions(("x-aof-grants" = json!([Grant::LeasedRunner])), ("x-aof-audit" = json!(Audit::Refusals))), tag = "sessions", params(("id" = String, Path, description = "Session id"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing)")), request_body = aof_wire::session::BindRequest, responses((status = 200, description = "Bound", body = aof_wire::api::SessionOkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 403, description = "project_dir outside the allowed roots; forbidden: a runner credential without lease headers; runner_not_bound: the lease is of another key's runner", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn bind(
    State(st): State<AppState>,
    Path(id): Path<String>,
    RunnerLease(lease): RunnerLease,
    JsonBody(req): JsonBody<BindRequest>,
) -> ApiResult<Json<SessionOkResponse>> {
    crate::limits::bind(&st.cfg.project_dir_roots, &req)?;
    let session = st.store.bind(&id, &req, lease.token.as_deref()).await?;
    Ok(Json(SessionOkResponse { ok: true, session }))
}

#[utoipa::path(patch, path = "/sessions/{id}/metadata", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), request_body = aof_wire::session::MetadataPatch, responses((status = 200, description = "Updated", body = aof_wire::api::SessionOkResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 403, description = "project_dir outside the allowed roots", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 413, description = "Metadata too large", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn metadata(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<MetadataPatch>,
) -> ApiResult<Json<SessionOkResponse>> {
    crate::limits::metadata(&st.cfg.project_dir_roots, &patch)?;
    let session = st.store.patch_metadata(&id, &patch).await?;
    Ok(Json(SessionOkResponse { ok: true, session }))
}

/// Events of a session in commit order. All by default (no cap); `after` (an event
/// `id`) and `limit` page through long sessions.
#[utoipa::path(get, path = "/sessions/{id}/events", extensions(("x-aof-grants" = json!([Grant::Viewer, Grant::OwnSession]))), tag = "sessions", params(("id" = String, Path, description = "Session id"), ("after" = Option<i64>, Query, description = "Only events with a larger id"), ("limit" = Option<i64>, Query, description = "At most this many (>= 1); default all")), responses((status = 200, description = "Events in commit order", body = aof_wire::event::EventList), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn events(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: QueryMap,
) -> ApiResult<Json<EventList>> {
    let after = q.int("after")?;
    let limit = q.int("limit")?;
    if limit.is_some_and(|l| l < 1) {
        return Err(ApiError::Validation(serde_json::json!([{
            "type": "greater_than_equal", "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1", "input": limit,
        }])));
    }
    if st.store.get_session(&id).await?.is_none() {
        return Err(not_found());
    }
    let events = st.store.list_events(&id, after, limit).await?;
    Ok(Json(EventList { events }))
}

#[utoipa::path(post, path = "/sessions/{id}/events", extensions(("x-aof-grants" = json!([Grant::LeasedRunner, Grant::OwnSession])), ("x-aof-audit-action" = json!("session.event.create")), ("x-aof-audit" = json!(Audit::Refusals))), tag = "sessions", params(("id" = String, Path, description = "Session id"), ("idempotency-key" = Option<String>, Header, description = "A repeated key in this session is stored once"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: the run this write belongs to")), request_body = aof_wire::Event, responses((status = 201, description = "Stored (or a duplicate key)", body = aof_wire::api::EventPosted), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 403, description = "forbidden: a runner credential without lease headers; runner_not_bound: the lease is of another key's runner", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 413, description = "Event or body too large", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn post_event(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerLease(lease): RunnerLease,
    JsonBody(event): JsonBody<Event>,
) -> ApiResult<(StatusCode, Json<EventPosted>)> {
    check_event(&id, &event)?;
    let idempotency_key = idempotency_key(&headers)?;
    let Lease {
        token: lease_token,
        run_id,
    } = lease;
    let stored = st
        .store
        .append_event(
            &id,
            EventWrite {
                event,
                run_id,
                idempotency_key,
                lease_token,
            },
        )
        .await?;
    if stored.is_some() {
        st.metrics.events_written.fetch_add(1, Ordering::Relaxed);
    }
    Ok((StatusCode::CREATED, Json(posted(stored))))
}

#[utoipa::path(post, path = "/sessions/{id}/stop", extensions(("x-aof-grants" = json!([Grant::Operator, Grant::ChildSession]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Stop applied or under way", body = aof_wire::api::StopResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<aof_store::StopOutcome>> {
    let out = st.store.stop_session(&id).await?;
    st.wake_runners();
    Ok(Json(out))
}

#[utoipa::path(delete, path = "/sessions/{id}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "sessions", params(("id" = String, Path, description = "Session id")), responses((status = 200, description = "Deleted with its runs and events", body = aof_wire::api::DeleteSessionResponse), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody)))]
pub(crate) async fn delete_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeleteSessionResponse>> {
    let out = st.store.delete_session(&id).await?;
    Ok(Json(DeleteSessionResponse {
        ok: true,
        session_id: id,
        deleted: DeletedCounts {
            session: true,
            events_count: out.events_count,
            runs_count: out.runs_count,
        },
        runs_removed_from_cache: out.runs_count,
    }))
}

/// AOF-RS: retention on demand (`aof sessions purge`); admin only.
#[utoipa::path(post, path = "/retention/purge", extensions(("x-aof-grants" = json!([Grant::Admin])), ("x-aof-audit-action" = json!("retention.purge"))), tag = "sessions", request_body = aof_wire::api::PurgeRequest, responses((status = 200, description = "Ended sessions without recent activity removed (or listed, on a dry run)", body = aof_wire::api::PurgeResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn purge(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<aof_wire::api::PurgeRequest>,
) -> ApiResult<Json<aof_wire::api::PurgeResponse>> {
    // A century: far beyond any retention anyone means, and inside chrono's range.
    const MAX_SECONDS: u64 = 100 * 365 * 86_400;
    if req.older_than_seconds > MAX_SECONDS {
        return Err(ApiError::BadRequest(
            format!("older_than_seconds must be at most {MAX_SECONDS}"),
            ErrorCode::InvalidPurge,
        ));
    }
    if req.agent_name.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::BadRequest(
            "agent_name must not be empty".into(),
            ErrorCode::InvalidPurge,
        ));
    }
    let older_than = chrono::Duration::seconds(req.older_than_seconds as i64);
    let out =
        crate::retention::purge(&st, older_than, req.agent_name.as_deref(), req.dry_run).await?;
    Ok(Json(out))
}
