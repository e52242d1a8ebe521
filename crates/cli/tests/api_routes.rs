//! Every coordinator route, with good and bad input, against a real `aof coordinator` process.
#![allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;
use harness::*;

use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------
// Helpers: this binary speaks the runner protocol itself, over HTTP.
// ---------------------------------------------------------------------------------------

/// `fast_env()`, with a lease long enough that a run held by this test's protocol runner
/// (which does not heartbeat) is never re-queued by the sweeper on a loaded machine.
fn env() -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = fast_env()
        .into_iter()
        .filter(|(k, _)| k != "AOF_LEASE_TTL")
        .collect();
    e.push(("AOF_LEASE_TTL".into(), "120".into()));
    e
}

async fn coordinator(dir: &tempfile::TempDir) -> Coordinator {
    Coordinator::start(dir.path(), env()).await
}

/// Asserts an error response: status, stable `code`, and returns the body.
#[track_caller]
fn expect_err(got: (u16, Value), status: u16, code: &str) -> Value {
    let (st, body) = got;
    assert_eq!(st, status, "status for {body}");
    assert_eq!(body["code"], code, "code in {body}");
    assert!(body.get("detail").is_some(), "detail in {body}");
    body
}

/// Asserts a FastAPI-style 422 whose first item has `kind` and returns that item.
#[track_caller]
fn expect_422(got: (u16, Value), kind: &str) -> Value {
    let body = expect_err(got, 422, "validation_error");
    let list = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail list in {body}"));
    assert!(!list.is_empty(), "{body}");
    let first = list[0].clone();
    assert_eq!(first["type"], kind, "{body}");
    for k in ["type", "loc", "msg", "input"] {
        assert!(first.get(k).is_some(), "item key {k} in {body}");
    }
    assert!(first["loc"].is_array(), "{body}");
    first
}

async fn get_text(url: &str) -> (u16, String, String) {
    let r = client().get(url).send().await.unwrap();
    let st = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (st, ct, r.text().await.unwrap())
}

async fn create(url: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/runs"), Some(body)).await
}

async fn register_body(url: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/runner/register"), Some(body)).await
}

async fn poll(url: &str, runner_id: &str, extra: &str) -> (u16, Value) {
    call(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}{extra}"),
        None,
    )
    .await
}

/// Polls once and expects a run (there must be a claimable one): returns the run object.
async fn claim(url: &str, runner_id: &str) -> Value {
    let (st, b) = poll(url, runner_id, "").await;
    assert_eq!(st, 200, "poll: {b}");
    assert!(b["run"].is_object(), "expected a run, got {b}");
    b["run"].clone()
}

async fn report(
    url: &str,
    run_id: &str,
    what: &str,
    body: Value,
    token: Option<&str>,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("x-aof-lease-token", t)])
        .unwrap_or_default();
    call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/{what}"),
        Some(body),
        &headers,
    )
    .await
}

fn ev(sid: &str, event_type: &str) -> Value {
    json!({"event_type": event_type, "session_id": sid, "timestamp": "2025-01-01T00:00:00.000000+00:00"})
}

async fn post_ev(url: &str, sid: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(body),
        headers,
    )
    .await
}

async fn run_status(url: &str, run_id: &str) -> String {
    let (st, b) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(st, 200, "{b}");
    b["status"].as_str().unwrap().to_string()
}

