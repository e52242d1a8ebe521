//! The registry on real folders written the way the AOF reference's `config/` is laid out.

use std::fs;

use serde_json::{json, Map, Value};

use aof_blueprints::{BlueprintError, Registry, RunContext};
use aof_wire::agents::{AgentCreate, AgentStatus, AgentUpdate, CapabilityCreate, McpServerCreate};

fn write(path: &std::path::Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A config tree in the reference's format: agents/, capabilities/, mcp-servers/.
fn reference_tree(root: &std::path::Path) {
    write(
        &root.join("agents/agent-orchestrator/agent.json"),
        r#"{
  "name": "agent-orchestrator",
  "description": "Orchestrates other agents",
  "tags": ["internal", "orchestration"],
  "capabilities": ["agent-orchestrator"]
}
"#,
    );
    write(
        &root.join("agents/agent-orchestrator/agent.system-prompt.md"),
        "You coordinate agents.",
    );
    write(&root.join("agents/agent-orchestrator/README.md"), "ignored");
    write(
        &root.join("agents/researcher/agent.json"),
        r#"{"name": "researcher", "description": "Finds things", "tags": ["research"],
            "parameters_schema": {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}},
            "demands": {"tags": ["web"]}, "visibility": "public"}"#,
    );
    write(
        &root.join("agents/researcher/agent.mcp.json"),
        r#"{"mcpServers": {"ctx": {"ref": "context-store", "config": {"X-Context-Store-Partition": "${params.topic}"}}}}"#,
    );
    write(&root.join("agents/researcher/.disabled"), "");
    write(
        &root.join("capabilities/agent-orchestrator/capability.json"),
        r#"{"name": "agent-orchestrator", "description": "Start and steer agents", "type": "mcp"}"#,
    );
    write(
        &root.join("capabilities/agent-orchestrator/capability.text.md"),
        "Use the orchestrator tools.",
    );
    write(
        &root.join("capabilities/agent-orchestrator/capability.mcp.json"),
        r#"{"mcpServers": {"orchestrator": {"ref": "orchestrator", "config": {"X-Agent-Tags": "internal"}}}}"#,
    );
    write(
        &root.join("mcp-servers/orchestrator/mcp-server.json"),
        r#"{"id": "orchestrator", "name": "Agent Orchestrator", "url": "${runner.orchestrator_mcp_url}",
            "config_schema": {"X-Agent-Session-Id": {"type": "string", "required": true, "sensitive": false},
                              "X-Agent-Tags": {"type": "string", "required": false, "sensitive": false}},
            "default_config": {"X-Agent-Session-Id": "${runtime.session_id}"}}"#,
    );
    write(
        &root.join("mcp-servers/context-store/mcp-server.json"),
        r#"{"id": "context-store", "name": "Context Store", "url": "http://localhost:9501/mcp",
            "config_schema": {"X-Context-Store-Partition": {"type": "string", "required": true, "sensitive": false}}}"#,
    );
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[test]
fn reference_folders_load_and_resolve_for_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    reference_tree(tmp.path());
    let reg = Registry::new(&tmp.path().join("agents"), vec![]);

    let agents = reg.list_agents(&[]).unwrap();
    assert_eq!(
        agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["agent-orchestrator", "researcher"]
    );
    let tagged = reg
        .list_agents(&["internal".into(), "orchestration".into()])
        .unwrap();
    assert_eq!(tagged.len(), 1);
    assert!(reg
        .list_agents(&["internal".into(), "research".into()])
        .unwrap()
        .is_empty());

    let raw = reg.agent_raw("researcher").unwrap();
    assert_eq!(raw.status, AgentStatus::Inactive);
    assert_eq!(raw.demands.as_ref().unwrap().tags, ["web"]);
    assert_eq!(
        raw.mcp_servers.as_ref().unwrap()["ctx"]["ref"],
        "context-store"
    );

    // Capabilities merge into the prompt and the MCP list.
    let resolved = reg.agent_resolved("agent-orchestrator").unwrap();
    assert_eq!(
        resolved.system_prompt.as_deref(),
        Some("You coordinate agents.\n\n---\n\nUse the orchestrator tools.")
    );
    assert_eq!(
        resolved.mcp_servers.as_ref().unwrap()["orchestrator"]["ref"],
        "orchestrator"
    );

    // For a run: refs → {url, config}, runtime placeholders filled, ${runner.*} left.
    let params = obj(json!({"prompt": "go"}));
    let scope = Map::new();
    let cx = RunContext {
        run_id: "run_1",
        session_id: "ses_9",
        parameters: &params,
        scope: &scope,
    };
    let r = reg
        .resolve_for_run("agent-orchestrator", &cx)
        .unwrap()
        .unwrap();
    assert_eq!(
        r.blueprint["mcp_servers"],
        json!({"orchestrator": {"url": "${runner.orchestrator_mcp_url}",
                                "config": {"X-Agent-Session-Id": "ses_9", "X-Agent-Tags": "internal"}}})
    );
    assert_eq!(r.blueprint["name"], "agent-orchestrator");

    let params = obj(json!({"topic": "rust"}));
    let cx = RunContext {
        run_id: "run_2",
        session_id: "ses_2",
        parameters: &params,
        scope: &scope,
    };
    let r = reg.resolve_for_run("researcher", &cx).unwrap().unwrap();
    assert_eq!(
        r.blueprint["mcp_servers"]["ctx"]["config"]["X-Context-Store-Partition"],
        "rust"
    );

    // A required config value that stays a placeholder is a clear run error.
    let params = obj(json!({"prompt": "no topic"}));
    let cx = RunContext {
        run_id: "run_3",
        session_id: "ses_3",
        parameters: &params,
        scope: &scope,
    };
    let Err(BlueprintError::RunRejected(d)) = reg.resolve_for_run("researcher", &cx) else {
        panic!()
    };
    assert_eq!(d["error"], "missing_required_mcp_config");
    assert_eq!(d["missing_fields"], json!(["X-Context-Store-Partition"]));

    // Unknown agent: no blueprint, not an error.
    assert!(reg.resolve_for_run("nobody", &cx).unwrap().is_none());

    // A ref to a missing registry entry.
    reg.delete_mcp_server("context-store").unwrap();
    let params = obj(json!({"topic": "rust"}));
    let cx = RunContext {
        run_id: "run_4",
        session_id: "ses_4",
        parameters: &params,
        scope: &scope,
    };
    let Err(BlueprintError::RunRejected(d)) = reg.resolve_for_run("researcher", &cx) else {
        panic!()
    };
    assert_eq!(d["error"], "mcp_ref_resolution_failed");
}

