//! The `command` executor under a real runner: output streams as events, failures carry
//! stderr, and a stop reaches the whole process group (SIGTERM, then SIGKILL).

use serde_json::json;

use crate::harness::*;

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_runs_stream_fail_and_stop_the_process_group() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    // Echo the prompt; a prompt "sleep" starts a grandchild that ignores SIGTERM and
    // prints its pid, so the stop must escalate to SIGKILL on the group.
    let script = r#"read p; case "$p" in
        sleep) sh -c 'trap "" TERM; while :; do sleep 0.05; done' & echo "pid $!"; trap '' TERM; wait;;
        fail) echo "bad things" >&2; exit 7;;
        *) echo "you said: $p";;
    esac"#;
    let _r = Runner::start(
        &c.url,
        dir.path(),
        "cmd",
        &[
            "--executor",
            "command",
            "--command",
            &format!("sh -c '{}'", script.replace('\'', "'\\''")),
            "--stop-grace",
            "0.5",
        ],
    )
    .await;

    let (_, sid) = start_run(&c.url, "hello").await;
    wait_session(&c.url, &sid, "finished").await;
    let (_, result) = call("GET", &format!("{}/sessions/{sid}/result", c.url), None).await;
    assert_eq!(result["result_text"], "you said: hello");
    assert!(events(&c.url, &sid)
        .await
        .iter()
        .any(|e| e["content"][0]["text"] == "you said: hello"));

    let (run_id, sid) = start_run(&c.url, "fail").await;
    wait_session(&c.url, &sid, "failed").await;
    let (_, run) = call("GET", &format!("{}/runs/{run_id}", c.url), None).await;
    assert_eq!(run["error"], "Process exited with code 7: bad things");

    let (_, sid) = start_run(&c.url, "sleep").await;
    let pid: i32 = wait_for("the pid line", || async {
        events(&c.url, &sid).await.iter().find_map(|e| {
            e["content"][0]["text"]
                .as_str()?
                .strip_prefix("pid ")?
                .trim()
                .parse()
                .ok()
        })
    })
    .await;
    assert!(alive(pid));
    let (st, body) = call("POST", &format!("{}/sessions/{sid}/stop", c.url), None).await;
    assert_eq!((st, body["status"].clone()), (200, json!("stopping")));
    wait_session(&c.url, &sid, "stopped").await;
    wait_for("the TERM-ignoring grandchild to be killed", || async {
        (!alive(pid)).then_some(())
    })
    .await;
}
