//! The runner registry and protocol: register, poll, demands, removal, stops of idle sessions.

use serde_json::json;

use crate::{app::TestApp, client::*, helpers::*};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_registry_lifecycle() {
    let c = TestApp::spawn().await;
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
    let (st, b) = heartbeat(u, json!({"runner_id": id})).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["ok"], true);
    expect_err(
        heartbeat(u, json!({"runner_id": "lnch_000000000000"})).await,
        401,
        "runner_not_registered",
    );
    expect_422(heartbeat(u, json!({})).await, "missing");

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
    let (st, b) = deregister(u, &id2).await;
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
        heartbeat(u, json!({"runner_id": id2})).await,
        401,
        "runner_not_registered",
    );
    expect_err(
        call("DELETE", &format!("{u}/runners/lnch_000000000000"), None).await,
        404,
        "runner_not_found",
    );
    expect_err(
        deregister(u, "lnch_000000000000").await,
        404,
        "runner_not_found",
    );

    // Runner-reported session status: validated before anything else.
    let (_, sid) = start_run(u, "status").await;
    let item = expect_422(
        report_session(u, &sid, json!({"runner_id": id, "status": "bogus"})).await,
        "literal_error",
    );
    assert_eq!(item["loc"], json!(["body", "status"]));
    expect_422(
        report_session(u, &sid, json!({"status": "finished"})).await,
        "missing",
    );
    assert_eq!(session_status(u, &sid).await, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_removal_fails_held_runs() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let runner = register(u, "r1").await;
    let (run, sid, token) = claimed_run(u, &runner, "held").await;
    report_held(u, &run, "started", &runner, &token).await;
    let (st, b) = deregister(u, &runner).await;
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
    let c = TestApp::spawn().await;
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

/// AOF reference runners keep a process per idle session: a stop of an idle session goes
/// to the runner that served it (which reports how the session ended), and only to a
/// runner that is still there. Their runs carry no lease token, and a fast turn's end
/// may be reported before its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_session_stops_go_to_their_runner() {
    let c = TestApp::spawn().await;
    let u = &c.url;
    let runner = register(u, "reference-like").await;
    let me = json!({"runner_id": runner});
    let idle = json!({"runner_id": runner, "session_status": "idle"});

    // A turn ended before its start was reported: the history still shows the start,
    // and the late start is answered 200 and changes nothing.
    let (run, sid) = start_run(u, "turn").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    report_ok(u, &run, "completed", idle.clone(), None).await;
    let (st, b) = report(u, &run, "started", me.clone(), None).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(run_status(u, &run).await, "completed");
    assert_eq!(session_status(u, &sid).await, "idle");
    assert_eq!(
        types_of(&events(u, &sid).await),
        ["run_start", "run_completed"]
    );

    // The stop is queued for the runner, delivered once, and the runner's report ends it.
    let (st, b) = stop_session(u, &sid).await;
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
    let (st, b) = stop_session(u, &sid).await;
    assert_eq!((st, &b["status"]), (200, &json!("stopping")), "{b}");
    let (st, b) = poll(u, &runner, "").await;
    assert_eq!((st, b), (200, json!({"stop_sessions": [sid]})));
    let (st, b) = report_session(u, &sid, json!({"runner_id": runner, "status": "stopped"})).await;
    assert_eq!((st, b), (200, json!({"ok": true})));
    assert_eq!(session_status(u, &sid).await, "stopped");
    assert_eq!(run_status(u, &run).await, "completed");

    // Told, but the runner never reports (it lost the process): a second stop ends it.
    let (run, sid) = start_run(u, "second").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    report_ok(u, &run, "started", me.clone(), None).await;
    report_ok(u, &run, "completed", idle.clone(), None).await;
    let (_, b) = stop_session(u, &sid).await;
    assert_eq!(b["status"], "stopping", "{b}");
    let (_, b) = poll(u, &runner, "").await;
    assert_eq!(b, json!({"stop_sessions": [sid]}));
    let (_, b) = stop_session(u, &sid).await;
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
    report_ok(u, &run, "completed", idle.clone(), None).await;
    let (_, b) = stop_session(u, &sid).await;
    assert_eq!(b["status"], "stopping", "{b}");
    let (st, _) = deregister(u, &runner).await;
    assert_eq!(st, 200);
    let (_, b) = stop_session(u, &sid).await;
    assert_eq!(b["status"], "stopped", "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");

    // An idle session whose runner is gone is simply marked stopped.
    let runner = register(u, "reference-like").await;
    let (run, sid) = start_run(u, "fourth").await;
    assert_eq!(claim(u, &runner).await["run_id"], run.as_str());
    let idle = json!({"runner_id": runner, "session_status": "idle"});
    report_ok(u, &run, "completed", idle, None).await;
    let (st, _) = deregister(u, &runner).await;
    assert_eq!(st, 200);
    let (_, b) = stop_session(u, &sid).await;
    assert_eq!(b["status"], "stopped", "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");
}

/// An AOF runner (it registers an `instance_id`) starts a process per turn and holds none
/// between turns: stopping its idle session needs no round trip to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_of_aof_runners_stop_at_once() {
    let c = TestApp::spawn().await;
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
    report_ok(u, &run, "started", me, Some(&token)).await;
    let idle = json!({"runner_id": runner, "session_status": "idle"});
    report_ok(u, &run, "completed", idle, Some(&token)).await;
    assert_eq!(session_status(u, &sid).await, "idle");
    let (st, b) = stop_session(u, &sid).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(session_status(u, &sid).await, "stopped");
    // Nothing is owed to the runner: its next poll finds no stop.
    let (st, b) = poll(u, &runner, "&accept_runs=false&timeout=1").await;
    assert_ne!(b["stop_sessions"], json!([sid]), "{st} {b}");
}
