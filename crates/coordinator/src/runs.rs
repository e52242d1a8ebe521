//! Creating a run: the one path shared by `POST /runs`, the MCP tools and callback
//! delivery, so validation, blueprint resolution, demands and scope inheritance agree.

use aof_core::{new_run_id, new_session_id};
use aof_store::{NewRun, RunRecord};
use aof_wire::error::ErrorCode;
use aof_wire::{agents::AgentStatus, Demands, RunCreate, RunType};
use tracing::Instrument as _;

use crate::{
    auth::{self, Principal},
    error::{ApiError, ApiResult},
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

/// Validates and stores a new run for `caller`, then wakes the runners.
/// `deliver_callbacks`: child callbacks this run carries to its session, marked
/// delivered in the same transaction (the store refuses if one already was).
pub async fn create_run(
    st: &AppState,
    caller: &Principal,
    req: RunCreate,
    deliver_callbacks: Vec<i64>,
) -> ApiResult<RunRecord> {
    // A session token acts as its session: it may only start children of it.
    auth::check_spawn(caller, req.parent_session_id.as_deref())?;
    // Sizes, names and `project_dir` roots, before anything is read or written.
    crate::limits::run_create(&st.cfg.project_dir_roots, &req)?;
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
                    ErrorCode::SessionIdRequired,
                ));
            };
            let session = st.store.get_session(&id).await?.ok_or_else(|| {
                ApiError::NotFound(
                    format!("Session '{id}' not found"),
                    ErrorCode::SessionNotFound,
                )
            })?;
            // …and resume only those children, not any session it can name.
            if let Principal::Session { session_id, .. } = caller {
                if session.parent_session_id.as_deref() != Some(session_id.as_str()) {
                    return Err(ApiError::Forbidden(
                        "A session token may only resume its own child sessions".into(),
                        ErrorCode::Forbidden,
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
                    ErrorCode::InvalidSessionId,
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
                ErrorCode::InvalidSessionId,
            ));
        }
    }
    let parent_run = match &req.parent_session_id {
        Some(parent) => st.store.latest_run(parent).await?.map(|r| r.run),
        None => None,
    };
    // Scope inheritance: the parent's latest scope under ours (ours wins per key).
    let mut scope = req.scope.clone().unwrap_or_default();
    if let Some(serde_json::Value::Object(inherited)) =
        parent_run.as_ref().and_then(|r| r.scope.clone())
    {
        let mut merged = inherited;
        merged.extend(scope);
        scope = merged;
    }
    let span = creation_span(&run_id, &session_id, parent_run.as_ref());
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
                ErrorCode::AgentInactive,
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
            deliver_callbacks,
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
            traceparent: aof_otel::traceparent(&span),
        })
        .instrument(span.clone())
        .await?;
    st.wake_runners();
    span.in_scope(|| {
        tracing::info!(run_id = %rec.run.run_id, session_id = %rec.run.session_id, "run created");
    });
    Ok(rec)
}

/// The span a run's trace starts from (OpenTelemetry; inert when export is off): a child
/// of the creating request. A child run joins its parent's trace: if the caller did not
/// propagate that trace itself (an agent's MCP client seldom does), the span is made a
/// child of the parent run's creation instead.
fn creation_span(run_id: &str, session_id: &str, parent: Option<&aof_wire::Run>) -> tracing::Span {
    let span = tracing::info_span!(
        "run.create",
        aof.run.id = %run_id,
        aof.session.id = %session_id,
        aof.parent_session.id = parent.map(|p| p.session_id.as_str()),
    );
    if let Some(tp) = parent.and_then(|p| p.traceparent.as_deref()) {
        if aof_otel::trace_id(tp) != aof_otel::span_trace_id(&tracing::Span::current()) {
            aof_otel::set_parent_traceparent(&span, tp);
        }
    }
    span
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
