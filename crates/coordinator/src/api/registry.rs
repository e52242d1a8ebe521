//! `/agents`, `/capabilities`, `/mcp-servers`: the blueprint registries (folders on disk,
//! in the AOF reference's format).

use crate::auth::policy::Grant;
use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};

use aof_blueprints::secrets;
use aof_wire::{agents::*, auth::Role};

use crate::{
    audit::Target,
    auth::Caller,
    error::ApiResult,
    extract::{JsonBody, QueryMap},
    AppState,
};

const E400: &str = "Bad request";

/// Whether the caller reads MCP configs as stored. Operators edit them (the dashboard
/// does, as operator), so they need the real values; everyone else reads `***` for
/// every secret-looking value (`aof_blueprints::secrets`). Auth off: everyone is admin.
fn sees_secrets(caller: &Caller) -> bool {
    matches!(caller.0.role(), Some(Role::Operator | Role::Admin))
}

fn agent_view(caller: &Caller, mut a: Agent) -> Agent {
    if !sees_secrets(caller) {
        a.mcp_servers.iter_mut().for_each(secrets::mask_entries);
    }
    a
}

fn mcp_view(caller: &Caller, mut e: McpServerEntry) -> McpServerEntry {
    if !sees_secrets(caller) {
        secrets::mask_entry(&mut e);
    }
    e
}

#[utoipa::path(get, path = "/agents", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "agents",
    params(("tags" = Option<String>, Query, description = "Comma-separated; agents having all of them")),
    responses((status = 200, description = "Agents with capabilities resolved, sorted by name", body = Vec<Agent>),
              (status = 422, description = "A stored agent cannot be resolved", body = aof_wire::ErrorBody)))]
pub(crate) async fn list_agents(
    State(st): State<AppState>,
    caller: Caller,
    q: QueryMap,
) -> ApiResult<Json<Vec<Agent>>> {
    let tags: Vec<String> = q
        .get("tags")
        .unwrap_or("")
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    let agents = st
        .registry(move |r| {
            r.list_agents(&tags)?
                .into_iter()
                .map(|a| r.agent_resolved(&a.name).or(Ok(a)))
                .collect::<aof_blueprints::Result<Vec<Agent>>>()
        })
        .await?;
    Ok(Json(
        agents.into_iter().map(|a| agent_view(&caller, a)).collect(),
    ))
}

#[utoipa::path(get, path = "/agents/{name}", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "agents",
    params(("name" = String, Path, description = "Agent name"),
           ("raw" = Option<bool>, Query, description = "As stored, without capability resolution")),
    responses((status = 200, description = "The agent", body = Agent),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 422, description = "Cannot be resolved", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_agent(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    q: QueryMap,
) -> ApiResult<Json<Agent>> {
    let raw = q.bool("raw", false)?;
    let agent = st
        .registry(move |r| {
            if raw {
                r.agent_raw(&name)
            } else {
                r.agent_resolved(&name)
            }
        })
        .await?;
    Ok(Json(agent_view(&caller, agent)))
}

#[utoipa::path(post, path = "/agents", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "agents", request_body = AgentCreate,
    responses((status = 201, description = "Created (as stored)", body = Agent),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 409, description = "Exists, or an MCP entry is not a ref", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create_agent(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<AgentCreate>,
) -> ApiResult<(StatusCode, Target, Json<Agent>)> {
    let agent = st.registry(move |r| r.create_agent(&req)).await?;
    tracing::info!(agent = %agent.name, "agent created");
    Ok((StatusCode::CREATED, Target(agent.name.clone()), Json(agent)))
}

#[utoipa::path(patch, path = "/agents/{name}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "agents", request_body = AgentUpdate,
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, description = "Updated (as stored)", body = Agent),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 409, description = "An MCP entry is not a ref", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn update_agent(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<AgentUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(
        st.registry(move |r| r.update_agent(&name, &req)).await?,
    ))
}

