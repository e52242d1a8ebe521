//! AOF-RS: `POST /sessions/{id}/events/batch` — up to `MAX_BATCH_EVENTS` events in one
//! request, stored all or none, in order (issue #8: one round trip and one store
//! transaction per batch instead of per event).

use crate::auth::policy::{Audit, Grant};
use aof_wire::error::ErrorCode;
use std::sync::atomic::Ordering;

use axum::{
    extract::{Path, Request, State},
    http::{HeaderMap, StatusCode},
    Json,
};

use aof_store::EventWrite;
use aof_wire::api::{EventBatch, EventBatchPosted, MAX_BATCH_EVENTS};

use super::{
    fence::{Lease, RunnerLease},
    sessions::{check_event, idempotency_key, posted},
};
use crate::{
    error::{ApiError, ApiResult},
    AppState,
};

/// A batch body may be this many times `AOF_MAX_BODY_BYTES` (4 MiB → 32 MiB): room for
/// a full batch of ordinary events, while each event keeps its own 1 MiB cap.
pub(crate) const BATCH_BODY_FACTOR: usize = 8;

/// Names the event a refusal is about, keeping its code.
fn at(i: usize, e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest(m, c) => ApiError::BadRequest(format!("events[{i}]: {m}"), c),
        ApiError::TooLarge(m, c) => ApiError::TooLarge(format!("events[{i}]: {m}"), c),
        other => other,
    }
}

/// Every event is checked like a single post before anything is stored; then the store
/// writes them in one transaction. With `Idempotency-Key: K`, event `i` is keyed `K/i`,
/// so a retried batch stores nothing twice and reports those events as duplicates.
#[utoipa::path(post, path = "/sessions/{id}/events/batch", extensions(("x-aof-grants" = json!([Grant::LeasedRunner, Grant::OwnSession])), ("x-aof-audit-action" = json!("session.event.create_batch")), ("x-aof-audit" = json!(Audit::Refusals))), tag = "sessions", params(("id" = String, Path, description = "Session id"), ("idempotency-key" = Option<String>, Header, description = "Event i of the batch is stored under key `{key}/{i}`; a repeated key in this session is stored once"), ("x-aof-lease-token" = Option<String>, Header, description = "AOF-RS: the run's lease token (fencing)"), ("x-aof-run-id" = Option<String>, Header, description = "AOF-RS: the run these writes belong to")), request_body = aof_wire::api::EventBatch, responses((status = 201, description = "All stored (or duplicate keys), one entry per event in order", body = aof_wire::api::EventBatchPosted), (status = 400, description = "Bad request: empty_batch, or an invalid event (the message names events[i])", body = aof_wire::ErrorBody), (status = 403, description = "forbidden: a runner credential without lease headers; runner_not_bound: the lease is of another key's runner", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict (lease_conflict: nothing stored)", body = aof_wire::ErrorBody), (status = 413, description = "too_many_events, an event or the body too large", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn post_batch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RunnerLease(lease): RunnerLease,
    req: Request,
) -> ApiResult<(StatusCode, Json<EventBatchPosted>)> {
    let limit = st.cfg.max_body_bytes.saturating_mul(BATCH_BODY_FACTOR);
    let EventBatch { events } = crate::extract::json_body_limited(req, limit).await?;
    if events.is_empty() {
        return Err(ApiError::BadRequest(
            "events must hold at least one event".into(),
            ErrorCode::EmptyBatch,
        ));
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::TooLarge(
            format!(
                "the batch has {} events; the limit is {MAX_BATCH_EVENTS}",
                events.len()
            ),
            ErrorCode::TooManyEvents,
        ));
    }
    for (i, event) in events.iter().enumerate() {
        check_event(&id, event).map_err(|e| at(i, e))?;
    }
    let key = idempotency_key(&headers)?;
    let Lease {
        token: lease_token,
        run_id,
    } = lease;
    let writes = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| EventWrite {
            event,
            run_id: run_id.clone(),
            idempotency_key: key.as_ref().map(|k| format!("{k}/{i}")),
            lease_token: lease_token.clone(),
        })
        .collect();
    let stored = st.store.append_events(&id, writes).await?;
    let written = stored.iter().filter(|s| s.is_some()).count();
    st.metrics
        .events_written
        .fetch_add(written as u64, Ordering::Relaxed);
    Ok((
        StatusCode::CREATED,
        Json(EventBatchPosted {
            ok: true,
            events: stored.into_iter().map(posted).collect(),
        }),
    ))
}
