//! The agent's tools: one real MCP client (rmcp, streamable HTTP) per server — the
//! blueprint's resolved `mcp_servers` plus the coordinator's orchestrator — and their
//! tools as OpenAI `tools` entries. Calls go to the server that offered the tool.
//!
//! A blueprint server that cannot be reached fails the run (the agent was written to
//! use it); the orchestrator, which the runner adds on its own, only logs a warning.

use std::collections::{BTreeMap, HashMap};

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::{
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt,
};
use serde_json::{json, Map, Value};

use crate::{claude::ORCHESTRATOR_SERVER, Job};

/// One MCP server to connect to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Server {
    pub name: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    /// Whether failing to connect fails the run.
    pub required: bool,
}

/// The blueprint's resolved servers (`{name: {url, config: {headers}}}`) plus the
/// orchestrator as `agent-orchestrator` (with the run's session token, or the session
/// id header when auth is off), unless the blueprint defines that name.
pub(crate) fn servers(job: &Job, session_token: Option<&str>) -> Vec<Server> {
    let mut out = Vec::new();
    let resolved = job
        .blueprint
        .as_ref()
        .and_then(|b| b.get("mcp_servers"))
        .and_then(Value::as_object);
    for (name, entry) in resolved.into_iter().flatten() {
        let Some(url) = entry.get("url").and_then(Value::as_str) else {
            continue;
        };
        // The reference's `config` is the server's HTTP headers (string values);
        // `config.headers` (as Claude Code's MCP config has it) is read too.
        let config = entry.get("config").and_then(Value::as_object);
        let nested = config
            .and_then(|c| c.get("headers"))
            .and_then(Value::as_object);
        let headers = config
            .into_iter()
            .chain(nested)
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
            .collect();
        out.push(Server {
            name: name.clone(),
            url: url.to_string(),
            headers,
            required: true,
        });
    }
    if let (false, Some(url)) = (
        out.iter().any(|s| s.name == ORCHESTRATOR_SERVER),
        job.orchestrator_mcp_url.as_deref(),
    ) {
        let mut headers = BTreeMap::new();
        if let Some(token) = session_token {
            headers.insert("Authorization".into(), format!("Bearer {token}"));
        }
        headers.insert("X-Agent-Session-Id".into(), job.session_id.clone());
        out.push(Server {
            name: ORCHESTRATOR_SERVER.into(),
            url: url.to_string(),
            headers,
            required: false,
        });
    }
    out
}

type Client = RunningService<RoleClient, ()>;

struct Tool {
    /// The name the model sees (unique across servers).
    exposed: String,
    server: usize,
    /// The name on its server.
    name: String,
    spec: Value,
}

/// Connected servers and their tools. Close with [`Toolbox::close`].
pub(crate) struct Toolbox {
    clients: Vec<(String, Client)>,
    tools: Vec<Tool>,
    /// Servers that could not be used (optional ones only), for the session log.
    pub warnings: Vec<String>,
}

/// What one tool call gave.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolOutput {
    /// For the `post_tool` event: the MCP result as it came.
    pub output: Value,
    /// For the model's `tool` message.
    pub text: String,
    /// Set when the tool failed (an MCP error result, an unknown tool, bad arguments).
    pub error: Option<String>,
}

async fn connect_one(s: &Server) -> Result<(Client, Vec<rmcp::model::Tool>), String> {
    let mut headers = HashMap::new();
    let mut auth = None;
    for (k, v) in &s.headers {
        if k.eq_ignore_ascii_case("authorization") {
            // rmcp sends `auth_header` as `Authorization: Bearer <value>`.
            auth = Some(v.strip_prefix("Bearer ").unwrap_or(v).to_string());
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k}: {e}"))?;
        let value = HeaderValue::from_str(v).map_err(|e| format!("header {k}: {e}"))?;
        headers.insert(name, value);
    }
    let mut cfg =
        StreamableHttpClientTransportConfig::with_uri(s.url.as_str()).custom_headers(headers);
    if let Some(a) = auth {
        cfg = cfg.auth_header(a);
    }
    let client =
        ().serve(StreamableHttpClientTransport::from_config(cfg))
            .await
            .map_err(|e| e.to_string())?;
    match client.list_all_tools().await {
        Ok(tools) => Ok((client, tools)),
        Err(e) => {
            let _ = client.cancel().await;
            Err(format!("listing tools: {e}"))
        }
    }
}

impl Toolbox {
    pub(crate) async fn connect(servers: &[Server]) -> Result<Toolbox, String> {
        let mut tb = Toolbox {
            clients: Vec::new(),
            tools: Vec::new(),
            warnings: Vec::new(),
        };
        for s in servers {
            match connect_one(s).await {
                Ok((client, tools)) => {
                    let idx = tb.clients.len();
                    tb.clients.push((s.name.clone(), client));
                    for t in tools {
                        tb.add(idx, &s.name, t);
                    }
                }
                Err(e) if s.required => {
                    tb.close().await;
                    return Err(format!("MCP server '{}' ({}): {e}", s.name, s.url));
                }
                Err(e) => {
                    tracing::warn!(server = %s.name, url = %s.url, error = %e, "MCP server unavailable; continuing without its tools");
                    tb.warnings
                        .push(format!("MCP server '{}' unavailable: {e}", s.name));
                }
            }
        }
        Ok(tb)
    }

