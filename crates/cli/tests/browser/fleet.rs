//! The runners and runs pages read a page at a time from the API: 60 runners (Next
//! shows the last 10), filtered on the server by text and status (kept in the URL),
//! a runner's current run beside it; 55 runs paged the same way.

use super::*;
use crate::driver::Browser;

/// The `data-*` ids of the rows on screen, in order.
async fn rows(b: &Browser, attr: &str) -> Vec<String> {
    let v = b
        .js(&format!(
            "[...document.querySelectorAll('tr[data-{attr}]')].map((r) => r.dataset.{attr})"
        ))
        .await;
    serde_json::from_value(v).unwrap()
}

async fn row_count(b: &Browser, attr: &str, n: usize, what: &str) {
    b.wait_js(
        &format!("document.querySelectorAll('tr[data-{attr}]').length === {n}"),
        what,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runners_and_runs_page_through_the_api_and_filter_on_the_server() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), Vec::new()).await;
    let url = coord.url.clone();
    // 60 runners, host fleet-00 … fleet-59; every tenth also tagged `gpu`.
    let mut fleet = Vec::new();
    for i in 0..60 {
        let tags: &[&str] = if i % 10 == 0 {
            &["manual", "gpu"]
        } else {
            &["other"]
        };
        fleet.push(ManualRunner::register_as(&url, tags, &format!("fleet-{i:02}"), "manual").await);
    }
    // The API's order (registration time, then id) is the page's.
    let (_, all) = call("GET", &format!("{url}/runners"), None).await;
    let order: Vec<String> = all["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order.len(), 60);
    // One `manual` runner holds a run: the page shows it as that runner's current work.
    let sid = ManualRunner::start_session(&url, "held").await;
    let run = fleet[0].claim().await;
    assert_eq!(run["session_id"], sid.as_str());

    let Some(b) = Browser::start(&url).await else {
        return;
    };
    b.goto("/ui/runners").await;
    row_count(&b, "runner", 50, "the first 50 runners").await;
    assert_eq!(rows(&b, "runner").await, order[..50]);
    assert_eq!(
        b.js("document.getElementById('page-prev').disabled").await,
        true
    );
    b.check_page("runners-60").await;
    b.click("#page-next").await;
    row_count(&b, "runner", 10, "the last 10 runners").await;
    assert_eq!(rows(&b, "runner").await, order[50..]);
    assert_eq!(
        b.js("document.getElementById('page-next').disabled").await,
        true
    );
    b.click("#page-prev").await;
    row_count(&b, "runner", 50, "the first page again").await;

    // Text on the server: the `gpu` tag (fleet-00, -10, … -50), across both pages.
    b.fill("#n-q", "GPU").await;
    row_count(&b, "runner", 6, "the six gpu runners").await;
    let gpu: Vec<String> = (0..60).step_by(10).map(|i| fleet[i].id.clone()).collect();
    let mut shown = rows(&b, "runner").await;
    shown.sort();
    let mut want = gpu.clone();
    want.sort();
    assert_eq!(shown, want);
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("q=GPU"));
    assert!(
        b.js("document.getElementById('page-next')").await.is_null(),
        "one page: no pager"
    );
    // fleet-00's current run, linked to its session; the others are idle.
    let held = b
        .js(&format!(
            "document.querySelector('tr[data-runner=\"{}\"]').textContent",
            fleet[0].id
        ))
        .await;
    assert!(held.as_str().unwrap().contains(&sid), "{held}");
    assert_eq!(b.count("tr[data-runner] a[href^='/ui/sessions/']").await, 1);
    b.check_page("runners-gpu").await;

    // A reload keeps the filters; none of them stale: the empty state says why.
    b.goto("/ui/runners?status=stale&q=gpu").await;
    b.wait_js(
        "(document.querySelector('#runners .empty') || {}).textContent?.startsWith('No runner matches')",
        "no stale runner",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('n-status').value").await,
        "stale"
    );
    assert_eq!(b.js("document.getElementById('n-q').value").await, "gpu");
    b.goto("/ui/runners?status=online&q=fleet-4").await;
    row_count(&b, "runner", 10, "fleet-40 … fleet-49").await;

    // Runs: 55 (the held one and 54 pending), 50 a page, newest first.
    for i in 0..54 {
        start_run(&url, &format!("run {i}")).await;
    }
    let (_, runs) = call("GET", &format!("{url}/runs"), None).await;
    let run_order: Vec<String> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(run_order.len(), 55);
    b.goto("/ui/runs").await;
    row_count(&b, "run", 50, "the first 50 runs").await;
    assert_eq!(rows(&b, "run").await, run_order[..50]);
    b.click("#page-next").await;
    row_count(&b, "run", 5, "the last 5 runs").await;
    assert_eq!(rows(&b, "run").await, run_order[50..]);
    b.check_page("runs-55").await;
    // By status, on the server: the one claimed run.
    b.goto("/ui/runs?status=claimed").await;
    row_count(&b, "run", 1, "the claimed run").await;
    assert_eq!(rows(&b, "run").await, [run["run_id"].as_str().unwrap()]);
    b.close().await;
}
