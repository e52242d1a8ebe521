//! `/mcp` with auth on: who may connect, and a session token acting only as its session
//! (children it starts are its own; it cannot see, steer or spoof others).

use serde_json::json;

use super::*;
use crate::mcp_client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_needs_a_credential_and_holds_session_tokens_to_their_children() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[]).await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let accept = [("accept", "application/json, text/event-stream")];
    let url = format!("{}/mcp", c.url);
    let (st, b) = req("POST", &url, None, Some(init.clone()), &accept).await;
    assert_eq!(st, 401, "{b}");
    assert_eq!(b["code"], "unauthenticated", "{b}");
    for k in [&keys.viewer, &keys.runner] {
        let (st, b) = req("POST", &url, Some(k), Some(init.clone()), &accept).await;
        assert_eq!(st, 403, "{b}");
    }

    // A claimed run's session token: the agent inside that run.
    let (_, run) = claim_one(&c.url, &keys.runner, &keys.operator, "h1").await;
    let me = run["session_id"].as_str().unwrap().to_string();
    let token = run["session_token"].as_str().unwrap().to_string();
    // Another session the token must not reach.
    let (_, other) = req(
        "POST",
        &format!("{}/runs", c.url),
        Some(&keys.operator),
        Some(json!({"type": "start_session", "parameters": {"prompt": "other"}})),
        &[],
    )
    .await;
    let other = other["session_id"].as_str().unwrap().to_string();

    // The spoofed header is ignored: the token decides who the caller is.
    let mcp = connect_with(&c.url, Some(&token), Some(&other)).await;
    let (err, v) = tool(
        &mcp,
        "start_agent_session",
        json!({"prompt": "child", "mode": "async_poll"}),
    )
    .await;
    assert!(!err, "{v}");
    let child = v["session_id"].as_str().unwrap().to_string();
    let (_, s) = req(
        "GET",
        &format!("{}/sessions/{child}", c.url),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(s["session"]["parent_session_id"], me.as_str(), "{s}");

    let (_, v) = tool(&mcp, "list_agent_sessions", json!({})).await;
    let ids: Vec<&str> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![child.as_str()]);
    let (err, v) = tool(&mcp, "list_agent_sessions", json!({"all": true})).await;
    assert!(err);
    assert_eq!(v["code"], "forbidden", "{v}");
    let (_, v) = tool(
        &mcp,
        "get_agent_session_status",
        json!({"session_id": other}),
    )
    .await;
    assert_eq!(v["status"], "not_existent", "{v}");
    for t in ["get_agent_session_result", "stop_agent_session"] {
        let (err, v) = tool(&mcp, t, json!({"session_id": other})).await;
        assert!(err, "{t}: {v}");
        assert_eq!(v["code"], "session_not_found", "{t}: {v}");
    }
    let (err, v) = tool(
        &mcp,
        "resume_agent_session",
        json!({"session_id": other, "prompt": "x"}),
    )
    .await;
    assert!(err);
    assert_eq!(v["code"], "session_not_found", "{v}");
    mcp.cancel().await.unwrap();

    // An operator key sees everything.
    let mcp = connect_with(&c.url, Some(&keys.operator), None).await;
    let (err, v) = tool(&mcp, "list_agent_sessions", json!({"all": true})).await;
    assert!(!err, "{v}");
    assert!(v["sessions"].as_array().unwrap().len() >= 3, "{v}");
    mcp.cancel().await.unwrap();
}
