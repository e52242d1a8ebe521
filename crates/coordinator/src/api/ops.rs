//! Health, readiness, metrics and the JSON 404/405 fallbacks.

use crate::auth::policy::Grant;
use aof_wire::error::ErrorCode;
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};

use aof_wire::api::StatusResponse;

use crate::{error::ApiError, AppState};

#[utoipa::path(get, path = "/health", extensions(("x-aof-grants" = json!([Grant::Public]))), tag = "ops", responses((status = 200, description = "Process up", body = aof_wire::api::StatusResponse)))]
pub(crate) async fn health() -> Json<StatusResponse> {
    Json(StatusResponse {
        status: "healthy".into(),
    })
}

#[utoipa::path(get, path = "/ready", extensions(("x-aof-grants" = json!([Grant::Public]))), tag = "ops", responses((status = 200, description = "Store reachable", body = aof_wire::api::StatusResponse), (status = 503, description = "Store unreachable, or the coordinator is stopping (from the signal on; `/health` stays 200): `{\"status\": \"unavailable\", \"detail\": \"The store is not reachable\", \"code\": \"unavailable\"}`", body = aof_wire::ErrorBody)))]
pub(crate) async fn ready(State(st): State<AppState>) -> Response {
    // From the first moment of a stop: a load balancer sends new traffic elsewhere while
    // open requests finish here (`/health` stays 200 until the process exits).
    if st.stopping.is_announced() {
        return unavailable("The coordinator is stopping");
    }
    match st.store.ping().await {
        Ok(()) => Json(StatusResponse {
            status: "ready".into(),
        })
        .into_response(),
        // Public route: the cause (paths, hosts, driver text) goes to the log only.
        Err(e) => {
            tracing::warn!(error = %e, "/ready: store not reachable");
            unavailable("The store is not reachable")
        }
    }
}

fn unavailable(detail: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({
            "status": "unavailable",
            "detail": detail,
            "code": ErrorCode::Unavailable,
        })),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", extensions(("x-aof-grants" = json!([Grant::Metrics]))), tag = "ops", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(st): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let counts = st.store.counts().await?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.metrics.render(&counts),
    ))
}

#[utoipa::path(get, path = "/stats", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "ops", responses((status = 200, description = "AOF-RS: sessions and runs by status, runners online (counted by the store, nothing listed)", body = aof_wire::api::StatsResponse)))]
pub(crate) async fn stats(
    State(st): State<AppState>,
) -> Result<axum::Json<aof_wire::api::StatsResponse>, ApiError> {
    let c = st.store.counts().await?;
    let by = |v: Vec<(String, i64)>| v.into_iter().filter(|(_, n)| *n > 0).collect();
    Ok(axum::Json(aof_wire::api::StatsResponse {
        sessions_by_status: by(c
            .sessions_by_status
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect()),
        runs_by_status: by(c
            .runs_by_status
            .iter()
            .map(|(s, n)| (s.to_string(), *n))
            .collect()),
        runners_online: c.runners_online,
    }))
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into(), ErrorCode::RouteNotFound)
}

pub(crate) async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(
            serde_json::json!({"detail": "Method Not Allowed", "code": ErrorCode::MethodNotAllowed}),
        ),
    )
}
