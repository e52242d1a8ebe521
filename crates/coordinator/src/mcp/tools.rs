//! The orchestrator's tools. Each answers JSON text; a failure is a tool error (the
//! agent sees `{"code", "detail"}` and can react), never a protocol error.

use aof_wire::error::ErrorCode;
use std::time::Duration;

use rmcp::{
    handler::server::{tool::Extension, wrapper::Parameters},
    schemars::{self, JsonSchema},
    tool, tool_handler, tool_router, ServerHandler,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tracing::Instrument as _;

use aof_wire::{ExecutionMode, RunCreate, RunType, Session};

use super::Caller;
use crate::{caps::Kind, error::ApiError, AppState};

type ToolResult = Result<String, String>;

/// How a start or resume waits.
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Wait for the session to end and answer with its result.
    #[default]
    Sync,
    /// Answer with the session id at once; poll status and result later.
    AsyncPoll,
    /// Answer with the session id at once; when it ends, this (calling) session is
    /// resumed with a message carrying its result.
    AsyncCallback,
}

impl From<Mode> for ExecutionMode {
    fn from(m: Mode) -> ExecutionMode {
        match m {
            Mode::Sync => ExecutionMode::Sync,
            Mode::AsyncPoll => ExecutionMode::AsyncPoll,
            Mode::AsyncCallback => ExecutionMode::AsyncCallback,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListBlueprints {
    /// Only blueprints carrying all of these tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartSession {
    /// Blueprint to run (see list_agent_blueprints); omit for a generic agent.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// The task for the new agent.
    pub prompt: String,
    #[serde(default)]
    pub mode: Mode,
    /// Parameters for blueprints with a parameters schema (besides the prompt).
    #[serde(default)]
    pub parameters: serde_json::Map<String, Value>,
    #[serde(default)]
    pub project_dir: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ResumeSession {
    pub session_id: String,
    /// The follow-up message.
    pub prompt: String,
    #[serde(default)]
    pub mode: Mode,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SessionRef {
    pub session_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListSessions {
    /// Every session instead of this session's children (not for session tokens).
    #[serde(default)]
    pub all: bool,
}

/// What the Claude CLI's `--permission-prompt-tool` sends.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ApprovalPrompt {
    /// The tool the agent is about to call.
    pub tool_name: String,
    /// Its input.
    #[serde(default)]
    pub input: serde_json::Map<String, Value>,
    /// The CLI's id of this tool call (asking again with it answers the same approval).
    #[serde(default)]
    pub tool_use_id: Option<String>,
}

#[derive(Clone)]
pub struct Orchestrator {
    st: AppState,
}

impl Orchestrator {
    pub fn new(st: AppState) -> Orchestrator {
        Orchestrator { st }
    }
}

fn tool_error(e: ApiError) -> String {
    let detail = match &e {
        ApiError::Validation(v)
        | ApiError::BadRequestObject(v, _)
        | ApiError::ConflictObject(v, _) => v.clone(),
        other => Value::String(other.to_string()),
    };
    json!({"code": e.code(), "detail": detail}).to_string()
}

fn ok(v: Value) -> ToolResult {
    Ok(v.to_string())
}

fn session_view(s: &Session) -> Value {
    json!({
        "session_id": s.session_id,
        "status": s.status,
        "agent_name": s.agent_name,
        "parent_session_id": s.parent_session_id,
        "created_at": s.created_at,
    })
}

/// Ended for good or for now: the session takes no more work without a new run.
#[tool_router]
impl Orchestrator {
    #[tool(
        description = "List the agent blueprints that can be started (name, description, tags)."
    )]
    async fn list_agent_blueprints(&self, Parameters(p): Parameters<ListBlueprints>) -> ToolResult {
        let tags = p.tags;
        let agents = self
            .st
            .registry(move |reg| reg.list_agents(&tags))
            .await
            .map_err(tool_error)?;
        let list: Vec<Value> = agents
            .iter()
            .filter(|a| a.status != aof_wire::agents::AgentStatus::Inactive)
            .map(|a| json!({"name": a.name, "description": a.description, "tags": a.tags}))
            .collect();
        ok(json!({ "blueprints": list }))
    }

    #[tool(description = "List sessions: by default the children this session started.")]
    async fn list_agent_sessions(
        &self,
        Parameters(p): Parameters<ListSessions>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let caller = Caller::from_parts(&parts);
        if p.all && caller.is_session_token() {
            return Err(tool_error(ApiError::Forbidden(
                "A session token may only list its own children".into(),
                ErrorCode::Forbidden,
            )));
        }
        let sessions = self
            .st
            .store
            .list_sessions()
            .await
            .map_err(|e| tool_error(e.into()))?;
        let list: Vec<Value> = sessions
            .iter()
            .filter(|s| p.all || caller.session.is_none() || s.parent_session_id == caller.session)
            .filter(|s| !caller.is_session_token() || s.parent_session_id == caller.session)
            .map(session_view)
            .collect();
        ok(json!({ "sessions": list }))
    }

    #[tool(
        description = "Start a new agent session as a child of this one. mode: sync (wait for \
                          the result), async_poll (return the session id), async_callback (return \
                          the id; this session is resumed with the child's result when it ends)."
    )]
    async fn start_agent_session(
        &self,
        Parameters(p): Parameters<StartSession>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let caller = Caller::from_parts(&parts);
        // REST accepts agent names without a blueprint (reference behaviour); an agent
        // asking for a blueprint by name means one from the registry.
        if let Some(name) = p.agent_name.clone() {
            self.st
                .registry(move |reg| reg.agent_raw(&name).map(|_| ()))
                .await
                .map_err(tool_error)?;
        }
        let mut parameters = p.parameters;
        parameters.insert("prompt".into(), Value::String(p.prompt));
        let req = RunCreate {
            run_type: RunType::StartSession,
            parameters,
            session_id: None,
            agent_name: p.agent_name,
            project_dir: p.project_dir,
            parent_session_id: caller.session.clone(),
            execution_mode: p.mode.into(),
            additional_demands: None,
            scope: None,
        };
        self.launch(&caller, req, p.mode, &parts).await
    }

    #[tool(
        description = "Send a follow-up to one of this session's child sessions once it has \
                          ended. mode as for start_agent_session."
    )]
    async fn resume_agent_session(
        &self,
        Parameters(p): Parameters<ResumeSession>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let (caller, current) = self.owned(&parts, &p.session_id).await?;
        if current.status.is_busy() {
            return Err(tool_error(ApiError::Conflict(
                format!(
                    "Session '{}' is {}; resume it once it has ended",
                    p.session_id, current.status
                ),
                ErrorCode::SessionBusy,
            )));
        }
        let mut parameters = serde_json::Map::new();
        parameters.insert("prompt".into(), Value::String(p.prompt));
        let req = RunCreate {
            run_type: RunType::ResumeSession,
            parameters,
            session_id: Some(p.session_id),
            agent_name: None,
            project_dir: None,
            parent_session_id: current.parent_session_id.clone(),
            execution_mode: p.mode.into(),
            additional_demands: None,
            scope: None,
        };
        self.launch(&caller, req, p.mode, &parts).await
    }

    #[tool(
        description = "Status of a child session: pending, running, idle, finished, failed, \
                          stopping, stopped, or not_existent."
    )]
    async fn get_agent_session_status(
        &self,
        Parameters(p): Parameters<SessionRef>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let status = match self.owned(&parts, &p.session_id).await {
            Ok((_, s)) => s.status.to_string(),
            Err(_) => "not_existent".to_string(),
        };
        ok(json!({"session_id": p.session_id, "status": status}))
    }

    #[tool(description = "Result of a child session that has ended.")]
    async fn get_agent_session_result(
        &self,
        Parameters(p): Parameters<SessionRef>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let (_, session) = self.owned(&parts, &p.session_id).await?;
        self.result_of(&session).await
    }

    #[tool(description = "Stop a child session that is running.")]
    async fn stop_agent_session(
        &self,
        Parameters(p): Parameters<SessionRef>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        self.owned(&parts, &p.session_id).await?;
        let out = self
            .st
            .store
            .stop_session(&p.session_id)
            .await
            .map_err(|e| tool_error(e.into()))?;
        self.st.wake_runners();
        ok(serde_json::to_value(out).unwrap_or_default())
    }

    #[tool(
        description = "Permission prompt (Claude Code --permission-prompt-tool): a tool call \
                          this agent's approval policy lists waits for a person's decision; \
                          answers {\"behavior\":\"allow\",\"updatedInput\":…} or \
                          {\"behavior\":\"deny\",\"message\":…}."
    )]
    async fn approval_prompt(
        &self,
        Parameters(p): Parameters<ApprovalPrompt>,
        Extension(parts): Extension<http::request::Parts>,
    ) -> ToolResult {
        let caller = Caller::from_parts(&parts);
        let answer = crate::approvals::prompt(
            &self.st,
            &caller,
            &parts.headers,
            p.tool_name,
            p.input,
            p.tool_use_id,
        )
        .await
        .map_err(tool_error)?;
        ok(answer)
    }
}