fn types_of(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Creates a run and has `runner` claim it; returns (run_id, session_id, lease_token).
async fn claimed_run(url: &str, runner: &str, prompt: &str) -> (String, String, String) {
    let (run_id, sid) = start_run(url, prompt).await;
    let run = claim(url, runner).await;
    assert_eq!(run["run_id"], run_id.as_str(), "{run}");
    let token = run["lease_token"].as_str().unwrap().to_string();
    (run_id, sid, token)
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_ready_metrics_and_fallbacks() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;

    let (st, b) = call("GET", &format!("{u}/health"), None).await;
    assert_eq!((st, b), (200, json!({"status": "healthy"})));
    let (st, b) = call("GET", &format!("{u}/ready"), None).await;
    assert_eq!((st, b), (200, json!({"status": "ready"})));

    // One pending run so the gauges have something to count.
    start_run(u, "metrics").await;
    let (st, ct, text) = get_text(&format!("{u}/metrics")).await;
    assert_eq!(st, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    for needle in [
        "aof_runs{status=\"pending\"} 1",
        "aof_queue_depth 1",
        "aof_dispatch_latency_seconds_bucket",
        "aof_dispatch_latency_seconds_bucket{le=\"+Inf\"}",
        "aof_sse_clients",
        "aof_sessions{status=\"pending\"} 1",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }

    // Unknown route: JSON 404.
    let b = expect_err(
        call("GET", &format!("{u}/no/such/route"), None).await,
        404,
        "route_not_found",
    );
    assert!(b["detail"].is_string(), "{b}");
    // Wrong method: 405 (JSON).
    let (st, b) = call("DELETE", &format!("{u}/health"), None).await;
    assert_eq!(st, 405, "{b}");
    assert_eq!(b["code"], "method_not_allowed", "{b}");
    let (st, _) = call("PUT", &format!("{u}/runs"), Some(json!({}))).await;
    assert_eq!(st, 405);
    let (st, _) = call("POST", &format!("{u}/sessions"), Some(json!({}))).await;
    assert_eq!(st, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_good_and_bad_input() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;

    // Good.
    let (st, b) = create(
        u,
        json!({"type": "start_session", "agent_name": "a", "project_dir": "/proj",
               "parameters": {"prompt": "hi"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert!(b["run_id"].as_str().unwrap().starts_with("run_"), "{b}");
    assert!(b["session_id"].as_str().unwrap().starts_with("ses_"), "{b}");
    assert_eq!(b["status"], "pending");
    let sid = b["session_id"].as_str().unwrap().to_string();

    // Body-shape errors: FastAPI-style 422 lists.
    let item = expect_422(create(u, json!({"type": "start_session"})).await, "missing");
    assert_eq!(item["loc"], json!(["body", "parameters"]));
    let item = expect_422(
        create(u, json!({"type": "bogus", "parameters": {"prompt": "x"}})).await,
        "enum",
    );
    assert_eq!(item["loc"][0], "body", "{item}");
    expect_422(
        call_raw("POST", &format!("{u}/runs"), "{\"type\": ").await,
        "json_invalid",
    );
    let item = expect_422(
        create(u, json!([{"type": "start_session"}])).await,
        "model_attributes_type",
    );
    assert_eq!(item["loc"], json!(["body"]));
    expect_422(
        create(
            u,
            json!({"type": "start_session", "execution_mode": "nope", "parameters": {"prompt": "x"}}),
        )
        .await,
        "enum",
    );
    // Parameters must be an object.
    let (st, _) = create(u, json!({"type": "start_session", "parameters": "x"})).await;
    assert_eq!(st, 422);

    // Parameter schema: 400 with an object detail.
    for params in [
        json!({}),
        json!({"prompt": ""}),
        json!({"prompt": 3}),
        json!({"prompt": "x", "extra": 1}),
    ] {
        let b = expect_err(
            create(u, json!({"type": "start_session", "parameters": params})).await,
            400,
            "parameter_validation_failed",
        );
        assert_eq!(b["detail"]["error"], "parameter_validation_failed", "{b}");
        assert!(
            !b["detail"]["validation_errors"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{b}"
        );
    }

    // Resume rules.
    expect_err(
        create(
            u,
            json!({"type": "resume_session", "parameters": {"prompt": "x"}}),
        )
        .await,
        400,
        "session_id_required",
    );
    expect_err(
        create(
            u,
            json!({"type": "resume_session", "session_id": "ses_unknown", "parameters": {"prompt": "x"}}),
        )
        .await,
        404,
        "session_not_found",
    );
    // Start with an existing session id: conflict.
    expect_err(
        create(
            u,
            json!({"type": "start_session", "session_id": sid, "parameters": {"prompt": "x"}}),
        )
        .await,
        409,
        "session_exists",
    );
    for bad in ["../x", "a/b", "..", ""] {
        expect_err(
            create(
                u,
                json!({"type": "start_session", "session_id": bad, "parameters": {"prompt": "x"}}),
            )
            .await,
            400,
            "invalid_session_id",
        );
    }
    // A caller-chosen valid id is kept.
    let (st, b) = create(
        u,
        json!({"type": "start_session", "session_id": "my-ses.1", "parameters": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["session_id"], "my-ses.1");

    // None of the rejected requests left anything behind.
    let (_, runs) = call("GET", &format!("{u}/runs"), None).await;
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
    let (_, ses) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(ses["sessions"].as_array().unwrap().len(), 2, "{ses}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_list_filter_and_get() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let runner = register(u, "r1").await;

    let (st, b) = create(
        u,
        json!({"type": "start_session", "agent_name": "ag", "parameters": {"prompt": "first"},
               "scope": {"secret": "s3"}, "execution_mode": "async_poll"}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let r1 = b["run_id"].as_str().unwrap().to_string();
    let s1 = b["session_id"].as_str().unwrap().to_string();

    // The poll hands the runner scope, lease token and attempt.
    let run = claim(u, &runner).await;
    assert_eq!(run["run_id"], r1.as_str());
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["status"], "claimed");
    assert_eq!(run["runner_id"], runner.as_str());
    assert_eq!(run["scope"], json!({"secret": "s3"}), "{run}");
    assert!(
        run["lease_token"].as_str().unwrap().starts_with("lease_"),
        "{run}"
    );

    let (r2, _) = start_run(u, "second").await;

    let (st, b) = call("GET", &format!("{u}/runs"), None).await;
    assert_eq!(st, 200);
    let runs = b["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![r2.as_str(), r1.as_str()], "newest first: {b}");
    for r in runs {
        assert!(r.get("lease_token").is_none(), "{r}");
        assert!(r.get("scope").is_none(), "{r}");
    }

    let (_, b) = call("GET", &format!("{u}/runs?status=pending"), None).await;
    let ids: Vec<&str> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![r2.as_str()]);
    let (_, b) = call("GET", &format!("{u}/runs?status=claimed"), None).await;
    assert_eq!(b["runs"].as_array().unwrap().len(), 1, "{b}");
    assert_eq!(b["runs"][0]["run_id"], r1.as_str());
    let (st, b) = call("GET", &format!("{u}/runs?status=bogus"), None).await;
    assert_eq!((st, b), (200, json!({"runs": []})));

    // One run: full shape, poll-only fields absent.
    let (st, b) = call("GET", &format!("{u}/runs/{r1}"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["run_id"], r1.as_str());
    assert_eq!(b["type"], "start_session");
    assert_eq!(b["session_id"], s1.as_str());
    assert_eq!(b["agent_name"], "ag");
    assert_eq!(b["parameters"], json!({"prompt": "first"}));
    assert_eq!(b["execution_mode"], "async_poll");
    assert_eq!(b["status"], "claimed");
    assert_eq!(b["runner_id"], runner.as_str());
    assert_eq!(b["demands"]["executor_type"], "autonomous", "{b}");
    assert!(b["claimed_at"].is_string(), "{b}");
    assert!(b["created_at"].is_string(), "{b}");
    assert!(b["timeout_at"].is_string(), "{b}");
    assert!(b.get("lease_token").is_none(), "{b}");
    assert!(b.get("scope").is_none(), "{b}");

    expect_err(
        call("GET", &format!("{u}/runs/run_nope"), None).await,
        404,
        "run_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_runs_pending_claimed_completed_and_unknown() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = c.url.clone();

    // Pending: cancelled at once.
    let (r1, s1) = start_run(&u, "pending").await;
    let (st, b) = call("POST", &format!("{u}/runs/{r1}/stop"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    assert_eq!(b["status"], "stopped");
    assert_eq!(b["run_id"], r1.as_str());
    assert_eq!(b["session_id"], s1.as_str());
    assert_eq!(run_status(&u, &r1).await, "stopped");
    assert_eq!(session_status(&u, &s1).await, "stopped");
    // Stopping it again is an illegal transition.
    expect_err(
        call("POST", &format!("{u}/runs/{r1}/stop"), None).await,
        400,
        "illegal_transition",
    );
    expect_err(
        call("POST", &format!("{u}/runs/run_nope/stop"), None).await,
        404,
        "run_not_found",
    );

    // Claimed: the holder is told through its long-poll.
    let runner = register(&u, "r1").await;
    let (r2, s2, token) = claimed_run(&u, &runner, "claimed").await;
    let waiting = {
        let (u, runner) = (u.clone(), runner.clone());
        tokio::spawn(async move { poll(&u, &runner, "").await })
    };
    let (st, b) = call("POST", &format!("{u}/runs/{r2}/stop"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "stopping", "{b}");
    assert_eq!(run_status(&u, &r2).await, "stopping");
    assert_eq!(session_status(&u, &s2).await, "stopping");
    let (st, b) = waiting.await.unwrap();
    assert_eq!(st, 200, "the long-poll must deliver the stop: {b}");
    assert_eq!(b, json!({"stop_sessions": [s2]}));
    // `started` on a stopping run is not a move the state machine allows.
    expect_err(
        report(
            &u,
            &r2,
            "started",
            json!({"runner_id": runner}),
            Some(&token),
        )
        .await,
        400,
        "illegal_transition",
    );
    assert_eq!(run_status(&u, &r2).await, "stopping");
    // A second stop request while stopping changes nothing.
    let (st, b) = call("POST", &format!("{u}/runs/{r2}/stop"), None).await;
    assert_eq!((st, b["status"].clone()), (200, json!("stopping")), "{b}");
    let (st, b) = report(
        &u,
        &r2,
        "stopped",
        json!({"runner_id": runner, "signal": "SIGINT"}),
        Some(&token),
    )
    .await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(run_status(&u, &r2).await, "stopped");
    assert_eq!(session_status(&u, &s2).await, "stopped");
    let evs = events(&u, &s2).await;
    let stopped: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event_type"] == "run_stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "{evs:?}");
    assert_eq!(stopped[0]["reason"], "SIGINT");

    // Completed: cannot be stopped.
    let (r3, s3, token) = claimed_run(&u, &runner, "done").await;
    let (st, _) = report(
        &u,
        &r3,
        "completed",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    expect_err(
        call("POST", &format!("{u}/runs/{r3}/stop"), None).await,
        400,
        "illegal_transition",
    );
    assert_eq!(run_status(&u, &r3).await, "completed");
    assert_eq!(session_status(&u, &s3).await, "finished");

    // Session stop: pending session → stopped; finished session → reported as is.
    let (r4, s4) = start_run(&u, "via session").await;
    let (st, b) = call("POST", &format!("{u}/sessions/{s4}/stop"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["status"], "stopped");
    assert_eq!(run_status(&u, &r4).await, "stopped");
    let (st, b) = call("POST", &format!("{u}/sessions/{s3}/stop"), None).await;
    assert_eq!((st, b["status"].clone()), (200, json!("finished")), "{b}");
    expect_err(
        call("POST", &format!("{u}/sessions/ses_nope/stop"), None).await,
        404,
        "session_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_get_status_and_affinity() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;

    let (st, b) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!((st, b), (200, json!({"sessions": []})));

    let (st, b) = create(
        u,
        json!({"type": "start_session", "agent_name": "ag", "project_dir": "/proj",
               "parameters": {"prompt": "one"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let s1 = b["session_id"].as_str().unwrap().to_string();
    let (st, b) = create(
        u,
        json!({"type": "start_session", "parent_session_id": s1, "parameters": {"prompt": "two"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let s2 = b["session_id"].as_str().unwrap().to_string();

    let (st, b) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(st, 200);
    let ids: Vec<&str> = b["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![s2.as_str(), s1.as_str()], "newest first: {b}");

    let (st, b) = call("GET", &format!("{u}/sessions/{s1}"), None).await;
    assert_eq!(st, 200, "{b}");
    let s = b["session"].as_object().unwrap_or_else(|| panic!("{b}"));
    let mut keys: Vec<&str> = s.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "session_id",
        "status",
        "created_at",
        "project_dir",
        "agent_name",
        "last_resumed_at",
        "parent_session_id",
        "executor_session_id",
        "executor_profile",
        "hostname",
    ];
    want.sort_unstable();
    assert_eq!(keys, want, "{b}");
    assert_eq!(s["session_id"], s1.as_str());
    assert_eq!(s["status"], "pending");
    assert_eq!(s["project_dir"], "/proj");
    assert_eq!(s["agent_name"], "ag");
    assert!(s["created_at"].is_string());
    assert!(s["hostname"].is_null() && s["executor_session_id"].is_null());
    let (_, b) = call("GET", &format!("{u}/sessions/{s2}"), None).await;
    assert_eq!(b["session"]["parent_session_id"], s1.as_str(), "{b}");

    expect_err(
        call("GET", &format!("{u}/sessions/ses_nope"), None).await,
        404,
        "session_not_found",
    );

    let (st, b) = call("GET", &format!("{u}/sessions/{s1}/status"), None).await;
    assert_eq!((st, b), (200, json!({"status": "pending"})));
    let (st, b) = call("GET", &format!("{u}/sessions/ses_nope/status"), None).await;
    assert_eq!((st, b), (200, json!({"status": "not_existent"})));

    let (st, b) = call("GET", &format!("{u}/sessions/{s1}/affinity"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b,
        json!({"affinity": {"session_id": s1, "hostname": null, "project_dir": "/proj",
                            "executor_profile": null}})
    );
    // Binding records where the session lives; affinity follows.
    let (st, b) = call(
        "POST",
        &format!("{u}/sessions/{s1}/bind"),
        Some(json!({"executor_session_id": "x-1", "hostname": "h9", "executor_profile": "p9"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (_, b) = call("GET", &format!("{u}/sessions/{s1}/affinity"), None).await;
    assert_eq!(
        b,
        json!({"affinity": {"session_id": s1, "hostname": "h9", "project_dir": "/proj",
                            "executor_profile": "p9"}})
    );
    expect_err(
        call("GET", &format!("{u}/sessions/ses_nope/affinity"), None).await,
        404,
        "session_not_found",
    );

    // A resume inherits the session's agent, project and affinity as demands.
    let (st, b) = create(
        u,
        json!({"type": "resume_session", "session_id": s1, "parameters": {"prompt": "again"}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["session_id"], s1.as_str());
    let (_, run) = call(
        "GET",
        &format!("{u}/runs/{}", b["run_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(run["type"], "resume_session", "{run}");
    assert_eq!(run["agent_name"], "ag", "{run}");
    assert_eq!(run["project_dir"], "/proj", "{run}");
    assert_eq!(run["demands"]["hostname"], "h9", "{run}");
    assert_eq!(run["demands"]["executor_profile"], "p9", "{run}");
    let (_, b) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(
        b["sessions"].as_array().unwrap().len(),
        2,
        "resume adds no session: {b}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_result_before_and_after_finishing() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let runner = register(u, "r1").await;

    expect_err(
        call("GET", &format!("{u}/sessions/ses_nope/result"), None).await,
        404,
        "session_not_found",
    );

    // Session with a result event, completed as idle, then closed by its runner.
    let (run, sid, token) = claimed_run(u, &runner, "with result").await;
    expect_err(
        call("GET", &format!("{u}/sessions/{sid}/result"), None).await,
        400,
        "session_not_finished",
    );
    let (st, _) = report(
        u,
        &run,
        "started",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(session_status(u, &sid).await, "running");
    expect_err(
        call("GET", &format!("{u}/sessions/{sid}/result"), None).await,
        400,
        "session_not_finished",
    );
    let mut result = ev(&sid, "result");
    result["result_text"] = json!("the answer");
    result["result_data"] = json!({"n": 42});
    let (st, b) = post_ev(u, &sid, result, &[]).await;
    assert_eq!(st, 201, "{b}");
    let (st, _) = report(
        u,
        &run,
        "completed",
        json!({"runner_id": runner, "session_status": "idle"}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(session_status(u, &sid).await, "idle");
    let (st, b) = call("GET", &format!("{u}/sessions/{sid}/result"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b,
        json!({"result_text": "the answer", "result_data": {"n": 42}})
    );

    // The runner closes the idle session; bad status values are 422.
    let item = expect_422(
        call(
            "POST",
            &format!("{u}/runner/sessions/{sid}/status"),
            Some(json!({"runner_id": runner, "status": "bogus"})),
        )
        .await,
        "literal_error",
    );
    assert_eq!(item["loc"], json!(["body", "status"]));
    let other = register(u, "r2").await;
    expect_err(
        call(
            "POST",
            &format!("{u}/runner/sessions/{sid}/status"),
            Some(json!({"runner_id": other, "status": "finished"})),
        )
        .await,
        409,
        "lease_conflict",
    );
    expect_err(
        call(
            "POST",
            &format!("{u}/runner/sessions/{sid}/status"),
            Some(json!({"runner_id": "lnch_000000000000", "status": "finished"})),
        )
        .await,
        401,
        "runner_not_registered",
    );
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/sessions/{sid}/status"),
        Some(json!({"runner_id": runner, "status": "finished"})),
    )
    .await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(session_status(u, &sid).await, "finished");
    let (st, b) = call("GET", &format!("{u}/sessions/{sid}/result"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result_text"], "the answer");

    // Finished without a result event: 404 "No result found".
    let (run, sid2, token) = claimed_run(u, &runner, "no result").await;
    let (st, _) = report(
        u,
        &run,
        "completed",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(session_status(u, &sid2).await, "finished");
    let b = expect_err(
        call("GET", &format!("{u}/sessions/{sid2}/result"), None).await,
        404,
        "no_result",
    );
    assert_eq!(b["detail"], "No result found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bind_and_metadata() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let (_, sid) = start_run(u, "bind me").await;
    let bind_url = format!("{u}/sessions/{sid}/bind");

    // Missing fields and bad bodies.
    let item = expect_422(
        call(
            "POST",
            &bind_url,
            Some(json!({"hostname": "h", "executor_profile": "p"})),
        )
        .await,
        "missing",
    );
    assert_eq!(item["loc"], json!(["body", "executor_session_id"]));
    expect_422(
        call("POST", &bind_url, Some(json!({"executor_session_id": "e"}))).await,
        "missing",
    );
    expect_422(
        call_raw("POST", &bind_url, "not json").await,
        "json_invalid",
    );
    let item = expect_422(
        call(
            "POST",
            &bind_url,
            Some(json!({"executor_session_id": 5, "hostname": "h", "executor_profile": "p"})),
        )
        .await,
        "string_type",
    );
    assert_eq!(item["loc"], json!(["body", "executor_session_id"]));
    expect_err(
        call(
            "POST",
            &format!("{u}/sessions/ses_nope/bind"),
            Some(json!({"executor_session_id": "e", "hostname": "h", "executor_profile": "p"})),
        )
        .await,
        404,
        "session_not_found",
    );
    // A lease token that holds nothing is fenced off.
    expect_err(
        call_h(
            "POST",
            &bind_url,
            Some(json!({"executor_session_id": "e", "hostname": "h", "executor_profile": "p"})),
            &[("x-aof-lease-token", "lease_not_mine")],
        )
        .await,
        409,
        "lease_conflict",
    );
    assert_eq!(session_status(u, &sid).await, "pending");

    let (st, b) = call(
        "POST",
        &bind_url,
        Some(
            json!({"executor_session_id": "exec-1", "hostname": "h1", "executor_profile": "p1",
                    "project_dir": "/bound"}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    assert_eq!(b["session"]["executor_session_id"], "exec-1");
    assert_eq!(b["session"]["status"], "running");
    let (_, b) = call("GET", &format!("{u}/sessions/{sid}"), None).await;
    let s = &b["session"];
    assert_eq!(s["executor_session_id"], "exec-1");
    assert_eq!(s["hostname"], "h1");
    assert_eq!(s["executor_profile"], "p1");
    assert_eq!(s["project_dir"], "/bound");
    assert_eq!(s["status"], "running");

    // Metadata: only non-null fields are written.
    let meta_url = format!("{u}/sessions/{sid}/metadata");
    let (st, b) = call(
        "PATCH",
        &meta_url,
        Some(
            json!({"agent_name": "renamed", "last_resumed_at": "2025-02-02T00:00:00.000000+00:00"}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    assert_eq!(b["session"]["agent_name"], "renamed");
    let (st, b) = call(
        "PATCH",
        &meta_url,
        Some(json!({"agent_name": null, "hostname": null, "project_dir": "/moved"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (_, b) = call("GET", &format!("{u}/sessions/{sid}"), None).await;
    let s = &b["session"];
    assert_eq!(s["agent_name"], "renamed", "{b}");
    assert_eq!(s["hostname"], "h1", "{b}");
    assert_eq!(s["project_dir"], "/moved", "{b}");
    assert_eq!(s["last_resumed_at"], "2025-02-02T00:00:00.000000+00:00");
    assert_eq!(s["executor_session_id"], "exec-1");
    assert_eq!(s["status"], "running");
    // An empty patch changes nothing.
    let (st, b2) = call("PATCH", &meta_url, Some(json!({}))).await;
    assert_eq!(st, 200);
    assert_eq!(b2["session"], b["session"]);
    expect_err(
        call(
            "PATCH",
            &format!("{u}/sessions/ses_nope/metadata"),
            Some(json!({"agent_name": "x"})),
        )
        .await,
        404,
        "session_not_found",
    );
    expect_422(
        call("PATCH", &meta_url, Some(json!(["agent_name"]))).await,
        "model_attributes_type",
    );
    expect_422(
        call("PATCH", &meta_url, Some(json!({"agent_name": 7}))).await,
        "string_type",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_delete_busy_then_done() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let runner = register(u, "r1").await;
    let (run, sid, token) = claimed_run(u, &runner, "delete me").await;

    // Claimed (lease held): busy.
    let b = expect_err(
        call("DELETE", &format!("{u}/sessions/{sid}"), None).await,
        409,
        "session_busy",
    );
    assert!(b["detail"].is_string(), "{b}");
    let (st, _) = report(
        u,
        &run,
        "started",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    for i in 0..2 {
        let (st, b) = post_ev(u, &sid, ev(&sid, &format!("note{i}")), &[]).await;
        assert_eq!(st, 201, "{b}");
    }
    // Running: busy, and nothing was deleted.
    expect_err(
        call("DELETE", &format!("{u}/sessions/{sid}"), None).await,
        409,
        "session_busy",
    );
    assert_eq!(session_status(u, &sid).await, "running");
    let (st, _) = report(
        u,
        &run,
        "completed",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(session_status(u, &sid).await, "finished");
    let n_events = events(u, &sid).await.len();
    assert_eq!(n_events, 4, "run_start, 2 notes, run_completed");

    let (st, b) = call("DELETE", &format!("{u}/sessions/{sid}"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    assert_eq!(
        b["deleted"],
        json!({"session": true, "events_count": n_events, "runs_count": 1})
    );
    expect_err(
        call("GET", &format!("{u}/sessions/{sid}"), None).await,
        404,
        "session_not_found",
    );
    expect_err(
        call("DELETE", &format!("{u}/sessions/{sid}"), None).await,
        404,
        "session_not_found",
    );
    expect_err(
        call("GET", &format!("{u}/sessions/{sid}/events"), None).await,
        404,
        "session_not_found",
    );
    expect_err(
        call("GET", &format!("{u}/runs/{run}"), None).await,
        404,
        "run_not_found",
    );
    assert_eq!(session_status(u, &sid).await, "not_existent");
    let (_, b) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(b, json!({"sessions": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_post_validation_and_idempotency() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let (_, sid) = start_run(u, "events").await;

    let mut msg = ev(&sid, "message");
    msg["role"] = json!("assistant");
    msg["content"] = json!([{"type": "text", "text": "hello"}]);
    let (st, b) = post_ev(u, &sid, msg, &[]).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["ok"], true);
    assert!(b["id"].as_i64().unwrap() > 0, "{b}");
    assert_eq!(b["seq"], 1);
    let first_id = b["id"].as_i64().unwrap();

    // Errors.
    expect_err(
        post_ev(u, &sid, ev("ses_other", "message"), &[]).await,
        400,
        "session_id_mismatch",
    );
    let item = expect_422(
        post_ev(
            u,
            &sid,
            json!({"event_type": "message", "session_id": sid}),
            &[],
        )
        .await,
        "missing",
    );
    assert_eq!(item["loc"], json!(["body", "timestamp"]));
    expect_422(
        post_ev(
            u,
            &sid,
            json!({"session_id": sid, "timestamp": "2025-01-01T00:00:00+00:00"}),
            &[],
        )
        .await,
        "missing",
    );
    expect_err(
        post_ev(u, "ses_nope", ev("ses_nope", "message"), &[]).await,
        404,
        "session_not_found",
    );
    expect_err(
        post_ev(u, &sid, ev(&sid, ""), &[]).await,
        400,
        "invalid_event_type",
    );
    expect_422(
        call_raw("POST", &format!("{u}/sessions/{sid}/events"), "{").await,
        "json_invalid",
    );

    // Idempotency: the same key twice is stored once.
    let key = [("idempotency-key", "k-1")];
    let (st, b) = post_ev(u, &sid, ev(&sid, "keyed"), &key).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["seq"], 2, "{b}");
    assert!(b.get("duplicate").is_none(), "{b}");
    let (st, b) = post_ev(u, &sid, ev(&sid, "keyed"), &key).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["duplicate"], true, "{b}");
    assert!(b.get("id").is_none(), "{b}");
    // A different key is a different event.
    let (st, b) = post_ev(u, &sid, ev(&sid, "keyed"), &[("idempotency-key", "k-2")]).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["seq"], 3, "{b}");

    let evs = events(u, &sid).await;
    assert_eq!(types_of(&evs), vec!["message", "keyed", "keyed"], "{evs:?}");
    assert_eq!(evs[0]["id"], first_id);
    assert_eq!(evs[0]["session_id"], sid.as_str());
    assert_eq!(evs[0]["role"], "assistant");
    assert_eq!(evs[0]["content"][0]["text"], "hello");
    assert_eq!(evs[0]["timestamp"], "2025-01-01T00:00:00.000000+00:00");
    // Rejected posts left nothing.
    expect_err(
        call("GET", &format!("{u}/sessions/ses_nope/events"), None).await,
        404,
        "session_not_found",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_order_paging_and_no_cap() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let (_, sid) = start_run(u, "many").await;
    // A second session interleaved, to show ids are global and seq is per session.
    let (_, other) = start_run(u, "other").await;

    const N: usize = 150;
    let mut posted = Vec::new();
    for i in 0..N {
        let mut e = ev(&sid, "message");
        e["content"] = json!([{"type": "text", "text": format!("m{i}")}]);
        let (st, b) = post_ev(u, &sid, e, &[]).await;
        assert_eq!(st, 201, "{b}");
        posted.push(b["id"].as_i64().unwrap());
        if i % 50 == 0 {
            let (st, _) = post_ev(u, &other, ev(&other, "noise"), &[]).await;
            assert_eq!(st, 201);
        }
    }

    let evs = events(u, &sid).await;
    assert!(evs.len() >= N, "all events, no cap: got {}", evs.len());
    assert_eq!(evs.len(), N);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"], (i + 1) as i64, "seq without gaps at {i}");
        assert_eq!(e["id"], posted[i], "commit order at {i}");
        assert_eq!(e["content"][0]["text"], format!("m{i}"));
        if i > 0 {
            assert!(e["id"].as_i64() > evs[i - 1]["id"].as_i64());
        }
    }
    let others = events(u, &other).await;
    assert_eq!(others.len(), 3);
    assert_eq!(
        others
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    // Paging.
    let (st, b) = call(
        "GET",
        &format!("{u}/sessions/{sid}/events?after={}&limit=2", posted[9]),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let page = b["events"].as_array().unwrap();
    assert_eq!(page.len(), 2, "{b}");
    assert_eq!(page[0]["id"], posted[10]);
    assert_eq!(page[1]["id"], posted[11]);
    assert_eq!(page[0]["seq"], 11);
    let (_, b) = call("GET", &format!("{u}/sessions/{sid}/events?limit=5"), None).await;
    assert_eq!(b["events"].as_array().unwrap().len(), 5);
    assert_eq!(b["events"][0]["seq"], 1);
    let (_, b) = call(
        "GET",
        &format!("{u}/sessions/{sid}/events?after={}", posted[N - 1]),
        None,
    )
    .await;
    assert_eq!(b, json!({"events": []}));
    let (_, b) = call(
        "GET",
        &format!("{u}/sessions/{sid}/events?after={}", posted[N - 3]),
        None,
    )
    .await;
    assert_eq!(b["events"].as_array().unwrap().len(), 2);

    // Bad query values.
    let item = expect_422(
        call("GET", &format!("{u}/sessions/{sid}/events?limit=0"), None).await,
        "greater_than_equal",
    );
    assert_eq!(item["loc"], json!(["query", "limit"]));
    let item = expect_422(
        call("GET", &format!("{u}/sessions/{sid}/events?limit=abc"), None).await,
        "int_parsing",
    );
    assert_eq!(item["loc"], json!(["query", "limit"]));
    expect_422(
        call("GET", &format!("{u}/sessions/{sid}/events?after=x"), None).await,
        "int_parsing",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_of_reports_and_events() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let r1 = register(u, "r1").await;
    let r2 = register(u, "r2").await;
    let (run, sid, token) = claimed_run(u, &r1, "fenced").await;
    let body1 = json!({"runner_id": r1});

    // Wrong token: conflict, nothing changes.
    expect_err(
        report(u, &run, "started", body1.clone(), Some("lease_wrong")).await,
        409,
        "lease_conflict",
    );
    assert_eq!(run_status(u, &run).await, "claimed");
    assert_eq!(session_status(u, &sid).await, "pending");
    // Correct token.
    let (st, b) = report(u, &run, "started", body1.clone(), Some(&token)).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(run_status(u, &run).await, "running");
    assert_eq!(session_status(u, &sid).await, "running");
    // Repeated start: harmless.
    let (st, _) = report(u, &run, "started", body1.clone(), Some(&token)).await;
    assert_eq!(st, 200);

    // Another registered runner: conflict; an unregistered one: 401.
    for what in ["completed", "stopped", "started"] {
        expect_err(
            report(u, &run, what, json!({"runner_id": r2}), None).await,
            409,
            "lease_conflict",
        );
    }
    expect_err(
        report(
            u,
            &run,
            "failed",
            json!({"runner_id": r2, "error": "x"}),
            None,
        )
        .await,
        409,
        "lease_conflict",
    );
    expect_err(
        report(
            u,
            &run,
            "completed",
            json!({"runner_id": "lnch_000000000000"}),
            None,
        )
        .await,
        401,
        "runner_not_registered",
    );
    expect_err(
        report(
            u,
            &run,
            "failed",
            json!({"runner_id": r1, "error": "x"}),
            Some("lease_wrong"),
        )
        .await,
        409,
        "lease_conflict",
    );
    assert_eq!(run_status(u, &run).await, "running");
    // Reports on unknown runs; bad bodies.
    expect_err(
        report(u, "run_nope", "completed", body1.clone(), None).await,
        404,
        "run_not_found",
    );
    expect_422(
        report(u, &run, "completed", json!({}), None).await,
        "missing",
    );
    expect_422(
        report(u, &run, "failed", body1.clone(), Some(&token)).await,
        "missing",
    );
    expect_422(
        report(
            u,
            &run,
            "completed",
            json!({"runner_id": r1, "session_status": "bogus"}),
            Some(&token),
        )
        .await,
        "literal_error",
    );
    assert_eq!(run_status(u, &run).await, "running");

    // Events under a lease.
    let stale = [
        ("x-aof-lease-token", "lease_stale"),
        ("x-aof-run-id", run.as_str()),
    ];
    expect_err(
        post_ev(u, &sid, ev(&sid, "message"), &stale).await,
        409,
        "lease_conflict",
    );
    let good = [
        ("x-aof-lease-token", token.as_str()),
        ("x-aof-run-id", run.as_str()),
    ];
    let (st, b) = post_ev(u, &sid, ev(&sid, "message"), &good).await;
    assert_eq!(st, 201, "{b}");
    let evs = events(u, &sid).await;
    assert_eq!(types_of(&evs), vec!["run_start", "message"], "{evs:?}");
    assert_eq!(evs[1]["run_id"], run.as_str());

    // Heartbeat naming a wrong token: that lease is reported revoked.
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/heartbeat"),
        Some(json!({"runner_id": r1, "leases": [{"run_id": run, "lease_token": "lease_wrong"}]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["revoked"], json!([run]));
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/heartbeat"),
        Some(json!({"runner_id": r1, "leases": [{"run_id": run, "lease_token": token}]})),
    )
    .await;
    assert_eq!((st, b), (200, json!({"ok": true, "revoked": []})));

    // Complete; repeats are idempotent.
    let (st, _) = report(u, &run, "completed", body1.clone(), Some(&token)).await;
    assert_eq!(st, 200);
    let (st, b) = report(u, &run, "completed", body1.clone(), Some(&token)).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(run_status(u, &run).await, "completed");
    assert_eq!(session_status(u, &sid).await, "finished");
    // The lease ended with the run: its token no longer writes events.
    expect_err(
        post_ev(u, &sid, ev(&sid, "late"), &good).await,
        409,
        "lease_conflict",
    );
    let evs = events(u, &sid).await;
    assert_eq!(
        types_of(&evs),
        vec!["run_start", "message", "run_completed"],
        "{evs:?}"
    );
    assert_eq!(run_status(u, &run).await, "completed");
    let (_, b) = call("GET", &format!("{u}/runs/{run}"), None).await;
    assert!(
        b["completed_at"].is_string() && b["started_at"].is_string(),
        "{b}"
    );

    // Failed report: error recorded on the run, session failed.
    let (run2, sid2, token2) = claimed_run(u, &r1, "fails").await;
    let (st, _) = report(
        u,
        &run2,
        "failed",
        json!({"runner_id": r1, "error": "boom"}),
        Some(&token2),
    )
    .await;
    assert_eq!(st, 200);
    let (_, b) = call("GET", &format!("{u}/runs/{run2}"), None).await;
    assert_eq!(b["status"], "failed");
    assert_eq!(b["error"], "boom");
    assert_eq!(session_status(u, &sid2).await, "failed");

    // Last (so a failure here hides nothing above): the holder of a run it completed
    // itself, with its current token, reporting another move is an illegal transition
    // (400), not a lost lease (409 is for runs resolved *without* that runner).
    expect_err(
        report(u, &run, "started", body1.clone(), Some(&token)).await,
        400,
        "illegal_transition",
    );
    expect_err(
        report(
            u,
            &run,
            "failed",
            json!({"runner_id": r1, "error": "late"}),
            Some(&token),
        )
        .await,
        400,
        "illegal_transition",
    );
    assert_eq!(run_status(u, &run).await, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_registry_lifecycle() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;

    let reg = json!({"hostname": "h1", "project_dir": "/p", "executor_profile": "prof",
                     "executor": {"type": "autonomous"}, "tags": ["a", "b"]});
    let (st, b) = register_body(u, reg.clone()).await;
    assert_eq!(st, 200, "{b}");
    let id = b["runner_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("lnch_") && id.len() == 17, "{id}");
    assert_eq!(b["poll_endpoint"], "/runner/runs");
    assert_eq!(b["poll_timeout_seconds"], 5);
    assert_eq!(b["heartbeat_interval_seconds"], 1);

    // Same identity while online: duplicate.
    let b = expect_err(register_body(u, reg.clone()).await, 409, "duplicate_runner");
    assert_eq!(b["detail"]["error"], "duplicate_runner", "{b}");
    assert_eq!(b["detail"]["runner_id"], id.as_str(), "{b}");
    // A process that says who it is may register again (same id).
    let inst = json!({"hostname": "h2", "project_dir": "/p", "executor_profile": "prof",
                      "instance_id": "i-1"});
    let (st, b) = register_body(u, inst.clone()).await;
    assert_eq!(st, 200, "{b}");
    let id2 = b["runner_id"].as_str().unwrap().to_string();
    assert_ne!(id2, id);
    let (st, b) = register_body(u, inst.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["runner_id"], id2.as_str());
    // Bad registrations.
    expect_err(
        register_body(
            u,
            json!({"hostname": "", "project_dir": "/p", "executor_profile": "x"}),
        )
        .await,
        400,
        "invalid_runner",
    );
    let item = expect_422(
        register_body(u, json!({"project_dir": "/p", "executor_profile": "x"})).await,
        "missing",
    );
    assert_eq!(item["loc"], json!(["body", "hostname"]));

    // Listing.
    let (st, b) = call("GET", &format!("{u}/runners"), None).await;
    assert_eq!(st, 200, "{b}");
    let list = b["runners"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{b}");
    let me = list.iter().find(|r| r["runner_id"] == id.as_str()).unwrap();
    assert_eq!(me["status"], "online");
    assert_eq!(me["hostname"], "h1");
    assert_eq!(me["project_dir"], "/p");
    assert_eq!(me["executor_profile"], "prof");
    assert_eq!(me["tags"], json!(["a", "b"]));
    assert_eq!(me["executor"], json!({"type": "autonomous"}));
    assert_eq!(me["require_matching_tags"], false);

    // Heartbeats.
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/heartbeat"),
        Some(json!({"runner_id": id})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    expect_err(
        call(
            "POST",
            &format!("{u}/runner/heartbeat"),
            Some(json!({"runner_id": "lnch_000000000000"})),
        )
        .await,
        401,
        "runner_not_registered",
    );
    expect_422(
        call("POST", &format!("{u}/runner/heartbeat"), Some(json!({}))).await,
        "missing",
    );

    // Poll input.
    let item = expect_422(
        call("GET", &format!("{u}/runner/runs"), None).await,
        "missing",
    );
    assert_eq!(item["loc"], json!(["query", "runner_id"]));
    expect_err(
        poll(u, "lnch_000000000000", "").await,
        401,
        "runner_not_registered",
    );
    expect_422(poll(u, &id, "&accept_runs=maybe").await, "bool_parsing");

    // External removal: marked, told on its next poll, then gone.
    let (st, b) = call("DELETE", &format!("{u}/runners/{id}"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    assert_eq!(b["initiated_by"], "external");
    let (st, b) = poll(u, &id, "").await;
    assert_eq!((st, b), (200, json!({"deregistered": true})));
    let (_, b) = call("GET", &format!("{u}/runners"), None).await;
    assert!(
        !b["runners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["runner_id"] == id.as_str()),
        "{b}"
    );
    expect_err(poll(u, &id, "").await, 401, "runner_not_registered");
    // Once gone, the identity may register again.
    let (st, b) = register_body(u, reg.clone()).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["runner_id"], id.as_str());

    // Self removal: gone at once.
    let (st, b) = call("DELETE", &format!("{u}/runners/{id2}?self=true"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["initiated_by"], "self");
    let (_, b) = call("GET", &format!("{u}/runners"), None).await;
    let ids: Vec<&str> = b["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![id.as_str()], "{b}");
    expect_err(
        call(
            "POST",
            &format!("{u}/runner/heartbeat"),
            Some(json!({"runner_id": id2})),
        )
        .await,
        401,
        "runner_not_registered",
    );
    expect_err(
        call("DELETE", &format!("{u}/runners/lnch_000000000000"), None).await,
        404,
        "runner_not_found",
    );
    expect_err(
        call(
            "DELETE",
            &format!("{u}/runners/lnch_000000000000?self=true"),
            None,
        )
        .await,
        404,
        "runner_not_found",
    );

    // Runner-reported session status: validated before anything else.
    let (_, sid) = start_run(u, "status").await;
    let item = expect_422(
        call(
            "POST",
            &format!("{u}/runner/sessions/{sid}/status"),
            Some(json!({"runner_id": id, "status": "bogus"})),
        )
        .await,
        "literal_error",
    );
    assert_eq!(item["loc"], json!(["body", "status"]));
    expect_422(
        call(
            "POST",
            &format!("{u}/runner/sessions/{sid}/status"),
            Some(json!({"status": "finished"})),
        )
        .await,
        "missing",
    );
    assert_eq!(session_status(u, &sid).await, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_removal_fails_held_runs() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let runner = register(u, "r1").await;
    let (run, sid, token) = claimed_run(u, &runner, "held").await;
    let (st, _) = report(
        u,
        &run,
        "started",
        json!({"runner_id": runner}),
        Some(&token),
    )
    .await;
    assert_eq!(st, 200);
    let (st, b) = call("DELETE", &format!("{u}/runners/{runner}?self=true"), None).await;
    assert_eq!(st, 200, "{b}");
    let (_, b) = call("GET", &format!("{u}/runs/{run}"), None).await;
    assert_eq!(b["status"], "failed", "{b}");
    assert!(b["error"].as_str().unwrap().contains("deregistered"), "{b}");
    assert_eq!(session_status(u, &sid).await, "failed");
    // The removed runner can no longer report.
    expect_err(
        report(
            u,
            &run,
            "completed",
            json!({"runner_id": runner}),
            Some(&token),
        )
        .await,
        401,
        "runner_not_registered",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demands_route_runs_to_matching_runners() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = c.url.clone();
    let plain = register(&u, "plain").await;
    let (st, b) = register_body(
        &u,
        json!({"hostname": "gpu-box", "project_dir": "/p", "executor_profile": "test",
               "executor": {"type": "autonomous"}, "tags": ["gpu", "eu"]}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let gpu = b["runner_id"].as_str().unwrap().to_string();

    let (st, b) = create(
        &u,
        json!({"type": "start_session", "parameters": {"prompt": "needs gpu"},
               "additional_demands": {"tags": ["gpu"]}}),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let run_id = b["run_id"].as_str().unwrap().to_string();
    let (_, b) = call("GET", &format!("{u}/runs/{run_id}"), None).await;
    assert_eq!(b["demands"]["tags"], json!(["gpu"]), "{b}");
    assert_eq!(b["demands"]["executor_type"], "autonomous", "{b}");

    // Both polls end empty after the poll timeout (5 s), concurrently: the untagged
    // runner does not match, and the gpu runner said it takes no runs.
    let (a, b) = tokio::join!(poll(&u, &plain, ""), poll(&u, &gpu, "&accept_runs=false"));
    assert_eq!(
        a.0, 204,
        "untagged runner must not get the gpu run: {}",
        a.1
    );
    assert_eq!(
        b.0, 204,
        "accept_runs=false must not hand out runs: {}",
        b.1
    );
    assert_eq!(run_status(&u, &run_id).await, "pending");

    let run = claim(&u, &gpu).await;
    assert_eq!(run["run_id"], run_id.as_str());
    assert_eq!(run["runner_id"], gpu.as_str());
    assert_eq!(run["attempt"], 1);
    assert_eq!(run_status(&u, &run_id).await, "claimed");

    // A run without demands still goes to the plain runner.
    let (r2, _) = start_run(&u, "anyone").await;
    let run = claim(&u, &plain).await;
    assert_eq!(run["run_id"], r2.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_init_then_event_frame() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let (_, sid) = start_run(u, "watched").await;
    let (_, other) = start_run(u, "not watched").await;

    let mut sse = Sse::open(&format!("{u}/sse/sessions?session_id={sid}"), None).await;
    let init = sse.next().await.expect("init frame");
    assert_eq!(init.event, "init");
    let data: Value = serde_json::from_str(&init.data).unwrap();
    let sessions = data["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{data}");
    assert_eq!(sessions[0]["session_id"], sid.as_str());
    assert_eq!(sessions[0]["status"], "pending");

    // An event elsewhere is filtered out; ours arrives.
    let (st, _) = post_ev(u, &other, ev(&other, "elsewhere"), &[]).await;
    assert_eq!(st, 201);
    let mut e = ev(&sid, "message");
    e["content"] = json!([{"type": "text", "text": "live"}]);
    let (st, posted) = post_ev(u, &sid, e, &[]).await;
    assert_eq!(st, 201, "{posted}");
    let frame = loop {
        let f = sse.next().await.expect("event frame");
        if f.event == "event" {
            break f;
        }
    };
    let data: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(data["data"]["event_type"], "message", "{data}");
    assert_eq!(data["data"]["session_id"], sid.as_str());
    assert_eq!(data["data"]["content"][0]["text"], "live");
    let id: i64 = frame
        .id
        .as_deref()
        .expect("frame id")
        .parse()
        .expect("numeric id");
    assert_eq!(id, posted["id"].as_i64().unwrap());

    // Bad Last-Event-ID is rejected.
    expect_err(
        call("GET", &format!("{u}/sse/sessions?last_event_id=abc"), None).await,
        400,
        "invalid_last_event_id",
    );
    // A stream for a session that does not exist starts with an empty init.
    let mut none = Sse::open(&format!("{u}/sse/sessions?session_id=ses_nope"), None).await;
    let init = none.next().await.expect("init frame");
    assert_eq!(init.event, "init");
    let data: Value = serde_json::from_str(&init.data).unwrap();
    assert_eq!(data, json!({"sessions": []}));
}

/// The stream's headers, as the AOF reference sends them: a proxy in front (nginx) must
/// not buffer frames (`X-Accel-Buffering: no`), nor any cache keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_headers_tell_proxies_not_to_buffer() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let r = client()
        .get(format!("{}/sse/sessions", c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = |k: &str| {
        r.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(
        h("content-type").starts_with("text/event-stream"),
        "{:?}",
        r.headers()
    );
    assert_eq!(h("x-accel-buffering"), "no", "{:?}", r.headers());
    assert_eq!(h("cache-control"), "no-cache", "{:?}", r.headers());
}

/// `GET /sessions` is written a page (1,000 sessions) at a time; across pages the list
/// is still whole, without repeats, newest first, and valid JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_spans_store_pages() {
    use futures::StreamExt as _;
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = c.url.clone();
    let created: std::collections::BTreeSet<String> = futures::stream::iter(0..2_345)
        .map(|i| {
            let u = u.clone();
            async move { start_run(&u, &format!("s{i}")).await.1 }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(created.len(), 2_345);
    let (st, b) = call("GET", &format!("{u}/sessions"), None).await;
    assert_eq!(st, 200);
    let list = b["sessions"].as_array().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
    assert_eq!(ids.len(), 2_345, "no session twice, none missing");
    assert_eq!(unique, created);
    let times: Vec<&str> = list
        .iter()
        .map(|s| s["created_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    // The parent filter applies on every page (none of these has a parent).
    let (st, b) = call("GET", &format!("{u}/sessions?parent={}", ids[0]), None).await;
    assert_eq!(st, 200);
    assert_eq!(b, json!({"sessions": []}));
}

/// AOF reference runners keep a process per idle session: a stop of an idle session goes
/// to the runner that served it (which reports how the session ended), and only to a
/// runner that is still there. Their runs carry no lease token, and a fast turn's end
/// may be reported before its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_stops_go_to_their_runner() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let runner = register(u, "reference-like").await;
    let me = json!({"runner_id": runner});
    let idle = json!({"runner_id": runner, "session_status": "idle"});

    // A turn ended before its start was reported: the history still shows the start,
    // and the late start is answered 200 and changes nothing.
    let (run, sid) = start_run(u, "turn").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    assert_eq!(
        report(u, &run, "completed", idle.clone(), None).await.0,
        200
    );
    let (st, b) = report(u, &run, "started", me.clone(), None).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(run_status(u, &run).await, "completed");
    assert_eq!(session_status(u, &sid).await, "idle");
    assert_eq!(
        types_of(&events(u, &sid).await),
        ["run_start", "run_completed"]
    );

    // The stop is queued for the runner, delivered once, and the runner's report ends it.
    let (st, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        (&b["status"], &b["run_id"], &b["message"]),
        (
            &json!("stopping"),
            &json!(run),
            &json!("Stop command queued for idle session")
        )
    );
    assert_eq!(session_status(u, &sid).await, "stopping");
    let (st, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!((st, &b["status"]), (200, &json!("stopping")), "{b}");
    let (st, b) = poll(u, &runner, "").await;
    assert_eq!((st, b), (200, json!({"stop_sessions": [sid]})));
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/sessions/{sid}/status"),
        Some(json!({"runner_id": runner, "status": "stopped"})),
    )
    .await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(session_status(u, &sid).await, "stopped");
    assert_eq!(run_status(u, &run).await, "completed");

    // Told, but the runner never reports (it lost the process): a second stop ends it.
    let (run, sid) = start_run(u, "second").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    assert_eq!(report(u, &run, "started", me.clone(), None).await.0, 200);
    assert_eq!(
        report(u, &run, "completed", idle.clone(), None).await.0,
        200
    );
    let (_, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(b["status"], "stopping", "{b}");
    let (_, b) = poll(u, &runner, "").await;
    assert_eq!(b, json!({"stop_sessions": [sid]}));
    let (_, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(
        (&b["status"], &b["run_id"]),
        (&json!("stopped"), &json!(run)),
        "{b}"
    );
    assert_eq!(session_status(u, &sid).await, "stopped");

    // Queued, then the runner goes away before its next poll: a second stop ends it, and
    // the stop is not handed to the next runner registering under that id.
    let (run, sid) = start_run(u, "third").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    assert_eq!(
        report(u, &run, "completed", idle.clone(), None).await.0,
        200
    );
    let (_, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(b["status"], "stopping", "{b}");
    let (st, _) = call("DELETE", &format!("{u}/runners/{runner}?self=true"), None).await;
    assert_eq!(st, 200);
    let (_, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(b["status"], "stopped", "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");

    // An idle session whose runner is gone is simply marked stopped.
    let runner = register(u, "reference-like").await;
    let (run, sid) = start_run(u, "fourth").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    let idle = json!({"runner_id": runner, "session_status": "idle"});
    assert_eq!(report(u, &run, "completed", idle, None).await.0, 200);
    let (st, _) = call("DELETE", &format!("{u}/runners/{runner}?self=true"), None).await;
    assert_eq!(st, 200);
    let (_, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(b["status"], "stopped", "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");
}

/// An AOF runner (it registers an `instance_id`) starts a process per turn and holds none
/// between turns: stopping its idle session needs no round trip to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_of_aof_runners_stop_at_once() {
    let dir = tempdir();
    let c = coordinator(&dir).await;
    let u = &c.url;
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/register"),
        Some(
            json!({"hostname": "ours", "project_dir": "/p", "executor_profile": "echo",
                    "executor": {"type": "autonomous"}, "instance_id": "inst-1"}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let runner = b["runner_id"].as_str().unwrap().to_string();
    let (run, sid, token) = claimed_run(u, &runner, "turn").await;
    let me = json!({"runner_id": runner});
    assert_eq!(report(u, &run, "started", me, Some(&token)).await.0, 200);
    let idle = json!({"runner_id": runner, "session_status": "idle"});
    assert_eq!(
        report(u, &run, "completed", idle, Some(&token)).await.0,
        200
    );
    assert_eq!(session_status(u, &sid).await, "idle");
    let (st, b) = call("POST", &format!("{u}/sessions/{sid}/stop"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");
    // Nothing is owed to the runner: its next poll finds no stop.
    let (st, b) = poll(u, &runner, "&accept_runs=false&timeout=1").await;
    assert_ne!(b["stop_sessions"], json!([sid]), "{st} {b}");
}
