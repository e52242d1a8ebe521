//! Session events: validation, idempotency, order, paging; and fencing of runner writes.

use serde_json::json;

use crate::{app::TestApp, client::*, helpers::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_post_validation_and_idempotency() {
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
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
    let c = TestApp::spawn().await;
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
