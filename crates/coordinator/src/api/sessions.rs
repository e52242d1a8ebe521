//! `/sessions`: reads, events (append with idempotency and fencing), bind, metadata,
//! stop and delete.

use std::sync::atomic::Ordering;

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    Json,
};

use aof_core::SessionStatus;
use aof_store::EventWrite;
use aof_wire::{
    event::EventList,
    session::{BindRequest, MetadataPatch, SessionEnvelope, SessionList},
    Event, SessionResult,
};

use super::lease_headers;
use crate::{
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

fn not_found() -> ApiError {
    ApiError::NotFound("Session not found".into(), "session_not_found")
}

pub(crate) async fn list(State(st): State<AppState>) -> ApiResult<Json<SessionList>> {
    Ok(Json(SessionList {
        sessions: st.store.list_sessions().await?,
    }))
}

pub(crate) async fn get_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionEnvelope>> {
    let session = st.store.get_session(&id).await?.ok_or_else(not_found)?;
    Ok(Json(SessionEnvelope { session }))
}

pub(crate) async fn status(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let status = st
        .store
        .get_session(&id)
        .await?
        .map_or_else(|| "not_existent".to_string(), |s| s.status);
    Ok(Json(serde_json::json!({ "status": status })))
}

pub(crate) async fn result(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionResult>> {
    let session = st.store.get_session(&id).await?.ok_or_else(not_found)?;
    if session.status != SessionStatus::Finished.as_str()
        && session.status != SessionStatus::Idle.as_str()
    {
        return Err(ApiError::BadRequest(
            "Session not finished or idle".into(),
            "session_not_finished",
        ));
    }
    let result = st
        .store
        .session_result(&id)
        .await?
        .ok_or(ApiError::NotFound("No result found".into(), "no_result"))?;
    Ok(Json(result))
}

pub(crate) async fn affinity(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let a = st.store.affinity(&id).await?.ok_or_else(not_found)?;
    Ok(Json(serde_json::json!({ "affinity": a })))
}

pub(crate) async fn bind(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<BindRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    let (lease, _) = lease_headers(&headers);
    let session = st.store.bind(&id, &req, lease.as_deref()).await?;
    Ok(Json(serde_json::json!({"ok": true, "session": session})))
}

pub(crate) async fn metadata(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<MetadataPatch>,
) -> ApiResult<Json<serde_json::Value>> {
    let session = st.store.patch_metadata(&id, &patch).await?;
    Ok(Json(serde_json::json!({"ok": true, "session": session})))
}

/// Events of a session in commit order. All by default (no cap); `after` (an event
/// `id`) and `limit` page through long sessions.
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

pub(crate) async fn post_event(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(event): JsonBody<Event>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    if event.session_id != id {
        return Err(ApiError::BadRequest(
            "Event session_id must match URL session_id".into(),
            "session_id_mismatch",
        ));
    }
    if event.event_type.is_empty() || event.event_type.len() > 64 {
        return Err(ApiError::BadRequest(
            "event_type must be 1 to 64 characters".into(),
            "invalid_event_type",
        ));
    }
    let (lease_token, run_id) = lease_headers(&headers);
    let idempotency_key = headers
        .get(aof_wire::IDEMPOTENCY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if idempotency_key
        .as_ref()
        .is_some_and(|k| k.is_empty() || k.len() > 200)
    {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 200 characters".into(),
            "invalid_idempotency_key",
        ));
    }
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
    match stored {
        Some(ev) => {
            st.metrics.events_written.fetch_add(1, Ordering::Relaxed);
            Ok((
                StatusCode::CREATED,
                Json(serde_json::json!({"ok": true, "id": ev.id, "seq": ev.seq})),
            ))
        }
        None => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({"ok": true, "duplicate": true})),
        )),
    }
}

pub(crate) async fn stop(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<aof_store::StopOutcome>> {
    let out = st.store.stop_session(&id).await?;
    st.wake_runners();
    Ok(Json(out))
}

pub(crate) async fn delete_one(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let out = st.store.delete_session(&id).await?;
    Ok(Json(serde_json::json!({
        "ok": true,
        "session_id": id,
        "deleted": {"session": true, "events_count": out.events_count, "runs_count": out.runs_count},
        "runs_removed_from_cache": out.runs_count,
    })))
}
