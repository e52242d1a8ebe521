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