#[utoipa::path(patch, path = "/agents/{name}/status", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "agents", request_body = AgentStatusUpdate,
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 200, description = "Updated", body = Agent),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn agent_status(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<AgentStatusUpdate>,
) -> ApiResult<Json<Agent>> {
    Ok(Json(
        st.registry(move |r| r.set_agent_status(&name, req.status))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/agents/{name}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "agents",
    params(("name" = String, Path, description = "Agent name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn delete_agent(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.registry(move |r| r.delete_agent(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/capabilities", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "capabilities",
    responses((status = 200, description = "Capabilities, sorted by name", body = Vec<CapabilitySummary>)))]
pub(crate) async fn list_capabilities(
    State(st): State<AppState>,
) -> ApiResult<Json<Vec<CapabilitySummary>>> {
    Ok(Json(st.registry(|r| r.list_capabilities()).await?))
}

#[utoipa::path(get, path = "/capabilities/{name}", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "capabilities",
    params(("name" = String, Path, description = "Capability name")),
    responses((status = 200, description = "The capability", body = Capability),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_capability(
    State(st): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Capability>> {
    let mut cap = st.registry(move |r| r.capability(&name)).await?;
    if !sees_secrets(&caller) {
        cap.mcp_servers.iter_mut().for_each(secrets::mask_entries);
    }
    Ok(Json(cap))
}

#[utoipa::path(post, path = "/capabilities", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "capabilities", request_body = CapabilityCreate,
    responses((status = 201, description = "Created", body = Capability),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 409, description = "Exists", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create_capability(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<CapabilityCreate>,
) -> ApiResult<(StatusCode, Target, Json<Capability>)> {
    let cap = st.registry(move |r| r.create_capability(&req)).await?;
    Ok((StatusCode::CREATED, Target(cap.name.clone()), Json(cap)))
}

#[utoipa::path(patch, path = "/capabilities/{name}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "capabilities", request_body = CapabilityUpdate,
    params(("name" = String, Path, description = "Capability name")),
    responses((status = 200, description = "Updated", body = Capability),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn update_capability(
    State(st): State<AppState>,
    Path(name): Path<String>,
    JsonBody(req): JsonBody<CapabilityUpdate>,
) -> ApiResult<Json<Capability>> {
    Ok(Json(
        st.registry(move |r| r.update_capability(&name, &req))
            .await?,
    ))
}

#[utoipa::path(delete, path = "/capabilities/{name}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "capabilities",
    params(("name" = String, Path, description = "Capability name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 409, description = "Still used by agents", body = aof_wire::ErrorBody)))]
pub(crate) async fn delete_capability(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    st.registry(move |r| r.delete_capability(&name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/mcp-servers", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "mcp-servers",
    responses((status = 200, description = "Registry entries, sorted by name", body = Vec<McpServerEntry>)))]
pub(crate) async fn list_mcp(
    State(st): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<McpServerEntry>>> {
    let list = st.registry(|r| r.list_mcp_servers()).await?;
    Ok(Json(
        list.into_iter().map(|e| mcp_view(&caller, e)).collect(),
    ))
}

#[utoipa::path(get, path = "/mcp-servers/{server_id}", extensions(("x-aof-grants" = json!([Grant::Viewer]))), tag = "mcp-servers",
    params(("server_id" = String, Path, description = "Registry id")),
    responses((status = 200, description = "The entry", body = McpServerEntry),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn get_mcp(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<McpServerEntry>> {
    let entry = st.registry(move |r| r.mcp_server(&id)).await?;
    Ok(Json(mcp_view(&caller, entry)))
}

#[utoipa::path(post, path = "/mcp-servers", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "mcp-servers", request_body = McpServerCreate,
    responses((status = 201, description = "Created", body = McpServerEntry),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 409, description = "Exists", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn create_mcp(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<McpServerCreate>,
) -> ApiResult<(StatusCode, Target, Json<McpServerEntry>)> {
    let entry = st.registry(move |r| r.create_mcp_server(&req)).await?;
    Ok((StatusCode::CREATED, Target(entry.id.clone()), Json(entry)))
}

#[utoipa::path(put, path = "/mcp-servers/{server_id}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "mcp-servers", request_body = McpServerUpdate,
    params(("server_id" = String, Path, description = "Registry id")),
    responses((status = 200, description = "Updated (partial, like the reference)", body = McpServerEntry),
              (status = 400, description = E400, body = aof_wire::ErrorBody),
              (status = 404, description = "Not found", body = aof_wire::ErrorBody),
              (status = 422, description = "Validation error", body = aof_wire::ErrorBody)))]
pub(crate) async fn update_mcp(
    State(st): State<AppState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<McpServerUpdate>,
) -> ApiResult<Json<McpServerEntry>> {
    Ok(Json(
        st.registry(move |r| r.update_mcp_server(&id, &req)).await?,
    ))
}

#[utoipa::path(delete, path = "/mcp-servers/{server_id}", extensions(("x-aof-grants" = json!([Grant::Operator]))), tag = "mcp-servers",
    params(("server_id" = String, Path, description = "Registry id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "Not found", body = aof_wire::ErrorBody)))]
pub(crate) async fn delete_mcp(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.registry(move |r| r.delete_mcp_server(&id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
