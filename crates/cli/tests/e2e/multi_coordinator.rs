//! Two real coordinator processes on one PostgreSQL database (always PostgreSQL, from
//! `AOF_TEST_DATABASE_URL`, whatever `AOF_TEST_STORE` says; with CI=true a missing URL
//! fails): wake-ups, SSE, stops and runner failover across them.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::harness::*;

/// Long enough that a runner answered only by its poll timeout fails the asserts.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines the failover run prints, one every 100 ms.
const LINES: usize = 40;

/// Prints "line 1".."line 40" over 4 s; the prompt `hang` prints `started` and waits.
const SCRIPT: &str = r#"read p; case "$p" in
    hang) echo started; sleep 120;;
    *) i=1; while [ $i -le 40 ]; do echo "line $i"; sleep 0.1; i=$((i+1)); done;;
esac"#;

/// Coordinators A and B on one fresh database; `None` (skipped) only outside CI.
async fn two_coordinators(dir: &Path) -> Option<(Coordinator, Coordinator)> {
    let Some(base) = aof_store_postgres::testing::base_url() else {
        eprintln!("skipped: AOF_TEST_DATABASE_URL is unset");
        return None;
    };
    let db = aof_store_postgres::testing::fresh_database(&base)
        .await
        .expect("create a test database");
    let mut env = fast_env();
    env.retain(|(k, _)| k != "RUNNER_POLL_TIMEOUT");
    env.push((
        "RUNNER_POLL_TIMEOUT".into(),
        POLL_TIMEOUT.as_secs().to_string(),
    ));
    env.push(("AOF_DATABASE_URL".into(), db.clone()));
    let mut out = Vec::new();
    for name in ["a", "b"] {
        let d = dir.join(name);
        // The harness's PostgreSQL mode reads this file: both share `db`, not one each.
        std::fs::create_dir_all(d.join("coord")).unwrap();
        std::fs::write(d.join("coord/database_url"), &db).unwrap();
        out.push(Coordinator::start(&d, env.clone()).await);
    }
    let b = out.pop().unwrap();
    let a = out.pop().unwrap();
    Some((a, b))
}

