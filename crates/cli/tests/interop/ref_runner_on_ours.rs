//! The reference runner (`agent-runner --profile echo-executor`) against our coordinator,
//! SQLite and PostgreSQL (`AOF_TEST_STORE`). The same scenario runs against the
//! reference's own coordinator first: ours must give the reference runner the outcome
//! its own coordinator gives it.
//!
//! The reference's echo executor is persistent: it answers a turn with `turn_complete`
//! only (no events of its own) and stays alive between turns, so its sessions end a turn
//! `idle`. A stop of the idle session goes to the runner, which shuts the process down
//! and reports the session `finished`.

use std::path::Path;

use serde_json::{json, Value};

use crate::{
    cli_on_ref::{aof, ok, session_of},
    harness::*,
    reference::{RefCoordinator, RefPaths, RefRunner},
};

/// The processes the reference runner started (its executors, via `uv run --script`).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// What a user of a coordinator sees of one echo session on the reference runner.
#[derive(Debug, PartialEq)]
struct Seen {
    runner_status: String,
    runner_profile: String,
    session_after_turn: String,
    run_after_turn: String,
    event_types: Vec<String>,
    cli_events: Vec<String>,
    stop_answer: String,
    session_after_stop: String,
    run_after_stop: String,
    event_types_after_stop: Vec<String>,
}

fn types(evs: &[Value]) -> Vec<String> {
    evs.iter()
        .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
        .collect()
}

/// One echo session through the reference runner at `url`: registration, a turn
/// started with `aof run --follow`, its events through `aof sessions events`, then a
/// stop of the idle session, which must end the runner's executor process.
async fn scenario(p: &RefPaths, url: &str, dir: &Path) -> Seen {
    let mut runner = RefRunner::start(p, url, dir, "echo-executor", &[]).await;
    let runner_id = runner.registered().await;
    let (_, listed) = call("GET", &format!("{url}/runners"), None).await;
    let me = listed["runners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runner_id"] == runner_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("{runner_id} in {listed}"));

    let (code, out, err) = aof(&[
        "run",
        "demo",
        "hello",
        "--follow",
        "--url",
        url,
        "--timeout",
        "60",
    ])
    .await;
    assert_eq!(
        code,
        0,
        "stdout:\n{out}\nstderr:\n{err}\nrunner log:\n{}",
        runner.log()
    );
    let sid = session_of(&err);
    wait_session(url, &sid, "idle").await;
    let runs = runs_of(url, &sid).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["runner_id"], runner_id.as_str(), "{runs:?}");
    // The turn's run ends after the session turns idle: wait for both.
    let run_status = |url: String, run_id: String| async move {
        let (_, r) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
        r["status"].as_str().unwrap_or("").to_string()
    };
    let run_after_turn = wait_for("the turn's run to end", || async {
        Some(run_status(url.to_string(), run_id.clone()).await).filter(|s| s != "running")
    })
    .await;
    let event_types = types(&events(url, &sid).await);
    let cli_events = ok(aof(&["sessions", "events", &sid, "--url", url]).await)
        .lines()
        .map(str::to_string)
        .collect();

    // The idle session's executor is alive until the stop.
    let pid = runner.child.id().unwrap();
    let executors = children(pid);
    assert_eq!(executors.len(), 1, "one executor process: {executors:?}");
    let (st, answer) = call("POST", &format!("{url}/sessions/{sid}/stop"), None).await;
    assert_eq!(st, 200, "{answer}");
    let session_after_stop = wait_for("the stopped session to settle", || async {
        Some(session_status(url, &sid).await).filter(|s| s != "idle" && s != "stopping")
    })
    .await;
    wait_for("the executor process to end", || async {
        (!children(pid).contains(&executors[0])).then_some(())
    })
    .await;
    let seen = Seen {
        runner_status: me["status"].as_str().unwrap_or("").into(),
        runner_profile: me["executor_profile"].as_str().unwrap_or("").into(),
        session_after_turn: "idle".into(),
        run_after_turn,
        event_types,
        cli_events,
        stop_answer: answer["status"].as_str().unwrap_or("").into(),
        session_after_stop,
        run_after_stop: run_status(url.to_string(), run_id).await,
        event_types_after_stop: types(&events(url, &sid).await),
    };
    runner.child.start_kill().unwrap();
    let _ = runner.child.wait().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_session_end_to_end_and_stop_as_on_the_reference() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    let theirs = scenario(&p, &rc.url, &dir.path().join("theirs")).await;
    // What the reference does with its own runner, pinned: if it changed, this says so.
    assert_eq!(
        theirs,
        Seen {
            runner_status: "online".into(),
            runner_profile: "echo-executor".into(),
            session_after_turn: "idle".into(),
            run_after_turn: "completed".into(),
            event_types: vec!["run_start".into(), "run_completed".into()],
            cli_events: vec!["[run_start]".into(), "[run_completed]".into()],
            stop_answer: "stopping".into(),
            session_after_stop: "finished".into(),
            run_after_stop: "completed".into(),
            event_types_after_stop: vec!["run_start".into(), "run_completed".into()],
        }
    );

    let c = Coordinator::start(dir.path(), Vec::new()).await;
    let ours = scenario(&p, &c.url, &dir.path().join("ours")).await;
    assert_eq!(ours, theirs, "coordinator log:\n{}", c.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_echo_session_takes_a_second_turn_on_ours() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), Vec::new()).await;
    let u = c.url.as_str();
    let runner = RefRunner::start(&p, u, dir.path(), "echo-executor", &[]).await;
    let runner_id = runner.registered().await;

    let (code, _, err) = aof(&["run", "demo", "first", "--url", u]).await;
    assert_eq!(code, 0, "{err}");
    let sid = session_of(&err);
    wait_session(u, &sid, "idle").await;
    // The second turn goes to the same process (affinity); the session is idle again.
    let (code, out, err) = aof(&[
        "run",
        "demo",
        "second",
        "--resume",
        &sid,
        "--follow",
        "--url",
        u,
        "--timeout",
        "60",
    ])
    .await;
    assert_eq!(
        code,
        0,
        "stdout:\n{out}\nstderr:\n{err}\nrunner log:\n{}",
        runner.log()
    );
    let runs = wait_for("both runs to complete", || async {
        let runs = runs_of(u, &sid).await;
        runs.iter()
            .all(|r| r["status"] == "completed")
            .then_some(runs)
    })
    .await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        runs.iter().all(|r| r["runner_id"] == runner_id.as_str()),
        "{runs:?}"
    );
    assert_eq!(runs[1]["type"], "resume_session");
    wait_session(u, &sid, "idle").await;
    assert_eq!(
        types(&events(u, &sid).await),
        ["run_start", "run_completed", "run_start", "run_completed"]
    );
    let lines = ok(aof(&["sessions", "events", &sid, "--url", u]).await);
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        [
            "[run_start]",
            "[run_completed]",
            "[run_start]",
            "[run_completed]"
        ],
        "{}",
        json!(runs)
    );
}
