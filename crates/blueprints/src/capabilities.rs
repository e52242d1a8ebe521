//! Capabilities on disk: `<capabilities_dir>/<name>/capability.json`,
//! `capability.text.md`, `capability.mcp.json`.

use std::fs;

use serde_json::{json, Map, Value};

use aof_wire::agents::{
    Capability, CapabilityCreate, CapabilitySummary, CapabilityType, CapabilityUpdate,
};

use crate::{
    agents::read_mcp_file,
    fsutil::{self, check_ref_entries, entry_dir, read_opt, remove_opt, write_atomic, write_json},
    BlueprintError, Registry, Result,
};

const JSON: &str = "capability.json";
const TEXT: &str = "capability.text.md";
const MCP: &str = "capability.mcp.json";

fn not_found(name: &str) -> BlueprintError {
    BlueprintError::NotFound(format!("Capability not found: {name}"))
}

/// The reference's type/field rules, applied to the state after a create or update.
fn check_fields(t: CapabilityType, script: bool, mcp: bool) -> Result<()> {
    let msg = match (t, script, mcp) {
        (CapabilityType::Script, _, true) => "Capability type 'script' cannot have 'mcp_servers'",
        (CapabilityType::Mcp, true, _) => "Capability type 'mcp' cannot have 'script'",
        (CapabilityType::Text, true, _) => "Capability type 'text' cannot have 'script'",
        (CapabilityType::Text, _, true) => "Capability type 'text' cannot have 'mcp_servers'",
        _ => return Ok(()),
    };
    Err(BlueprintError::Invalid(msg.into()))
}

