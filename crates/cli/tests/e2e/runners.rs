//! Many runners: a runner's concurrency limit as the coordinator sees it, and 50 real
//! runner processes sharing 500 runs with exactly one accepted completion each.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::harness::*;

/// Like `wait_for`, with a bound for work that takes minutes on two loaded cores.
async fn wait_long<T, F, Fut>(what: &str, limit: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    aof_testkit::wait::poll_until(what, limit, Duration::from_millis(250), f).await
}

async fn all_runs(url: &str) -> Vec<Value> {
    let (st, b) = call("GET", &format!("{url}/runs"), None).await;
    assert_eq!(st, 200, "{b}");
    b["runs"].as_array().unwrap().clone()
}

fn ts(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).expect("rfc3339")
}

/// The most runs one runner held at once, from the coordinator's records: each run is
/// leased from `claimed_at` until `completed_at`; at equal instants an end counts first.
fn max_held(runs: &[Value], runner_id: &str) -> usize {
    let mut edges: Vec<(chrono::DateTime<chrono::FixedOffset>, i32)> = Vec::new();
    for r in runs.iter().filter(|r| r["runner_id"] == runner_id) {
        edges.push((ts(&r["claimed_at"]), 1));
        edges.push((ts(&r["completed_at"]), -1));
    }
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_never_holds_more_than_max_concurrent() {
    let dir = tempdir();
    let c = Coordinator::start(dir.path(), fast_env()).await;
    let url = c.url.clone();
    let _r = Runner::start(&url, dir.path(), "r1", &["--max-concurrent", "2"]).await;
    let mut sids = Vec::new();
    for i in 0..7 {
        let prompt = echo_prompt(
            json!({"echo_events": 5, "echo_delay_ms": 150}),
            &i.to_string(),
        );
        sids.push(start_run(&url, &prompt).await.1);
    }
    // Watched from the coordinator while they run: never more than 2 leased at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let runs = all_runs(&url).await;
        let leased = runs
            .iter()
            .filter(|r| matches!(r["status"].as_str(), Some("claimed" | "running")))
            .count();
        assert!(
            leased <= 2,
            "coordinator shows {leased} leased runs: {runs:?}"
        );
        if runs.iter().all(|r| r["status"] == "completed") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for every run to finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = all_runs(&url).await;
    assert_eq!(runs.len(), 7);
    let runner_id = runs[0]["runner_id"].as_str().unwrap().to_string();
    assert!(runs.iter().all(|r| r["runner_id"] == runner_id.as_str()));
    // From the records: the limit was reached (7 runs queued at once) and never passed.
    assert_eq!(max_held(&runs, &runner_id), 2, "{runs:?}");
    for sid in &sids {
        assert_eq!(session_status(&url, sid).await, "finished");
    }
}

const RUNNERS: usize = 50;
const RUNS: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_runners_complete_every_run_exactly_once() {
    let dir = tempdir();
    // Leases of 20 s, not 3: on a loaded 2-core machine, 50 runners' heartbeats could
    // miss a 3 s lease, and an expired lease fails or requeues a run, which is not what
    // this test is about (lease expiry has its own tests in `leases`).
    let mut env: Vec<(String, String)> = fast_env()
        .into_iter()
        .filter(|(k, _)| k != "AOF_LEASE_TTL")
        .collect();
    env.push(("AOF_LEASE_TTL".into(), "20".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let url = c.url.clone();
    let mut runners = Vec::new();
    for i in 0..RUNNERS {
        runners.push(
            Runner::start(
                &url,
                dir.path(),
                &format!("r{i:02}"),
                &["--max-concurrent", "2"],
            )
            .await,
        );
    }
    wait_long(
        "50 runners to register",
        Duration::from_secs(120),
        || async {
            let (_, b) = call("GET", &format!("{url}/runners"), None).await;
            (b["runners"].as_array().map_or(0, Vec::len) == RUNNERS).then_some(())
        },
    )
    .await;

    // 500 runs created concurrently (32 requests in flight).
    let created: Vec<(String, String)> = futures::stream::iter(0..RUNS)
        .map(|i| {
            let url = url.clone();
            async move { start_run(&url, &format!("run {i}")).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(created.len(), RUNS);

    let runs = wait_long(
        "every run to complete",
        Duration::from_secs(600),
        || async {
            let runs = all_runs(&url).await;
            let ended_otherwise: Vec<&Value> = runs
                .iter()
                .filter(|r| {
                    !matches!(
                        r["status"].as_str(),
                        Some("pending" | "claimed" | "running" | "completed")
                    )
                })
                .collect();
            assert!(
                ended_otherwise.is_empty(),
                "runs ended other than completed: {ended_otherwise:?}"
            );
            (runs.len() == RUNS && runs.iter().all(|r| r["status"] == "completed")).then_some(runs)
        },
    )
    .await;

    // One accepted completion per run: its session holds exactly one `run_completed`,
    // and one `run_start` per attempt that started.
    let by_session: HashMap<&str, &Value> = runs
        .iter()
        .map(|r| (r["session_id"].as_str().unwrap(), r))
        .collect();
    assert_eq!(by_session.len(), RUNS);
    let completions: Vec<(String, usize)> = futures::stream::iter(created.iter())
        .map(|(_, sid)| {
            let url = url.clone();
            async move {
                let ev = events(&url, sid).await;
                let n = ev
                    .iter()
                    .filter(|e| e["event_type"] == "run_completed")
                    .count();
                (sid.clone(), n)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let duplicates = completions.iter().filter(|(_, n)| *n > 1).count();
    let missing: Vec<&String> = completions
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(s, _)| s)
        .collect();
    let attempts: Vec<i64> = runs
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap())
        .collect();
    let mut per_runner: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        *per_runner
            .entry(r["runner_id"].as_str().unwrap())
            .or_default() += 1;
    }
    let busiest = per_runner.values().max().copied().unwrap_or(0);
    println!(
        "50-runner summary: runners={RUNNERS} runs={} completed={} attempts_total={} max_attempts={} \
         duplicates={duplicates} missing={} runners_used={} busiest_runner={busiest}",
        runs.len(),
        runs.iter().filter(|r| r["status"] == "completed").count(),
        attempts.iter().sum::<i64>(),
        attempts.iter().max().unwrap(),
        missing.len(),
        per_runner.len(),
    );
    assert_eq!(
        duplicates, 0,
        "sessions with more than one accepted completion"
    );
    assert!(
        missing.is_empty(),
        "sessions without a completion: {missing:?}"
    );
    assert!(attempts.iter().all(|a| *a >= 1));
    assert!(
        runs.iter().all(|r| r["completed_at"].is_string()),
        "every run has its completion time"
    );
    // Every runner still up and registered (none crashed under the load).
    for r in &mut runners {
        assert!(r.child.try_wait().unwrap().is_none(), "{}", r.log());
    }
}
