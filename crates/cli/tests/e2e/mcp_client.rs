#![allow(dead_code)] // shared by two test binaries; each uses a part
//! A real MCP client (rmcp, streamable HTTP) for the orchestrator tools at `/mcp`.

use std::collections::HashMap;

use rmcp::{
    model::CallToolRequestParams,
    service::RunningService,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt,
};
use serde_json::Value;

pub type Mcp = RunningService<RoleClient, ()>;

/// An MCP client with an optional bearer credential, naming session `as_session` (how
/// a runner identifies its agent when auth is off).
pub async fn connect_with(url: &str, bearer: Option<&str>, as_session: Option<&str>) -> Mcp {
    let extra: Vec<(&str, &str)> = as_session
        .map(|s| vec![("x-agent-session-id", s)])
        .unwrap_or_default();
    connect_with_headers(url, bearer, &extra).await
}

/// As [`connect_with`], sending `extra` headers on every request.
pub async fn connect_with_headers(url: &str, bearer: Option<&str>, extra: &[(&str, &str)]) -> Mcp {
    let mut headers = HashMap::new();
    for (k, v) in extra {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut cfg =
        StreamableHttpClientTransportConfig::with_uri(format!("{url}/mcp")).custom_headers(headers);
    if let Some(b) = bearer {
        // rmcp sends this as `Authorization: Bearer <b>`.
        cfg = cfg.auth_header(b);
    }
    ().serve(StreamableHttpClientTransport::from_config(cfg))
        .await
        .expect("MCP initialize")
}

pub async fn connect(url: &str, as_session: Option<&str>) -> Mcp {
    connect_with(url, None, as_session).await
}

/// Calls a tool; returns (is_error, parsed JSON text).
pub async fn tool(mcp: &Mcp, name: &'static str, args: Value) -> (bool, Value) {
    let res = mcp
        .call_tool(
            CallToolRequestParams::new(name).with_arguments(args.as_object().unwrap().clone()),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = res
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (res.is_error == Some(true), v)
}
