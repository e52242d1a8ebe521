//! The sessions page over a store of 10,000 sessions: it shows one page (the newest)
//! from the API, pages forward and back by cursor, filters by status and by text on the
//! server (the URL keeps the filters), and offers sessions created meanwhile; the
//! overview counts them without listing them.

use super::*;
use crate::{
    driver::Browser,
    seed::{seed_sessions, session_id},
};

const SESSIONS: usize = 10_000;
/// The dashboard's page size (sessions.js PER_PAGE).
const PAGE: usize = 50;

/// The ids of the rows on screen, in order.
async fn rows(b: &Browser) -> Vec<String> {
    let v = b
        .js("[...document.querySelectorAll('tr[data-session]')].map((r) => r.dataset.session)")
        .await;
    serde_json::from_value(v).unwrap()
}

/// Waits until the first row is `id` (a page or filter has loaded).
async fn first_row(b: &Browser, id: &str) {
    b.wait_js(
        &format!(
            "(document.querySelector('tr[data-session]') || {{}}).dataset?.session === '{id}'"
        ),
        &format!("first row {id}"),
    )
    .await;
}

async fn select_status(b: &Browser, status: &str) {
    b.js(&format!(
        "(() => {{ const s = document.getElementById('f-status'); s.value = '{status}'; \
         s.dispatchEvent(new Event('input', {{bubbles: true}})); return 0; }})()"
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_page_and_filter_on_the_server() {
    let dir = tempdir();
    seed_sessions(&dir.path().join("coord"), SESSIONS).await;
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let newest = |k: usize| session_id(SESSIONS - 1 - k);

    // The first page: the newest sessions, one page of them.
    b.goto("/ui/sessions").await;
    first_row(&b, &newest(0)).await;
    let page1 = rows(&b).await;
    assert_eq!(page1, (0..PAGE).map(newest).collect::<Vec<_>>());
    assert_eq!(
        b.js("document.getElementById('page-prev').disabled").await,
        true
    );
    b.check_page("sessions-10k").await;
    b.readme_picture("sessions").await;

    // Forward twice, back twice: the same pages, in order.
    b.click("#page-next").await;
    first_row(&b, &newest(PAGE)).await;
    assert_eq!(
        rows(&b).await,
        (PAGE..2 * PAGE).map(newest).collect::<Vec<_>>()
    );
    b.click("#page-next").await;
    first_row(&b, &newest(2 * PAGE)).await;
    assert_eq!(rows(&b).await.len(), PAGE);
    assert!(b
        .js("document.getElementById('page-no').textContent")
        .await
        .as_str()
        .unwrap()
        .starts_with("Page 3"));
    // Back by keyboard: Enter on "Previous", which keeps the focus while the pages turn
    // (on the first page it is disabled, and the focus moves to "Next").
    b.find("#page-prev")
        .await
        .send_keys("\u{E007}")
        .await
        .unwrap();
    first_row(&b, &newest(PAGE)).await;
    assert_eq!(b.js("document.activeElement.id").await, "page-prev");
    let focused = b.client.active_element().await.unwrap();
    focused.send_keys("\u{E007}").await.unwrap();
    first_row(&b, &newest(0)).await;
    assert_eq!(b.js("document.activeElement.id").await, "page-next");
    assert_eq!(rows(&b).await, page1);

    // By status (every third seeded session failed: 9997, 9994, …), on the server.
    select_status(&b, "failed").await;
    first_row(&b, &session_id(9997)).await;
    let failed = rows(&b).await;
    assert_eq!(
        failed,
        (0..PAGE)
            .map(|k| session_id(9997 - 3 * k))
            .collect::<Vec<_>>()
    );
    assert_eq!(b.count("tr[data-session] .badge.failed").await, PAGE as u64);
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("status=failed"));
    b.click("#page-next").await;
    first_row(&b, &session_id(9997 - 3 * PAGE)).await;
    b.check_page("sessions-10k-failed").await;

    // By text (a word in one session's project dir), the status cleared: that one.
    select_status(&b, "").await;
    b.fill("#f-q", "NEEDLE-4242").await;
    first_row(&b, &session_id(4242)).await;
    b.wait_js(
        "document.querySelectorAll('tr[data-session]').length === 1",
        "one match",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('page-next').disabled").await,
        true
    );
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("q=NEEDLE-4242"));
    b.check_page("sessions-10k-search").await;
    // A reload keeps the filter.
    b.goto("/ui/sessions?q=needle-4242").await;
    first_row(&b, &session_id(4242)).await;
    assert_eq!(
        b.js("document.getElementById('f-q').value").await,
        "needle-4242"
    );

    // The overview counts them all without listing them.
    b.goto("/ui/").await;
    b.wait_js(
        "document.querySelector('#ov-sessions a.stat[href$=\"status=finished\"] b')?.textContent === '3334'",
        "finished: 3334",
    )
    .await;
    assert_eq!(
        b.js(
            "document.querySelector('#ov-sessions a.stat[href$=\"status=failed\"] b').textContent"
        )
        .await,
        "3333"
    );
    b.wait_js(
        "document.querySelectorAll('#ov-activity li').length === 10",
        "the 10 newest as activity",
    )
    .await;
    b.check_page("overview-10k").await;

    // A session created while page 1 is open: counted, then shown on request.
    b.goto("/ui/sessions").await;
    first_row(&b, &newest(0)).await;
    b.wait_js("AOF.stats.feedOpens > 0", "feed open").await;
    let (_, sid) = start_run(&url, "a new one").await;
    b.wait_js(
        "(document.getElementById('show-new') || {}).textContent === '1 new session — show'",
        "the new-session count",
    )
    .await;
    assert_eq!(rows(&b).await.len(), PAGE, "not inserted by itself");
    b.click("#show-new").await;
    first_row(&b, &sid).await;
    assert_eq!(rows(&b).await.len(), PAGE);
    b.close().await;
}
