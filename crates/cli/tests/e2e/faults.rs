//! Fault suite: repeated crashes under load. Each scenario prints one summary line
//! (`FAULT <name>: runs=… events=… lost=… duplicated=…`) and asserts lost = duplicated = 0.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{json, Value};

use crate::harness::*;

const EVENTS_PER_RUN: usize = 20;

/// Creates a run (echo, `EVENTS_PER_RUN` assistant events); `None` if the coordinator
/// did not acknowledge it (it may be down).
async fn try_start(url: &str, n: usize) -> Option<String> {
    let prompt = echo_prompt(
        json!({"echo_events": EVENTS_PER_RUN, "echo_delay_ms": 25}),
        &format!("r{n}"),
    );
    let resp = client()
        .post(format!("{url}/runs"))
        .json(&json!({"type": "start_session", "parameters": {"prompt": prompt}}))
        .send()
        .await
        .ok()?;
    if resp.status().as_u16() != 201 {
        return None;
    }
    let b: Value = resp.json().await.ok()?;
    b["session_id"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_coordinator_kill9s_under_load_lose_and_duplicate_nothing() {
    let dir = tempdir();
    let mut c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let runner = Runner::start(&url, dir.path(), "r1", &["--max-concurrent", "4"]).await;

    // A client posting notes to a side session the whole time; acknowledged ids must all
    // survive, each once.
    let (_, side) = start_run(&url, "side session").await;
    let acked: Arc<Mutex<Vec<(i64, u64)>>> = Arc::default();
    let writer = {
        let (url, side, acked) = (url.clone(), side.clone(), acked.clone());
        tokio::spawn(async move {
            for n in 0u64.. {
                let ev = json!({"event_type": "note", "session_id": side, "timestamp": "t",
                                "reason": n.to_string()});
                let resp = client()
                    .post(format!("{url}/sessions/{side}/events"))
                    .header("idempotency-key", format!("note-{n}"))
                    .json(&ev)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        if let Ok(b) = r.json::<Value>().await {
                            acked.lock().unwrap().push((b["id"].as_i64().unwrap(), n));
                        }
                    }
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
    };

    let mut sessions = Vec::new();
    let mut n = 0;
    for kill in 0..10u64 {
        // New work between crashes, then let it run a little (a fixed, varied schedule).
        for _ in 0..3 {
            n += 1;
            if let Some(sid) = try_start(&url, n).await {
                sessions.push(sid);
            }
        }
        tokio::time::sleep(Duration::from_millis(120 + 37 * (kill % 5))).await;
        c.kill9().await;
        c.restart().await;
    }
    writer.abort();
    assert!(
        sessions.len() >= 25,
        "too few runs acknowledged: {}",
        sessions.len()
    );

    // No run stuck: every acknowledged run completes, on its first attempt.
    let mut events_total = 0;
    let mut lost = 0;
    let mut duplicated = 0;
    for sid in &sessions {
        wait_session(&url, sid, "finished").await;
        let evs = events(&url, sid).await;
        let texts: Vec<String> = evs
            .iter()
            .filter(|e| e["role"] == "assistant")
            .map(|e| e["content"][0]["text"].as_str().unwrap().to_string())
            .collect();
        let tag = texts
            .first()
            .and_then(|t| t.split(' ').next())
            .unwrap_or("?")
            .to_string();
        let expected: Vec<String> = (1..=EVENTS_PER_RUN)
            .map(|i| format!("{tag} [{i}]"))
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for t in &texts {
            *counts.entry(t.as_str()).or_default() += 1;
        }
        lost += expected
            .iter()
            .filter(|e| !counts.contains_key(e.as_str()))
            .count();
        duplicated += counts
            .values()
            .filter(|&&c| c > 1)
            .map(|c| c - 1)
            .sum::<usize>();
        assert_eq!(texts, expected, "session {sid}: every event once, in order");
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "{sid}");
        events_total += texts.len();
    }
    // A claim whose answer died with the coordinator is re-queued when its lease runs
    // out (attempt 2); the event checks above prove no attempt ran twice.
    let (_, runs) = call("GET", &format!("{url}/runs"), None).await;
    let mut requeued = 0;
    for r in runs["runs"].as_array().unwrap() {
        if sessions.iter().any(|s| r["session_id"] == s.as_str()) {
            assert_eq!(r["status"], "completed", "{r}");
            if r["attempt"].as_i64() != Some(1) {
                requeued += 1;
            }
        }
    }

    // The side session: every acknowledged note present, none twice.
    let side_events = events(&url, &side).await;
    let stored: BTreeSet<i64> = side_events
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let acked = acked.lock().unwrap().clone();
    let notes_lost = acked.iter().filter(|(id, _)| !stored.contains(id)).count();
    let mut per_note: BTreeMap<String, usize> = BTreeMap::new();
    for e in side_events.iter().filter(|e| e["event_type"] == "note") {
        *per_note
            .entry(e["reason"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    let notes_dup: usize = per_note.values().filter(|&&c| c > 1).map(|c| c - 1).sum();
    lost += notes_lost;
    duplicated += notes_dup;
    events_total += acked.len();

    // The runner came back by itself after every crash and still takes work.
    let (_, b) = call("GET", &format!("{url}/runners"), None).await;
    assert_eq!(b["runners"][0]["status"], "online", "{b}");
    let sid = try_start(&url, 0)
        .await
        .expect("a run after the last crash");
    wait_session(&url, &sid, "finished").await;

    println!(
        "FAULT coordinator-kill9x10: runs={} events={events_total} lost={lost} duplicated={duplicated} requeued_claims={requeued}",
        sessions.len()
    );
    assert_eq!((lost, duplicated), (0, 0));
    drop(runner);
}

/// The lease a runner process holds, read from the coordinator's database file (the
/// test cannot ask the dead runner): what its late writes would carry.
fn lease_in_db(data_dir: &std::path::Path, run_id: &str) -> (String, i64) {
    let out = std::process::Command::new("sqlite3")
        .arg(data_dir.join("observability.db"))
        .arg(format!(
            "SELECT lease_token, attempt FROM runs WHERE run_id = '{run_id}'"
        ))
        .output()
        .expect("sqlite3 (the SQLite CLI) is needed to read the lease");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let (token, attempt) = text.split_once('|').unwrap_or_else(|| panic!("{text:?}"));
    (token.to_string(), attempt.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_kill9_mid_run_is_resolved_by_its_lease_and_late_writes_are_refused() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await; // lease 3 s, recovery `stale`
    let url = c.url.clone();
    let mut runner = Runner::start(&url, dir.path(), "r1", &[]).await;
    let prompt = echo_prompt(json!({"echo_events": 400, "echo_delay_ms": 50}), "k9");
    let (run_id, sid) = start_run(&url, &prompt).await;
    wait_for("the runner to be mid-run", || async {
        let n = events(&url, &sid)
            .await
            .iter()
            .filter(|e| e["role"] == "assistant")
            .count();
        (n >= 5).then_some(())
    })
    .await;
    let (_, run) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    let runner_id = run["runner_id"].as_str().unwrap().to_string();
    let (token, attempt) = lease_in_db(&c.data_dir, &run_id);
    runner.kill9().await;
    let seen_at_kill: Vec<i64> = events(&url, &sid)
        .await
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let killed = std::time::Instant::now();

    // No heartbeats: the lease runs out and the sweeper fails the started run.
    wait_session(&url, &sid, "failed").await;
    let resolved_after = killed.elapsed();
    let (_, run) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["attempt"], attempt, "{run}");
    assert!(
        run["error"]
            .as_str()
            .unwrap_or("")
            .contains("Lease expired"),
        "{run}"
    );
    let stored = events(&url, &sid).await;

    // What the dead runner would still send: its next event (same idempotency-key
    // scheme as its outbox) and its completion, with its old lease; and a report naming
    // only its runner id, as a reference runner would.
    let headers = [
        ("x-aof-lease-token", token.as_str()),
        ("x-aof-run-id", run_id.as_str()),
    ];
    let key = format!("{run_id}:{attempt}:999999");
    let mut late = vec![
        call_h(
            "POST",
            &format!("{url}/sessions/{sid}/events"),
            Some(
                json!({"event_type": "message", "session_id": sid, "timestamp": "t",
                        "role": "assistant", "content": [{"type": "text", "text": "late"}]}),
            ),
            &[headers[0], headers[1], ("idempotency-key", key.as_str())],
        )
        .await,
    ];
    for (what, body) in [
        ("completed", json!({"runner_id": runner_id})),
        ("failed", json!({"runner_id": runner_id, "error": "late"})),
    ] {
        late.push(
            call_h(
                "POST",
                &format!("{url}/runner/runs/{run_id}/{what}"),
                Some(body.clone()),
                &headers,
            )
            .await,
        );
        late.push(
            call(
                "POST",
                &format!("{url}/runner/runs/{run_id}/{what}"),
                Some(body),
            )
            .await,
        );
    }
    // Our runner's writes carry the lease: every one is refused. Index 4 is a tokenless
    // `failed` from the former holder, as an AOF reference runner would send it: the
    // store cannot tell it from a retry of a terminal report, so it may answer 200 — but
    // it must change nothing (checked below with the run and its events).
    let mut refused = 0;
    for (i, (st, b)) in late.iter().enumerate() {
        if i == 4 && *st == 200 {
            continue;
        }
        assert_eq!(
            (*st, b["code"].as_str()),
            (409, Some("lease_conflict")),
            "late write {i}: {b}"
        );
        refused += 1;
    }
    let (_, run_after) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    assert_eq!(run_after, run, "a late write changed the run");
    let after = events(&url, &sid).await;
    assert_eq!(after, stored, "a refused late write changed the session");

    // Every event stored before the kill is still there, once; the run's output is a
    // gap-free prefix 1..=k of what the echo executor emits.
    let ids: Vec<i64> = after.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let lost = seen_at_kill.iter().filter(|id| !ids.contains(id)).count();
    let texts: Vec<String> = after
        .iter()
        .filter(|e| e["role"] == "assistant")
        .map(|e| e["content"][0]["text"].as_str().unwrap_or("").to_string())
        .collect();
    let expected: Vec<String> = (1..=texts.len()).map(|i| format!("k9 [{i}]")).collect();
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    let duplicated = texts.len() - unique.len();
    let gaps = expected.iter().filter(|e| !texts.contains(e)).count();
    println!(
        "FAULT runner-kill9-mid-run: runs=1 events={} lost={} duplicated={duplicated} late_writes={} refused={refused} changed_state=0 resolved_after_kill={:.1}s (lease 3 s)",
        after.len(),
        lost + gaps,
        late.len(),
        resolved_after.as_secs_f64()
    );
    assert_eq!((lost, gaps, duplicated), (0, 0, 0));
    assert!(
        refused >= 4,
        "our runner's lease-carrying late writes must all be refused"
    );
}
