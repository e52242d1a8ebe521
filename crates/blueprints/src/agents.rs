//! Agents on disk: `<agents_dir>/<name>/agent.json`, `agent.system-prompt.md`,
//! `agent.mcp.json` (`{"mcpServers": {…}}`), `.disabled`.

use std::fs;

use serde_json::{json, Map, Value};

use aof_wire::{
    agents::{Agent, AgentCreate, AgentStatus, AgentUpdate},
    approval::ApprovalPolicy,
};

use crate::{
    fsutil::{self, check_ref_entries, entry_dir, read_opt, remove_opt, write_atomic, write_json},
    BlueprintError, Registry, Result,
};

const JSON: &str = "agent.json";
const PROMPT: &str = "agent.system-prompt.md";
const MCP: &str = "agent.mcp.json";
const DISABLED: &str = ".disabled";

fn not_found(name: &str) -> BlueprintError {
    BlueprintError::NotFound(format!("Agent not found: {name}"))
}

fn nonempty_str(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::Number(_) => true,
    }
}

fn opt<T: serde::de::DeserializeOwned>(v: &Value, key: &str, name: &str) -> Result<Option<T>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => serde_json::from_value(x.clone()).map(Some).map_err(|e| {
            BlueprintError::Unresolvable(format!("agent '{name}': invalid '{key}' in {JSON}: {e}"))
        }),
    }
}

/// Reads `mcpServers` from an `*.mcp.json` file.
pub(crate) fn read_mcp_file(text: &str, what: &str) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| BlueprintError::Unresolvable(format!("{what}: invalid JSON: {e}")))?;
    let servers = v
        .get("mcpServers")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    check_ref_entries(&servers)
        .map_err(|e| BlueprintError::Unresolvable(format!("{what}: {e}")))?;
    Ok(servers)
}

