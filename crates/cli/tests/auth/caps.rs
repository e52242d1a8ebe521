//! Caps per credential on long-lived requests: one key cannot hold more SSE streams,
//! runner long-polls or waiting MCP calls than its cap (429 / tool error beyond), other
//! credentials are still served, and a slot comes back when its request ends.

use serde_json::{json, Value};

use super::*;
use crate::mcp_client::*;

/// Opens `GET /sse/sessions` with `key`; the response (kept open) or the refusal.
async fn open_stream(url: &str, key: &str) -> Result<reqwest::Response, (u16, String, Value)> {
    let resp = client()
        .get(format!("{url}/sse/sessions"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    if resp.status() == 200 {
        return Ok(resp);
    }
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Err((status, retry, resp.json().await.unwrap_or(Value::Null)))
}

/// A refusal for being over a cap: 429, the code, a numeric `Retry-After`.
#[track_caller]
fn assert_capped(got: (u16, String, Value), code: &str) {
    let (status, retry, body) = got;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        retry.parse::<u64>().is_ok_and(|s| s >= 1),
        "Retry-After {retry:?}"
    );
}

/// Everything a refused request could have changed: runs and sessions as listed.
async fn snapshot(url: &str, key: &str) -> (Value, Value) {
    let (_, runs) = req("GET", &format!("{url}/runs"), Some(key), None, &[]).await;
    let (_, sessions) = req("GET", &format!("{url}/sessions"), Some(key), None, &[]).await;
    (runs, sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_cannot_hold_more_sse_streams_than_its_cap() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[("AOF_MAX_STREAMS_PER_KEY", "2")]).await;
    let before = snapshot(&c.url, &keys.admin).await;

    let first = open_stream(&c.url, &keys.viewer).await.unwrap();
    let _second = open_stream(&c.url, &keys.viewer).await.unwrap();
    // The attack: a third stream, and more.
    for _ in 0..3 {
        let refused = open_stream(&c.url, &keys.viewer).await.unwrap_err();
        assert_capped(refused, "too_many_streams");
    }
    // Another key has its own count.
    let _op = open_stream(&c.url, &keys.operator).await.unwrap();
    let _op2 = open_stream(&c.url, &keys.operator).await.unwrap();

    // Closing a stream gives its slot back; the count stays exact.
    drop(first);
    let _third = wait_for("a slot freed by the closed stream", || async {
        open_stream(&c.url, &keys.viewer).await.ok()
    })
    .await;
    assert_capped(
        open_stream(&c.url, &keys.viewer).await.unwrap_err(),
        "too_many_streams",
    );
    assert_eq!(snapshot(&c.url, &keys.admin).await, before);
}

/// Registers `host` with `key`, offering `tags`; the runner id.
async fn register_as(url: &str, key: &str, host: &str, tags: &[&str]) -> String {
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/register"),
        Some(key),
        Some(
            json!({"hostname": host, "project_dir": "/p", "executor_profile": "echo",
                    "executor": {"type": "autonomous"}, "tags": tags}),
        ),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    b["runner_id"].as_str().unwrap().to_string()
}

/// One long-poll: status, `Retry-After`, body.
async fn poll_as(url: &str, key: &str, runner: &str) -> (u16, String, Value) {
    let resp = client()
        .get(format!("{url}/runner/runs?runner_id={runner}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

async fn polls_waiting(url: &str) -> i64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("aof_runner_polls_waiting "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

async fn parked(url: &str, n: i64) {
    wait_for(&format!("{n} parked polls"), || async {
        (polls_waiting(url).await == n).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_runner_key_cannot_hold_more_long_polls_than_its_cap() {
    let dir = tempdir();
    // Polls never time out during the test: only an answer or a disconnect ends one.
    let (c, keys) = coordinator(
        dir.path(),
        &[
            ("AOF_MAX_POLLS_PER_KEY", "2"),
            ("RUNNER_POLL_TIMEOUT", "600"),
        ],
    )
    .await;
    let url = c.url.clone();
    let other_key = offline_key(&c.data_dir, "runner");
    let key = keys.runner.clone();
    // A fleet sharing one key, and a runner with its own key.
    let h1 = register_as(&url, &key, "h1", &[]).await;
    let h2 = register_as(&url, &key, "h2", &[]).await;
    let h3 = register_as(&url, &key, "h3", &["three"]).await;
    let h4 = register_as(&url, &other_key, "h4", &[]).await;

    let spawn_poll = |key: &str, runner: &str| {
        let (url, key, runner) = (url.clone(), key.to_string(), runner.to_string());
        tokio::spawn(async move { poll_as(&url, &key, &runner).await })
    };
    let p1 = spawn_poll(&key, &h1);
    let _p2 = spawn_poll(&key, &h2);
    parked(&url, 2).await;

    // A run only h3 may take: a refused poll must not claim it.
    let (st, run) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&keys.operator),
        Some(
            json!({"type": "start_session", "parameters": {"prompt": "p"},
                    "additional_demands": {"tags": ["three"]}}),
        ),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{run}");
    let run_id = run["run_id"].as_str().unwrap().to_string();
    let before = snapshot(&url, &keys.admin).await;
    for _ in 0..3 {
        assert_capped(poll_as(&url, &key, &h3).await, "too_many_polls");
    }
    assert_eq!(snapshot(&url, &keys.admin).await, before, "nothing claimed");

    // Another key is served (its poll parks).
    let _p4 = spawn_poll(&other_key, &h4);
    parked(&url, 3).await;

    // A runner that goes away gives its slot back: h3 then gets in and claims its run.
    p1.abort();
    let (_, _, got) = wait_for("h3's poll to be let in", || async {
        let r = poll_as(&url, &key, &h3).await;
        (r.0 == 200).then_some(r)
    })
    .await;
    assert_eq!(got["run"]["run_id"], run_id.as_str(), "{got}");
    // h3's answered poll gave its slot back too: the key holds h2 plus one more, no more.
    let _p1 = spawn_poll(&key, &h1);
    parked(&url, 3).await;
    assert_capped(poll_as(&url, &key, &h3).await, "too_many_polls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_cannot_hold_more_waiting_mcp_calls_than_its_cap() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[("AOF_MAX_MCP_WAITS_PER_KEY", "1")]).await;
    let url = c.url.clone();
    // The agent of a claimed run, with its session token. Nothing polls after this, so
    // the children it starts stay pending and a `sync` start waits.
    let (_, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let me = run["session_id"].as_str().unwrap().to_string();
    let token = run["session_token"].as_str().unwrap().to_string();
    let children = |url: String, admin: String, me: String| async move {
        let (_, b) = req("GET", &format!("{url}/sessions"), Some(&admin), None, &[]).await;
        b["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["parent_session_id"] == me.as_str())
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect::<Vec<String>>()
    };
    let spawn_sync = |bearer: String, prompt: &'static str| {
        let url = url.clone();
        tokio::spawn(async move {
            let mcp = connect_with(&url, Some(&bearer), None).await;
            let r = tool(
                &mcp,
                "start_agent_session",
                json!({"prompt": prompt, "mode": "sync"}),
            )
            .await;
            let _ = mcp.cancel().await;
            r
        })
    };
    let first = spawn_sync(token.clone(), "first");
    let child = wait_for("the first child", || async {
        children(url.clone(), keys.admin.clone(), me.clone())
            .await
            .pop()
    })
    .await;

    // The attack: a second waiting call from the same session (another MCP session of
    // the same token) is refused, and starts nothing.
    let before = snapshot(&url, &keys.admin).await;
    let mcp = connect_with(&url, Some(&token), None).await;
    let (err, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "second", "mode": "sync"}),
    )
    .await;
    assert!(err, "{v}");
    assert_eq!(v["code"], "too_many_waits", "{v}");
    assert_eq!(snapshot(&url, &keys.admin).await, before, "nothing started");
    // Not waiting is not capped.
    let (err, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "async", "mode": "async_poll"}),
    )
    .await;
    assert!(!err, "{v}");
    // Another credential waits on its own count.
    let _op = spawn_sync(keys.operator.clone(), "operator");
    wait_for("the operator's child", || async {
        let (_, b) = req(
            "GET",
            &format!("{url}/sessions"),
            Some(&keys.admin),
            None,
            &[],
        )
        .await;
        b["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["parent_session_id"].is_null() && s["session_id"] != me.as_str())
            .then_some(())
    })
    .await;

    // The first child ends: its waiting call answers and gives the slot back.
    let (st, b) = req(
        "POST",
        &format!("{url}/sessions/{child}/stop"),
        Some(&keys.operator),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (err, v) = tokio::time::timeout(PATIENCE, first)
        .await
        .expect("the first call answers once its child ended")
        .unwrap();
    assert!(!err, "{v}");
    assert_eq!(v["session_id"], child.as_str(), "{v}");
    let _again = spawn_sync(token.clone(), "again");
    wait_for("a new waiting call after the slot came back", || async {
        let n = children(url.clone(), keys.admin.clone(), me.clone())
            .await
            .len();
        (n == 3).then_some(())
    })
    .await;
    mcp.cancel().await.unwrap();
}
