//! The placeholders the coordinator leaves in a blueprint for the runner to fill, and
//! the values they take here.

/// The coordinator's orchestrator MCP endpoint, which agents reach as `agent-orchestrator`.
pub(super) fn orchestrator_mcp_url(base: &str) -> String {
    format!("{}/mcp", base.trim_end_matches('/'))
}

/// The blueprint with the placeholders the coordinator leaves for the runner filled.
pub(super) fn fill_runner_placeholders(
    blueprint: &serde_json::Value,
    orchestrator_mcp_url: &str,
) -> serde_json::Value {
    use serde_json::Value;
    match blueprint {
        Value::String(s) => {
            Value::String(s.replace("${runner.orchestrator_mcp_url}", orchestrator_mcp_url))
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| fill_runner_placeholders(v, orchestrator_mcp_url))
                .collect(),
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), fill_runner_placeholders(v, orchestrator_mcp_url)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runner_placeholders_are_filled() {
        let url = orchestrator_mcp_url("http://127.0.0.1:8765/");
        assert_eq!(url, "http://127.0.0.1:8765/mcp");
        let bp = json!({"mcp_servers": {"o": {"url": "${runner.orchestrator_mcp_url}",
            "config": {"list": ["x ${runner.orchestrator_mcp_url}", 1]}}}, "n": null});
        assert_eq!(
            fill_runner_placeholders(&bp, &url),
            json!({"mcp_servers": {"o": {"url": "http://127.0.0.1:8765/mcp",
                "config": {"list": ["x http://127.0.0.1:8765/mcp", 1]}}}, "n": null})
        );
    }
}
