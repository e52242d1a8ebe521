//! `/sessions`: list (across store pages), get, status, affinity, result, bind, metadata, delete.

use serde_json::json;

use crate::{app::TestApp, client::*, helpers::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_get_status_and_affinity() {
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
    let u = &c.url;
    let runner = register(u, "r1").await;

    expect_err(
        session_result(u, "ses_nope").await,
        404,
        "session_not_found",
    );

    // Session with a result event, completed as idle, then closed by its runner.
    let (run, sid, token) = claimed_run(u, &runner, "with result").await;
    expect_err(session_result(u, &sid).await, 400, "session_not_finished");
    report_held(u, &run, "started", &runner, &token).await;
    assert_eq!(session_status(u, &sid).await, "running");
    expect_err(session_result(u, &sid).await, 400, "session_not_finished");
    let mut result = ev(&sid, "result");
    result["result_text"] = json!("the answer");
    result["result_data"] = json!({"n": 42});
    let (st, b) = post_ev(u, &sid, result, &[]).await;
    assert_eq!(st, 201, "{b}");
    report_ok(
        u,
        &run,
        "completed",
        json!({"runner_id": runner, "session_status": "idle"}),
        Some(&token),
    )
    .await;
    assert_eq!(session_status(u, &sid).await, "idle");
    let (st, b) = session_result(u, &sid).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(
        b,
        json!({"result_text": "the answer", "result_data": {"n": 42}})
    );

    // The runner closes the idle session; bad status values are 422.
    let item = expect_422(
        report_session(u, &sid, json!({"runner_id": runner, "status": "bogus"})).await,
        "literal_error",
    );
    assert_eq!(item["loc"], json!(["body", "status"]));
    let other = register(u, "r2").await;
    expect_err(
        report_session(u, &sid, json!({"runner_id": other, "status": "finished"})).await,
        409,
        "lease_conflict",
    );
    expect_err(
        report_session(
            u,
            &sid,
            json!({"runner_id": "lnch_000000000000", "status": "finished"}),
        )
        .await,
        401,
        "runner_not_registered",
    );
    let (st, b) = report_session(u, &sid, json!({"runner_id": runner, "status": "finished"})).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(session_status(u, &sid).await, "finished");
    let (st, b) = session_result(u, &sid).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["result_text"], "the answer");

    // Finished without a result event: 404 "No result found".
    let (run, sid2, token) = claimed_run(u, &runner, "no result").await;
    report_held(u, &run, "completed", &runner, &token).await;
    assert_eq!(session_status(u, &sid2).await, "finished");
    let b = expect_err(session_result(u, &sid2).await, 404, "no_result");
    assert_eq!(b["detail"], "No result found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bind_and_metadata() {
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
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
    report_held(u, &run, "started", &runner, &token).await;
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
    report_held(u, &run, "completed", &runner, &token).await;
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

/// `GET /sessions` is written a page (1,000 sessions) at a time; across pages the list
/// is still whole, without repeats, newest first, and valid JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_spans_store_pages() {
    use futures::StreamExt as _;
    let c = TestApp::spawn().await;
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
