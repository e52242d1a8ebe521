//! Blueprints and MCP settings may hold credentials: every folder the registry creates
//! is 0700 and every file it writes 0600, whatever the umask (the test process runs
//! with the usual 022).

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use serde_json::{json, Map, Value};

use aof_blueprints::Registry;
use aof_wire::agents::{AgentCreate, AgentUpdate, CapabilityCreate, McpServerCreate};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn registry_writes_private_folders_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reg = Registry::new(&root.join("agents"), vec![]);
    reg.create_mcp_server(&McpServerCreate {
        id: "files".into(),
        name: "Files".into(),
        url: "http://x".into(),
        description: None,
        config_schema: None,
        default_config: Some(obj(json!({"token": "secret"}))),
    })
    .unwrap();
    reg.create_capability(&CapabilityCreate {
        name: "style".into(),
        description: "House style".into(),
        text: Some("Use tabs.".into()),
        ..Default::default()
    })
    .unwrap();
    reg.create_agent(&AgentCreate {
        name: "coder".into(),
        description: "Writes code".into(),
        system_prompt: Some("Be brief.".into()),
        mcp_servers: Some(obj(json!({"fs": {"ref": "files"}}))),
        ..Default::default()
    })
    .unwrap();

    // An agent file left 0644 by an older version is 0600 once rewritten.
    let prompt = root.join("agents/coder/agent.system-prompt.md");
    fs::set_permissions(&prompt, fs::Permissions::from_mode(0o644)).unwrap();
    reg.update_agent(
        "coder",
        &AgentUpdate {
            system_prompt: Some("Be briefer.".into()),
            ..Default::default()
        },
    )
    .unwrap();

    let dirs = [
        "",
        "agents",
        "agents/coder",
        "capabilities",
        "capabilities/style",
        "mcp-servers",
        "mcp-servers/files",
    ];
    for d in dirs {
        assert_eq!(mode(&root.join(d)), 0o700, "{d}/");
    }
    let mut files = 0;
    for d in &dirs[1..] {
        for e in fs::read_dir(root.join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    // agent.json, agent.system-prompt.md, agent.mcp.json, capability.json + text,
    // mcp-server's json: every one checked, none left behind as a temp file.
    assert_eq!(files, 6);
}
