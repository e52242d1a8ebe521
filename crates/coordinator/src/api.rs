//! The HTTP router: AOF reference routes plus `/ready` and `/metrics`.

mod ops;
mod runner;
mod runs;
mod sessions;
mod sse;

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderMap, HeaderValue, Method},
    routing::{delete, get, post},
    Router,
};
use tower_http::{cors::CorsLayer, trace::TraceLayer};

use crate::AppState;

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.cfg.cors_origins);
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{run_id}", get(runs::get_one))
        .route("/runs/{run_id}/stop", post(runs::stop))
        .route("/sessions", get(sessions::list))
        .route(
            "/sessions/{id}",
            get(sessions::get_one).delete(sessions::delete_one),
        )
        .route("/sessions/{id}/status", get(sessions::status))
        .route("/sessions/{id}/result", get(sessions::result))
        .route("/sessions/{id}/affinity", get(sessions::affinity))
        .route("/sessions/{id}/bind", post(sessions::bind))
        .route(
            "/sessions/{id}/events",
            get(sessions::events).post(sessions::post_event),
        )
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route(
            "/sessions/{id}/metadata",
            axum::routing::patch(sessions::metadata),
        )
        .route("/sse/sessions", get(sse::sessions))
        .route("/runner/register", post(runner::register))
        .route("/runner/runs", get(runner::poll))
        .route("/runner/runs/{run_id}/started", post(runner::started))
        .route("/runner/runs/{run_id}/completed", post(runner::completed))
        .route("/runner/runs/{run_id}/failed", post(runner::failed))
        .route("/runner/runs/{run_id}/stopped", post(runner::stopped))
        .route("/runner/sessions/{id}/status", post(runner::session_status))
        .route("/runner/heartbeat", post(runner::heartbeat))
        .route("/runners", get(runner::list))
        .route("/runners/{runner_id}", delete(runner::remove))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn cors_layer(origins: &str) -> CorsLayer {
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(tower_http::cors::Any);
    if origins.trim() == "*" {
        base.allow_origin(tower_http::cors::Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .split(',')
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        base.allow_origin(list)
    }
}

/// Lease token and run id our runner sends with writes (absent for AOF reference runners).
pub(crate) fn lease_headers(h: &HeaderMap) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|s| !s.is_empty())
    };
    (get(aof_wire::LEASE_HEADER), get(aof_wire::RUN_HEADER))
}
