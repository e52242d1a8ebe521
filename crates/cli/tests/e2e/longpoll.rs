//! A waiting long-poll is woken by new work or a stop at once, not at its next re-check.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_poll_wakes_on_new_run_and_on_stop() {
    let dir = tempdir();
    let mut env = fast_env();
    env.retain(|(k, _)| k != "RUNNER_POLL_TIMEOUT");
    env.push(("RUNNER_POLL_TIMEOUT".into(), "120".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let url = c.url.clone();
    let runner = register(&url, "poller").await;

    let poll_url = format!("{url}/runner/runs?runner_id={runner}");
    let poll = tokio::spawn(async move {
        let (st, body) = call("GET", &poll_url, None).await;
        (st, body, Instant::now())
    });
    // The poll is parked (the coordinator says so) before the run exists.
    wait_for("poll to park", || async {
        (polls_waiting(&url).await == 1).then_some(())
    })
    .await;
    let created = Instant::now();
    let (run_id, sid) = start_run(&url, "wake up").await;
    let (st, body, answered) = poll.await.unwrap();
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["run"]["run_id"], run_id.as_str());
    assert_eq!(body["run"]["status"], "claimed");
    assert_eq!(body["run"]["attempt"], 1);
    assert!(body["run"]["lease_token"]
        .as_str()
        .unwrap()
        .starts_with("lease_"));
    // Woken by the run, not by the 120 s poll timeout.
    let waited = answered.duration_since(created);
    assert!(
        waited < Duration::from_secs(60),
        "poll answered after {waited:?}"
    );

    // A poll with all slots busy (accept_runs=false) is woken by a stop of its session.
    let token = body["run"]["lease_token"].as_str().unwrap().to_string();
    let (st, _) = call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/started"),
        Some(json!({"runner_id": runner})),
        &[("x-aof-lease-token", &token)],
    )
    .await;
    assert_eq!(st, 200);
    let poll_url = format!("{url}/runner/runs?runner_id={runner}&accept_runs=false");
    let poll = tokio::spawn(async move { call("GET", &poll_url, None).await });
    wait_for("busy poll to park", || async {
        (polls_waiting(&c.url).await == 1).then_some(())
    })
    .await;
    let stop_at = Instant::now();
    let (st, body) = call("POST", &format!("{}/sessions/{sid}/stop", c.url), None).await;
    assert_eq!(
        (st, body["status"].as_str()),
        (200, Some("stopping")),
        "{body}"
    );
    let (st, body) = poll.await.unwrap();
    assert_eq!(st, 200);
    assert_eq!(body["stop_sessions"], json!([sid]));
    assert!(stop_at.elapsed() < Duration::from_secs(60));
    // The stop is delivered once.
    let (st, body) = call_h(
        "POST",
        &format!("{}/runner/runs/{run_id}/stopped", c.url),
        Some(json!({"runner_id": runner, "signal": "SIGTERM"})),
        &[("x-aof-lease-token", &token)],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    wait_session(&c.url, &sid, "stopped").await;
    let kinds: Vec<String> = events(&c.url, &sid)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["run_start", "run_stopped"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_runner_obeys_stop_and_reregisters_when_forgotten() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let _r = Runner::start(&c.url, dir.path(), "r1", &["--max-concurrent", "1"]).await;
    let runner_id = wait_for("runner registration", || async {
        let (_, b) = call("GET", &format!("{}/runners", c.url), None).await;
        b["runners"][0]["runner_id"].as_str().map(str::to_string)
    })
    .await;
    // A long run that occupies the runner's only slot.
    let (_, sid) = start_run(
        &c.url,
        &echo_prompt(json!({"echo_events": 1000, "echo_delay_ms": 50}), "slow"),
    )
    .await;
    wait_for("first assistant event", || async {
        (events(&c.url, &sid)
            .await
            .iter()
            .any(|e| e["role"] == "assistant"))
        .then_some(())
    })
    .await;
    let (st, body) = call("POST", &format!("{}/sessions/{sid}/stop", c.url), None).await;
    assert_eq!(st, 200, "{body}");
    wait_session(&c.url, &sid, "stopped").await;
    let evs = events(&c.url, &sid).await;
    let last = evs.last().unwrap();
    assert_eq!(last["event_type"], "run_stopped");
    assert_eq!(last["reason"], "SIGTERM");
    let assistant = evs.iter().filter(|e| e["role"] == "assistant").count();
    assert!(
        assistant < 1000,
        "stopped run should not finish all 1000 events"
    );

    // The coordinator forgets the runner; the runner notices (401) and registers again.
    let (st, _) = call(
        "DELETE",
        &format!("{}/runners/{runner_id}?self=true", c.url),
        None,
    )
    .await;
    assert_eq!(st, 200);
    wait_for("runner to re-register", || async {
        let (_, b) = call("GET", &format!("{}/runners", c.url), None).await;
        (b["runners"][0]["runner_id"] == runner_id.as_str()).then_some(())
    })
    .await;
    let (_, sid2) = start_run(&c.url, "after re-register").await;
    wait_session(&c.url, &sid2, "finished").await;
}
