//! Our runner (`aof runner`, echo and command executors) against the reference coordinator.
//! Everything is asserted through the reference's own API: what a reference user sees.

use serde_json::{json, Value};

use crate::{
    harness::*,
    reference::{RefCoordinator, RefPaths},
};

/// `POST /runs` on the reference without an agent (the implicit prompt-only schema).
async fn start(url: &str, prompt: &str) -> (String, String) {
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": prompt}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    (
        b["run_id"].as_str().unwrap().to_string(),
        b["session_id"].as_str().unwrap().to_string(),
    )
}

/// Our runner's entry in the reference's `GET /runners`, once it is there.
async fn registered(url: &str, hostname: &str) -> Value {
    wait_for(
        &format!("runner {hostname} in the reference's /runners"),
        || async {
            let (_, b) = call("GET", &format!("{url}/runners"), None).await;
            b["runners"]
                .as_array()?
                .iter()
                .find(|r| r["hostname"] == hostname)
                .cloned()
        },
    )
    .await
}

async fn run_of(url: &str, run_id: &str) -> Value {
    let (st, b) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(st, 200, "{b}");
    b
}

/// `(event_type, role, text)` of each stored event: what the reference's UI renders.
fn shapes(events: &[Value]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            let text = e["content"][0]["text"]
                .as_str()
                .or(e["result_text"].as_str())
                .unwrap_or("");
            (
                e["event_type"].as_str().unwrap_or("").to_string(),
                e["role"].as_str().unwrap_or("").to_string(),
                text.to_string(),
            )
        })
        .collect()
}

fn shape(t: &str, role: &str, text: &str) -> (String, String, String) {
    (t.into(), role.into(), text.into())
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_runner_registers_claims_streams_completes_and_obeys_a_stop() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    let r = Runner::start(&rc.url, dir.path(), "ours-echo", &[]).await;

    let me = registered(&rc.url, "ours-echo").await;
    assert_eq!(me["status"], "online", "{me}");
    assert_eq!(me["executor_profile"], "echo", "{me}");
    assert_eq!(me["require_matching_tags"], false, "{me}");
    let runner_id = me["runner_id"].as_str().unwrap().to_string();

    // A run end to end: claimed by us, events in the reference's store, session finished.
    let prompt = "hello from our runner";
    let (run_id, sid) = start(&rc.url, prompt).await;
    wait_session(&rc.url, &sid, "finished").await;
    let run = run_of(&rc.url, &run_id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["runner_id"], runner_id.as_str(), "{run}");
    assert_eq!(
        shapes(&events(&rc.url, &sid).await),
        vec![
            shape("run_start", "", ""),
            shape("message", "user", prompt),
            shape("message", "assistant", prompt),
            shape("result", "", prompt),
            shape("run_completed", "", ""),
        ],
        "runner log:\n{}",
        r.log()
    );
    let (st, result) = call("GET", &format!("{}/sessions/{sid}/result", rc.url), None).await;
    assert_eq!((st, result["result_text"].clone()), (200, json!(prompt)));

    // A long run (three answers a minute apart), stopped through the reference's API.
    let knobs = json!({"echo_events": 3, "echo_delay_ms": 60_000});
    let (run_id, sid) = start(&rc.url, &echo_prompt(knobs, "take your time")).await;
    wait_for("the long run's user message", || async {
        events(&rc.url, &sid)
            .await
            .iter()
            .any(|e| e["role"] == "user")
            .then_some(())
    })
    .await;
    assert_eq!(session_status(&rc.url, &sid).await, "running");
    let (st, b) = call("POST", &format!("{}/sessions/{sid}/stop", rc.url), None).await;
    assert_eq!((st, b["status"].clone()), (200, json!("stopping")), "{b}");
    wait_session(&rc.url, &sid, "stopped").await;
    assert_eq!(run_of(&rc.url, &run_id).await["status"], "stopped");
    let types: Vec<String> = shapes(&events(&rc.url, &sid).await)
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert!(
        !types.iter().any(|t| t == "result" || t == "run_completed"),
        "a stopped run has no result: {types:?}"
    );
    // The runner is still there for the next run.
    let (_, sid) = start(&rc.url, "after the stop").await;
    wait_session(&rc.url, &sid, "finished").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_runner_completes_fails_and_a_stop_ends_its_process_group() {
    let Some(p) = RefPaths::get() else { return };
    let dir = tempdir();
    let rc = RefCoordinator::start(&p, dir.path()).await;
    // "sleep" leaves a long-lived grandchild and reports its pid; "fail" exits 3.
    let script = r#"read p; case "$p" in
        sleep) sleep 300 & echo "pid $!"; wait;;
        fail) echo "it broke" >&2; exit 3;;
        *) echo "you said: $p";;
    esac"#;
    let command = format!("sh -c '{}'", script.replace('\'', "'\\''"));
    let r = Runner::start(
        &rc.url,
        dir.path(),
        "ours-cmd",
        &[
            "--executor",
            "command",
            "--command",
            &command,
            "--stop-grace",
            "1",
        ],
    )
    .await;
    let me = registered(&rc.url, "ours-cmd").await;
    assert_eq!(me["executor_profile"], "command", "{me}");

    let (run_id, sid) = start(&rc.url, "hello").await;
    wait_session(&rc.url, &sid, "finished").await;
    assert_eq!(run_of(&rc.url, &run_id).await["status"], "completed");
    let got = shapes(&events(&rc.url, &sid).await);
    assert!(
        got.contains(&shape("message", "assistant", "you said: hello"))
            && got.contains(&shape("result", "", "you said: hello")),
        "{got:?}\nrunner log:\n{}",
        r.log()
    );

    let (run_id, sid) = start(&rc.url, "fail").await;
    wait_session(&rc.url, &sid, "failed").await;
    let run = run_of(&rc.url, &run_id).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["error"], "Process exited with code 3: it broke",
        "{run}"
    );

    let (run_id, sid) = start(&rc.url, "sleep").await;
    let pid: i32 = wait_for("the pid line", || async {
        events(&rc.url, &sid).await.iter().find_map(|e| {
            e["content"][0]["text"]
                .as_str()?
                .strip_prefix("pid ")?
                .trim()
                .parse()
                .ok()
        })
    })
    .await;
    assert!(alive(pid), "the command's grandchild runs");
    let (st, b) = call("POST", &format!("{}/sessions/{sid}/stop", rc.url), None).await;
    assert_eq!((st, b["status"].clone()), (200, json!("stopping")), "{b}");
    wait_session(&rc.url, &sid, "stopped").await;
    assert_eq!(run_of(&rc.url, &run_id).await["status"], "stopped");
    wait_for("the stopped command's process group to be gone", || async {
        (!alive(pid)).then_some(())
    })
    .await;
}