async fn polls_waiting(url: &str) -> i64 {
    let text = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("aof_runner_polls_waiting "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

async fn wait_parked(url: &str) {
    wait_for("the runner's long-poll to park", || async {
        (polls_waiting(url).await >= 1).then_some(())
    })
    .await
}

async fn run_status(url: &str, run_id: &str) -> String {
    let (_, b) = call("GET", &format!("{url}/runs/{run_id}"), None).await;
    b["status"].as_str().unwrap_or("").to_string()
}

fn command_runner_args(script: &str) -> Vec<String> {
    [
        "--executor",
        "command",
        "--command",
        &format!("sh -c '{}'", script.replace('\'', "'\\''")),
        "--stop-grace",
        "0.5",
    ]
    .map(String::from)
    .to_vec()
}

/// Texts of a session's assistant messages, in stored order.
async fn texts(url: &str, sid: &str) -> Vec<String> {
    events(url, sid)
        .await
        .iter()
        .filter_map(|e| e["content"][0]["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_coordinators_share_wakeups_streams_stops_and_runners() {
    let dir = tempdir();
    let Some((mut a, b)) = two_coordinators(dir.path()).await else {
        return;
    };

    // (a) A runner long-polling on B claims a run created on A at once, not at its
    // poll timeout.
    let mut r = Runner::start(&b.url, dir.path(), "ra", &[]).await;
    wait_parked(&b.url).await;
    let created = Instant::now();
    let (run_id, sid) = start_run(&a.url, "wake across").await;
    wait_for("the run to be claimed", || async {
        (run_status(&a.url, &run_id).await != "pending").then_some(())
    })
    .await;
    let latency = created.elapsed();
    println!("cross-coordinator wake: run created on A claimed by a runner polling B after {latency:?} (poll timeout {POLL_TIMEOUT:?})");
    assert!(
        latency < POLL_TIMEOUT / 2,
        "claimed after {latency:?}: woken by the poll timeout, not by A"
    );
    wait_session(&a.url, &sid, "finished").await;
    r.kill9().await;

    // (b) Runner on A, client on B: the session completes, and B streams every event
    // live, in order, and replays them by Last-Event-ID.
    let mut r = Runner::start(&a.url, dir.path(), "rb", &[]).await;
    wait_parked(&a.url).await;
    let mut live = Sse::open(&format!("{}/sse/sessions", b.url), None).await;
    let prompt = echo_prompt(json!({"echo_events": 8, "echo_delay_ms": 50}), "tick");
    let (_, sid) = start_run(&b.url, &prompt).await;
    let mut streamed: Vec<i64> = Vec::new();
    loop {
        let f = live.next().await.expect("SSE from B");
        let data: Value = serde_json::from_str(&f.data).unwrap();
        match f.event.as_str() {
            "event" if data["data"]["session_id"] == sid.as_str() => {
                streamed.push(f.id.as_deref().unwrap().parse().unwrap());
            }
            "session_updated"
                if data["session"]["session_id"] == sid.as_str()
                    && data["session"]["status"] == "finished" =>
            {
                break
            }
            _ => {}
        }
    }
    let stored = events(&b.url, &sid).await;
    let stored_ids: Vec<i64> = stored.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    // Events committed with the final status may follow it on the stream.
    while streamed.len() < stored_ids.len() {
        let f = live.next().await.expect("SSE from B");
        let data: Value = serde_json::from_str(&f.data).unwrap();
        if f.event == "event" && data["data"]["session_id"] == sid.as_str() {
            streamed.push(f.id.as_deref().unwrap().parse().unwrap());
        }
    }
    assert_eq!(
        streamed, stored_ids,
        "B streamed every stored event in order"
    );
    assert!(
        texts(&b.url, &sid).await.contains(&"tick [8]".to_string()),
        "{stored:?}"
    );
    // Replay on B after the first event: exactly the rest, in order.
    let mut replay = Sse::open(
        &format!("{}/sse/sessions?session_id={sid}", b.url),
        Some(&streamed[0].to_string()),
    )
    .await;
    let mut replayed = Vec::new();
    while replayed.len() < streamed.len() - 1 {
        let f = replay.next().await.expect("replay from B");
        if f.event == "event" {
            replayed.push(f.id.as_deref().unwrap().parse::<i64>().unwrap());
        }
    }
    assert_eq!(replayed, streamed[1..]);
    drop((live, replay));
    r.kill9().await;

    // (d) A stop sent to B reaches the runner connected to A.
    let args = command_runner_args(SCRIPT);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut r = Runner::start(&a.url, dir.path(), "rd", &args).await;
    let (_, sid) = start_run(&a.url, "hang").await;
    wait_for("the hanging run to start", || async {
        texts(&a.url, &sid)
            .await
            .contains(&"started".to_string())
            .then_some(())
    })
    .await;
    wait_parked(&a.url).await;
    let stop_at = Instant::now();
    let (st, body) = call("POST", &format!("{}/sessions/{sid}/stop", b.url), None).await;
    assert_eq!((st, body["status"].clone()), (200, json!("stopping")));
    wait_session(&a.url, &sid, "stopped").await;
    let stop_latency = stop_at.elapsed();
    println!("cross-coordinator stop: taken by B, runner on A stopped after {stop_latency:?}");
    assert!(
        stop_latency < POLL_TIMEOUT / 2,
        "stopped after {stop_latency:?}: the stop waited for the poll timeout"
    );
    r.kill9().await;

    // (c) A runner with [A, B] mid-run when A is SIGKILLed continues through B: the
    // run completes and every line is stored exactly once.
    let mut args = command_runner_args(SCRIPT);
    args.extend(["--url".to_string(), b.url.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = Runner::start(&a.url, dir.path(), "rc", &args).await;
    let (_, sid) = start_run(&b.url, "count").await;
    wait_for("some lines before the kill", || async {
        let n = texts(&b.url, &sid).await.len();
        (n >= 10).then_some(())
    })
    .await;
    a.kill9().await;
    let killed = Instant::now();
    let at_kill = texts(&b.url, &sid).await.len();
    wait_for("a line stored after the kill", || async {
        (texts(&b.url, &sid).await.len() > at_kill).then_some(())
    })
    .await;
    let failover = killed.elapsed();
    wait_session(&b.url, &sid, "finished").await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for t in texts(&b.url, &sid).await {
        *counts.entry(t).or_default() += 1;
    }
    let expected: Vec<String> = (1..=LINES).map(|i| format!("line {i}")).collect();
    let lost = expected.iter().filter(|l| !counts.contains_key(*l)).count();
    let stored: usize = expected.iter().filter_map(|l| counts.get(l)).sum();
    let duplicated: usize = counts.values().map(|n| n.saturating_sub(1)).sum();
    println!(
        "failover: events={stored}/{LINES} lost={lost} duplicated={duplicated} failover={failover:?} (lines stored before the kill: {at_kill})"
    );
    assert_eq!((lost, duplicated), (0, 0), "{counts:?}");
    let log = r.log();
    assert!(
        log.contains("failing over"),
        "the runner did not report a failover:\n{log}"
    );
    let (_, result) = call("GET", &format!("{}/sessions/{sid}/result", b.url), None).await;
    assert!(
        result["result_text"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("line {LINES}")),
        "{result}"
    );
}