    fn add(&mut self, server: usize, server_name: &str, t: rmcp::model::Tool) {
        let name = t.name.to_string();
        // Bare names read best for small models; a clash gets the server as prefix.
        let exposed = if self.tools.iter().any(|x| x.exposed == name) {
            function_name(&format!("{server_name}__{name}"))
        } else {
            function_name(&name)
        };
        let mut function = Map::new();
        function.insert("name".into(), exposed.clone().into());
        if let Some(d) = &t.description {
            function.insert("description".into(), d.to_string().into());
        }
        function.insert(
            "parameters".into(),
            Value::Object((*t.input_schema).clone()),
        );
        self.tools.push(Tool {
            exposed,
            server,
            name,
            spec: json!({"type": "function", "function": function}),
        });
    }

    /// The OpenAI `tools` array.
    pub(crate) fn specs(&self) -> Vec<Value> {
        self.tools.iter().map(|t| t.spec.clone()).collect()
    }

    /// The names a call of `exposed` goes by, for approval policies: the one the model
    /// sees and, for a tool a server offered, `mcp__<server>__<tool>` (as Claude Code
    /// names MCP tools, so one blueprint's policy reads the same for both executors).
    pub(crate) fn names(&self, exposed: &str) -> Vec<String> {
        let mut names = vec![exposed.to_string()];
        if let Some(t) = self.tools.iter().find(|t| t.exposed == exposed) {
            names.push(format!("mcp__{}__{}", self.clients[t.server].0, t.name));
        }
        names
    }

    /// Calls tool `exposed` with the model's `arguments` (a JSON object as text).
    /// Every failure becomes a tool error the model can read, never a run failure.
    pub(crate) async fn call(&self, exposed: &str, arguments: &str) -> ToolOutput {
        let fail = |error: String| ToolOutput {
            output: Value::Null,
            text: format!("error: {error}"),
            error: Some(error),
        };
        let Some(tool) = self.tools.iter().find(|t| t.exposed == exposed) else {
            return fail(format!("no tool named '{exposed}'"));
        };
        let args = match arguments.trim() {
            "" => Map::new(),
            a => match serde_json::from_str::<Value>(a) {
                Ok(Value::Object(m)) => m,
                Ok(other) => return fail(format!("arguments must be a JSON object, not {other}")),
                Err(e) => return fail(format!("arguments are not JSON ({e}): {a}")),
            },
        };
        let (_, client) = &self.clients[tool.server];
        let params = CallToolRequestParams::new(tool.name.clone()).with_arguments(args);
        match client.call_tool(params).await {
            Ok(res) => result_output(res),
            Err(e) => fail(format!("calling '{}': {e}", tool.name)),
        }
    }

    pub(crate) async fn close(self) {
        for (_, client) in self.clients {
            let _ = client.cancel().await;
        }
    }
}

/// OpenAI function names: `^[a-zA-Z0-9_-]{1,64}$`.
fn function_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() {
        s.push('_');
    }
    s
}

fn result_output(res: CallToolResult) -> ToolOutput {
    let texts: Vec<String> = res
        .content
        .iter()
        .map(|c| match c.as_text() {
            Some(t) => t.text.clone(),
            None => serde_json::to_string(c).unwrap_or_default(),
        })
        .collect();
    let mut text = texts.join("\n");
    if text.is_empty() {
        if let Some(s) = &res.structured_content {
            text = s.to_string();
        }
    }
    let output = serde_json::to_value(&res).unwrap_or(Value::Null);
    let error = (res.is_error == Some(true)).then(|| text.clone());
    ToolOutput {
        output,
        text,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_from_blueprint_and_orchestrator() {
        let job = Job {
            run_id: "r".into(),
            session_id: "ses_1".into(),
            agent_name: None,
            prompt: String::new(),
            parameters: json!({}),
            project_dir: None,
            resume: None,
            blueprint: Some(json!({"mcp_servers": {
                "calc": {"url": "http://127.0.0.1:1/mcp", "config": {"headers": {"X-K": "v"}, "X-Flat": "f"}},
                "broken": {"config": {}}
            }})),
            system_prompt: None,
            orchestrator_mcp_url: Some("http://c/mcp".into()),
            history: None,
        };
        let s = servers(&job, Some("tok"));
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0].name, "calc");
        assert!(s[0].required);
        assert_eq!(s[0].headers["X-K"], "v");
        assert_eq!(s[0].headers["X-Flat"], "f");
        assert_eq!(s[1].name, ORCHESTRATOR_SERVER);
        assert!(!s[1].required);
        assert_eq!(s[1].headers["Authorization"], "Bearer tok");
        assert_eq!(s[1].headers["X-Agent-Session-Id"], "ses_1");
        assert_eq!(function_name("a.b c"), "a_b_c");
        assert_eq!(function_name(""), "_");
    }
}