impl Orchestrator {
    /// The session, or a `session_not_found` tool error.
    async fn session(&self, id: &str) -> Result<Session, String> {
        self.st
            .store
            .get_session(id)
            .await
            .map_err(|e| tool_error(e.into()))?
            .ok_or_else(|| {
                tool_error(ApiError::NotFound(
                    format!("Session '{id}' not found"),
                    ErrorCode::SessionNotFound,
                ))
            })
    }

    /// The caller and the session it names, which a session token must own.
    async fn owned(
        &self,
        parts: &http::request::Parts,
        id: &str,
    ) -> Result<(Caller, Session), String> {
        let caller = Caller::from_parts(parts);
        let session = self.session(id).await?;
        caller.check_owns(&session).map_err(tool_error)?;
        Ok((caller, session))
    }

    async fn launch(
        &self,
        caller: &Caller,
        req: RunCreate,
        mode: Mode,
        parts: &http::request::Parts,
    ) -> ToolResult {
        // Tool calls run on the MCP session's task, not under the request's span: take
        // the caller's `traceparent` (an agent with `TRACEPARENT` may send it) from here.
        let span = tracing::info_span!(
            "mcp.start_run",
            aof.parent_session.id = caller.session.as_deref()
        );
        aof_otel::set_parent_from_headers(&span, &parts.headers);
        // Taken before the run exists, so a refused call creates nothing.
        let _wait = match mode {
            Mode::Sync => Some(self.st.caps.acquire(Kind::McpWait, &caller.principal)),
            Mode::AsyncPoll | Mode::AsyncCallback => None,
        }
        .transpose()
        .map_err(tool_error)?;
        let rec = crate::runs::create_run(&self.st, &caller.principal, req, Vec::new())
            .instrument(span)
            .await
            .map_err(tool_error)?;
        let session_id = rec.run.session_id;
        if !matches!(mode, Mode::Sync) {
            return ok(
                json!({"session_id": session_id, "run_id": rec.run.run_id, "status": "pending"}),
            );
        }
        self.wait_run(&rec.run.run_id, &session_id)
            .await
            .map_err(tool_error)?;
        let session = self.session(&session_id).await?;
        self.result_of(&session).await
    }

