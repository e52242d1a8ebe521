//! Where MCP secrets may go: an entry's `url` a run could fill in is refused (written
//! through the API or edited on disk), and a masked view written back keeps the secrets.

use std::fs;

use serde_json::{json, Map, Value};

use aof_blueprints::{secrets, BlueprintError, Registry, RunContext};
use aof_wire::agents::{AgentCreate, McpServerCreate, McpServerUpdate};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn entry(id: &str, url: &str) -> McpServerCreate {
    McpServerCreate {
        id: id.into(),
        name: id.into(),
        url: url.into(),
        description: None,
        config_schema: None,
        default_config: Some(obj(json!({"Authorization": "Bearer ${env.GH_TOKEN}"}))),
    }
}

fn agent(name: &str, server: &str) -> AgentCreate {
    serde_json::from_value(json!({"name": name, "description": "d",
        "mcp_servers": {"s": {"ref": server}}}))
    .unwrap()
}

#[test]
fn an_mcp_url_with_run_chosen_placeholders_is_refused_at_write() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(&tmp.path().join("agents"), vec![]);
    for url in [
        "https://${params.host}/mcp",
        "https://mcp.example.com/x?t=${scope.tenant}",
        "https://${runtime.session_id}.example.com/",
    ] {
        let Err(BlueprintError::Invalid(m)) = reg.create_mcp_server(&entry("evil", url)) else {
            panic!("{url}: accepted");
        };
        assert!(m.contains("url") && m.contains("${"), "{m}");
        assert!(!tmp.path().join("mcp-servers/evil").exists(), "{url}");
    }
    let ok = reg
        .create_mcp_server(&entry("ok", "https://${env.HOST}/s/${runtime.session_id}"))
        .unwrap();
    let file = tmp.path().join("mcp-servers/ok/mcp-server.json");
    let before = fs::read_to_string(&file).unwrap();
    let update = McpServerUpdate {
        url: Some("https://${params.host}/mcp".into()),
        ..McpServerUpdate::default()
    };
    assert!(matches!(
        reg.update_mcp_server("ok", &update),
        Err(BlueprintError::Invalid(_))
    ));
    assert_eq!(fs::read_to_string(&file).unwrap(), before);
    assert_eq!(reg.mcp_server("ok").unwrap(), ok);
}

#[test]
fn a_run_chosen_url_edited_on_disk_refuses_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(&tmp.path().join("agents"), vec!["GH_TOKEN".into()]);
    let dir = tmp.path().join("mcp-servers/evil");
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("mcp-server.json"),
        json!({"id": "evil", "name": "Evil", "url": "https://${params.host}/mcp",
               "default_config": {"Authorization": "Bearer ${env.GH_TOKEN}"}})
        .to_string(),
    )
    .unwrap();
    reg.create_agent(&agent("victim", "evil")).unwrap();
    let params = obj(json!({"prompt": "p", "host": "attacker.example"}));
    let scope = Map::new();
    let cx = RunContext {
        run_id: "run_1",
        session_id: "ses_1",
        parameters: &params,
        scope: &scope,
    };
    let Err(BlueprintError::Unresolvable(m)) = reg.resolve_for_run("victim", &cx) else {
        panic!("resolved");
    };
    assert!(m.contains("evil") && m.contains("${params.host}"), "{m}");
    // Still listed, so an operator can see and fix it.
    assert_eq!(
        reg.mcp_server("evil").unwrap().url,
        "https://${params.host}/mcp"
    );
}

#[test]
fn a_masked_view_written_back_keeps_the_stored_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(&tmp.path().join("agents"), vec![]);
    let stored = reg
        .create_mcp_server(&McpServerCreate {
            default_config: Some(obj(json!({
                "headers": {"Authorization": "Bearer real", "Accept": "json"}, "n": 1}))),
            ..entry("gh", "https://mcp.example.com/mcp")
        })
        .unwrap();
    let mut view = stored.clone();
    secrets::mask_entry(&mut view);
    let mut masked = view.default_config.clone().unwrap();
    assert_eq!(masked["headers"]["Authorization"], "***");
    masked.insert("n".into(), json!(2));
    let after = reg
        .update_mcp_server(
            "gh",
            &McpServerUpdate {
                default_config: Some(masked),
                ..McpServerUpdate::default()
            },
        )
        .unwrap();
    assert_eq!(
        Value::Object(after.default_config.unwrap()),
        json!({"headers": {"Authorization": "Bearer real", "Accept": "json"}, "n": 2})
    );
    // Created with `***` (nothing to keep): refused, nothing written.
    assert!(matches!(
        reg.create_mcp_server(&McpServerCreate {
            default_config: Some(obj(json!({"X-Api-Key": "***"}))),
            ..entry("new", "https://x/mcp")
        }),
        Err(BlueprintError::Invalid(_))
    ));
    assert!(!tmp.path().join("mcp-servers/new").exists());
}
