//! kill -9 of the coordinator mid-run: after a restart on the same data, every
//! acknowledged write is there, the run finishes, and the runner carries on by itself.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_kill9_mid_run_loses_nothing_acknowledged() {
    let dir = tempdir();
    let mut c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let runner = Runner::start(&url, dir.path(), "r1", &[]).await;
    let (run_id, sid) = start_run(
        &url,
        &echo_prompt(json!({"echo_events": 30, "echo_delay_ms": 60}), "tick"),
    )
    .await;

    // A client writer whose acknowledged events must all survive.
    let (_, side) = start_run(&url, "side session").await;
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let writer = {
        let (url, side, acked) = (url.clone(), side.clone(), acked.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let ev = json!({"event_type": "note", "session_id": side, "timestamp": "t", "reason": n.to_string()});
                let resp = client()
                    .post(format!("{url}/sessions/{side}/events"))
                    .json(&ev)
                    .send()
                    .await;
                if let Ok(r) = resp {
                    if r.status().as_u16() == 201 {
                        if let Ok(b) = r.json::<serde_json::Value>().await {
                            acked.lock().unwrap().push(b["id"].as_i64().unwrap());
                        }
                    }
                }
            }
        })
    };

    wait_for("the run to be half-way", || async {
        let n = events(&url, &sid)
            .await
            .iter()
            .filter(|e| e["role"] == "assistant")
            .count();
        (n >= 5).then_some(())
    })
    .await;
    let before = events(&url, &sid).await;
    c.kill9().await;
    let acked_before_kill = acked.lock().unwrap().clone();
    assert!(!acked_before_kill.is_empty());
    c.restart().await;
    writer.abort();

    // The run completes on the same runner; the runner never lost its work.
    wait_session(&url, &sid, "finished").await;
    let after = events(&url, &sid).await;
    // Everything acknowledged before the crash is still there, unchanged, in order.
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "events changed across the restart"
    );
    let texts: Vec<String> = after
        .iter()
        .filter(|e| e["role"] == "assistant")
        .map(|e| e["content"][0]["text"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (1..=30).map(|i| format!("tick [{i}]")).collect();
    assert_eq!(
        texts, expected,
        "each assistant event exactly once, in order"
    );
    let seqs: Vec<i64> = after.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=after.len() as i64).collect::<Vec<_>>());
    let (_, run) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["attempt"], 1, "the restart must not re-run the work");

    // The client's acknowledged events all survived.
    let side_ids: std::collections::BTreeSet<i64> = events(&url, &side)
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let acked_all = acked.lock().unwrap().clone();
    let lost: Vec<&i64> = acked_all
        .iter()
        .filter(|id| !side_ids.contains(id))
        .collect();
    assert!(lost.is_empty(), "lost acknowledged events: {lost:?}");

    // The runner is online again without any help and takes new work.
    let (_, b) = call("GET", &format!("{url}/runners"), None).await;
    assert_eq!(b["runners"][0]["status"], "online");
    let (_, sid2) = start_run(&url, "after the crash").await;
    wait_session(&url, &sid2, "finished").await;
    drop(runner);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_kill9_and_restart_on_its_workspace_registers_at_once() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await; // stale threshold: default 120 s
    let mut r = Runner::start(&c.url, dir.path(), "r1", &[]).await;
    let (_, sid) = start_run(&c.url, "first").await;
    wait_session(&c.url, &sid, "finished").await;
    r.kill9().await;
    // Same workspace → same instance: not refused as a live duplicate for two minutes.
    let r2 = Runner::start(&c.url, dir.path(), "r1", &[]).await;
    let (_, sid) = start_run(&c.url, "after restart").await;
    wait_session(&c.url, &sid, "finished").await;
    let (_, b) = call("GET", &format!("{}/runners", c.url), None).await;
    assert_eq!(b["runners"].as_array().unwrap().len(), 1, "{b}");
    assert!(!r2.log().contains("duplicate"), "{}", r2.log());
}

/// Issue #25: a pending approval is a row, not a waiting request. After kill -9 and a
/// restart it is still pending (the session still `waiting_approval`), the runner's
/// retried ask finds the same approval, and a decision then lets the run finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_kill9_keeps_a_pending_approval() {
    let dir = tempdir();
    // A lease that outlives the restart: this test's runner does not heartbeat.
    let mut env: Vec<(String, String)> = fast_env()
        .into_iter()
        .filter(|(k, _)| k != "AOF_LEASE_TTL")
        .collect();
    env.push(("AOF_LEASE_TTL".into(), "120".into()));
    let mut c = Coordinator::start(dir.path(), env).await;
    let url = c.url.clone();
    let runner = register(&url, "apr-crash").await;
    let (rid, sid) = start_run(&url, "needs a person").await;
    let (st, poll) = call(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{poll}");
    let lease = poll["run"]["lease_token"].as_str().unwrap().to_string();
    let h = [
        ("x-aof-lease-token", lease.as_str()),
        ("x-aof-run-id", rid.as_str()),
    ];
    let (st, b) = call_h(
        "POST",
        &format!("{url}/runner/runs/{rid}/started"),
        Some(json!({"runner_id": runner})),
        &h,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let ask = json!({"run_id": rid, "tool_name": "Bash", "tool_input": {"command": "make deploy"}, "request_key": "toolu_crash"});
    let asked = format!("{url}/sessions/{sid}/approvals");
    let (st, a) = call_h("POST", &asked, Some(ask.clone()), &h).await;
    assert_eq!(st, 201, "{a}");

    c.kill9().await;
    c.restart().await;

    assert_eq!(session_status(&url, &sid).await, "waiting_approval");
    let id = a["approval_id"].as_str().unwrap();
    let (st, again) = call_h("POST", &asked, Some(ask), &h).await;
    assert_eq!(
        (st, &again),
        (200, &a),
        "the retried ask finds the same approval"
    );
    let (st, d) = call(
        "POST",
        &format!("{url}/approvals/{id}"),
        Some(json!({"decision": "approve"})),
    )
    .await;
    assert_eq!((st, d["status"].as_str()), (200, Some("approved")), "{d}");
    let (st, seen) = call_h("GET", &format!("{asked}/{id}?wait=5"), None, &h).await;
    assert_eq!(
        (st, seen["status"].as_str()),
        (200, Some("approved")),
        "{seen}"
    );
    assert_eq!(session_status(&url, &sid).await, "running");
    let (st, b) = call_h(
        "POST",
        &format!("{url}/runner/runs/{rid}/completed"),
        Some(json!({"runner_id": runner})),
        &h,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(session_status(&url, &sid).await, "finished");
    let types: Vec<String> = events(&url, &sid)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
        .filter(|t| t.starts_with("approval_"))
        .collect();
    assert_eq!(types, ["approval_requested", "approval_resolved"]);
}
