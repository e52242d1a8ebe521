//! `/runs`: create (with parameter validation and demand merging), list, get, stop.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use aof_core::{new_run_id, new_session_id};
use aof_store::NewRun;
use aof_wire::{run::RunList, Demands, Run, RunCreate, RunCreateResponse, RunType};

use crate::{
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryMap},
    AppState,
};

/// Session ids become directory names on runners: keep them to a safe alphabet.
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The implicit parameter schema for runs without an agent schema: exactly `{"prompt": "<non-empty>"}`.
fn validate_parameters(
    params: &serde_json::Map<String, serde_json::Value>,
    agent: Option<&str>,
) -> ApiResult<()> {
    let mut errors = Vec::new();
    match params.get("prompt") {
        None => errors.push(serde_json::json!({"path": "$", "message": "'prompt' is a required property", "schema_path": "required"})),
        Some(serde_json::Value::String(s)) if s.is_empty() => errors.push(serde_json::json!({"path": "$.prompt", "message": "'' should be non-empty", "schema_path": "properties/prompt/minLength"})),
        Some(serde_json::Value::String(_)) => {}
        Some(other) => errors.push(serde_json::json!({"path": "$.prompt", "message": format!("{other} is not of type 'string'"), "schema_path": "properties/prompt/type"})),
    }
    let extra: Vec<&String> = params.keys().filter(|k| *k != "prompt").collect();
    if !extra.is_empty() {
        errors.push(serde_json::json!({
            "path": "$",
            "message": format!("Additional properties are not allowed ({} unexpected)", extra.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")),
            "schema_path": "additionalProperties",
        }));
    }
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::BadRequestObject(
        serde_json::json!({
            "error": "parameter_validation_failed",
            "message": "Parameters do not match agent's parameters_schema",
            "agent_name": agent.unwrap_or("(no agent)"),
            "validation_errors": errors,
            "parameters_schema": {
                "type": "object",
                "required": ["prompt"],
                "properties": {"prompt": {"type": "string", "minLength": 1}},
                "additionalProperties": false,
            },
        }),
        "parameter_validation_failed",
    ))
}

#[utoipa::path(post, path = "/runs", tag = "runs", request_body = aof_wire::RunCreate, responses((status = 201, description = "Run created", body = aof_wire::RunCreateResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<RunCreate>,
) -> ApiResult<(StatusCode, Json<RunCreateResponse>)> {
    let mut agent_name = req.agent_name.clone();
    let mut project_dir = req.project_dir.clone();
    let mut demands = Demands::default();
    let session_id = match req.run_type {
        RunType::ResumeSession => {
            let Some(id) = req.session_id.clone() else {
                return Err(ApiError::BadRequest(
                    "session_id is required for resume_session".into(),
                    "session_id_required",
                ));
            };
            let session = st.store.get_session(&id).await?.ok_or_else(|| {
                ApiError::NotFound(format!("Session '{id}' not found"), "session_not_found")
            })?;
            agent_name = session.agent_name.clone().or(agent_name);
            project_dir = project_dir.or(session.project_dir.clone());
            // Affinity: a resumed conversation goes back to where its executor state lives.
            demands = demands.merge(&Demands {
                hostname: session.hostname.clone(),
                executor_profile: session.executor_profile.clone(),
                ..Demands::default()
            });
            id
        }
        RunType::StartSession => match &req.session_id {
            Some(id) if !valid_id(id) => {
                return Err(ApiError::BadRequest(
                    "session_id may only use letters, digits, '_', '-' and '.' (at most 128)"
                        .into(),
                    "invalid_session_id",
                ))
            }
            Some(id) => id.clone(),
            None => new_session_id(),
        },
    };
    if let Some(parent) = &req.parent_session_id {
        if !valid_id(parent) {
            return Err(ApiError::BadRequest(
                "parent_session_id is not a valid session id".into(),
                "invalid_session_id",
            ));
        }
    }
    validate_parameters(&req.parameters, agent_name.as_deref())?;
    // No blueprints yet: every run is for the autonomous executor type.
    demands = demands.merge(&Demands {
        executor_type: Some("autonomous".into()),
        ..Demands::default()
    });
    if let Some(extra) = &req.additional_demands {
        demands = demands.merge(extra);
    }
    let timeout_at = chrono::Utc::now()
        + chrono::Duration::from_std(st.cfg.no_match_timeout)
            .map_err(|e| ApiError::Internal(e.into()))?;
    let rec = st
        .store
        .create_run(NewRun {
            run_id: new_run_id(),
            run_type: req.run_type,
            session_id,
            agent_name,
            parameters: serde_json::Value::Object(req.parameters),
            project_dir,
            parent_session_id: req.parent_session_id,
            execution_mode: req.execution_mode,
            demands,
            scope: req.scope.map(serde_json::Value::Object),
            timeout_at: Some(timeout_at),
        })
        .await?;
    st.wake_runners();
    tracing::info!(run_id = %rec.run.run_id, session_id = %rec.run.session_id, "run created");
    Ok((
        StatusCode::CREATED,
        Json(RunCreateResponse {
            run_id: rec.run.run_id,
            session_id: rec.run.session_id,
            status: rec.status.to_string(),
        }),
    ))
}

/// What `GET /runs` shows: the poll-only fields are dropped, as in the reference.
pub(crate) fn public(mut run: Run) -> Run {
    run.scope = None;
    run.resolved_agent_blueprint = None;
    run.lease_token = None;
    run
}

#[utoipa::path(get, path = "/runs", tag = "runs", params(("status" = Option<String>, Query, description = "Only runs with this status")), responses((status = 200, description = "All runs, newest first", body = aof_wire::run::RunList)))]
pub(crate) async fn list(State(st): State<AppState>, q: QueryMap) -> ApiResult<Json<RunList>> {
    let runs = st.store.list_runs(q.get("status")).await?;
    Ok(Json(RunList {
        runs: runs.into_iter().map(public).collect(),
    }))
}

#[utoipa::path(get, path = "/runs/{run_id}", tag = "runs", params(("run_id" = String, Path, description = "Run id")), responses((status = 200, description = "The run", body = aof_wire::Run), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_one(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<Run>> {
    let rec = st
        .store
        .get_run(&run_id)
        .await?
        .ok_or(ApiError::NotFound("Run not found".into(), "run_not_found"))?;
    Ok(Json(public(rec.run)))
}

#[utoipa::path(post, path = "/runs/{run_id}/stop", tag = "runs", params(("run_id" = String, Path, description = "Run id")), responses((status = 200, description = "Stop applied or under way", body = aof_wire::api::StopResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn stop(
    State(st): State<AppState>,
    Path(run_id): Path<String>,
) -> ApiResult<Json<aof_store::StopOutcome>> {
    let out = st.store.stop_run(&run_id).await?;
    st.wake_runners();
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_parameters() {
        assert!(valid_id("ses_abc123"));
        assert!(!valid_id("../etc"));
        assert!(!valid_id(".."));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(""));
        let ok = serde_json::json!({"prompt": "hi"});
        assert!(validate_parameters(ok.as_object().unwrap(), None).is_ok());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"prompt": ""}),
            serde_json::json!({"prompt": 3}),
            serde_json::json!({"prompt": "x", "extra": 1}),
        ] {
            let err = validate_parameters(bad.as_object().unwrap(), None).unwrap_err();
            assert_eq!(err.code(), "parameter_validation_failed", "{bad}");
        }
    }
}
