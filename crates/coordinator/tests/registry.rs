//! `/agents`, `/capabilities`, `/mcp-servers` over real HTTP, and what run creation makes
//! of a blueprint (the resolved blueprint a runner receives).

use aof_coordinator::{Coordinator, CoordinatorConfig};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

struct Api {
    url: String,
    client: reqwest::Client,
    _token: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn start() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CoordinatorConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            db_path: dir.path().join("observability.db"),
            agents_dir: dir.path().join("config/agents"),
            poll_timeout: std::time::Duration::from_secs(5),
            ..CoordinatorConfig::default()
        };
        let c = Coordinator::bind(cfg).await.unwrap();
        let url = format!("http://{}", c.local_addr().unwrap());
        let token = CancellationToken::new();
        tokio::spawn(c.serve(token.clone()));
        Api {
            url,
            client: reqwest::Client::new(),
            _token: token.drop_guard(),
            _dir: dir,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let st = resp.status().as_u16();
        (st, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registries_crud_and_errors() {
    let api = Api::start().await;
    // MCP servers.
    let (st, b) = api
        .call(
            "POST",
            "/mcp-servers",
            Some(json!({"id": "orchestrator", "name": "Orchestrator",
            "url": "${runner.orchestrator_mcp_url}",
            "config_schema": {"X-Agent-Session-Id": {"type": "string", "required": true}},
            "default_config": {"X-Agent-Session-Id": "${runtime.session_id}"}})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["config_schema"]["X-Agent-Session-Id"]["sensitive"], false);
    assert_eq!(
        api.call(
            "POST",
            "/mcp-servers",
            Some(json!({"id": "orchestrator", "name": "x", "url": "u"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        api.call(
            "POST",
            "/mcp-servers",
            Some(json!({"id": "o2", "name": "x", "url": "u", "extra": 1}))
        )
        .await
        .0,
        422
    );
    let (st, b) = api
        .call(
            "POST",
            "/mcp-servers",
            Some(json!({"id": "../up", "name": "x", "url": "u"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("invalid_blueprint")));
    let (st, b) = api
        .call(
            "PUT",
            "/mcp-servers/orchestrator",
            Some(json!({"description": "Starts agents"})),
        )
        .await;
    assert_eq!(
        (st, b["description"].as_str(), b["name"].as_str()),
        (200, Some("Starts agents"), Some("Orchestrator"))
    );
    assert_eq!(
        api.call("GET", "/mcp-servers", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(api.call("GET", "/mcp-servers/nope", None).await.0, 404);
    // An update that would leave no name or URL is refused, and the entry is unchanged.
    let before = api.call("GET", "/mcp-servers/orchestrator", None).await.1;
    for body in [
        json!({"name": ""}),
        json!({"url": "  ", "description": "d"}),
    ] {
        let (st, b) = api
            .call("PUT", "/mcp-servers/orchestrator", Some(body))
            .await;
        assert_eq!(st, 400, "{b}");
        assert_eq!(b["code"], "invalid_blueprint", "{b}");
    }
    assert_eq!(
        api.call("GET", "/mcp-servers/orchestrator", None).await.1,
        before
    );
    // The same for a capability's description.
    let cap = "zz-describe-me";
    let (st, b) = api
        .call(
            "POST",
            "/capabilities",
            Some(json!({"name": cap, "description": "d", "type": "text", "text": "hello"})),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let before = api
        .call("GET", &format!("/capabilities/{cap}"), None)
        .await
        .1;
    let (st, b) = api
        .call(
            "PATCH",
            &format!("/capabilities/{cap}"),
            Some(json!({"description": " "})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(
        api.call("GET", &format!("/capabilities/{cap}"), None)
            .await
            .1,
        before
    );

    // Capabilities.
    let (st, b) = api
        .call("POST", "/capabilities", Some(json!({"name": "orchestration", "description": "Steer agents", "type": "mcp",
            "text": "Use the orchestrator.", "mcp_servers": {"orchestrator": {"ref": "orchestrator", "config": {"X-Agent-Tags": "t"}}}})))
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = api
        .call(
            "POST",
            "/capabilities",
            Some(json!({"name": "bad", "description": "d", "mcp_servers": {"a": {"ref": "x"}}})),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        b["detail"],
        "Capability type 'text' cannot have 'mcp_servers'"
    );
    let (_, list) = api.call("GET", "/capabilities", None).await;
    assert_eq!(list[0]["mcp_server_names"], json!(["orchestrator"]));
    assert_eq!(list[0]["has_text"], true);

    // Agents.
    let agent = json!({"name": "boss", "description": "Leads", "tags": ["internal", "lead"],
        "system_prompt": "You lead.", "capabilities": ["orchestration"],
        "parameters_schema": {"type": "object", "required": ["goal"], "properties": {"goal": {"type": "string"}}},
        "demands": {"tags": ["big"]}});
    let (st, b) = api.call("POST", "/agents", Some(agent.clone())).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["status"], "active");
    assert!(
        b.get("mcp_servers").is_none(),
        "raw agent has no MCP servers of its own"
    );
    assert_eq!(api.call("POST", "/agents", Some(agent)).await.0, 409);
    for (body, code) in [
        (json!({"name": "a b", "description": "d"}), 400),
        (
            json!({"name": "x", "description": "d", "mcp_servers": {"s": {"type": "stdio", "command": "sh"}}}),
            409,
        ),
        (json!({"name": "x"}), 422),
        (
            json!({"name": "x", "description": "d", "executor": {"kind": "warp"}}),
            400,
        ),
    ] {
        let (st, b) = api.call("POST", "/agents", Some(body.clone())).await;
        assert_eq!(st, code, "{body} → {b}");
    }
    assert_eq!(
        api.call("GET", "/agents/x", None).await.0,
        404,
        "nothing half-written"
    );
    // Resolved view merges the capability; raw does not.
    let (_, resolved) = api.call("GET", "/agents/boss", None).await;
    assert_eq!(
        resolved["system_prompt"],
        "You lead.\n\n---\n\nUse the orchestrator."
    );
    assert_eq!(
        resolved["mcp_servers"]["orchestrator"]["ref"],
        "orchestrator"
    );
    let (_, raw) = api.call("GET", "/agents/boss?raw=true", None).await;
    assert_eq!(raw["system_prompt"], "You lead.");
    assert_eq!(
        api.call("GET", "/agents?tags=internal,lead", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        api.call("GET", "/agents?tags=internal,nope", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (st, b) = api
        .call("PATCH", "/agents/boss", Some(json!({"tags": ["internal"]})))
        .await;
    assert_eq!((st, b["tags"].clone()), (200, json!(["internal"])));
    assert_eq!(
        api.call(
            "PATCH",
            "/agents/boss/status",
            Some(json!({"status": "paused"}))
        )
        .await
        .0,
        422
    );
    assert_eq!(
        api.call("DELETE", "/capabilities/orchestration", None)
            .await
            .0,
        409,
        "in use by boss"
    );

    // Runs: the agent's schema applies, the blueprint is resolved, demands follow it.
    let (st, b) = api.call("POST", "/runs", Some(json!({"type": "start_session", "agent_name": "boss", "parameters": {"prompt": "x"}}))).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("parameter_validation_failed")),
        "{b}"
    );
    let (st, b) = api
        .call("POST", "/runs", Some(json!({"type": "start_session", "agent_name": "boss", "parameters": {"goal": "ship"},
            "scope": {"team": "a"}})))
        .await;
    assert_eq!(st, 201, "{b}");
    let (sid, run_id) = (
        b["session_id"].as_str().unwrap().to_string(),
        b["run_id"].as_str().unwrap().to_string(),
    );
    let (_, run) = api.call("GET", &format!("/runs/{run_id}"), None).await;
    assert_eq!(
        run["demands"],
        json!({"executor_type": "autonomous", "tags": ["big"]})
    );
    assert!(
        run.get("resolved_agent_blueprint").is_none(),
        "GET /runs hides it, like the reference"
    );
    let (_, reg) = api
        .call(
            "POST",
            "/runner/register",
            Some(
                json!({"hostname": "h", "project_dir": "/p", "executor_profile": "e",
            "executor": {"type": "autonomous"}, "tags": ["big"]}),
            ),
        )
        .await;
    let rid = reg["runner_id"].as_str().unwrap();
    let (st, poll) = api
        .call("GET", &format!("/runner/runs?runner_id={rid}"), None)
        .await;
    assert_eq!(st, 200, "{poll}");
    let bp = &poll["run"]["resolved_agent_blueprint"];
    assert_eq!(bp["name"], "boss");
    assert_eq!(
        bp["mcp_servers"],
        json!({"orchestrator": {"url": "${runner.orchestrator_mcp_url}",
                                "config": {"X-Agent-Session-Id": sid, "X-Agent-Tags": "t"}}})
    );
    assert_eq!(poll["run"]["scope"], json!({"team": "a"}));

    // A child session inherits the parent's scope under its own.
    let (st, b) = api
        .call(
            "POST",
            "/runs",
            Some(
                json!({"type": "start_session", "parameters": {"prompt": "child"},
            "parent_session_id": sid, "scope": {"mine": 1}}),
            ),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (_, child) = api
        .call(
            "GET",
            &format!("/runs/{}", b["run_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(child["parent_session_id"], sid.as_str());

    // A required MCP config that cannot be filled is a clear 400.
    api.call(
        "PUT",
        "/mcp-servers/orchestrator",
        Some(json!({"default_config": {}})),
    )
    .await;
    let (st, b) = api
        .call(
            "POST",
            "/runs",
            Some(
                json!({"type": "start_session", "agent_name": "boss", "parameters": {"goal": "g"}}),
            ),
        )
        .await;
    assert_eq!(
        (st, b["detail"]["error"].as_str()),
        (400, Some("missing_required_mcp_config")),
        "{b}"
    );
    // Inactive agents start no sessions.
    api.call(
        "PATCH",
        "/agents/boss/status",
        Some(json!({"status": "inactive"})),
    )
    .await;
    let (st, b) = api
        .call(
            "POST",
            "/runs",
            Some(
                json!({"type": "start_session", "agent_name": "boss", "parameters": {"goal": "g"}}),
            ),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (400, Some("agent_inactive")));
    assert_eq!(api.call("DELETE", "/agents/boss", None).await.0, 204);
    assert_eq!(api.call("DELETE", "/agents/boss", None).await.0, 404);
    assert_eq!(
        api.call("DELETE", "/capabilities/orchestration", None)
            .await
            .0,
        204
    );
    assert_eq!(
        api.call("DELETE", "/mcp-servers/orchestrator", None)
            .await
            .0,
        204
    );
}
