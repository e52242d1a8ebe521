//! The audit log page: admins see GET /audit as a filterable, paged table whose session
//! targets link to the session; the nav shows it to admins only; a viewer who opens the
//! URL is told it is for admins.

use serde_json::json;

use super::*;
use crate::driver::Browser;

async fn login(b: &Browser, key: &str, next: &str) {
    b.goto(&format!("/ui/login?next={}", next.replace('/', "%2F")))
        .await;
    b.fill("#key", key).await;
    b.click("#login").await;
    b.wait_js(&format!("location.pathname === '{next}'"), next)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_filter_the_audit_log_viewers_are_told_no() {
    let dir = tempdir();
    let data = dir.path().join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let admin = crate::login::offline_key(&data, "admin");
    let viewer = crate::login::offline_key(&data, "viewer");
    let coord = Coordinator::start(dir.path(), vec![("AUTH_ENABLED".into(), "true".into())]).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    // Something to audit: a session started and stopped by the admin.
    let auth = format!("Bearer {admin}");
    let (st, r) = call_h(
        "POST",
        &format!("{url}/runs"),
        Some(json!({"type": "start_session", "parameters": {"prompt": "audited"}})),
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!(st, 201, "{r}");
    let sid = r["session_id"].as_str().unwrap().to_string();
    let (st, s) = call_h(
        "POST",
        &format!("{url}/sessions/{sid}/stop"),
        Some(json!({})),
        &[("authorization", auth.as_str())],
    )
    .await;
    assert_eq!(st, 200, "{s}");

    // A viewer: no nav link, and the page says why there is nothing.
    login(&b, &viewer, "/ui/sessions").await;
    b.wait_js("AOF.me && AOF.me.role === 'viewer'", "who am I")
        .await;
    assert_eq!(
        b.js("document.getElementById('nav-audit').hidden").await,
        true
    );
    b.goto("/ui/audit").await;
    let msg = b
        .wait_js(
            "document.getElementById('admins-only') && document.getElementById('admins-only').textContent",
            "the admins-only message",
        )
        .await;
    assert!(msg.as_str().unwrap().contains("Admins only"), "{msg}");
    b.check_page("audit-viewer").await;
    b.click("#logout").await;
    b.wait_js("location.pathname === '/ui/login'", "logged out")
        .await;

    // An admin: the link, the table, a filter that narrows it, the session linked.
    login(&b, &admin, "/ui/sessions").await;
    b.wait_js(
        "!document.getElementById('nav-audit').hidden",
        "audit link for admins",
    )
    .await;
    b.click("#nav-audit a").await;
    b.wait_js("location.pathname === '/ui/audit'", "audit page")
        .await;
    b.wait_js(
        "document.querySelectorAll('tr[data-audit]').length >= 2",
        "entries",
    )
    .await;
    b.fill("#f-action", "session.stop").await;
    b.click("#f-apply").await;
    let link = format!("tr[data-audit] a[href=\"/ui/sessions/{sid}\"]");
    b.wait_js(
        &format!(
            "document.querySelectorAll('tr[data-audit]').length === 1 && document.querySelector('{link}')"
        ),
        "only the stop, its session linked",
    )
    .await;
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("action=session.stop"));
    b.check_page("audit").await;
    // Reloading keeps the filter; the link leads to the session.
    b.goto("/ui/audit?action=session.stop").await;
    b.wait_js(
        &format!("document.querySelector('{link}')"),
        "filtered after a reload",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('f-action').value").await,
        "session.stop"
    );
    b.click(&link).await;
    b.wait_js(
        &format!("location.pathname === '/ui/sessions/{sid}'"),
        "the session page",
    )
    .await;
    b.close().await;
}

/// The audit page pages through more entries than fit on one (50) and filters by time:
/// 60 `run.create` entries, the last 20 in a later second than the first 40.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_pages_and_filters_by_time() {
    let dir = tempdir();
    let data = dir.path().join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let admin = crate::login::offline_key(&data, "admin");
    let coord = Coordinator::start(dir.path(), vec![("AUTH_ENABLED".into(), "true".into())]).await;
    let url = coord.url.clone();
    let Some(b) = Browser::start(&url).await else {
        return;
    };
    let auth = format!("Bearer {admin}");
    let create = |i: usize| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let (st, r) = call_h(
                "POST",
                &format!("{url}/runs"),
                Some(json!({"type": "start_session", "parameters": {"prompt": format!("a{i}")}})),
                &[("authorization", auth.as_str())],
            )
            .await;
            assert_eq!(st, 201, "{r}");
        }
    };
    for i in 0..40 {
        create(i).await;
    }
    // The later batch starts in a later second than every earlier entry (the time
    // filter has one-second steps): wait for the clock, not for a fixed time.
    let entries = |q: &'static str| {
        let (url, auth) = (url.clone(), auth.clone());
        async move {
            let (st, out) = call_h(
                "GET",
                &format!("{url}/audit?action=run.create&limit=1000{q}"),
                None,
                &[("authorization", auth.as_str())],
            )
            .await;
            assert_eq!(st, 200, "{out}");
            out["entries"].as_array().unwrap().clone()
        }
    };
    let last_early = entries("").await[0]["at"].as_str().unwrap().to_string();
    let last_early = chrono::DateTime::parse_from_rfc3339(&last_early).unwrap();
    let boundary = wait_for("the next second", || async {
        let now = chrono::Utc::now();
        let later = now.timestamp() > last_early.timestamp() && now.timestamp_subsec_millis() > 0;
        later.then_some(now.timestamp())
    })
    .await;
    for i in 40..60 {
        create(i).await;
    }
    let all = entries("").await;
    assert_eq!(all.len(), 60);

    login(&b, &admin, "/ui/audit").await;
    // Filtered from the URL: the first page is the newest 50 creations.
    b.goto("/ui/audit?action=run.create").await;
    let first_id = all[0]["id"].to_string();
    b.wait_js(
        &format!(
            "document.querySelectorAll('tr[data-audit]').length === 50 && \
             document.querySelector('tr[data-audit]').dataset.audit === '{first_id}'"
        ),
        "a first page of 50, newest first",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('f-action').value").await,
        "run.create"
    );
    b.click("#audit-older").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-audit]').length === 10",
        "the 10 older ones",
    )
    .await;
    assert_eq!(
        b.js("document.querySelector('tr[data-audit]').dataset.audit")
            .await,
        all[50]["id"].to_string().as_str()
    );
    assert_eq!(
        b.js("document.getElementById('audit-older').disabled")
            .await,
        true
    );
    b.check_page("audit-page-2").await;
    b.click("#audit-newer").await;
    b.wait_js(
        &format!(
            "document.querySelectorAll('tr[data-audit]').length === 50 && \
             document.querySelector('tr[data-audit]').dataset.audit === '{first_id}'"
        ),
        "back to the first page",
    )
    .await;

    // From the boundary second on: the 20 later entries only, on one page.
    b.js(&format!(
        "(() => {{ const d = new Date({boundary} * 1000), p = (n) => String(n).padStart(2, '0'); \
         document.getElementById('f-since').value = \
           `${{d.getFullYear()}}-${{p(d.getMonth() + 1)}}-${{p(d.getDate())}}T${{p(d.getHours())}}:${{p(d.getMinutes())}}:${{p(d.getSeconds())}}`; return 0; }})()"
    ))
    .await;
    b.click("#f-apply").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-audit]').length === 20",
        "the later 20",
    )
    .await;
    assert_eq!(
        b.js("document.getElementById('audit-older').disabled")
            .await,
        true
    );
    assert!(b
        .js("location.search")
        .await
        .as_str()
        .unwrap()
        .contains("since="));
    b.check_page("audit-since").await;
    // Until a second before the later batch: the 40 earlier ones.
    b.js(
        "(() => { document.getElementById('f-until').value = document.getElementById('f-since').value; \
         document.getElementById('f-since').value = ''; return 0; })()",
    )
    .await;
    b.click("#f-apply").await;
    b.wait_js(
        "document.querySelectorAll('tr[data-audit]').length === 40",
        "the earlier 40 (until is inclusive of its second's start only)",
    )
    .await;
    b.close().await;
}
