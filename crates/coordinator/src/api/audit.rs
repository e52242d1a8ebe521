//! `GET /audit`: the audit log, newest first, for admins (the policy table says so).
//! Recording is the auth middleware's job (`crate::audit`); this only reads.

use crate::auth::policy::Grant;
use axum::{extract::State, Json};
use chrono::{DateTime, Utc};

use aof_store::{AuditQuery, OutcomeFilter};
use aof_wire::audit::AuditList;

use crate::{
    error::{ApiError, ApiResult},
    extract::QueryMap,
    AppState,
};

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// A FastAPI-style 422 for one query parameter.
fn invalid(k: &str, msg: &str, input: &str) -> ApiError {
    ApiError::Validation(serde_json::json!([{
        "type": "value_error", "loc": ["query", k], "msg": msg, "input": input
    }]))
}

fn time(q: &QueryMap, k: &str) -> ApiResult<Option<DateTime<Utc>>> {
    q.get(k)
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    invalid(
                        k,
                        "Input should be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z",
                        v,
                    )
                })
        })
        .transpose()
}

fn outcome(v: &str) -> ApiResult<OutcomeFilter> {
    match v {
        "ok" => Ok(OutcomeFilter::Ok),
        "denied" => Ok(OutcomeFilter::Denied),
        "error" => Ok(OutcomeFilter::Error),
        _ => v
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .map(OutcomeFilter::Status)
            .ok_or_else(|| {
                invalid(
                    "outcome",
                    "Input should be ok, denied, error or an HTTP status",
                    v,
                )
            }),
    }
}

/// A filter string: present, non-empty, at most 256 characters.
fn text(q: &QueryMap, k: &str) -> ApiResult<Option<String>> {
    match q.get(k) {
        None => Ok(None),
        Some(v) if v.is_empty() || v.chars().count() > 256 => {
            Err(invalid(k, "Input should be 1 to 256 characters", v))
        }
        Some(v) => Ok(Some(v.to_string())),
    }
}

#[utoipa::path(get, path = "/audit", extensions(("x-aof-grants" = json!([Grant::Admin])), ("x-aof-audit-action" = json!("audit.list"))), tag = "audit",
    params(
        ("actor" = Option<String>, Query, description = "Key id, key name, OIDC subject or session id"),
        ("action" = Option<String>, Query, description = "Action, e.g. `run.create`; a trailing `*` matches a prefix (`key.*`)"),
        ("target" = Option<String>, Query, description = "Resource id (run, session, key, runner, agent…)"),
        ("since" = Option<String>, Query, description = "RFC 3339 time; entries at or after it"),
        ("until" = Option<String>, Query, description = "RFC 3339 time; entries at or before it"),
        ("outcome" = Option<String>, Query, description = "`ok` (< 400), `denied` (401/403), `error` (>= 400) or an HTTP status"),
        ("limit" = Option<i64>, Query, description = "Entries per page, 1 to 1000 (default 100)"),
        ("before" = Option<i64>, Query, description = "Cursor: only entries with a smaller id (`next_before` of the previous page)"),
    ),
    responses(
        (status = 200, description = "Matching entries, newest first", body = aof_wire::audit::AuditList),
        (status = 401, description = "No or invalid credential", body = aof_wire::ErrorBody),
        (status = 403, description = "Not an admin", body = aof_wire::ErrorBody),
        (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Json<AuditList>> {
    let limit = q.int("limit")?.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid(
            "limit",
            "Input should be 1 to 1000",
            &limit.to_string(),
        ));
    }
    let query = AuditQuery {
        actor: text(&q, "actor")?,
        action: text(&q, "action")?,
        target: text(&q, "target")?,
        since: time(&q, "since")?,
        until: time(&q, "until")?,
        outcome: q.get("outcome").map(outcome).transpose()?,
        before: q.int("before")?,
        limit,
    };
    // Read your writes: what this admin (or anyone) just did is in the answer.
    st.audit.flush().await;
    let entries = st.store.list_audit(&query).await?;
    let next_before = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditList {
        entries,
        next_before,
    }))
}
