//! File modes on disk: the data dir 0700, the SQLite database and its -wal/-shm 0600,
//! blueprint folders 0700 and files 0600 — under the usual umask 022, which alone
//! would make them 0755/0644 (readable by every user on the host).

use std::{os::unix::fs::PermissionsExt, path::Path, process::Stdio};

use serde_json::json;
use tokio::process::Command;

use super::*;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_database_and_blueprints_are_private() {
    let dir = tempdir();
    let data = dir.path().join("coord");
    // As an older version left it: a data dir open to all (0755).
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let addr_file = dir.path().join("addr");
    let log = std::fs::File::create(dir.path().join("coordinator.log")).unwrap();
    // `umask 022` set in the child itself, whatever the test runner's umask is.
    let _child = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 022 && exec "$0" "$@""#)
        .arg(BIN)
        .args(["coordinator", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .arg("--addr-file")
        .arg(&addr_file)
        .envs(store_env(&data))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr = wait_for("address file", || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    let url = format!("http://{}", addr.trim());
    wait_healthy(&url).await;

    // Blueprints with what a secret could hide in: an MCP server's default config, an
    // agent's system prompt and MCP settings, a capability's text.
    let (st, b) = call(
        "POST",
        &format!("{url}/mcp-servers"),
        Some(
            json!({"id": "files", "name": "Files", "url": "http://127.0.0.1:1/mcp",
                    "default_config": {"token": "not-for-others"}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call(
        "POST",
        &format!("{url}/capabilities"),
        Some(json!({"name": "style", "description": "d", "text": "Use tabs."})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call(
        "POST",
        &format!("{url}/agents"),
        Some(
            json!({"name": "coder", "description": "d", "system_prompt": "Be brief.",
                    "mcp_servers": {"fs": {"ref": "files"}}, "capabilities": ["style"]}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{b}");

    if !postgres_mode() {
        // The store's directory (tightened) and the database, with its WAL and shared
        // memory while the coordinator has it open.
        assert_eq!(mode(&data), 0o700, "data dir");
        for f in [
            "observability.db",
            "observability.db-wal",
            "observability.db-shm",
        ] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    let dirs = [
        "agents",
        "agents/coder",
        "capabilities",
        "capabilities/style",
        "mcp-servers",
        "mcp-servers/files",
    ];
    let mut files = Vec::new();
    for d in dirs {
        assert_eq!(mode(&data.join(d)), 0o700, "{d}/");
        for e in std::fs::read_dir(data.join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                files.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    files.sort();
    assert_eq!(
        files,
        [
            "agent.json",
            "agent.mcp.json",
            "agent.system-prompt.md",
            "capability.json",
            "capability.text.md",
            "mcp-server.json"
        ],
        "every blueprint file was checked"
    );
}
