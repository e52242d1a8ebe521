//! Agent blueprints, capabilities and the MCP server registry, as the AOF reference's
//! `/agents`, `/capabilities` and `/mcp-servers` routes show them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Demands;

type JsonMap = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentType {
    #[default]
    Autonomous,
    Procedural,
}

impl AgentType {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentType::Autonomous => "autonomous",
            AgentType::Procedural => "procedural",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Active,
    Inactive,
}

/// An MCP server as an agent or capability names it: a reference into the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerRef {
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub config: Option<JsonMap>,
}

/// An agent (blueprint). Optional keys are left out when unset, like the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Agent {
    pub name: String,
    pub description: String,
    #[serde(rename = "type", default)]
    pub agent_type: AgentType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Ref entries (`{ref, config}`) as stored; `{url, config}` once resolved for a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demands: Option<Demands>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub hooks: Option<serde_json::Value>,
    /// AOF-RS: the executor this agent runs on (`{"kind": "command", "program": …}`);
    /// without it the runner's default executor applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub executor: Option<serde_json::Value>,
    /// AOF-RS: limits of each run of this agent (`{"timeout_seconds", "max_tokens",
    /// "max_cost_usd"}`); the runner enforces the tightest of these and its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<crate::RunLimits>,
    /// AOF-RS: the tool calls of this agent that wait for a person
    /// (`{"tools": ["Bash", "mcp__github__*"], "timeout_seconds": 900, "on_timeout": "deny"}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<crate::approval::ApprovalPolicy>,
    pub status: AgentStatus,
    pub created_at: String,
    pub modified_at: String,
}

/// Body of `POST /agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct AgentCreate {
    pub name: String,
    pub description: String,
    #[serde(rename = "type", default)]
    pub agent_type: Option<AgentType>,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters_schema: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
    #[serde(default)]
    pub skills: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub demands: Option<Demands>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hooks: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub executor: Option<serde_json::Value>,
    /// AOF-RS: see `Agent::limits`; checked by the registry (422 with the reason).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub limits: Option<serde_json::Value>,
    /// AOF-RS: see `Agent::approval`; checked by the registry (422 with the reason).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<serde_json::Value>,
}

/// Body of `PATCH /agents/{name}`: absent or null leaves a field; an empty value removes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct AgentUpdate {
    #[serde(rename = "type", default)]
    pub agent_type: Option<AgentType>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters_schema: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub output_schema: Option<serde_json::Value>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
    #[serde(default)]
    pub skills: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    #[serde(default)]
    pub demands: Option<Demands>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub hooks: Option<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub executor: Option<serde_json::Value>,
    /// AOF-RS: see `Agent::limits`; checked by the registry (422 with the reason).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub limits: Option<serde_json::Value>,
    /// AOF-RS: see `Agent::approval`; checked by the registry (422 with the reason).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub approval: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentStatusUpdate {
    pub status: AgentStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CapabilityType {
    Script,
    Mcp,
    #[default]
    Text,
}

impl CapabilityType {
    pub fn as_str(self) -> &'static str {
        match self {
            CapabilityType::Script => "script",
            CapabilityType::Mcp => "mcp",
            CapabilityType::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Capability {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub capability_type: CapabilityType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
    pub created_at: String,
    pub modified_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapabilitySummary {
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub capability_type: CapabilityType,
    pub has_script: bool,
    pub script_name: Option<String>,
    pub has_text: bool,
    pub has_mcp: bool,
    pub mcp_server_names: Vec<String>,
    pub created_at: String,
    pub modified_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct CapabilityCreate {
    pub name: String,
    pub description: String,
    #[serde(rename = "type", default)]
    pub capability_type: Option<CapabilityType>,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct CapabilityUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(rename = "type", default)]
    pub capability_type: Option<CapabilityType>,
    #[serde(default)]
    pub script: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub mcp_servers: Option<JsonMap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigSchemaField {
    #[serde(rename = "type", default = "string_type")]
    pub field_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub sensitive: bool,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub default: Option<serde_json::Value>,
}

fn string_type() -> String {
    "string".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct McpServerEntry {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub url: String,
    pub config_schema: Option<BTreeMap<String, ConfigSchemaField>>,
    #[schema(value_type = Option<Object>)]
    pub default_config: Option<JsonMap>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerCreate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub url: String,
    #[serde(default)]
    pub config_schema: Option<BTreeMap<String, ConfigSchemaField>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub default_config: Option<JsonMap>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerUpdate {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub config_schema: Option<BTreeMap<String, ConfigSchemaField>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub default_config: Option<JsonMap>,
}