#[test]
fn create_update_status_delete_and_path_safety() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(&tmp.path().join("agents"), vec![]);
    let create = AgentCreate {
        name: "coder".into(),
        description: "Writes code".into(),
        system_prompt: Some("Be brief.".into()),
        tags: Some(vec!["dev".into()]),
        mcp_servers: Some(obj(json!({"fs": {"ref": "files"}}))),
        executor: Some(json!({"kind": "command", "program": "cat"})),
        ..Default::default()
    };
    let a = reg.create_agent(&create).unwrap();
    assert_eq!(a.tags, ["dev"]);
    // Written in the reference's layout.
    let on_disk: Value = serde_json::from_str(
        &fs::read_to_string(tmp.path().join("agents/coder/agent.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(on_disk["type"], "autonomous");
    assert_eq!(
        fs::read_to_string(tmp.path().join("agents/coder/agent.system-prompt.md")).unwrap(),
        "Be brief."
    );
    assert!(
        fs::read_to_string(tmp.path().join("agents/coder/agent.mcp.json"))
            .unwrap()
            .contains("\"mcpServers\"")
    );
    assert!(matches!(
        reg.create_agent(&create),
        Err(BlueprintError::Conflict(_))
    ));

    for bad in ["../evil", "a/b", "", "-x", ".hidden"] {
        let r = reg.create_agent(&AgentCreate {
            name: bad.into(),
            ..create.clone()
        });
        assert!(matches!(r, Err(BlueprintError::Invalid(_))), "{bad}");
        assert!(
            matches!(reg.agent_raw(bad), Err(BlueprintError::NotFound(_))),
            "{bad}"
        );
    }
    let inline = AgentCreate {
        name: "inline".into(),
        mcp_servers: Some(obj(json!({"x": {"type": "http", "url": "u"}}))),
        ..create.clone()
    };
    assert!(matches!(
        reg.create_agent(&inline),
        Err(BlueprintError::Conflict(_))
    ));
    assert!(
        !tmp.path().join("agents/inline").exists(),
        "nothing half-written"
    );
    let bad_exec = AgentCreate {
        name: "badexec".into(),
        executor: Some(json!({"kind": "rocket"})),
        ..create.clone()
    };
    assert!(matches!(
        reg.create_agent(&bad_exec),
        Err(BlueprintError::Invalid(_))
    ));

    // PATCH: empty removes, absent keeps.
    let upd = AgentUpdate {
        system_prompt: Some(String::new()),
        tags: Some(vec![]),
        description: Some("New".into()),
        ..Default::default()
    };
    let a = reg.update_agent("coder", &upd).unwrap();
    assert_eq!(a.description, "New");
    assert!(a.system_prompt.is_none() && a.tags.is_empty());
    assert_eq!(a.executor.unwrap()["program"], "cat");
    assert_eq!(
        reg.set_agent_status("coder", AgentStatus::Inactive)
            .unwrap()
            .status,
        AgentStatus::Inactive
    );
    assert_eq!(
        reg.set_agent_status("coder", AgentStatus::Active)
            .unwrap()
            .status,
        AgentStatus::Active
    );

    // A symlinked agent folder is refused, not followed.
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(
        outside.join("agent.json"),
        r#"{"name":"sneaky","description":"x"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, tmp.path().join("agents/sneaky")).unwrap();
    assert!(matches!(
        reg.agent_raw("sneaky"),
        Err(BlueprintError::UnsafePath(_))
    ));
    assert!(reg
        .list_agents(&[])
        .unwrap()
        .iter()
        .all(|a| a.name != "sneaky"));
    assert!(matches!(
        reg.delete_agent("sneaky"),
        Err(BlueprintError::UnsafePath(_))
    ));
    assert!(outside.join("agent.json").exists());

    // Capabilities: type rules and reference checks.
    let cap = CapabilityCreate {
        name: "style".into(),
        description: "House style".into(),
        text: Some("Use tabs.".into()),
        ..Default::default()
    };
    reg.create_capability(&cap).unwrap();
    let bad = CapabilityCreate {
        name: "m".into(),
        description: "d".into(),
        mcp_servers: Some(obj(json!({"a": {"ref": "x"}}))),
        ..Default::default()
    };
    let Err(BlueprintError::Invalid(m)) = reg.create_capability(&bad) else {
        panic!()
    };
    assert_eq!(m, "Capability type 'text' cannot have 'mcp_servers'");
    reg.update_agent(
        "coder",
        &AgentUpdate {
            capabilities: Some(vec!["style".into()]),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(matches!(
        reg.delete_capability("style"),
        Err(BlueprintError::Conflict(_))
    ));
    reg.delete_agent("coder").unwrap();
    reg.delete_capability("style").unwrap();
    assert!(matches!(
        reg.delete_agent("coder"),
        Err(BlueprintError::NotFound(_))
    ));

    // MCP registry ids follow the name rule (they are folder names).
    let entry = McpServerCreate {
        id: "files".into(),
        name: "Files".into(),
        url: "http://x".into(),
        description: None,
        config_schema: None,
        default_config: None,
    };
    reg.create_mcp_server(&entry).unwrap();
    assert!(matches!(
        reg.create_mcp_server(&entry),
        Err(BlueprintError::Conflict(_))
    ));
    assert!(matches!(
        reg.create_mcp_server(&McpServerCreate {
            id: "../x".into(),
            ..entry.clone()
        }),
        Err(BlueprintError::Invalid(_))
    ));
}
