//! Resolution: capabilities merged into an agent (prompt and MCP list), and for a run
//! MCP `ref`s turned into `{url, config}` through the registry, placeholders filled.

use serde_json::{json, Map, Value};

use aof_wire::agents::{Agent, AgentType};

use crate::{
    placeholders::{has_placeholder, Sources},
    BlueprintError, Registry, Result,
};

const SEPARATOR: &str = "\n\n---\n\n";

/// What a run contributes to resolution.
pub struct RunContext<'a> {
    pub run_id: &'a str,
    pub session_id: &'a str,
    pub parameters: &'a Map<String, Value>,
    pub scope: &'a Map<String, Value>,
}

/// An agent resolved for one run.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub agent: Agent,
    /// The blueprint the runner receives (`resolved_agent_blueprint`).
    pub blueprint: Value,
}

impl Registry {
    /// The agent with its capabilities merged in (what `GET /agents/{name}` shows).
    pub fn agent_resolved(&self, name: &str) -> Result<Agent> {
        let mut agent = self.agent_raw(name)?;
        if agent.agent_type == AgentType::Procedural || agent.capabilities.is_empty() {
            return Ok(agent);
        }
        let mut parts: Vec<String> = agent
            .system_prompt
            .iter()
            .filter(|p| !p.is_empty())
            .cloned()
            .collect();
        let mut servers: Map<String, Value> = Map::new();
        let mut source: Map<String, Value> = Map::new();
        for cap_name in &agent.capabilities {
            let cap = self.capability(cap_name).map_err(|e| match e {
                BlueprintError::NotFound(_) => BlueprintError::Unresolvable(format!(
                    "Capability resolution failed: {cap_name} not found"
                )),
                other => other,
            })?;
            if let Some(t) = cap.text.filter(|t| !t.is_empty()) {
                parts.push(t);
            }
            for (k, v) in cap.mcp_servers.unwrap_or_default() {
                if let Some(first) = source.get(&k) {
                    return Err(BlueprintError::Unresolvable(format!(
                        "MCP server name conflict: '{k}' defined in {}, capability:{cap_name}",
                        first.as_str().unwrap_or("?")
                    )));
                }
                source.insert(k.clone(), json!(format!("capability:{cap_name}")));
                servers.insert(k, v);
            }
        }
        for (k, v) in agent.mcp_servers.take().unwrap_or_default() {
            if let Some(first) = source.get(&k) {
                return Err(BlueprintError::Unresolvable(format!(
                    "MCP server name conflict: '{k}' defined in {}, agent",
                    first.as_str().unwrap_or("?")
                )));
            }
            servers.insert(k, v);
        }
        agent.system_prompt = (!parts.is_empty()).then(|| parts.join(SEPARATOR));
        agent.mcp_servers = (!servers.is_empty()).then_some(servers);
        Ok(agent)
    }

    /// Resolves `name` for a run. `Ok(None)`: no such agent (the run uses the runner's
    /// default executor, as the reference treats unknown agents).
    pub fn resolve_for_run(&self, name: &str, cx: &RunContext<'_>) -> Result<Option<Resolution>> {
        let agent = match self.agent_resolved(name) {
            Ok(a) => a,
            Err(BlueprintError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let sources = Sources {
            params: cx.parameters,
            scope: cx.scope,
            env_allow: &self.env_allow,
            session_id: cx.session_id,
            run_id: cx.run_id,
        };
        let mut resolved_servers = Map::new();
        for (local, entry) in agent.mcp_servers.clone().unwrap_or_default() {
            let reference = entry
                .get("ref")
                .and_then(Value::as_str)
                .unwrap_or("(inline)")
                .to_string();
            let fail = |reason: &str| {
                BlueprintError::RunRejected(json!({
                    "error": "mcp_ref_resolution_failed",
                    "message": format!("Failed to resolve MCP server '{local}' (ref: {reference}): {reason}"),
                    "server_name": local, "ref": reference,
                }))
            };
            if reference == "(inline)" {
                return Err(fail(
                    "Inline format not supported. Use ref format with registry entry.",
                ));
            }
            let reg = match self.mcp_server(&reference) {
                Ok(r) => r,
                Err(BlueprintError::NotFound(_)) => return Err(fail("Not found in registry")),
                Err(e) => return Err(e),
            };
            // The API refuses such a url; a file edited on disk is refused here.
            crate::mcp::check_url(&reg.url).map_err(|e| {
                BlueprintError::Unresolvable(format!(
                    "MCP server '{reference}' (mcp-servers/{reference}/mcp-server.json): {e}"
                ))
            })?;
            // Registry defaults, then the agent's or capability's config on top.
            let mut merged = reg.default_config.clone().unwrap_or_default();
            if let Some(cfg) = entry.get("config").and_then(Value::as_object) {
                merged.extend(cfg.clone());
            }
            let merged = match sources.substitute(&Value::Object(merged)) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            let missing: Vec<String> = reg
                .config_schema
                .iter()
                .flatten()
                .filter(|(_, f)| f.required)
                .filter(|(k, _)| match merged.get(*k) {
                    None | Some(Value::Null) => true,
                    Some(Value::String(s)) => has_placeholder(s),
                    Some(_) => false,
                })
                .map(|(k, _)| k.clone())
                .collect();
            if !missing.is_empty() {
                return Err(BlueprintError::RunRejected(json!({
                    "error": "missing_required_mcp_config",
                    "message": format!("MCP server '{local}' missing required config: {}", missing.join(", ")),
                    "server_name": local, "missing_fields": missing,
                })));
            }
            resolved_servers.insert(
                local.clone(),
                json!({"url": sources.substitute_str(&reg.url), "config": merged}),
            );
        }
        // Placeholders everywhere else; MCP entries were filled above, exactly once.
        let mut agent_for_blueprint = agent.clone();
        agent_for_blueprint.mcp_servers = None;
        let mut blueprint = sources.substitute(
            &serde_json::to_value(&agent_for_blueprint).map_err(std::io::Error::other)?,
        );
        if !resolved_servers.is_empty() {
            blueprint["mcp_servers"] = Value::Object(resolved_servers);
        }
        Ok(Some(Resolution { agent, blueprint }))
    }
}
