//! The README's promise: `aof up` in one shell, `aof run … --follow` in another.

use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use crate::harness::*;

async fn aof_run(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("run")
        .args(args)
        .args(["--url", url, "--timeout", "60"])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_then_run_follow_prints_events_and_exit_codes() {
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let url = up.url.clone();
    // The default data dir is ./.agent-orchestrator under the working directory (the
    // SQLite file lives there unless the store is PostgreSQL).
    assert_eq!(
        dir.path()
            .join(".agent-orchestrator/observability.db")
            .exists(),
        !postgres_mode()
    );

    let (code, out, err) = aof_run(&url, &["anything", "hi", "--follow"]).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    for line in [
        "[run_start]",
        "[user] hi",
        "[assistant] hi",
        "[result] hi",
        "[run_completed]",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(err.contains("Finished"), "{err}");

    // A run that fails ends the follow with exit 1.
    let failing = echo_prompt(json!({"echo_fail": "no luck"}), "x");
    let (code, out, _) = aof_run(&url, &["anything", &failing, "--follow"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[run_failed] no luck"), "{out}");

    // Bad input: one clear line and a non-zero exit, nothing created.
    let (code, _, err) = aof_run(&url, &["anything", ""]).await;
    assert_eq!(code, 1);
    assert!(err.contains("400") && err.contains("$.prompt"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (_, body) = call("GET", &format!("{url}/sessions"), None).await;
    assert_eq!(body["sessions"].as_array().unwrap().len(), 2);

    // Nothing listening: non-zero exit with a clear message.
    let (code, _, err) = aof_run("http://127.0.0.1:9", &["a", "b"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("cannot reach the coordinator"), "{err}");
}

/// A resumed session that was idle and is idle again after the turn announces no status
/// change: `--follow` ends on the turn's end all the same. The runner here is an AOF
/// reference-like protocol client (no lease token) that reports the turn's end before
/// its start, as the reference runner's persistent executors do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_resume_follow_ends_when_the_session_is_idle_again() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let runner = register(&url, "reference-like").await;
    let idle = json!({"runner_id": runner, "session_status": "idle"});
    let next_run = || async {
        wait_for("a run to claim", || async {
            let (st, b) = call(
                "GET",
                &format!("{url}/runner/runs?runner_id={runner}"),
                None,
            )
            .await;
            (st == 200).then(|| b["run"]["run_id"].as_str().map(str::to_string))?
        })
        .await
    };
    let complete = |run: String| {
        let (url, idle) = (url.clone(), idle.clone());
        async move {
            let (st, b) = call(
                "POST",
                &format!("{url}/runner/runs/{run}/completed"),
                Some(idle),
            )
            .await;
            assert_eq!(st, 200, "{b}");
        }
    };
    let (_, sid) = start_run(&url, "first").await;
    complete(next_run().await).await;
    wait_session(&url, &sid, "idle").await;

    let follow = tokio::spawn({
        let (url, sid) = (url.clone(), sid.clone());
        async move { aof_run(&url, &["t", "second", "--resume", &sid, "--follow"]).await }
    });
    complete(next_run().await).await;
    let (code, out, err) = follow.await.unwrap();
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["[run_start]", "[run_completed]"]
    );
    assert!(err.contains(&format!("session {sid}: Finished")), "{err}");
}
