//! `/runs`: create with good and bad input, list, filter, get, stop.

use serde_json::{json, Value};

use crate::{app::TestApp, client::*, helpers::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_good_and_bad_input() {
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
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
    // One session's runs (AOF-RS: the dashboard's session page asks for these only).
    let (_, r2_run) = call("GET", &format!("{u}/runs/{r2}"), None).await;
    let s2 = r2_run["session_id"].as_str().unwrap();
    let (st, b) = call("GET", &format!("{u}/runs?session_id={s2}"), None).await;
    assert_eq!(st, 200, "{b}");
    let ids: Vec<&str> = b["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![r2.as_str()]);
    let (_, b) = call(
        "GET",
        &format!("{u}/runs?session_id={s2}&status=claimed"),
        None,
    )
    .await;
    assert_eq!(b, json!({"runs": []}));

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
    let c = TestApp::spawn().await;
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
