//! The MCP server registry: `<mcp_dir>/<id>/mcp-server.json`.

use std::fs;

use serde_json::{json, Map, Value};

use aof_wire::agents::{McpServerCreate, McpServerEntry, McpServerUpdate};

use crate::{
    fsutil::{self, entry_dir, read_opt, write_json},
    placeholders::run_chosen_in_url,
    secrets, BlueprintError, Registry, Result,
};

const JSON: &str = "mcp-server.json";

/// An entry's `url` may not be steered by whoever creates a run (see
/// [`run_chosen_in_url`]): refused at write, and again at resolution for files edited
/// on disk.
pub(crate) fn check_url(url: &str) -> Result<()> {
    match run_chosen_in_url(url) {
        None => Ok(()),
        Some(p) => Err(BlueprintError::Invalid(format!(
            "MCP server url must not contain {p}: a run's parameters or scope (or a session id) \
             could then choose where the server's headers and secrets are sent; \
             use ${{env.NAME}} or a fixed host"
        ))),
    }
}

fn not_found(id: &str) -> BlueprintError {
    BlueprintError::NotFound(format!("MCP server not found: {id}"))
}

impl Registry {
    pub fn mcp_server(&self, id: &str) -> Result<McpServerEntry> {
        let dir = entry_dir(&self.mcp_dir, "MCP server", id)?;
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(id))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("MCP server '{id}': invalid {JSON}: {e}"))
        })?;
        let get = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let (Some(eid), Some(name), Some(url)) = (get("id"), get("name"), get("url")) else {
            return Err(not_found(id));
        };
        let config_schema = match v.get("config_schema") {
            None | Some(Value::Null) => None,
            Some(s) => Some(serde_json::from_value(s.clone()).map_err(|e| {
                BlueprintError::Unresolvable(format!(
                    "MCP server '{id}': invalid config_schema: {e}"
                ))
            })?),
        };
        let (created_at, updated_at) = fsutil::times(&dir.join(JSON));
        Ok(McpServerEntry {
            id: eid,
            name,
            description: get("description"),
            url,
            config_schema,
            default_config: v.get("default_config").and_then(Value::as_object).cloned(),
            created_at,
            updated_at,
        })
    }

    pub fn list_mcp_servers(&self) -> Result<Vec<McpServerEntry>> {
        let mut out: Vec<McpServerEntry> = fsutil::entries(&self.mcp_dir)?
            .iter()
            .filter_map(|id| self.mcp_server(id).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn create_mcp_server(&self, req: &McpServerCreate) -> Result<McpServerEntry> {
        // The reference does not check ids; ours become folder names, so they follow the name rule.
        fsutil::validate_name("MCP server id", &req.id)?;
        for (field, v) in [("name", &req.name), ("url", &req.url)] {
            if v.trim().is_empty() {
                return Err(BlueprintError::Invalid(format!(
                    "MCP server {field} is required"
                )));
            }
        }
        check_url(&req.url)?;
        // Nothing is stored yet: a `***` (a masked view pasted back) is refused.
        if let Some(s) = &req.config_schema {
            secrets::unmask_schema(&mut s.clone(), None)?;
        }
        if let Some(c) = &req.default_config {
            let sensitive = secrets::sensitive_keys(req.config_schema.as_ref());
            secrets::unmask(&mut c.clone(), None, &sensitive, "default_config")?;
        }
        let dir = entry_dir(&self.mcp_dir, "MCP server", &req.id)?;
        if dir.exists() {
            return Err(BlueprintError::Conflict(format!(
                "MCP server '{}' already exists",
                req.id
            )));
        }
        fsutil::create_private_dir_all(&self.mcp_dir)?;
        let staging = self.mcp_dir.join(format!(".staging-{}", req.id));
        let _ = fs::remove_dir_all(&staging);
        fsutil::create_private_dir(&staging)?;
        let mut doc = Map::new();
        doc.insert("id".into(), json!(req.id));
        doc.insert("name".into(), json!(req.name));
        doc.insert("url".into(), json!(req.url));
        if let Some(d) = req.description.as_ref().filter(|d| !d.is_empty()) {
            doc.insert("description".into(), json!(d));
        }
        if let Some(s) = req.config_schema.as_ref().filter(|s| !s.is_empty()) {
            doc.insert("config_schema".into(), json!(s));
        }
        if let Some(c) = req.default_config.as_ref().filter(|c| !c.is_empty()) {
            doc.insert("default_config".into(), json!(c));
        }
        write_json(&staging.join(JSON), &Value::Object(doc))?;
        fs::rename(&staging, &dir)?;
        self.mcp_server(&req.id)
    }

    pub fn update_mcp_server(&self, id: &str, req: &McpServerUpdate) -> Result<McpServerEntry> {
        // Refused before anything is written: an entry without a name or URL would vanish
        // from every read (found by schemathesis: the PUT answered 404 and lost the entry).
        for (field, v) in [("name", &req.name), ("url", &req.url)] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(BlueprintError::Invalid(format!(
                    "MCP server {field} must not be empty"
                )));
            }
        }
        let dir = entry_dir(&self.mcp_dir, "MCP server", id)?;
        let text = read_opt(&dir.join(JSON))?.ok_or_else(|| not_found(id))?;
        let mut doc: Map<String, Value> = serde_json::from_str(&text).map_err(|e| {
            BlueprintError::Unresolvable(format!("MCP server '{id}': invalid {JSON}: {e}"))
        })?;
        // A masked view (what a viewer reads) sent back keeps the stored secrets.
        let mut schema = req.config_schema.clone();
        if let Some(s) = &mut schema {
            secrets::unmask_schema(s, doc.get("config_schema"))?;
        }
        let mut default_config = req.default_config.clone();
        if let Some(c) = &mut default_config {
            let sensitive = match &schema {
                Some(s) => secrets::sensitive_keys(Some(s)),
                None => doc
                    .get("config_schema")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .map(|s| secrets::sensitive_keys(Some(&s)))
                    .unwrap_or_default(),
            };
            let stored = doc.get("default_config").and_then(Value::as_object);
            secrets::unmask(c, stored, &sensitive, "default_config")?;
        }
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                doc.insert(k.into(), v);
            }
        };
        set("name", req.name.clone().map(Value::String));
        set("description", req.description.clone().map(Value::String));
        set("url", req.url.clone().map(Value::String));
        set("config_schema", schema.as_ref().map(|s| json!(s)));
        set("default_config", default_config.map(Value::Object));
        if let Some(url) = doc.get("url").and_then(Value::as_str) {
            check_url(url)?;
        }
        write_json(&dir.join(JSON), &Value::Object(doc))?;
        self.mcp_server(id)
    }

    pub fn delete_mcp_server(&self, id: &str) -> Result<()> {
        let dir = entry_dir(&self.mcp_dir, "MCP server", id)?;
        if !dir.join(JSON).exists() {
            return Err(not_found(id));
        }
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
