//! Approvals (issue #25) over HTTP: a runner asks under its lease, the session waits,
//! a decision is taken once and wakes the waiter; bad input is refused and stores
//! nothing; timeouts and a run's end close what waits (audited). Auth off here; who may
//! decide with auth on is in aof-cli's auth suite.

use serde_json::{json, Value};

use crate::{app::TestApp, client::*, helpers::*};

const RUNNER: &str = "apr-host";

/// A running run: registered runner, claimed, reported started. (run, session, lease, runner)
async fn running(url: &str) -> (String, String, String, String) {
    let runner = register(url, RUNNER).await;
    let (rid, sid, token) = claimed_run(url, &runner, "needs approval").await;
    report_held(url, &rid, "started", &runner, &token).await;
    (rid, sid, token, runner)
}

async fn ask(url: &str, sid: &str, rid: &str, token: &str, body: Value) -> (u16, Value) {
    let headers = [("x-aof-lease-token", token), ("x-aof-run-id", rid)];
    call_h(
        "POST",
        &format!("{url}/sessions/{sid}/approvals"),
        Some(body),
        &headers,
    )
    .await
}

fn bash(rid: &str, key: &str) -> Value {
    json!({"run_id": rid, "tool_name": "Bash", "tool_input": {"command": "touch /tmp/x"}, "request_key": key})
}

async fn decide(url: &str, id: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/approvals/{id}"), Some(body)).await
}

async fn list(url: &str, query: &str) -> Vec<Value> {
    let (st, b) = call("GET", &format!("{url}/approvals{query}"), None).await;
    assert_eq!(st, 200, "{b}");
    b["approvals"].as_array().unwrap().clone()
}