impl Registry {
    /// The agent as stored (`raw`), without capability resolution.
    pub fn agent_raw(&self, name: &str) -> Result<Agent> {
        let dir = entry_dir(&self.agents_dir, "Agent", name)?;
        if !fsutil::is_dir(&dir) {
            return Err(not_found(name));
        }
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(name))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("agent '{name}': invalid {JSON}: {e}"))
        })?;
        let (Some(json_name), Some(description)) =
            (nonempty_str(&v, "name"), nonempty_str(&v, "description"))
        else {
            return Err(BlueprintError::Unresolvable(format!(
                "agent '{name}': {JSON} needs a non-empty name and description"
            )));
        };
        let mcp_servers = match read_opt(&dir.join(MCP))? {
            Some(t) => {
                Some(read_mcp_file(&t, &format!("agent '{name}' {MCP}"))?).filter(|m| !m.is_empty())
            }
            None => None,
        };
        let demands: Option<aof_wire::Demands> = opt(&v, "demands", name)?;
        let (created_at, modified_at) = fsutil::times(&dir.join(JSON));
        Ok(Agent {
            name: json_name,
            description,
            agent_type: opt(&v, "type", name)?.unwrap_or_default(),
            script: nonempty_str(&v, "script"),
            parameters_schema: v.get("parameters_schema").filter(|x| truthy(x)).cloned(),
            output_schema: v.get("output_schema").filter(|x| truthy(x)).cloned(),
            system_prompt: read_opt(&dir.join(PROMPT))?.filter(|s| !s.is_empty()),
            mcp_servers,
            skills: opt(&v, "skills", name)?,
            tags: opt(&v, "tags", name)?.unwrap_or_default(),
            capabilities: opt(&v, "capabilities", name)?.unwrap_or_default(),
            demands: demands.filter(|d| d != &aof_wire::Demands::default()),
            hooks: v.get("hooks").filter(|x| truthy(x)).cloned(),
            executor: v.get("executor").filter(|x| truthy(x)).cloned(),
            limits: match v.get("limits") {
                None | Some(Value::Null) => None,
                Some(l) => Some(aof_wire::RunLimits::parse(l).map_err(|e| {
                    BlueprintError::Unresolvable(format!("agent '{name}': {JSON}: {e}"))
                })?)
                .filter(|l| !l.is_empty()),
            },
            approval: match v.get("approval") {
                None | Some(Value::Null) => None,
                Some(a) => Some(ApprovalPolicy::parse(a).map_err(|e| {
                    BlueprintError::Unresolvable(format!("agent '{name}': {JSON}: {e}"))
                })?)
                .filter(|a| !a.is_empty()),
            },
            status: if dir.join(DISABLED).exists() {
                AgentStatus::Inactive
            } else {
                AgentStatus::Active
            },
            created_at,
            modified_at,
        })
    }

    /// All readable agents, sorted by name; `tags` keeps those having every tag.
    pub fn list_agents(&self, tags: &[String]) -> Result<Vec<Agent>> {
        let mut out = Vec::new();
        for name in fsutil::entries(&self.agents_dir)? {
            // A folder that is not a valid agent is skipped, like the reference's list.
            let Ok(agent) = self.agent_raw(&name) else {
                continue;
            };
            if tags.iter().all(|t| agent.tags.contains(t)) {
                out.push(agent);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn create_agent(&self, req: &AgentCreate) -> Result<Agent> {
        fsutil::validate_name("Agent", &req.name)?;
        if req.description.trim().is_empty() {
            return Err(BlueprintError::Invalid(
                "Agent description is required".into(),
            ));
        }
        if let Some(m) = &req.mcp_servers {
            check_ref_entries(m)?;
            crate::secrets::refuse_masked_entries(m)?;
        }
        if let Some(e) = &req.executor {
            check_executor(e)?;
        }
        if let Some(l) = &req.limits {
            check_limits(l)?;
        }
        if let Some(a) = &req.approval {
            check_approval(a)?;
        }
        let dir = entry_dir(&self.agents_dir, "Agent", &req.name)?;
        if dir.exists() {
            return Err(BlueprintError::Conflict(format!(
                "Agent already exists: {}",
                req.name
            )));
        }
        fsutil::create_private_dir_all(&self.agents_dir)?;
        // Write into a hidden staging folder, then rename: an agent appears whole or not at all.
        let staging = self.agents_dir.join(format!(".staging-{}", req.name));
        let _ = fs::remove_dir_all(&staging);
        fsutil::create_private_dir(&staging)?;
        let mut doc = Map::new();
        doc.insert("name".into(), json!(req.name));
        doc.insert("description".into(), json!(req.description));
        doc.insert(
            "type".into(),
            json!(req.agent_type.unwrap_or_default().as_str()),
        );
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v.filter(truthy) {
                doc.insert(k.into(), v);
            }
        };
        put("script", req.script.clone().map(Value::String));
        put("parameters_schema", req.parameters_schema.clone());
        put("output_schema", req.output_schema.clone());
        put("skills", req.skills.clone().map(|s| json!(s)));
        put("tags", req.tags.clone().map(|s| json!(s)));
        put("capabilities", req.capabilities.clone().map(|s| json!(s)));
        put("demands", req.demands.clone().map(|d| json!(d)));
        put("hooks", req.hooks.clone());
        put("executor", req.executor.clone());
        put("limits", req.limits.clone());
        put("approval", req.approval.clone());
        write_json(&staging.join(JSON), &Value::Object(doc))?;
        if let Some(p) = req.system_prompt.as_deref().filter(|p| !p.is_empty()) {
            write_atomic(&staging.join(PROMPT), p)?;
        }
        if let Some(m) = req.mcp_servers.as_ref().filter(|m| !m.is_empty()) {
            write_json(&staging.join(MCP), &json!({ "mcpServers": m }))?;
        }
        fs::rename(&staging, &dir)?;
        self.agent_raw(&req.name)
    }

    pub fn update_agent(&self, name: &str, req: &AgentUpdate) -> Result<Agent> {
        let dir = entry_dir(&self.agents_dir, "Agent", name)?;
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(name))?;
        let mut doc: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("agent '{name}': invalid {JSON}: {e}"))
        })?;
        if let Some(m) = &req.mcp_servers {
            check_ref_entries(m)?;
            crate::secrets::refuse_masked_entries(m)?;
        }
        if let Some(e) = req.executor.as_ref().filter(|e| truthy(e)) {
            check_executor(e)?;
        }
        if let Some(l) = req.limits.as_ref().filter(|l| truthy(l)) {
            check_limits(l)?;
        }
        if let Some(a) = req.approval.as_ref().filter(|a| truthy(a)) {
            check_approval(a)?;
        }
        if let Some(d) = &req.description {
            if d.trim().is_empty() {
                return Err(BlueprintError::Invalid(
                    "Agent description must not be empty".into(),
                ));
            }
            doc.insert("description".into(), json!(d));
        }
        if let Some(t) = req.agent_type {
            doc.insert("type".into(), json!(t.as_str()));
        }
        // Present and empty removes the key; present and non-empty sets it.
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                if truthy(&v) {
                    doc.insert(k.into(), v);
                } else {
                    doc.remove(k);
                }
            }
        };
        set("script", req.script.clone().map(Value::String));
        set("parameters_schema", req.parameters_schema.clone());
        set("output_schema", req.output_schema.clone());
        set("skills", req.skills.clone().map(|s| json!(s)));
        set("tags", req.tags.clone().map(|s| json!(s)));
        set("capabilities", req.capabilities.clone().map(|s| json!(s)));
        set(
            "demands",
            req.demands.clone().map(|d| {
                if d == aof_wire::Demands::default() {
                    Value::Null
                } else {
                    json!(d)
                }
            }),
        );
        set("hooks", req.hooks.clone());
        set("executor", req.executor.clone());
        set("limits", req.limits.clone());
        set("approval", req.approval.clone());
        write_json(&dir.join(JSON), &Value::Object(doc))?;
        if let Some(p) = &req.system_prompt {
            if p.is_empty() {
                remove_opt(&dir.join(PROMPT))?;
            } else {
                write_atomic(&dir.join(PROMPT), p)?;
            }
        }
        if let Some(m) = &req.mcp_servers {
            if m.is_empty() {
                remove_opt(&dir.join(MCP))?;
            } else {
                write_json(&dir.join(MCP), &json!({ "mcpServers": m }))?;
            }
        }
        self.agent_raw(name)
    }

    pub fn set_agent_status(&self, name: &str, status: AgentStatus) -> Result<Agent> {
        let dir = entry_dir(&self.agents_dir, "Agent", name)?;
        if !dir.join(JSON).exists() {
            return Err(not_found(name));
        }
        match status {
            AgentStatus::Inactive => write_atomic(&dir.join(DISABLED), "")?,
            AgentStatus::Active => remove_opt(&dir.join(DISABLED))?,
        }
        self.agent_raw(name)
    }

    pub fn delete_agent(&self, name: &str) -> Result<()> {
        let dir = entry_dir(&self.agents_dir, "Agent", name)?;
        if !fsutil::is_dir(&dir) {
            return Err(not_found(name));
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}

/// Our `limits` extension: an object of known, positive limits (see `RunLimits`).
fn check_limits(l: &Value) -> Result<()> {
    aof_wire::RunLimits::parse(l)
        .map(|_| ())
        .map_err(BlueprintError::InvalidLimits)
}

/// Our `approval` extension (see `ApprovalPolicy`).
fn check_approval(a: &Value) -> Result<()> {
    ApprovalPolicy::parse(a)
        .map(|_| ())
        .map_err(BlueprintError::InvalidApproval)
}

/// Our `executor` extension must name a known kind; the runner builds it.
fn check_executor(e: &Value) -> Result<()> {
    match e.get("kind").and_then(Value::as_str) {
        // Its settings are checked where it is built (the runner), like `echo`'s.
        Some("echo" | "claude_code") => Ok(()),
        Some("command") => match e.get("program").and_then(Value::as_str) {
            Some(p) if !p.is_empty() => Ok(()),
            _ => Err(BlueprintError::Invalid(
                "executor of kind 'command' needs a non-empty 'program'".into(),
            )),
        },
        // A key stored in a blueprint would be readable by every viewer: refused here,
        // before it is written, as well as by the runner.
        Some("model_api") if e.get("api_key").is_some() => Err(BlueprintError::Invalid(
            "executor of kind 'model_api' may not hold an inline 'api_key'; name a runner \
             environment variable with 'api_key_env' or a file with 'api_key_file'"
                .into(),
        )),
        Some("model_api") => match (
            e.get("base_url").and_then(Value::as_str),
            e.get("model").and_then(Value::as_str),
        ) {
            (Some(u), Some(m)) if !u.is_empty() && !m.is_empty() => Ok(()),
            _ => Err(BlueprintError::Invalid(
                "executor of kind 'model_api' needs a non-empty 'base_url' and 'model'".into(),
            )),
        },
        Some(other) => Err(BlueprintError::Invalid(format!(
            "unknown executor kind '{other}' (known: echo, command, claude_code, model_api)"
        ))),
        None => Err(BlueprintError::Invalid("executor needs a 'kind'".into())),
    }
}
