//! Auth against real `aof` processes: every live route × every role, keys made offline
//! and online, runner and CLI with keys, secrets absent from every log, OIDC, cookies
//! and Origin, the loopback rule and CORS.
#![allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;
use harness::*;
#[path = "../e2e/mcp_client.rs"]
mod mcp_client;

mod approvals;
mod audit;
mod browser;
mod caps;
mod claude;
mod cookies;
mod doctor;
mod driveby;
mod files;
mod forgery;
mod keys;
mod mcp;
mod oidc;
mod paging;
mod policy_fuzz;
mod routes;
mod scope;
mod secrets_view;

use std::{path::Path, process::Stdio};

use serde_json::{json, Value};
use tokio::process::Command;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Auth on, fast timings, and a lease long enough that the run this test holds (it does
/// not heartbeat) stays claimed on a loaded machine.
fn auth_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = fast_env()
        .into_iter()
        .filter(|(k, _)| k != "AOF_LEASE_TTL")
        .collect();
    e.push(("AOF_LEASE_TTL".into(), "120".into()));
    e.push(("AUTH_ENABLED".into(), "true".into()));
    e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    e
}

/// A coordinator with auth on and one offline key per role.
async fn coordinator(dir: &Path, extra: &[(&str, &str)]) -> (Coordinator, Keys) {
    let data = dir.join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let keys = Keys {
        admin: offline_key(&data, "admin"),
        operator: offline_key(&data, "operator"),
        viewer: offline_key(&data, "viewer"),
        runner: offline_key(&data, "runner"),
    };
    (Coordinator::start(dir, auth_env(extra)).await, keys)
}

struct Keys {
    admin: String,
    operator: String,
    viewer: String,
    runner: String,
}

/// One request with an optional bearer token and extra headers; status and JSON body.
/// Event streams are not read (they never end).
async fn req(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut rb = client().request(method.parse().unwrap(), url);
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let resp = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let json = resp
        .headers()
        .get("content-type")
        .is_some_and(|c| c.to_str().unwrap_or("").starts_with("application/json"));
    if !json {
        return (status, Value::Null);
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Registers a runner with `key`, creates a run with `operator`, and claims it.
/// Returns (runner_id, run as polled).
async fn claim_one(url: &str, key: &str, operator: &str, host: &str) -> (String, Value) {
    let (st, reg) = req(
        "POST",
        &format!("{url}/runner/register"),
        Some(key),
        Some(json!({"hostname": host, "project_dir": "/p", "executor_profile": "echo", "executor": {"type": "autonomous"}})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{reg}");
    let runner_id = reg["runner_id"].as_str().unwrap().to_string();
    let (st, b) = req(
        "POST",
        &format!("{url}/runs"),
        Some(operator),
        Some(json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, poll) = req(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}"),
        Some(key),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{poll}");
    (runner_id, poll["run"].clone())
}

#[track_caller]
fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        // The secret part alone must not appear either (ids are public): an AOF key's
        // part after its last `_`, a JWT's signature. (A JWT's base64url text has `_`s of
        // its own: split there, the "secret" could be a few characters that any log
        // contains by chance.)
        let tail = match s.matches('.').count() {
            2 => s.rsplit('.').next().unwrap(),
            _ => s.rsplit('_').next().unwrap(),
        };
        assert!(
            tail.len() >= 16,
            "{what}: {tail:?} is too short to look for"
        );
        assert!(
            !text.contains(s) && !text.contains(tail),
            "{what} contains a secret"
        );
    }
}

async fn aof(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("AOF_API_KEY")
        .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
