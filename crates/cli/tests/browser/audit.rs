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
