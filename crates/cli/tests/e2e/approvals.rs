//! `aof approvals list|show|approve|deny` against a real coordinator. The approvals are
//! asked for by a protocol-speaking runner in the test (it holds the run's lease), as an
//! agent's runner does before a listed tool runs.

use std::process::Stdio;

use serde_json::{json, Value};
use tokio::process::Command;

use crate::harness::*;

/// `aof ARGS --url URL`: (exit code, stdout, stderr).
async fn aof(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        PATIENCE,
        Command::new(BIN)
            .args(args)
            .args(["--url", url])
            .env_remove("AOF_CONFIG")
            .env_remove("AOF_URL")
            .env_remove("AGENT_ORCHESTRATOR_API_URL")
            .env_remove("AOF_API_KEY")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("aof {args:?} did not finish"))
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn ok(url: &str, args: &[&str]) -> (String, String) {
    let (code, out, err) = aof(url, args).await;
    assert_eq!(code, 0, "aof {args:?}\nstdout: {out}\nstderr: {err}");
    (out, err)
}

/// A started run held by a test runner: (session id, run as the poll gave it).
pub async fn held_run(url: &str) -> (String, Value) {
    let runner = register(url, "approvals").await;
    let (st, r) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": "needs a tool"}})),
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let run = claim_started(url, &runner).await;
    (r["session_id"].as_str().unwrap().to_string(), run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_commands_end_to_end() {
    let dir = tempdir();
    // Default lease terms: the test runner sends no heartbeats.
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    let (sid, run) = held_run(&url).await;
    let first = ask(&url, &sid, &run, "touch x", "k1").await;
    wait_session(&url, &sid, "waiting_approval").await;

    // list: the pending one, in a table and as the API's JSON.
    let (out, _) = ok(&url, &["approvals", "list"]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("APPROVAL"), "{out}");
    assert!(
        lines.iter().any(|l| l.contains(&first)
            && l.contains("pending")
            && l.contains("Bash")
            && l.contains("touch x")),
        "{out}"
    );
    let (out, _) = ok(&url, &["approvals", "list", "--session", &sid, "--json"]).await;
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["approvals"][0]["approval_id"], first.as_str(), "{out}");
    let (out, _) = ok(&url, &["approvals", "show", &first]).await;
    assert!(
        out.contains("tool_input:") && out.contains("\"command\": \"touch x\""),
        "{out}"
    );

    // approve: the API then says approved, by whom; the session works on.
    let (_, err) = ok(&url, &["approvals", "approve", &first, "--message", "ok"]).await;
    assert!(err.contains(&first) && err.contains("approved"), "{err}");
    let a = approval(&url, &first).await;
    assert_eq!(a["status"], "approved", "{a}");
    assert_eq!(a["resolution"], "reviewer", "{a}");
    assert_eq!(a["message"], "ok", "{a}");
    let by = a["decided_by"].as_str().expect("decided_by").to_string();
    let at = a["decided_at"].as_str().expect("decided_at").to_string();
    wait_for("the session to leave waiting_approval", || async {
        (session_status(&url, &sid).await != "waiting_approval").then_some(())
    })
    .await;

    // A second decision is refused in one line that says who was first and when.
    let (code, _, err) = aof(&url, &["approvals", "deny", &first, "--reason", "late"]).await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    for want in [
        "409",
        "approval_decided",
        &format!("already decided: approved by {by} at {at}"),
    ] {
        assert!(err.contains(want), "missing {want:?} in {err}");
    }
    assert_eq!(approval(&url, &first).await["status"], "approved");

    // deny: a reason is required (the agent is told it), refused before any request.
    let second = ask(&url, &sid, &run, "rm -rf /", "k2").await;
    let (code, _, err) = aof(&url, &["approvals", "deny", &second]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--reason"), "{err}");
    assert_eq!(approval(&url, &second).await["status"], "pending");
    ok(
        &url,
        &["approvals", "deny", &second, "--reason", "not today"],
    )
    .await;
    let d = approval(&url, &second).await;
    assert_eq!(
        (&d["status"], &d["message"]),
        (&json!("denied"), &json!("not today"))
    );

    // Nothing pending now; --status all lists both, newest first.
    let (out, err) = ok(&url, &["approvals", "list"]).await;
    assert!(out.is_empty() && err.contains("no approvals"), "{out}{err}");
    let (out, _) = ok(&url, &["approvals", "list", "--status", "all", "--json"]).await;
    let ids: Vec<Value> = serde_json::from_str::<Value>(&out).unwrap()["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["approval_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(second), json!(first)], "{out}");
    let (out, _) = ok(&url, &["approvals", "list", "--status", "denied"]).await;
    assert!(out.contains(&second) && !out.contains(&first), "{out}");

    // An unknown id: the API's 404 and where to look.
    let (code, _, err) = aof(&url, &["approvals", "approve", "apr_nope"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("404") && err.contains("approval_not_found") && err.contains("--status all"),
        "{err}"
    );

    // The session's events tell the same story.
    let kinds: Vec<String> = events(&url, &sid)
        .await
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .filter(|t| t.starts_with("approval_"))
        .map(String::from)
        .collect();
    assert_eq!(
        kinds,
        [
            "approval_requested",
            "approval_resolved",
            "approval_requested",
            "approval_resolved"
        ]
    );
}
