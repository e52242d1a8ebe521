//! What responses reveal, and where secrets may go: MCP config secrets are `***` for
//! viewers (a masked view sent back never overwrites them), `/ready` shows no internal
//! error text, and an MCP server `url` cannot be steered by whoever creates a run.

use serde_json::{json, Value};

use super::*;

const AUTH: &str = "Bearer ghp_headersecret0123456789";
const API_KEY: &str = "k_apikeysecret0123456789";
const ENV_TOKEN: &str = "ghp_envsecret0123456789";
const AGENT_SECRET: &str = "Bearer agentsecret0123456789";

async fn get(url: &str, key: &str) -> Value {
    let (st, b) = req("GET", url, Some(key), None, &[]).await;
    assert_eq!(st, 200, "{url}: {b}");
    b
}

#[track_caller]
fn assert_err(got: (u16, Value), status: u16, code: &str) -> Value {
    let (st, b) = got;
    assert_eq!((st, b["code"].as_str()), (status, Some(code)), "{b}");
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_config_secrets_are_masked_for_viewers_and_a_masked_view_never_overwrites_them() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[]).await;
    let u = &c.url;
    let (st, b) = req(
        "POST",
        &format!("{u}/mcp-servers"),
        Some(&keys.operator),
        Some(json!({"id": "gh", "name": "GitHub", "url": "https://mcp.example.com/mcp",
            "config_schema": {"X-Tenant": {"type": "string", "sensitive": true, "default": "tenant-secret-0123456789"}},
            "default_config": {"headers": {"Authorization": AUTH, "Accept": "json"},
                               "X-Api-Key": API_KEY, "timeout": 30,
                               "env": {"GITHUB_TOKEN": ENV_TOKEN}, "X-Tenant": "t-1"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = req(
        "POST",
        &format!("{u}/agents"),
        Some(&keys.operator),
        Some(json!({"name": "coder", "description": "codes",
            "mcp_servers": {"gh": {"ref": "gh", "config": {"Authorization": AGENT_SECRET, "X-Repo": "aof"}}}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let secrets = [
        AUTH,
        API_KEY,
        ENV_TOKEN,
        AGENT_SECRET,
        "tenant-secret-0123456789",
    ];

    // A viewer: every secret-looking value is `***`; the rest is as stored.
    let one = get(&format!("{u}/mcp-servers/gh"), &keys.viewer).await;
    let list = get(&format!("{u}/mcp-servers"), &keys.viewer).await;
    assert_eq!(list[0], one);
    assert_eq!(
        one["default_config"],
        json!({"headers": {"Authorization": "***", "Accept": "json"}, "X-Api-Key": "***",
               "timeout": 30, "env": {"GITHUB_TOKEN": "***"}, "X-Tenant": "***"})
    );
    assert_eq!(one["config_schema"]["X-Tenant"]["default"], "***");
    let agent = get(&format!("{u}/agents/coder"), &keys.viewer).await;
    assert_eq!(
        agent["mcp_servers"]["gh"]["config"],
        json!({"Authorization": "***", "X-Repo": "aof"})
    );
    let agents = get(&format!("{u}/agents"), &keys.viewer).await;
    let raw = get(&format!("{u}/agents/coder?raw=true"), &keys.viewer).await;
    for (what, v) in [
        ("entry", &one),
        ("list", &list),
        ("agent", &agent),
        ("agents", &agents),
        ("raw", &raw),
    ] {
        for s in secrets {
            assert!(!v.to_string().contains(s), "{what} shows a secret: {v}");
        }
    }
    // Operators (who edit them) and admins read the real values.
    for k in [&keys.operator, &keys.admin] {
        let e = get(&format!("{u}/mcp-servers/gh"), k).await;
        assert_eq!(e["default_config"]["headers"]["Authorization"], AUTH);
        assert_eq!(e["default_config"]["env"]["GITHUB_TOKEN"], ENV_TOKEN);
        let a = get(&format!("{u}/agents/coder"), k).await;
        assert_eq!(
            a["mcp_servers"]["gh"]["config"]["Authorization"],
            AGENT_SECRET
        );
    }
    let stored = get(&format!("{u}/mcp-servers/gh"), &keys.admin).await;

    // The attack: the masked view PUT back (as an operator would after copying it).
    // The secrets are kept, the rest of the edit applies.
    let mut view = one.clone();
    view["name"] = json!("GitHub (edited)");
    view["default_config"]["timeout"] = json!(60);
    let body = json!({"name": view["name"], "default_config": view["default_config"],
                      "config_schema": view["config_schema"]});
    let (st, b) = req(
        "PUT",
        &format!("{u}/mcp-servers/gh"),
        Some(&keys.operator),
        Some(body),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let after = get(&format!("{u}/mcp-servers/gh"), &keys.admin).await;
    let mut want = stored.clone();
    want["name"] = json!("GitHub (edited)");
    want["default_config"]["timeout"] = json!(60);
    for t in ["created_at", "updated_at"] {
        want[t] = after[t].clone();
    }
    assert_eq!(after, want);

    // `***` where nothing is stored (a new secret) is refused, and nothing changes.
    let (st, b) = req(
        "PUT",
        &format!("{u}/mcp-servers/gh"),
        Some(&keys.operator),
        Some(json!({"default_config": {"headers": {"Authorization": "***", "X-Token": "***"}}})),
        &[],
    )
    .await;
    let b = assert_err((st, b), 400, "invalid_blueprint");
    assert!(
        b["detail"]
            .as_str()
            .unwrap()
            .contains("default_config.headers.X-Token"),
        "{b}"
    );
    assert_eq!(
        get(&format!("{u}/mcp-servers/gh"), &keys.admin).await,
        after
    );
    // Same for an agent's MCP config (nothing kept there: refused).
    let (st, b) = req(
        "PATCH",
        &format!("{u}/agents/coder"),
        Some(&keys.operator),
        Some(json!({"mcp_servers": {"gh": {"ref": "gh", "config": {"Authorization": "***"}}}})),
        &[],
    )
    .await;
    assert_err((st, b), 400, "invalid_blueprint");
    let a = get(&format!("{u}/agents/coder"), &keys.admin).await;
    assert_eq!(
        a["mcp_servers"]["gh"]["config"]["Authorization"],
        AGENT_SECRET
    );
    // And a viewer cannot write at all.
    let (st, _) = req(
        "PUT",
        &format!("{u}/mcp-servers/gh"),
        Some(&keys.viewer),
        Some(json!({"name": "x"})),
        &[],
    )
    .await;
    assert_eq!(st, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_url_a_run_could_fill_in_is_refused_at_write_and_at_run() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[]).await;
    let u = &c.url;
    let op = Some(keys.operator.as_str());
    let (st, b) = req(
        "POST",
        &format!("{u}/mcp-servers"),
        op,
        Some(json!({"id": "ok", "name": "OK", "url": "https://${env.MCP_HOST}/s/${runtime.session_id}"})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let before = get(&format!("{u}/mcp-servers"), &keys.admin).await;

    // The attack: headers carrying `${env.*}` secrets sent to a host the run names.
    for url in [
        "https://${params.host}/mcp",
        "https://mcp.example.com/${scope.path}",
        "https://${runtime.session_id}.example.com/mcp",
    ] {
        let (st, b) = req(
            "POST",
            &format!("{u}/mcp-servers"),
            op,
            Some(json!({"id": "evil", "name": "Evil", "url": url,
                        "default_config": {"Authorization": "Bearer ${env.GITHUB_TOKEN}"}})),
            &[],
        )
        .await;
        let b = assert_err((st, b), 400, "invalid_blueprint");
        assert!(b["detail"].as_str().unwrap().contains("url"), "{b}");
        let (st, b) = req(
            "PUT",
            &format!("{u}/mcp-servers/ok"),
            op,
            Some(json!({"url": url})),
            &[],
        )
        .await;
        assert_err((st, b), 400, "invalid_blueprint");
    }
    assert_eq!(get(&format!("{u}/mcp-servers"), &keys.admin).await, before);

    // A registry file edited on disk: a run using it is refused, nothing is created.
    let entry = c.data_dir.join("mcp-servers/evil");
    std::fs::create_dir_all(&entry).unwrap();
    std::fs::write(
        entry.join("mcp-server.json"),
        json!({"id": "evil", "name": "Evil", "url": "https://${params.host}/mcp",
               "default_config": {"Authorization": "Bearer ${env.GITHUB_TOKEN}"}})
        .to_string(),
    )
    .unwrap();
    let (st, b) = req(
        "POST",
        &format!("{u}/agents"),
        op,
        Some(json!({"name": "victim", "description": "uses evil",
                    "parameters_schema": {"type": "object", "properties": {"prompt": {"type": "string"}, "host": {"type": "string"}}},
                    "mcp_servers": {"evil": {"ref": "evil"}}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let runs = get(&format!("{u}/runs"), &keys.admin).await;
    let (st, b) = req(
        "POST",
        &format!("{u}/runs"),
        op,
        Some(json!({"type": "start_session", "agent_name": "victim",
                    "parameters": {"prompt": "p", "host": "attacker.example"}})),
        &[],
    )
    .await;
    let b = assert_err((st, b), 422, "blueprint_unresolvable");
    assert!(
        b["detail"].as_str().unwrap().contains("${params.host}"),
        "{b}"
    );
    assert_eq!(get(&format!("{u}/runs"), &keys.admin).await, runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_answers_a_failed_store_without_its_error_text() {
    // Deterministic failure: this coordinator's own PostgreSQL database is dropped under
    // it (SQLite's `SELECT 1` never touches the file). Needs a PostgreSQL server.
    let Some(base) = std::env::var("AOF_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return;
    };
    let dir = tempdir();
    let data = dir.path().join("coord");
    let db_url = if postgres_mode() {
        store_env(&data).remove(0).1
    } else {
        aof_store_postgres::testing::fresh_database(&base)
            .await
            .unwrap()
    };
    let (c, _keys) = coordinator(dir.path(), &[("AOF_DATABASE_URL", &db_url)]).await;
    let (st, b) = req("GET", &format!("{}/ready", c.url), None, None, &[]).await;
    assert_eq!((st, b), (200, json!({"status": "ready"})));

    let db = db_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let out = std::process::Command::new("psql")
        .arg(&base)
        .args(["-v", "ON_ERROR_STOP=1", "-c"])
        .arg(format!("DROP DATABASE \"{db}\" WITH (FORCE)"))
        .output()
        .expect("psql");
    assert!(out.status.success(), "{out:?}");

    let (st, b) = wait_for("/ready to see the store gone", || async {
        let r = req("GET", &format!("{}/ready", c.url), None, None, &[]).await;
        (r.0 != 200).then_some(r)
    })
    .await;
    assert_eq!(st, 503, "{b}");
    assert_eq!(
        b,
        json!({"status": "unavailable", "detail": "The store is not reachable", "code": "unavailable"})
    );
    // The cause is in the log, for the operator.
    wait_for("the cause in the log", || async {
        c.log()
            .lines()
            .any(|l| l.contains("/ready: store not reachable") && l.contains("error"))
            .then_some(())
    })
    .await;
}
