//! Leases with short TTLs: expiry, re-queue by policy, fencing of late writers.

use serde_json::{json, Value};

use crate::harness::*;

async fn claim(url: &str, runner: &str) -> Value {
    let (st, body) = call(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner}"),
        None,
    )
    .await;
    assert_eq!(st, 200, "expected a run: {body}");
    body["run"].clone()
}

async fn report(url: &str, run_id: &str, what: &str, body: Value, token: &str) -> (u16, Value) {
    call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/{what}"),
        Some(body),
        &[("x-aof-lease-token", token), ("x-aof-run-id", run_id)],
    )
    .await
}

async fn run_json(url: &str, run_id: &str) -> Value {
    call("GET", &format!("{url}/runs/{run_id}"), None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_claim_is_requeued_and_the_old_holder_is_fenced() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await; // lease 3 s, recovery "stale"
    let url = &c.url;
    let a = register(url, "runner-a").await;
    let b = register(url, "runner-b").await;
    let (run_id, sid) = start_run(url, "lease me").await;
    let run = claim(url, &a).await;
    assert_eq!(run["run_id"], run_id.as_str());
    let token_a = run["lease_token"].as_str().unwrap().to_string();

    // A never reports `started` and stops heartbeating; B keeps its own heartbeat up.
    let b2 = b.clone();
    let url2 = url.clone();
    let keepalive = tokio::spawn(async move {
        loop {
            call(
                "POST",
                &format!("{url2}/runner/heartbeat"),
                Some(json!({"runner_id": b2})),
            )
            .await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    });
    // Claimed but never started: policy `stale` puts it back in the queue; B gets attempt 2.
    let run_b = claim(url, &b).await;
    keepalive.abort();
    assert_eq!(run_b["run_id"], run_id.as_str());
    assert_eq!(run_b["attempt"], 2);
    let token_b = run_b["lease_token"].as_str().unwrap().to_string();
    assert_ne!(token_a, token_b);

    // A wakes up late: every write it makes is refused and changes nothing.
    let (st, body) = report(url, &run_id, "started", json!({"runner_id": a}), &token_a).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("lease_conflict")),
        "{body}"
    );
    let ev = json!({"event_type": "message", "session_id": sid, "timestamp": "t", "role": "assistant",
                    "content": [{"type": "text", "text": "from the past"}]});
    let (st, _) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(ev.clone()),
        &[("x-aof-lease-token", &token_a), ("x-aof-run-id", &run_id)],
    )
    .await;
    assert_eq!(st, 409);
    // Even with B's runner id but A's stale token.
    let (st, _) = report(url, &run_id, "completed", json!({"runner_id": b}), &token_a).await;
    assert_eq!(st, 409);
    assert_eq!(run_json(url, &run_id).await["status"], "claimed");

    // The heartbeat tells A which of its leases it lost.
    let (st, hb) = call(
        "POST",
        &format!("{url}/runner/heartbeat"),
        Some(json!({"runner_id": a, "leases": [{"run_id": run_id, "lease_token": token_a}]})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(hb["revoked"], json!([run_id]));

    // B, the holder, finishes normally.
    assert_eq!(
        report(url, &run_id, "started", json!({"runner_id": b}), &token_b)
            .await
            .0,
        200
    );
    let (st, _) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(ev),
        &[("x-aof-lease-token", &token_b), ("x-aof-run-id", &run_id)],
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(
        report(url, &run_id, "completed", json!({"runner_id": b}), &token_b)
            .await
            .0,
        200
    );
    let run = run_json(url, &run_id).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["runner_id"], b.as_str());
    wait_session(url, &sid, "finished").await;
    let texts: Vec<Value> = events(url, &sid)
        .await
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(
        texts,
        [json!("run_start"), json!("message"), json!("run_completed")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_running_lease_fails_the_run_under_stale_policy() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let a = register(url, "runner-a").await;
    let (run_id, sid) = start_run(url, "work").await;
    let token = claim(url, &a).await["lease_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        report(url, &run_id, "started", json!({"runner_id": a}), &token)
            .await
            .0,
        200
    );
    wait_session(url, &sid, "running").await;
    // No heartbeats: the lease runs out; a started run is failed, not retried.
    wait_session(url, &sid, "failed").await;
    let run = run_json(url, &run_id).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().unwrap().contains("Lease expired"),
        "{run}"
    );
    // The late completion is refused and the run stays failed.
    let (st, body) = report(url, &run_id, "completed", json!({"runner_id": a}), &token).await;
    assert_eq!(
        (st, body["code"].as_str()),
        (409, Some("lease_conflict")),
        "{body}"
    );
    assert_eq!(run_json(url, &run_id).await["status"], "failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runner_run_is_retried_elsewhere_under_all_policy() {
    let dir = tempdir();
    let mut env = fast_env();
    env.push(("RUN_RECOVERY_MODE".into(), "all".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let mut r1 = Runner::start(&c.url, dir.path(), "r1", &[]).await;
    let (run_id, sid) = start_run(
        &c.url,
        &echo_prompt(json!({"echo_events": 40, "echo_delay_ms": 50}), "long"),
    )
    .await;
    wait_for("r1 to be running it", || async {
        (events(&c.url, &sid)
            .await
            .iter()
            .any(|e| e["role"] == "assistant"))
        .then_some(())
    })
    .await;
    let first_holder = run_json(&c.url, &run_id).await["runner_id"].clone();
    r1.kill9().await;
    // A second runner appears; when r1's lease expires the run is re-queued and r2 takes it.
    let _r2 = Runner::start(&c.url, dir.path(), "r2", &[]).await;
    wait_session(&c.url, &sid, "finished").await;
    let run = run_json(&c.url, &run_id).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["attempt"], 2);
    assert_ne!(run["runner_id"], first_holder);
    // Attempt 2 re-emitted its events; attempt 1's partial output is kept, not lost.
    let evs = events(&c.url, &sid).await;
    let done = evs
        .iter()
        .filter(|e| e["event_type"] == "run_completed")
        .count();
    assert_eq!(done, 1);
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>());
}
