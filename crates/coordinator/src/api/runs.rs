//! `/runs`: create (with parameter validation and demand merging), list, get, stop.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use aof_core::{new_run_id, new_session_id};
use aof_store::NewRun;
use aof_wire::{
    agents::AgentStatus, run::RunList, Demands, Run, RunCreate, RunCreateResponse, RunType,
};

use crate::{
    auth::{self, Caller, Principal},
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

#[utoipa::path(post, path = "/runs", tag = "runs", request_body = aof_wire::RunCreate, responses((status = 201, description = "Run created", body = aof_wire::RunCreateResponse), (status = 400, description = "Bad request", body = aof_wire::ErrorBody), (status = 404, description = "Not found", body = aof_wire::ErrorBody), (status = 409, description = "Conflict", body = aof_wire::ErrorBody), (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<RunCreate>,
) -> ApiResult<(StatusCode, Json<RunCreateResponse>)> {
    // A session token acts as its session: it may only start children of it.
    auth::check_spawn(&caller, req.parent_session_id.as_deref())?;
    let run_id = new_run_id();
    let mut agent_name = req.agent_name.clone();
    let mut project_dir = req.project_dir.clone();
    let mut demands = Demands::default();
    let mut previous_blueprint = None;
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
            // …and resume only those children, not any session it can name.
            if let Principal::Session { session_id, .. } = &caller.0 {
                if session.parent_session_id.as_deref() != Some(session_id.as_str()) {
                    return Err(ApiError::Forbidden(
                        "A session token may only resume its own child sessions".into(),
                        "forbidden",
                    ));
                }
            }
            agent_name = session.agent_name.clone().or(agent_name);
            project_dir = project_dir.or(session.project_dir.clone());
            // Affinity: a resumed conversation goes back to where its executor state lives.
            demands = demands.merge(&Demands {
                hostname: session.hostname.clone(),
                executor_profile: session.executor_profile.clone(),
                ..Demands::default()
            });
            previous_blueprint = st
                .store
                .latest_run(&id)
                .await?
                .and_then(|r| r.run.resolved_agent_blueprint);
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
    // Scope inheritance: the parent's latest scope under ours (ours wins per key).
    let mut scope = req.scope.clone().unwrap_or_default();
    if let Some(parent) = &req.parent_session_id {
        if let Some(serde_json::Value::Object(inherited)) =
            st.store.latest_run(parent).await?.and_then(|r| r.run.scope)
        {
            let mut merged = inherited;
            merged.extend(scope);
            scope = merged;
        }
    }
    if let (Some(name), RunType::StartSession) = (agent_name.clone(), req.run_type) {
        // Checked before resolution: an inactive agent is the clearer reason.
        let status = st
            .registry(move |reg| match reg.agent_raw(&name) {
                Ok(a) => Ok(Some(a.status)),
                Err(aof_blueprints::BlueprintError::NotFound(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        if status == Some(AgentStatus::Inactive) {
            return Err(ApiError::BadRequest(
                format!(
                    "Agent '{}' is inactive; activate it to start sessions",
                    agent_name.as_deref().unwrap_or_default()
                ),
                "agent_inactive",
            ));
        }
    }
    let resolution = match agent_name.clone() {
        None => None,
        Some(name) => {
            let (rid, sid, params, sc) = (
                run_id.clone(),
                session_id.clone(),
                req.parameters.clone(),
                scope.clone(),
            );
            st.registry(move |reg| {
                let cx = aof_blueprints::RunContext {
                    run_id: &rid,
                    session_id: &sid,
                    parameters: &params,
                    scope: &sc,
                };
                reg.resolve_for_run(&name, &cx)
            })
            .await?
        }
    };
    // Resumes always take a prompt; a start uses the agent's schema when it has one.
    let schema = match (&resolution, req.run_type) {
        (Some(r), RunType::StartSession) => r.agent.parameters_schema.clone(),
        _ => None,
    };
    let params = serde_json::Value::Object(req.parameters);
    aof_blueprints::params::validate(&params, schema.as_ref(), agent_name.as_deref())?;
    if let Some(r) = &resolution {
        if let Some(d) = &r.agent.demands {
            demands = demands.merge(d);
        }
    }
    let agent_type = resolution
        .as_ref()
        .map_or("autonomous", |r| r.agent.agent_type.as_str());
    demands = demands.merge(&Demands {
        executor_type: Some(agent_type.into()),
        ..Demands::default()
    });
    if let Some(extra) = &req.additional_demands {
        demands = demands.merge(extra);
    }
    let timeout_at = chrono::Utc::now()
        + chrono::Duration::from_std(st.cfg.no_match_timeout)
            .map_err(|e| ApiError::Internal(e.into()))?;
    let blueprint = resolution.map(|r| r.blueprint).or(previous_blueprint);
    let rec = st
        .store
        .create_run(NewRun {
            run_id,
            run_type: req.run_type,
            session_id,
            agent_name,
            parameters: params,
            project_dir,
            parent_session_id: req.parent_session_id,
            execution_mode: req.execution_mode,
            demands,
            scope: (!scope.is_empty()).then_some(serde_json::Value::Object(scope)),
            blueprint,
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
    run.session_token = None;
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
    fn session_ids_are_path_safe() {
        assert!(valid_id("ses_abc123"));
        for bad in ["../etc", "..", ".", "a/b", ""] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert!(!valid_id(&"x".repeat(129)));
    }
}