    /// Waits until the run has ended: woken by its session's feed items, re-checked now
    /// and then in case the live feed lagged. No deadline: the client cancels the call,
    /// or the coordinator stops.
    async fn wait_run(&self, run_id: &str, session_id: &str) -> Result<(), ApiError> {
        let mut feed = self.st.store.subscribe();
        loop {
            match self.st.store.get_run(run_id).await? {
                None => {
                    return Err(ApiError::NotFound(
                        format!("Session '{session_id}' was deleted"),
                        ErrorCode::SessionNotFound,
                    ))
                }
                Some(r) if r.status.is_terminal() => return Ok(()),
                Some(_) => {}
            }
            let wait = async {
                loop {
                    match feed.recv().await {
                        Ok(item) if item.session_id.as_deref() == Some(session_id) => return,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            // A stop does not wait for a child that may run for hours: the caller hears
            // why, and the child goes on (its result can be fetched later).
            tokio::select! {
                _ = tokio::time::timeout(Duration::from_secs(5), wait) => {}
                _ = self.st.stopping.draining().cancelled() => {
                    return Err(ApiError::Unavailable(format!(
                        "The coordinator is stopping; session '{session_id}' goes on: \
                         ask for its result later (get_agent_session_result)"
                    )))
                }
            }
        }
    }

    async fn result_of(&self, session: &Session) -> ToolResult {
        let session_id = session.session_id.as_str();
        let result = self
            .st
            .store
            .session_result(session_id)
            .await
            .map_err(|e| tool_error(e.into()))?;
        let (text, data) = result.map_or((None, None), |r| (r.result_text, r.result_data));
        ok(json!({
            "session_id": session_id,
            "status": session.status,
            "result": text,
            "result_data": data,
        }))
    }
}

#[tool_handler(
    name = "agent-orchestrator",
    instructions = "Start, resume, watch and stop other agents' sessions. Sessions you start are \
                    your children; you can only see and steer your own children."
)]
impl ServerHandler for Orchestrator {}
