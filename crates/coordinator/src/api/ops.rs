//! Health, readiness, metrics and the JSON 404/405 fallbacks.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};

use crate::{error::ApiError, AppState};

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "healthy"}))
}

pub(crate) async fn ready(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    st.store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store not reachable: {e}")))?;
    Ok(Json(serde_json::json!({"status": "ready"})))
}

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

pub(crate) async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".into(), "route_not_found")
}

pub(crate) async fn method_not_allowed() -> impl IntoResponse {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({"detail": "Method Not Allowed", "code": "method_not_allowed"})),
    )
}
