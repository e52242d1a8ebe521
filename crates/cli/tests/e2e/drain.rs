//! Graceful drain on SIGTERM: no new runs, active runs finish within the drain timeout,
//! the rest are handed back (`POST /runner/runs/{id}/release`) and another runner
//! completes them as attempt 2; a second signal skips the wait. Plus the release
//! endpoint's fencing, and a runner's id surviving a restart.

use serde_json::{json, Value};

use crate::harness::*;

fn sigterm(child: &tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().expect("runner still running") as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
}

async fn run_json(url: &str, run_id: &str) -> Value {
    let (st, b) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(st, 200, "{b}");
    b
}

/// The id the coordinator gave the runner announcing `hostname`, once it is listed.
async fn runner_id(url: &str, hostname: &str) -> String {
    wait_for(&format!("runner {hostname} to register"), || async {
        let (_, b) = call("GET", &format!("{url}/runners"), None).await;
        b["runners"].as_array()?.iter().find_map(|r| {
            (r["hostname"] == hostname).then(|| r["runner_id"].as_str().unwrap().to_string())
        })
    })
    .await
}

async fn listed_runners(url: &str) -> Vec<String> {
    let (_, b) = call("GET", &format!("{url}/runners"), None).await;
    b["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap().to_string())
        .collect()
}

fn count(events: &[Value], event_type: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .count()
}

fn says(events: &[Value], text: &str) -> bool {
    events.iter().any(|e| e["content"][0]["text"] == text)
}

fn command_args(script: &str) -> String {
    format!("sh -c '{}'", script.replace('\'', "'\\''"))
}

async fn wait_log(r: &Runner, needle: &str) {
    wait_for(&format!("runner log to say {needle:?}"), || async {
        r.log().contains(needle).then_some(())
    })
    .await
}

async fn wait_exit_ok(r: &mut Runner) {
    let status = tokio::time::timeout(PATIENCE, r.child.wait())
        .await
        .expect("runner to exit after the drain")
        .unwrap();
    assert!(status.success(), "runner exit: {status}\n{}", r.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_short_runs_and_hands_back_long_ones() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let go = dir.path().join("go");
    // "short" runs until the test creates `go`; "long" never ends by itself, only with
    // the runner that started it (so no loop outlives the test when `_r2` is killed).
    let script = format!(
        r#"read p; case "$p" in
        short) echo "short started"; while [ ! -f {go} ]; do sleep 0.05; done; echo "short done";;
        long) echo "long started"; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done;;
        *) echo "r1 did: $p";;
    esac"#,
        go = go.display()
    );
    let r1_args = [
        "--executor",
        "command",
        "--command",
        &command_args(&script),
        "--max-concurrent",
        "2",
        "--stop-grace",
        "2",
        // Room for the short run to finish on a loaded machine; the long one waits it out.
        "--drain-timeout",
        "15",
    ];
    let mut r1 = Runner::start(&url, dir.path(), "r1", &r1_args).await;
    let r1_id = runner_id(&url, "r1").await;

    let (short_run, short) = start_run(&url, "short").await;
    let (long_run, long) = start_run(&url, "long").await;
    for (sid, line) in [(&short, "short started"), (&long, "long started")] {
        wait_for(&format!("{line} on r1"), || async {
            says(&events(&url, sid).await, line).then_some(())
        })
        .await;
    }

    sigterm(&r1.child);
    wait_log(&r1, "draining").await;
    // Created while r1 drains: r1 must not take it (r2 runs it as attempt 1 below). Its
    // one long-poll now asks for stops only (as it did with both slots busy).
    let (third_run, third) = start_run(&url, "third").await;
    std::fs::write(&go, "").unwrap();
    wait_session(&url, &short, "finished").await;

    // The long run is handed back at the drain deadline; r2 takes it and the third run.
    let r2_script = r#"read p; echo "r2 did: $p""#;
    let _r2 = Runner::start(
        &url,
        dir.path(),
        "r2",
        &[
            "--executor",
            "command",
            "--command",
            &command_args(r2_script),
        ],
    )
    .await;
    let r2_id = runner_id(&url, "r2").await;
    assert_ne!(r1_id, r2_id);
    wait_session(&url, &long, "finished").await;
    wait_session(&url, &third, "finished").await;
    wait_exit_ok(&mut r1).await;
    let log = r1.log();
    assert!(log.contains("handed back"), "{log}");
    assert!(log.contains("deregistered"), "{log}");
    assert!(
        !listed_runners(&url).await.contains(&r1_id),
        "r1 deregistered"
    );

    let short_rec = run_json(&url, &short_run).await;
    assert_eq!(
        (
            &short_rec["status"],
            &short_rec["runner_id"],
            &short_rec["attempt"]
        ),
        (&json!("completed"), &json!(r1_id), &json!(1)),
        "{short_rec}"
    );
    let long_rec = run_json(&url, &long_run).await;
    assert_eq!(
        (
            &long_rec["status"],
            &long_rec["runner_id"],
            &long_rec["attempt"]
        ),
        (&json!("completed"), &json!(r2_id), &json!(2)),
        "{long_rec}"
    );
    let third_rec = run_json(&url, &third_run).await;
    assert_eq!(
        (
            &third_rec["status"],
            &third_rec["runner_id"],
            &third_rec["attempt"]
        ),
        (&json!("completed"), &json!(r2_id), &json!(1)),
        "{third_rec}"
    );

    // Nothing lost, nothing doubled: r1's partial output stays, r2's result follows, one
    // accepted completion per session and no stop or failure on the way.
    let ev = events(&url, &short).await;
    assert!(says(&ev, "short done"), "{ev:?}");
    let ev_long = events(&url, &long).await;
    assert!(
        says(&ev_long, "long started") && says(&ev_long, "r2 did: long"),
        "{ev_long:?}"
    );
    for ev in [ev, ev_long, events(&url, &third).await] {
        assert_eq!(count(&ev, "run_completed"), 1, "{ev:?}");
        assert_eq!(count(&ev, "run_stopped") + count(&ev, "run_failed"), 0);
    }

    // Stable identity: the same runner started again (same host, project, profile and
    // workspace) comes back under the same id.
    let r1_again = Runner::start(&url, dir.path(), "r1", &r1_args).await;
    wait_for("r1 to be listed again", || async {
        listed_runners(&url).await.contains(&r1_id).then_some(())
    })
    .await;
    assert_eq!(runner_id(&url, "r1").await, r1_id);
    drop(r1_again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_hands_back_at_once() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let script = r#"read p; case "$p" in
        long) echo "long started"; while kill -0 $PPID 2>/dev/null; do sleep 0.05; done;;
        *) echo "did: $p";;
    esac"#;
    let args = [
        "--executor",
        "command",
        "--command",
        &command_args(script),
        "--stop-grace",
        "2",
        "--drain-timeout",
        "3600",
    ];
    let mut r1 = Runner::start(&url, dir.path(), "r1", &args).await;
    let r1_id = runner_id(&url, "r1").await;
    let (run_id, sid) = start_run(&url, "long").await;
    wait_for("long started", || async {
        says(&events(&url, &sid).await, "long started").then_some(())
    })
    .await;

    sigterm(&r1.child);
    wait_log(&r1, "draining").await;
    sigterm(&r1.child);
    // Far inside the hour-long drain timeout.
    wait_exit_ok(&mut r1).await;
    assert!(r1.log().contains("second signal"), "{}", r1.log());
    let rec = run_json(&url, &run_id).await;
    assert_eq!(
        (&rec["status"], &rec["runner_id"], &rec["attempt"]),
        (&json!("pending"), &Value::Null, &json!(1)),
        "{rec}"
    );
    assert_eq!(session_status(&url, &sid).await, "pending");

    let _r2 = Runner::start(&url, dir.path(), "r2", &args).await;
    wait_for("r2 to take the run back up", || async {
        let rec = run_json(&url, &run_id).await;
        (rec["attempt"] == 2 && rec["runner_id"] != json!(r1_id)).then_some(())
    })
    .await;
}

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

