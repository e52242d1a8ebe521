//! Auth on: the login form, the HttpOnly cookie (never a key in a URL), writes from the
//! page, logout. And `aof dashboard` standalone against a coordinator on another port.

use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use super::*;
use crate::driver::Browser;

// The browser suites reach it as `crate::login::offline_key`.
pub use crate::harness::offline_key;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_with_auth_on() {
    let dir = tempdir();
    let data = dir.path().join("coord");
    std::fs::create_dir_all(&data).unwrap();
    let key = offline_key(&data, "operator");
    let mut env = fast_env();
    env.push(("AUTH_ENABLED".into(), "true".into()));
    let coord = Coordinator::start(dir.path(), env).await;
    let url = coord.url.clone();

    // Pages and assets need no credential (they hold no data); the API still does.
    let c = client();
    for path in [
        "/ui/",
        "/ui/sessions",
        "/ui/login",
        "/ui/assets/core.js",
        "/ui/assets/app.css",
    ] {
        let r = c.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
    }
    let r = c.get(format!("{url}/ui/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(call("GET", &format!("{url}/sessions"), None).await.0, 401);
    assert_eq!(
        call("POST", &format!("{url}/ui/sessions"), Some(json!({})))
            .await
            .0,
        401,
        "only GET is public"
    );

    let Some(b) = Browser::start(&url).await else {
        return;
    };

    // No credential: pages send you to the login form, remembering where you were.
    b.goto("/ui/sessions").await;
    b.wait_js("location.pathname === '/ui/login'", "redirect to login")
        .await;
    assert_eq!(b.js("location.search").await, "?next=%2Fui%2Fsessions");
    b.check_page("login").await;

    b.fill("#key", "aof_000000000000_wrong").await;
    b.click("#login").await;
    b.wait_js("!document.getElementById('key-err').hidden", "login error")
        .await;
    assert_eq!(
        b.js("document.getElementById('key-err').textContent").await,
        "That key is not valid."
    );

    b.fill("#key", &key).await;
    b.click("#login").await;
    b.wait_js("location.pathname === '/ui/sessions'", "back where we were")
        .await;
    b.wait_js(
        "document.getElementById('who').textContent.includes('operator')",
        "who am I",
    )
    .await;
    // The cookie is HttpOnly: the page's scripts cannot read it.
    assert_eq!(b.js("document.cookie").await, "");
    let cookies = b.client.get_all_cookies().await.unwrap();
    let c = cookies
        .iter()
        .find(|c| c.name() == "aof_session")
        .expect("session cookie");
    assert_eq!(c.http_only(), Some(true));
    assert_eq!(format!("{:?}", c.same_site()), "Some(Strict)");
    assert!(!b
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .contains(&key));
    b.wait_js(
        "document.querySelector('#sessions .empty')",
        "sessions empty state",
    )
    .await;
    b.check_page("sessions-empty").await;

    // A write from the page (cookie + the page's Origin) is accepted.
    b.goto("/ui/sessions/new").await;
    b.fill("#prompt", "from the browser").await;
    b.click("#start").await;
    let sid = b
        .wait_js(
            "location.pathname.startsWith('/ui/sessions/ses') && location.pathname.split('/')[3]",
            "session page",
        )
        .await;
    let (st, s) = call_h(
        "GET",
        &format!("{url}/sessions/{}", sid.as_str().unwrap()),
        None,
        &[("authorization", &format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(st, 200, "{s}");
    b.wait_js(
        "document.querySelector('#session-status .badge.pending')",
        "pending session",
    )
    .await;

    b.click("#logout").await;
    b.wait_js("location.pathname === '/ui/login'", "logged out")
        .await;
    b.goto("/ui/runs").await;
    b.wait_js("location.pathname === '/ui/login'", "login required again")
        .await;

    // The same through `aof dashboard`: login cookie and page writes pass the proxy.
    let (_dash, dash) = spawn_dashboard(dir.path(), &url).await;
    b.goto_abs(&format!("{dash}/ui/runs")).await;
    b.wait_js(
        "location.pathname === '/ui/login'",
        "login via the dashboard",
    )
    .await;
    b.fill("#key", &key).await;
    b.click("#login").await;
    b.wait_js(
        "location.pathname === '/ui/runs'",
        "runs page via the dashboard",
    )
    .await;
    b.goto_abs(&format!("{dash}/ui/sessions/new")).await;
    b.fill("#prompt", "through the proxy").await;
    b.click("#start").await;
    let sid2 = b
        .wait_js(
            "location.pathname.startsWith('/ui/sessions/ses') && location.pathname.split('/')[3]",
            "session page via the dashboard",
        )
        .await;
    assert_ne!(sid2, sid);
    b.wait_js(
        "document.querySelector('#session-status .badge.pending')",
        "pending session via the dashboard",
    )
    .await;
    assert!(b
        .client
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&dash));
    b.close().await;
}

/// `aof dashboard` on a free port, told the coordinator's URL by the environment.
async fn spawn_dashboard(dir: &std::path::Path, upstream: &str) -> (tokio::process::Child, String) {
    let addr_file = dir.join("dash.addr");
    let log = std::fs::File::create(dir.join("dashboard.log")).unwrap();
    let child = Command::new(BIN)
        .args(["dashboard", "--listen", "127.0.0.1:0", "--addr-file"])
        .arg(&addr_file)
        .env("AGENT_ORCHESTRATOR_API_URL", upstream)
        .env_remove("AOF_URL")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("spawn aof dashboard");
    let addr = wait_for("dashboard address", || async {
        std::fs::read_to_string(&addr_file)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    (child, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_dashboard_forwards_api_and_sse() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let _runner = Runner::start(&coord.url, dir.path(), "r1", &[]).await;
    wait_runner(&coord.url).await;
    // The coordinator URL comes from the environment at run time, as in the image.
    let (_dash, dash) = spawn_dashboard(dir.path(), &coord.url).await;
    assert_ne!(dash, coord.url);

    // Plain HTTP: `/` redirects, API calls are forwarded, a foreign Origin is refused.
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{dash}/")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/ui/");
    let (st, h) = call("GET", &format!("{dash}/health"), None).await;
    assert_eq!((st, h), (200, json!({"status": "healthy"})));
    let body = json!({"type": "start_session", "parameters": {"prompt": "x"}});
    let (st, e) = call_h(
        "POST",
        &format!("{dash}/runs"),
        Some(body),
        &[("origin", "http://evil.test")],
    )
    .await;
    assert_eq!((st, e["code"].clone()), (403, json!("origin_not_allowed")));

    let Some(b) = Browser::start(&dash).await else {
        return;
    };
    b.goto("/ui/sessions/new").await;
    let prompt = echo_prompt(
        json!({"echo_events": 8, "echo_delay_ms": 150}),
        "via the proxy",
    );
    b.fill("#prompt", &prompt).await;
    b.click("#start").await;
    let sid = b
        .wait_js(
            "location.pathname.startsWith('/ui/sessions/ses') && location.pathname.split('/')[3]",
            "session page",
        )
        .await
        .as_str()
        .unwrap()
        .to_string();
    b.wait_js(
        "document.querySelector('#session-status .badge.finished')",
        "finished, live through the proxy",
    )
    .await;
    let stored = event_ids(&coord.url, &sid).await;
    b.click("#tl-raw").await;
    b.wait_js(
        &format!(
            "document.querySelectorAll('#timeline > li').length === {}",
            stored.len()
        ),
        "all events",
    )
    .await;
    assert_eq!(row_ids(&b).await, stored);
    b.check_page("standalone-session").await;
    b.close().await;
}
