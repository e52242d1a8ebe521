//! The route tests' own helpers: this binary speaks the runner protocol itself, over HTTP.

use serde_json::{json, Value};

use aof_wire::runner::PollResponse;

use crate::client::*;

/// Asserts an error response: status, stable `code`, and returns the body.
#[track_caller]
pub fn expect_err(got: (u16, Value), status: u16, code: &str) -> Value {
    let (st, body) = got;
    assert_eq!(st, status, "status for {body}");
    assert_eq!(body["code"], code, "code in {body}");
    assert!(body.get("detail").is_some(), "detail in {body}");
    body
}

/// Asserts a FastAPI-style 422 whose first item has `kind` and returns that item.
#[track_caller]
pub fn expect_422(got: (u16, Value), kind: &str) -> Value {
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

pub async fn get_text(url: &str) -> (u16, String, String) {
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

pub async fn create(url: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/runs"), Some(body)).await
}

pub async fn register_body(url: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/runner/register"), Some(body)).await
}

pub async fn poll(url: &str, runner_id: &str, extra: &str) -> (u16, Value) {
    call(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}{extra}"),
        None,
    )
    .await
}

/// Polls once and expects a run (there must be a claimable one): returns the run object.
pub async fn claim(url: &str, runner_id: &str) -> Value {
    let (st, b) = poll(url, runner_id, "").await;
    assert_eq!(st, 200, "poll: {b}");
    assert!(b["run"].is_object(), "expected a run, got {b}");
    b["run"].clone()
}

pub async fn report(
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

pub fn ev(sid: &str, event_type: &str) -> Value {
    json!({"event_type": event_type, "session_id": sid, "timestamp": "2025-01-01T00:00:00.000000+00:00"})
}

pub async fn post_ev(url: &str, sid: &str, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    call_h(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(body),
        headers,
    )
    .await
}

pub async fn run_status(url: &str, run_id: &str) -> String {
    let run = Client::new(url)
        .run(run_id)
        .await
        .unwrap_or_else(|r| panic!("GET /runs/{run_id}: {r:?}"));
    // As sent on the wire, whatever type the status has in `aof-wire`.
    serde_json::to_value(run.status)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

pub fn types_of(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Creates a run and has `runner` claim it; returns (run_id, session_id, lease_token).
pub async fn claimed_run(url: &str, runner: &str, prompt: &str) -> (String, String, String) {
    let (run_id, sid) = start_run(url, prompt).await;
    let polled = Client::new(url).poll(runner).await;
    let Ok(Some(PollResponse::Run { run })) = polled else {
        panic!("expected a run, got {polled:?}");
    };
    assert_eq!(run.run_id, run_id, "{run:?}");
    let token = run.lease_token.clone().expect("a lease token");
    (run_id, sid, token)
}

/// `report` that must be accepted (200).
pub async fn report_ok(url: &str, run_id: &str, what: &str, body: Value, token: Option<&str>) {
    let (st, b) = report(url, run_id, what, body, token).await;
    assert_eq!(st, 200, "{what} of {run_id}: {b}");
}

/// `report_ok` by the runner holding the run's lease, with nothing else to say.
pub async fn report_held(url: &str, run_id: &str, what: &str, runner: &str, token: &str) {
    let body = json!({ "runner_id": runner });
    report_ok(url, run_id, what, body, Some(token)).await;
}

/// A runner's report of how a session ended (`POST /runner/sessions/{sid}/status`).
pub async fn report_session(url: &str, sid: &str, body: Value) -> (u16, Value) {
    call(
        "POST",
        &format!("{url}/runner/sessions/{sid}/status"),
        Some(body),
    )
    .await
}

pub async fn heartbeat(url: &str, body: Value) -> (u16, Value) {
    call("POST", &format!("{url}/runner/heartbeat"), Some(body)).await
}

/// A runner removing itself (`DELETE /runners/{id}?self=true`).
pub async fn deregister(url: &str, runner_id: &str) -> (u16, Value) {
    call(
        "DELETE",
        &format!("{url}/runners/{runner_id}?self=true"),
        None,
    )
    .await
}

pub async fn session_result(url: &str, sid: &str) -> (u16, Value) {
    call("GET", &format!("{url}/sessions/{sid}/result"), None).await
}

pub async fn stop_session(url: &str, sid: &str) -> (u16, Value) {
    call("POST", &format!("{url}/sessions/{sid}/stop"), None).await
}