async fn release(url: &str, run_id: &str, runner: &str, token: &str) -> (u16, Value) {
    call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/release"),
        Some(json!({"runner_id": runner})),
        &[("x-aof-lease-token", token), ("x-aof-run-id", run_id)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_is_fenced_and_requeues_by_policy() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = &c.url;
    let a = register(url, "runner-a").await;
    let b = register(url, "runner-b").await;
    let (run_id, sid) = start_run(url, "hand me back").await;
    let run = claim(url, &a).await;
    assert_eq!(run["run_id"], run_id.as_str());
    let token = run["lease_token"].as_str().unwrap().to_string();
    let (st, _) = call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/started"),
        Some(json!({"runner_id": a})),
        &[("x-aof-lease-token", &token)],
    )
    .await;
    assert_eq!(st, 200);

    // Only the holder with the current lease may hand it back.
    let (st, body) = release(url, &run_id, &a, "stale-token").await;
    assert_eq!((st, body["code"].as_str()), (409, Some("lease_conflict")));
    let (st, _) = release(url, &run_id, &b, &token).await;
    assert_eq!(st, 409);
    let (st, body) = release(url, "no-such-run", &a, &token).await;
    assert_eq!((st, body["code"].as_str()), (404, Some("run_not_found")));
    let (st, body) = call(
        "POST",
        &format!("{url}/runner/runs/{run_id}/release"),
        Some(json!({})),
    )
    .await;
    assert_eq!(st, 422, "{body}");

    let (st, body) = release(url, &run_id, &a, &token).await;
    assert_eq!(st, 200, "{body}");
    let rec = run_json(url, &run_id).await;
    assert_eq!(
        (&rec["status"], &rec["runner_id"], &rec["attempt"]),
        (&json!("pending"), &Value::Null, &json!(1)),
        "{rec}"
    );
    assert_eq!(session_status(url, &sid).await, "pending");
    // A repeat, or any later write under the old lease, is refused.
    let (st, _) = release(url, &run_id, &a, &token).await;
    assert_eq!(st, 409);
    let run_b = claim(url, &b).await;
    assert_eq!(
        (&run_b["run_id"], &run_b["attempt"]),
        (&json!(run_id), &json!(2))
    );
    let (st, _) = call_h(
        "POST",
        &format!("{url}/runner/runs/{run_id}/completed"),
        Some(json!({"runner_id": a, "status": "success"})),
        &[("x-aof-lease-token", &token)],
    )
    .await;
    assert_eq!(st, 409);

    // A run a user is stopping is not requeued: the release completes the stop.
    let token_b = run_b["lease_token"].as_str().unwrap();
    let (st, _) = call("POST", &format!("{url}/runs/{run_id}/stop"), None).await;
    assert_eq!(st, 200);
    let (st, body) = release(url, &run_id, &b, token_b).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(run_json(url, &run_id).await["status"], "stopped");
    assert_eq!(session_status(url, &sid).await, "stopped");
    drop(c);

    // RUN_RECOVERY_MODE=none never runs anything twice: a hand-back fails the run.
    let dir = tempdir();
    let mut env = fast_env();
    env.push(("RUN_RECOVERY_MODE".into(), "none".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let url = &c.url;
    let a = register(url, "runner-a").await;
    let (run_id, sid) = start_run(url, "no retries").await;
    let token = claim(url, &a).await["lease_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = release(url, &run_id, &a, &token).await;
    assert_eq!(st, 200, "{body}");
    let rec = run_json(url, &run_id).await;
    assert_eq!(rec["status"], "failed", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .unwrap()
            .contains("RUN_RECOVERY_MODE=none"),
        "{rec}"
    );
    assert_eq!(session_status(url, &sid).await, "failed");
}
