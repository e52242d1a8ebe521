//! Approvals with auth on (issue #25): only operators and admins decide; viewers, runner
//! keys, the agent's own session token and forged keys are refused and change nothing;
//! a runner asks only under its own lease; the decider is recorded from the credential
//! and audited. The MCP `approval_prompt` (the Claude CLI's permission prompt) acts for
//! its token's run: listed tools wait for a person, others are allowed at once.

use serde_json::json;

use super::*;
use crate::mcp_client::*;

/// An agent whose `Bash` calls need approval.
async fn guarded_agent(url: &str, operator: &str) {
    let (st, b) = req(
        "POST",
        &format!("{url}/agents"),
        Some(operator),
        Some(json!({"name": "guarded", "description": "asks before Bash",
                    "approval": {"tools": ["Bash", "mcp__github__*"], "timeout_seconds": 600}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
}

/// Registers a runner with the runner key, starts a `guarded` run, claims it and
/// reports it started. Returns the run as polled.
async fn running(url: &str, keys: &Keys) -> Value {
    let (st, reg) = req(
        "POST",
        &format!("{url}/runner/register"),
        Some(&keys.runner),
        Some(json!({"hostname": "apr", "project_dir": "/p", "executor_profile": "echo", "executor": {"type": "autonomous"}})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{reg}");
    let runner_id = reg["runner_id"].as_str().unwrap().to_string();
    let (st, b) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&keys.operator),
        Some(json!({"type": "start_session", "agent_name": "guarded", "parameters": {"prompt": "p"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, poll) = req(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}"),
        Some(&keys.runner),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{poll}");
    let run = poll["run"].clone();
    let rid = run["run_id"].as_str().unwrap();
    let lease = run["lease_token"].as_str().unwrap();
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/runs/{rid}/started"),
        Some(&keys.runner),
        Some(json!({"runner_id": runner_id})),
        &[("x-aof-lease-token", lease)],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    run
}

async fn pending_of(url: &str, viewer: &str, sid: &str) -> Vec<Value> {
    let (st, b) = req(
        "GET",
        &format!("{url}/approvals?session_id={sid}&status=pending"),
        Some(viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    b["approvals"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_only_operators_decide_and_runners_ask_under_their_lease() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[]).await;
    let url = c.url.clone();
    guarded_agent(&url, &keys.operator).await;
    let run = running(&url, &keys).await;
    let sid = run["session_id"].as_str().unwrap();
    let rid = run["run_id"].as_str().unwrap();
    let lease = run["lease_token"].as_str().unwrap();
    let token = run["session_token"].as_str().unwrap();
    let ask = json!({"run_id": rid, "tool_name": "Bash", "tool_input": {"command": "touch /tmp/f"}, "request_key": "toolu_1"});
    let asked = format!("{url}/sessions/{sid}/approvals");
    let lease_h = [("x-aof-lease-token", lease), ("x-aof-run-id", rid)];

    // Who may not ask: a viewer, an operator, the session token, a runner key without
    // the lease, another runner key with the stolen lease.
    for (who, k) in [("viewer", &keys.viewer), ("operator", &keys.operator)] {
        let (st, b) = req("POST", &asked, Some(k), Some(ask.clone()), &lease_h).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (403, Some("forbidden")),
            "{who}: {b}"
        );
    }
    let (st, b) = req("POST", &asked, Some(token), Some(ask.clone()), &lease_h).await;
    assert_eq!(st, 403, "the agent's session token: {b}");
    let (st, b) = req("POST", &asked, Some(&keys.runner), Some(ask.clone()), &[]).await;
    assert_eq!(st, 403, "a runner key without the lease: {b}");
    let (st, other) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "runner"})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{other}");
    let other = other["key"].as_str().unwrap();
    let (st, b) = req("POST", &asked, Some(other), Some(ask.clone()), &lease_h).await;
    assert!(
        st == 403 || st == 409,
        "another runner key with this lease: {st} {b}"
    );
    assert!(
        pending_of(&url, &keys.viewer, sid).await.is_empty(),
        "nothing asked yet"
    );

    // The holder asks; the coordinator took the timeout from the blueprint.
    let (st, a) = req(
        "POST",
        &asked,
        Some(&keys.runner),
        Some(ask.clone()),
        &lease_h,
    )
    .await;
    assert_eq!(st, 201, "{a}");
    let id = a["approval_id"].as_str().unwrap().to_string();
    let (created, expires) = (
        a["created_at"].as_str().unwrap(),
        a["expires_at"].as_str().unwrap(),
    );
    let secs = chrono::DateTime::parse_from_rfc3339(expires).unwrap()
        - chrono::DateTime::parse_from_rfc3339(created).unwrap();
    assert_eq!(secs.num_seconds(), 600, "the blueprint's timeout_seconds");
    // The holder reads it through its session's path; viewers through /approvals.
    let (st, b) = req(
        "GET",
        &format!("{asked}/{id}"),
        Some(&keys.runner),
        None,
        &lease_h,
    )
    .await;
    assert_eq!((st, b["status"].as_str()), (200, Some("pending")), "{b}");
    let (st, _) = req(
        "GET",
        &format!("{url}/approvals/{id}"),
        Some(&keys.runner),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 403, "a runner key does not browse approvals");

    // Who may not decide: viewer, runner key, the agent's own session token, forged.
    let decide = format!("{url}/approvals/{id}");
    let approve = json!({"decision": "approve", "message": "self-approved"});
    for (who, k, want) in [
        ("viewer", keys.viewer.as_str(), 403),
        ("runner", keys.runner.as_str(), 403),
        ("session token", token, 403),
        (
            "forged key",
            "aof_000000000000_0000000000000000000000000000",
            401,
        ),
    ] {
        let (st, b) = req("POST", &decide, Some(k), Some(approve.clone()), &[]).await;
        assert_eq!(st, want, "{who}: {b}");
    }
    let (st, b) = req("POST", &decide, None, Some(approve.clone()), &[]).await;
    assert_eq!(st, 401, "no credential: {b}");
    // A browser page of another origin, with an operator's key, is refused too.
    let (st, b) = req(
        "POST",
        &decide,
        Some(&keys.operator),
        Some(approve.clone()),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("origin_not_allowed")),
        "{b}"
    );
    assert_eq!(
        pending_of(&url, &keys.viewer, sid).await.len(),
        1,
        "still pending"
    );
    let (_, evs) = req(
        "GET",
        &format!("{url}/sessions/{sid}/events"),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    assert!(!evs.to_string().contains("approval_resolved"), "{evs}");

    // An operator decides; the record names the key, never its secret.
    let (_, me) = req(
        "GET",
        &format!("{url}/auth/me"),
        Some(&keys.operator),
        None,
        &[],
    )
    .await;
    let op_id = me["subject"].as_str().unwrap();
    let (st, d) = req(
        "POST",
        &decide,
        Some(&keys.operator),
        Some(json!({"decision": "deny", "message": "not on prod"})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "denied");
    assert_eq!(d["decided_by"], format!("key:{op_id}"));
    assert_no_secret("the decision", &d.to_string(), &[&keys.operator]);
    let (st, b) = req("POST", &decide, Some(&keys.admin), Some(approve), &[]).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("approval_decided")),
        "{b}"
    );

    // Audited: the operator's decision and the refusals.
    let (st, log) = req(
        "GET",
        &format!("{url}/audit?limit=500"),
        Some(&keys.admin),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{log}");
    let entries = log["entries"].as_array().unwrap();
    let decisions: Vec<(u64, &str)> = entries
        .iter()
        .filter(|e| e["action"] == "approval.decide" && e["target"] == id.as_str())
        .map(|e| {
            (
                e["status"].as_u64().unwrap(),
                e["actor_kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(decisions.contains(&(200, "key")), "{decisions:?}");
    assert!(decisions.contains(&(409, "key")), "{decisions:?}");
    assert!(
        decisions.iter().filter(|(s, _)| *s == 403).count() >= 3,
        "{decisions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_prompt_tool_waits_for_listed_tools_and_acts_for_its_own_run() {
    let dir = tempdir();
    let (c, keys) = coordinator(dir.path(), &[]).await;
    let url = c.url.clone();
    guarded_agent(&url, &keys.operator).await;
    let run = running(&url, &keys).await;
    let sid = run["session_id"].as_str().unwrap().to_string();
    let token = run["session_token"].as_str().unwrap().to_string();
    let mcp = connect_with(&url, Some(&token), None).await;

    // Not listed: allowed at once, input unchanged, nothing stored.
    let (err, v) = tool(&mcp, "approval_prompt", json!({"tool_name": "Read", "input": {"file_path": "/etc/hosts"}, "tool_use_id": "toolu_r"})).await;
    assert!(!err, "{v}");
    assert_eq!(
        v,
        json!({"behavior": "allow", "updatedInput": {"file_path": "/etc/hosts"}})
    );
    assert!(pending_of(&url, &keys.viewer, &sid).await.is_empty());

    // Listed: waits for a person. Approved with an edited input.
    let waiting = {
        let url = url.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mcp = connect_with(&url, Some(&token), None).await;
            tool(&mcp, "approval_prompt", json!({"tool_name": "Bash", "input": {"command": "rm -rf /"}, "tool_use_id": "toolu_b"})).await
        })
    };
    let mut pending = Vec::new();
    for _ in 0..200 {
        pending = pending_of(&url, &keys.viewer, &sid).await;
        if !pending.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(pending.len(), 1, "the Bash call waits");
    assert_eq!(pending[0]["tool_input"]["command"], "rm -rf /");
    let id = pending[0]["approval_id"].as_str().unwrap();
    // The agent cannot approve itself, through REST or by asking its own tool again.
    let (st, _) = req(
        "POST",
        &format!("{url}/approvals/{id}"),
        Some(&token),
        Some(json!({"decision": "approve"})),
        &[],
    )
    .await;
    assert_eq!(st, 403);
    let (st, s) = req(
        "GET",
        &format!("{url}/sessions/{sid}/status"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (st, s["status"].as_str()),
        (200, Some("waiting_approval")),
        "{s}"
    );
    let (st, d) = req(
        "POST",
        &format!("{url}/approvals/{id}"),
        Some(&keys.operator),
        Some(json!({"decision": "approve", "updated_input": {"command": "ls /"}})),
        &[],
    )
    .await;
    assert_eq!(st, 200, "{d}");
    let (err, v) = waiting.await.unwrap();
    assert!(!err, "{v}");
    assert_eq!(
        v,
        json!({"behavior": "allow", "updatedInput": {"command": "ls /"}})
    );

    // A glob-listed MCP tool, denied: the reviewer's message goes back to the agent.
    let waiting = {
        let url = url.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mcp = connect_with(&url, Some(&token), None).await;
            tool(&mcp, "approval_prompt", json!({"tool_name": "mcp__github__merge_pr", "input": {"pr": 7}, "tool_use_id": "toolu_m"})).await
        })
    };
    let mut id = String::new();
    for _ in 0..200 {
        if let Some(a) = pending_of(&url, &keys.viewer, &sid).await.first() {
            id = a["approval_id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!id.is_empty(), "the merge waits");
    let (st, _) = req(
        "POST",
        &format!("{url}/approvals/{id}"),
        Some(&keys.admin),
        Some(json!({"decision": "deny", "message": "needs a second review"})),
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let (err, v) = waiting.await.unwrap();
    assert!(!err, "{v}");
    assert_eq!(v["behavior"], "deny", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("needs a second review"),
        "{v}"
    );

    // Keys that are not a run's session token cannot use the prompt.
    let admin = connect_with(&url, Some(&keys.admin), None).await;
    let (err, v) = tool(
        &admin,
        "approval_prompt",
        json!({"tool_name": "Bash", "input": {}}),
    )
    .await;
    assert!(err, "an admin without a session names no run: {v}");

    // The runner's floor header only adds: an empty or forged floor cannot take the
    // blueprint's Bash off the list; an unreadable one is refused, not ignored.
    for floor in [
        r#"{"tools":[]}"#,
        r#"{"tools":["Write"],"on_timeout":"approve"}"#,
    ] {
        let mcp =
            connect_with_headers(&url, Some(&token), &[("x-aof-approval-floor", floor)]).await;
        let (err, v) = tool(
            &mcp,
            "approval_prompt",
            json!({"tool_name": "Read", "input": {}}),
        )
        .await;
        assert!(!err, "{v}");
        let before = pending_of(&url, &keys.viewer, &sid).await.len();
        let asked = {
            let mcp =
                connect_with_headers(&url, Some(&token), &[("x-aof-approval-floor", floor)]).await;
            tokio::spawn(async move {
                tool(&mcp, "approval_prompt", json!({"tool_name": "Bash", "input": {"command": "id"}, "tool_use_id": format!("toolu_{}", floor.len())})).await
            })
        };
        let mut id = String::new();
        for _ in 0..200 {
            let now = pending_of(&url, &keys.viewer, &sid).await;
            if now.len() > before {
                id = now[0]["approval_id"].as_str().unwrap().to_string();
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!id.is_empty(), "Bash still waits under floor {floor}");
        let (st, a) = req(
            "GET",
            &format!("{url}/approvals/{id}"),
            Some(&keys.viewer),
            None,
            &[],
        )
        .await;
        assert_eq!(
            (st, a["on_timeout"].as_str()),
            (200, Some("deny")),
            "a floor cannot turn deny into approve: {a}"
        );
        let (st, _) = req(
            "POST",
            &format!("{url}/approvals/{id}"),
            Some(&keys.operator),
            Some(json!({"decision": "deny"})),
            &[],
        )
        .await;
        assert_eq!(st, 200);
        let (err, v) = asked.await.unwrap();
        assert!(!err && v["behavior"] == "deny", "{v}");
    }
    let mcp =
        connect_with_headers(&url, Some(&token), &[("x-aof-approval-floor", "not json")]).await;
    let (err, v) = tool(
        &mcp,
        "approval_prompt",
        json!({"tool_name": "Read", "input": {}}),
    )
    .await;
    assert!(err, "an unreadable floor is refused: {v}");
    assert_eq!(v["code"], "invalid_approval", "{v}");
}
