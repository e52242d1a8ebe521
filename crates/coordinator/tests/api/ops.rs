//! `/health`, `/ready`, `/metrics`, the JSON fallbacks, and the SSE feed.

use serde_json::{json, Value};

use crate::{app::TestApp, client::*, helpers::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ops_health_ready_metrics_and_fallbacks() {
    let c = TestApp::spawn().await;
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
async fn sse_init_then_event_frame() {
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
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

/// The typed client reads what the routes answer as `aof-wire` types, and a refusal as
/// its status and error body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_client_speaks_aof_wire() {
    let c = TestApp::spawn().await;
    let api = c.client();
    let (run_id, sid) = start_run(&c.url, "typed").await;
    let run = api.run(&run_id).await.unwrap();
    assert_eq!(
        (run.run_id.as_str(), run.session_id.as_str()),
        (run_id.as_str(), sid.as_str())
    );
    assert_eq!(session_status(&c.url, &sid).await, "pending");
    let runner = register(&c.url, "typed").await;
    match api.poll(&runner).await {
        Ok(Some(aof_wire::runner::PollResponse::Run { run })) => {
            assert_eq!(run.run_id, run_id);
            assert!(run.lease_token.is_some(), "{run:?}");
        }
        other => panic!("expected the run, got {other:?}"),
    }
    let refused = api.run("run_missing").await.unwrap_err();
    assert_eq!(refused.status, 404, "{:?}", refused.body);
    assert_eq!(refused.body["code"], "run_not_found", "{:?}", refused.body);
}