impl Registry {
    pub fn capability(&self, name: &str) -> Result<Capability> {
        let dir = entry_dir(&self.capabilities_dir, "Capability", name)?;
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(name))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("capability '{name}': invalid {JSON}: {e}"))
        })?;
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (Some(cname), Some(description)) = (get("name"), get("description")) else {
            return Err(not_found(name));
        };
        let mcp_servers = match read_opt(&dir.join(MCP))? {
            Some(t) => Some(read_mcp_file(&t, &format!("capability '{name}' {MCP}"))?),
            None => None,
        };
        let script = get("script");
        let capability_type = match get("type").as_deref() {
            Some("script") => CapabilityType::Script,
            Some("mcp") => CapabilityType::Mcp,
            Some("text") => CapabilityType::Text,
            _ if script.is_some() => CapabilityType::Script,
            _ if mcp_servers.is_some() => CapabilityType::Mcp,
            _ => CapabilityType::Text,
        };
        let (created_at, modified_at) = fsutil::times(&dir.join(JSON));
        Ok(Capability {
            name: cname,
            description,
            capability_type,
            script,
            text: read_opt(&dir.join(TEXT))?,
            mcp_servers: mcp_servers.filter(|m| !m.is_empty()),
            created_at,
            modified_at,
        })
    }

    pub fn list_capabilities(&self) -> Result<Vec<CapabilitySummary>> {
        let mut out = Vec::new();
        for name in fsutil::entries(&self.capabilities_dir)? {
            let Ok(c) = self.capability(&name) else {
                continue;
            };
            out.push(CapabilitySummary {
                has_script: c.script.is_some(),
                script_name: c.script.clone(),
                has_text: c.text.is_some(),
                has_mcp: c.mcp_servers.is_some(),
                mcp_server_names: c
                    .mcp_servers
                    .as_ref()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default(),
                name: c.name,
                description: c.description,
                capability_type: c.capability_type,
                created_at: c.created_at,
                modified_at: c.modified_at,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn create_capability(&self, req: &CapabilityCreate) -> Result<Capability> {
        fsutil::validate_name("Capability", &req.name)?;
        if req.description.trim().is_empty() {
            return Err(BlueprintError::Invalid(
                "Capability description is required".into(),
            ));
        }
        let t = req.capability_type.unwrap_or_default();
        let script = req.script.as_deref().is_some_and(|s| !s.is_empty());
        let mcp = req.mcp_servers.as_ref().is_some_and(|m| !m.is_empty());
        check_fields(t, script, mcp)?;
        if script {
            // Scripts (procedural agents) are out of scope in this release.
            return Err(BlueprintError::Invalid(format!(
                "Script not found: {}",
                req.script.as_deref().unwrap_or_default()
            )));
        }
        if let Some(m) = &req.mcp_servers {
            check_ref_entries(m)?;
            crate::secrets::refuse_masked_entries(m)?;
        }
        let dir = entry_dir(&self.capabilities_dir, "Capability", &req.name)?;
        if dir.exists() {
            return Err(BlueprintError::Conflict(format!(
                "Capability already exists: {}",
                req.name
            )));
        }
        fsutil::create_private_dir_all(&self.capabilities_dir)?;
        let staging = self.capabilities_dir.join(format!(".staging-{}", req.name));
        let _ = fs::remove_dir_all(&staging);
        fsutil::create_private_dir(&staging)?;
        write_json(
            &staging.join(JSON),
            &json!({"name": req.name, "description": req.description, "type": t.as_str()}),
        )?;
        if let Some(text) = req.text.as_deref().filter(|t| !t.is_empty()) {
            write_atomic(&staging.join(TEXT), text)?;
        }
        if let Some(m) = req.mcp_servers.as_ref().filter(|m| !m.is_empty()) {
            write_json(&staging.join(MCP), &json!({ "mcpServers": m }))?;
        }
        fs::rename(&staging, &dir)?;
        self.capability(&req.name)
    }

    pub fn update_capability(&self, name: &str, req: &CapabilityUpdate) -> Result<Capability> {
        let current = self.capability(name)?;
        // Checked before writing: a capability without a description is unreadable.
        if req
            .description
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            return Err(BlueprintError::Invalid(
                "Capability description must not be empty".into(),
            ));
        }
        let dir = entry_dir(&self.capabilities_dir, "Capability", name)?;
        let t = req.capability_type.unwrap_or(current.capability_type);
        let script = match &req.script {
            None => current.script.is_some(),
            Some(s) => !s.is_empty(),
        };
        let mcp = match &req.mcp_servers {
            None => current.mcp_servers.is_some(),
            Some(m) => !m.is_empty(),
        };
        check_fields(t, script, mcp)?;
        if req.script.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(BlueprintError::Invalid(format!(
                "Script not found: {}",
                req.script.as_deref().unwrap_or_default()
            )));
        }
        if let Some(m) = &req.mcp_servers {
            check_ref_entries(m)?;
            crate::secrets::refuse_masked_entries(m)?;
        }
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(name))?;
        let mut doc: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("capability '{name}': invalid {JSON}: {e}"))
        })?;
        if let Some(d) = &req.description {
            doc.insert("description".into(), json!(d));
        }
        doc.insert("type".into(), json!(t.as_str()));
        if req.script.as_deref() == Some("") {
            doc.remove("script");
        }
        write_json(&dir.join(JSON), &Value::Object(doc))?;
        if let Some(text) = &req.text {
            if text.is_empty() {
                remove_opt(&dir.join(TEXT))?;
            } else {
                write_atomic(&dir.join(TEXT), text)?;
            }
        }
        if let Some(m) = &req.mcp_servers {
            if m.is_empty() {
                remove_opt(&dir.join(MCP))?;
            } else {
                write_json(&dir.join(MCP), &json!({ "mcpServers": m }))?;
            }
        }
        self.capability(name)
    }

    pub fn delete_capability(&self, name: &str) -> Result<()> {
        let dir = entry_dir(&self.capabilities_dir, "Capability", name)?;
        if !dir.join(JSON).exists() {
            return Err(not_found(name));
        }
        let users: Vec<String> = self
            .list_agents(&[])?
            .into_iter()
            .filter(|a| a.capabilities.iter().any(|c| c == name))
            .map(|a| a.name)
            .collect();
        if !users.is_empty() {
            return Err(BlueprintError::Conflict(format!(
                "Capability is referenced by agents: {}",
                users.join(", ")
            )));
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
