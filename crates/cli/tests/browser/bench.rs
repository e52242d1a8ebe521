//! The sessions page at scale, measured (not asserted): `scripts/bench/sessions-page.sh`
//! runs these ignored tests. `seed_bench_store` writes `AOF_BENCH_SESSIONS` (default
//! 100,000) sessions into `AOF_BENCH_DATA_DIR`; `sessions_page_first_rows` opens
//! `/ui/sessions` on the coordinator at `AOF_BENCH_URL` in chromium and prints one JSON
//! line: time from navigation start to the first session row on screen, first
//! contentful paint, bytes of the page's HTTP responses (Resource Timing
//! `transferSize`; the first round is a cold cache), the JS heap, and bytes of the live
//! feed's start as the old page (`init` frame) and the new one (`last_event_id` = its
//! page's `feed_head`) open it (read apart: an open stream has no Resource Timing entry).

use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;

use crate::{driver::Browser, seed::seed_sessions};

fn env(k: &str) -> String {
    std::env::var(k)
        .unwrap_or_else(|_| panic!("{k} is not set (see scripts/bench/sessions-page.sh)"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark step: scripts/bench/sessions-page.sh"]
async fn seed_bench_store() {
    let n = std::env::var("AOF_BENCH_SESSIONS").map_or(100_000, |v| v.parse().unwrap());
    seed_sessions(std::path::Path::new(&env("AOF_BENCH_DATA_DIR")), n).await;
}

/// Bytes of the feed `url` sends in its first `quiet` of silence after the init frame
/// (or from the start, when it sends none).
async fn feed_bytes(url: &str) -> usize {
    let resp = reqwest::get(url).await.expect("feed");
    let mut body = resp.bytes_stream();
    let mut n = 0;
    let quiet = Duration::from_secs(2);
    while let Ok(Some(chunk)) = tokio::time::timeout(quiet, body.next()).await {
        n += chunk.expect("feed bytes").len();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark step: scripts/bench/sessions-page.sh"]
async fn sessions_page_first_rows() {
    let url = env("AOF_BENCH_URL");
    let b = Browser::start(&url).await.expect("chromium");
    let runs: usize = std::env::var("AOF_BENCH_ROUNDS").map_or(3, |v| v.parse().unwrap());
    for round in 0..runs {
        b.goto("/ui/sessions").await;
        // The new page marks its first rows itself; the old one is watched from here
        // (its rows come after the load event: after the feed's init frame).
        b.js(
            "(() => { window.__rows = null; if (document.querySelector('tr[data-session]')) { \
               const m = performance.getEntriesByName('aof:sessions-rows')[0]; \
               window.__rows = m ? m.startTime : performance.now(); \
             } else new MutationObserver((_, o) => { \
               if (document.querySelector('tr[data-session]')) { o.disconnect(); window.__rows = performance.now(); } \
             }).observe(document.body, {subtree: true, childList: true}); return 0; })()",
        )
        .await;
        let rows_ms = b.wait_js("window.__rows", "first rows").await;
        let shown = b.count("tr[data-session]").await;
        let fcp = b
            .js("(performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime || null")
            .await;
        let http = b
            .js(
                "performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource')) \
                 .reduce((n, e) => n + (e.transferSize || 0), 0)",
            )
            .await;
        // Chromium's own figure (`performance.memory`), after the first rows are shown.
        let heap = b
            .js("performance.memory ? performance.memory.usedJSHeapSize : null")
            .await;
        println!(
            "{}",
            json!({"round": round, "first_rows_ms": rows_ms, "fcp_ms": fcp, "rows_in_dom": shown,
                   "http_bytes": http, "js_heap_bytes": heap})
        );
    }
    // The feed as each page opens it: the old one with its init frame, the new one from
    // its first page's `feed_head` (a coordinator without it: no init frame).
    let with_init = feed_bytes(&format!("{url}/sse/sessions?")).await;
    let page: serde_json::Value = reqwest::get(format!("{url}/sessions?limit=1"))
        .await
        .expect("a page")
        .json()
        .await
        .expect("JSON");
    let new_feed = match page["feed_head"].as_i64() {
        Some(head) => format!("{url}/sse/sessions?last_event_id={head}"),
        None => format!("{url}/sse/sessions?include_init=false"),
    };
    let without = feed_bytes(&new_feed).await;
    println!(
        "{}",
        json!({"feed_bytes_with_init": with_init, "feed_bytes_as_the_new_page_opens_it": without})
    );
    b.close().await;
}
