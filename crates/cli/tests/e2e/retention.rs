//! Retention: `POST /retention/purge` / `aof sessions purge` remove ended sessions with
//! their runs and events, leave live ones alone, and give the space back to the disk.

use serde_json::json;
use tokio::process::Command;

use crate::harness::*;

async fn purge(url: &str, body: serde_json::Value) -> serde_json::Value {
    let (st, b) = call("POST", &format!("{url}/retention/purge"), Some(body)).await;
    assert_eq!(st, 200, "{b}");
    b
}

fn ids(b: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = b["session_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_ended_sessions_keeps_live_ones_and_shrinks_the_file() {
    let dir = tempdir();
    let up = Up::start(dir.path()).await;
    let url = up.url.clone();
    let db = dir.path().join(".agent-orchestrator/observability.db");

    // Three finished sessions with 300 events of ~2 KB each.
    let big = "x".repeat(2000);
    let mut done = Vec::new();
    for _ in 0..3 {
        let (_, sid) = start_run(&url, &echo_prompt(json!({"echo_events": 300}), &big)).await;
        wait_session(&url, &sid, "finished").await;
        done.push(sid);
    }
    done.sort();
    let mut stored = 0;
    for sid in &done {
        stored += events(&url, sid).await.len();
    }
    assert!(stored >= 900, "{stored} events");
    // One no runner can take: it stays pending and must survive every purge.
    let (st, b) = call(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "agent_name": "t",
                    "parameters": {"prompt": "wait"},
                    "additional_demands": {"tags": ["nowhere"]}})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let pending = b["session_id"].as_str().unwrap().to_string();

    // Bad input: a clear 4xx, nothing removed.
    let (st, b) = call(
        "POST",
        &format!("{url}/retention/purge"),
        Some(json!({"older_than_seconds": -1})),
    )
    .await;
    assert_eq!(st, 422, "{b}");
    let (st, b) = call(
        "POST",
        &format!("{url}/retention/purge"),
        Some(json!({"older_than_seconds": 0, "agent_name": ""})),
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("invalid_purge")),
        "{b}"
    );

    // Recent activity protects a session.
    assert!(ids(&purge(&url, json!({"older_than_seconds": 3600})).await).is_empty());
    // Another agent's filter matches nothing.
    let b = purge(
        &url,
        json!({"older_than_seconds": 0, "agent_name": "other"}),
    )
    .await;
    assert!(ids(&b).is_empty(), "{b}");

    // A dry run lists exactly the ended sessions and removes nothing.
    let b = purge(&url, json!({"older_than_seconds": 0, "dry_run": true})).await;
    assert_eq!(ids(&b), done);
    assert_eq!(b["dry_run"], true);
    let mut still = 0;
    for sid in &done {
        still += events(&url, sid).await.len();
    }
    assert_eq!(still, stored, "a dry run removed events");

    // The CLI, as a dry run, prints the same ids.
    let out = Command::new(BIN)
        .args([
            "sessions",
            "purge",
            "--older-than",
            "0s",
            "--dry-run",
            "--url",
            &url,
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    printed.sort();
    assert_eq!(printed, done);

    let before = std::fs::metadata(&db).unwrap().len();
    let b = purge(&url, json!({"older_than_seconds": 0, "agent_name": "t"})).await;
    assert_eq!(ids(&b), done, "{b}");
    assert_eq!(b["dry_run"], false);
    assert_eq!(b["runs_count"], 3, "{b}");
    assert_eq!(b["events_count"].as_u64().unwrap() as usize, stored, "{b}");
    for sid in &done {
        let (st, _) = call("GET", &format!("{url}/sessions/{sid}"), None).await;
        assert_eq!(st, 404, "{sid} still there");
    }
    assert_eq!(session_status(&url, &pending).await, "pending");
    let after = std::fs::metadata(&db).unwrap().len();
    let reclaimed = b["bytes_reclaimed"].as_u64().unwrap();
    eprintln!("RETENTION db bytes before={before} after={after} reclaimed={reclaimed}");
    assert!(reclaimed > 1_000_000, "{b}");
    assert!(after < before, "file did not shrink: {before} -> {after}");

    // Nothing left to purge; the coordinator keeps working on the same file.
    assert!(ids(&purge(&url, json!({"older_than_seconds": 0})).await).is_empty());
    let (_, sid) = start_run(&url, "after purge").await;
    wait_session(&url, &sid, "finished").await;
}