/// Waits (long-polls of 30 s, a few at most) until the approval is decided.
async fn decided(url: &str, id: &str) -> Value {
    for _ in 0..4 {
        let (st, a) = call("GET", &format!("{url}/approvals/{id}?wait=30"), None).await;
        assert_eq!(st, 200, "{a}");
        if a["status"] != "pending" {
            return a;
        }
    }
    panic!("approval {id} still pending after two minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_ask_wait_decide_once() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let (rid, sid, token, _) = running(u).await;

    let (st, a) = ask(u, &sid, &rid, &token, bash(&rid, "toolu_1")).await;
    assert_eq!(st, 201, "{a}");
    let id = a["approval_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("apr_"), "{a}");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["on_timeout"], "deny", "the default policy");
    assert_eq!(session_status(u, &sid).await, "waiting_approval");
    let (_, _, m) = get_text(&format!("{u}/metrics")).await;
    assert!(m.contains("aof_approvals_pending 1"), "{m}");
    // The same call asked again (a retry): the same approval, 200, nothing new.
    let (st, again) = ask(u, &sid, &rid, &token, bash(&rid, "toolu_1")).await;
    assert_eq!(
        (st, &again["approval_id"]),
        (200, &a["approval_id"]),
        "{again}"
    );
    assert_eq!(list(u, &format!("?session_id={sid}")).await.len(), 1);
    assert_eq!(list(u, "?status=pending").await.len(), 1);
    assert!(list(u, "?status=approved").await.is_empty());

    // A runner's long-poll is woken by the decision.
    let poll = {
        let url = format!("{u}/sessions/{sid}/approvals/{id}?wait=30");
        let (rid, token) = (rid.clone(), token.clone());
        tokio::spawn(async move {
            let h = [
                ("x-aof-lease-token", token.as_str()),
                ("x-aof-run-id", rid.as_str()),
            ];
            call_h("GET", &url, None, &h).await
        })
    };
    let (st, d) = decide(u, &id, json!({"decision": "approve", "message": "go", "updated_input": {"command": "touch /tmp/y"}})).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["status"], "approved");
    assert_eq!(d["resolution"], "reviewer");
    assert_eq!(d["decided_by"], "anonymous", "auth off: no credential");
    assert_eq!(d["updated_input"]["command"], "touch /tmp/y");
    let (st, woken) = poll.await.unwrap();
    assert_eq!((st, &woken["status"]), (200, &json!("approved")), "{woken}");
    assert_eq!(session_status(u, &sid).await, "running");

    // Exactly once: a second decision is 409 and changes nothing.
    let body = expect_err(
        decide(u, &id, json!({"decision": "deny"})).await,
        409,
        "approval_decided",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("approved"),
        "{body}"
    );
    let (_, now) = call("GET", &format!("{u}/approvals/{id}"), None).await;
    assert_eq!(now, d, "unchanged by the refused decision");
    let evs = events(u, &sid).await;
    let types = types_of(&evs);
    assert_eq!(
        types
            .iter()
            .filter(|t| t.starts_with("approval_"))
            .collect::<Vec<_>>(),
        ["approval_requested", "approval_resolved"]
    );
    let resolved = evs
        .iter()
        .find(|e| e["event_type"] == "approval_resolved")
        .unwrap();
    assert_eq!(
        resolved["result_data"]["decided_by"], "anonymous",
        "{resolved}"
    );
    let (_, _, m) = get_text(&format!("{u}/metrics")).await;
    assert!(m.contains("aof_approvals_pending 0"), "{m}");
    assert!(
        m.contains("aof_approval_decision_seconds_count{resolution=\"reviewer\"} 1"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_bad_input_is_refused_and_stores_nothing() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let (rid, sid, token, _) = running(u).await;
    let (_, other_sid) = start_run(u, "another session").await;

    let mut empty = bash(&rid, "k");
    empty["tool_name"] = json!(" ");
    expect_err(
        ask(u, &sid, &rid, &token, empty).await,
        422,
        "invalid_approval",
    );
    let mut zero = bash(&rid, "k");
    zero["timeout_seconds"] = json!(0);
    expect_err(
        ask(u, &sid, &rid, &token, zero).await,
        422,
        "invalid_approval",
    );
    let mut huge = bash(&rid, "k");
    huge["tool_input"] = json!({"content": "x".repeat(70 * 1024)});
    expect_err(
        ask(u, &sid, &rid, &token, huge).await,
        413,
        "event_too_large",
    );
    let mut unknown = bash(&rid, "k");
    unknown["approved"] = json!(true);
    let (st, _) = ask(u, &sid, &rid, &token, unknown).await;
    assert_eq!(st, 422, "unknown fields are refused");
    // A forged lease, another run than the header, another session's path.
    expect_err(
        ask(u, &sid, &rid, "lease_forged", bash(&rid, "k")).await,
        409,
        "lease_conflict",
    );
    let headers = [
        ("x-aof-lease-token", token.as_str()),
        ("x-aof-run-id", "run_other"),
    ];
    let (st, b) = call_h(
        "POST",
        &format!("{u}/sessions/{sid}/approvals"),
        Some(bash(&rid, "k")),
        &headers,
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (409, Some("lease_conflict")),
        "{b}"
    );
    let (st, b) = ask(u, &other_sid, &rid, &token, bash(&rid, "k")).await;
    assert!(st == 404 || st == 409, "another session's run: {st} {b}");
    assert!(list(u, "").await.is_empty(), "nothing stored");
    assert_eq!(session_status(u, &sid).await, "running");

    // Reads and decisions.
    expect_err(
        call("GET", &format!("{u}/approvals/apr_nope"), None).await,
        404,
        "approval_not_found",
    );
    expect_err(
        decide(u, "apr_nope", json!({"decision": "approve"})).await,
        404,
        "approval_not_found",
    );
    expect_422(
        call("GET", &format!("{u}/approvals?status=maybe"), None).await,
        "value_error",
    );
    expect_422(
        call("GET", &format!("{u}/approvals?limit=0"), None).await,
        "value_error",
    );
    let (_, a) = ask(u, &sid, &rid, &token, bash(&rid, "k")).await;
    let id = a["approval_id"].as_str().unwrap();
    expect_422(
        call("GET", &format!("{u}/approvals/{id}?wait=31"), None).await,
        "value_error",
    );
    expect_err(
        decide(
            u,
            id,
            json!({"decision": "deny", "updated_input": {"command": "ls"}}),
        )
        .await,
        422,
        "invalid_approval",
    );
    let (st, _) = decide(u, id, json!({"decision": "perhaps"})).await;
    assert_eq!(st, 422);
    expect_err(
        decide(
            u,
            id,
            json!({"decision": "approve", "message": "m".repeat(4001)}),
        )
        .await,
        422,
        "invalid_approval",
    );
    // Seen through another session's path: not found.
    let (st, _) = call(
        "GET",
        &format!("{u}/sessions/{other_sid}/approvals/{id}"),
        None,
    )
    .await;
    assert_eq!(st, 404);
    let (_, still) = call("GET", &format!("{u}/approvals/{id}"), None).await;
    assert_eq!(still["status"], "pending", "{still}");
    // Nobody but the coordinator writes the approval events.
    let forged = ev(&sid, "approval_resolved");
    let (st, b) = post_ev(
        u,
        &sid,
        forged,
        &[("x-aof-lease-token", &token), ("x-aof-run-id", &rid)],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_event_type")),
        "{b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_timeout_and_the_runs_end_decide_for_nobody() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let (rid, sid, token, runner) = running(u).await;
    let mut quick = bash(&rid, "k1");
    quick["timeout_seconds"] = json!(1);
    quick["on_timeout"] = json!("approve");
    let (st, a) = ask(u, &sid, &rid, &token, quick).await;
    assert_eq!(st, 201, "{a}");
    let timed_out = decided(u, a["approval_id"].as_str().unwrap()).await;
    assert_eq!(timed_out["status"], "approved", "on_timeout: approve");
    assert_eq!(timed_out["resolution"], "timeout");
    assert_eq!(timed_out["decided_by"], Value::Null, "nobody decided");
    assert_eq!(session_status(u, &sid).await, "running");

    let (_, b) = ask(u, &sid, &rid, &token, bash(&rid, "k2")).await;
    let id = b["approval_id"].as_str().unwrap().to_string();
    report_held(u, &rid, "completed", &runner, &token).await;
    let ended = decided(u, &id).await;
    assert_eq!(ended["status"], "denied");
    assert_eq!(ended["resolution"], "run_ended");
    assert_ne!(session_status(u, &sid).await, "waiting_approval");

    // Both closings are in the audit log, by the coordinator. The sweeper queues the
    // entry just after the decision commits, so a reader may be a moment early.
    let first = timed_out["approval_id"].as_str().unwrap().to_string();
    let want = [
        ("approval.timeout".to_string(), first),
        ("approval.run_ended".to_string(), id.clone()),
    ];
    let mut by_coordinator = Vec::new();
    for _ in 0..100 {
        let (st, log) = call("GET", &format!("{u}/audit?limit=100"), None).await;
        assert_eq!(st, 200, "{log}");
        by_coordinator = log["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .filter(|e| e["actor_kind"] == "coordinator")
            .map(|e| {
                (
                    e["action"].as_str().unwrap().to_string(),
                    e["target"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>();
        if want.iter().all(|w| by_coordinator.contains(w)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("audit by the coordinator: {by_coordinator:?}, want {want:?}");
}
