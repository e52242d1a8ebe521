//! Cookie login and the Origin check; the loopback rule; CORS.

use std::process::Stdio;

use serde_json::json;
use tokio::process::Command;

use super::*;

// ---------------------------------------------------------------------------------------
// (6) Browser sessions: cookie login and the Origin check.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_login_and_origin_check() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[("CORS_ORIGINS", "http://app.test")]).await;
    let url = coord.url.clone();
    let c = client();

    let resp = c
        .post(format!("{url}/auth/login"))
        .json(&json!({"key": keys.operator}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for attr in ["aof_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    let (st, _) = req(
        "GET",
        &format!("{url}/sessions"),
        None,
        None,
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(st, 200);

    let body = json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}});
    let host = url.trim_start_matches("http://");
    let own = format!("http://{host}");
    let cases = [
        (None, 403),
        (Some("http://evil.test"), 403),
        (Some("http://app.test"), 201),
        (Some(own.as_str()), 201),
    ];
    for (origin, want) in cases {
        let mut h = vec![("cookie", pair.as_str())];
        if let Some(o) = &origin {
            h.push(("origin", o));
        }
        let (st, b) = req("POST", &format!("{url}/runs"), None, Some(body.clone()), &h).await;
        assert_eq!(st, want, "origin {origin:?}: {b}");
        if want == 403 {
            assert_eq!(b["code"], "origin_not_allowed");
        }
    }
    // Login from a foreign page is refused; a bad key is 401; logout clears the cookie.
    let (st, _) = req(
        "POST",
        &format!("{url}/auth/login"),
        None,
        Some(json!({"key": keys.viewer})),
        &[("origin", "http://evil.test")],
    )
    .await;
    assert_eq!(st, 403);
    let (st, _) = req(
        "POST",
        &format!("{url}/auth/login"),
        None,
        Some(json!({"key": "aof_000000000000_00"})),
        &[],
    )
    .await;
    assert_eq!(st, 401);
    let resp = c.post(format!("{url}/auth/logout")).send().await.unwrap();
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_no_secret(
        "coordinator log",
        &coord.log(),
        &[&keys.operator, &keys.viewer],
    );
}

// ---------------------------------------------------------------------------------------
// (7) Auth off: loopback only, unless --insecure-listen. (8) CORS.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_listen_needs_auth_or_insecure_listen() {
    let dir = tempdir();
    let data = dir.path().to_str().unwrap();
    let (code, _, err) = aof(
        &["coordinator", "--listen", "0.0.0.0:0", "--data-dir", data],
        &[],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0") && err.contains("--insecure-listen"),
        "{err}"
    );

    for (extra, warns) in [(vec!["--insecure-listen"], true), (vec![], false)] {
        let addr_file = dir.path().join(format!("addr{warns}"));
        let log_path = dir.path().join(format!("log{warns}"));
        let mut cmd = Command::new(BIN);
        cmd.args(["coordinator", "--listen", "0.0.0.0:0", "--data-dir", data])
            .args(&extra)
            .arg("--addr-file")
            .arg(&addr_file)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .kill_on_drop(true);
        if !warns {
            cmd.env("AUTH_ENABLED", "true");
        }
        let _child = cmd.spawn().unwrap();
        let addr = wait_for("addr", || async {
            std::fs::read_to_string(&addr_file)
                .ok()
                .filter(|s| !s.is_empty())
        })
        .await;
        let port = addr.rsplit(':').next().unwrap();
        wait_healthy(&format!("http://127.0.0.1:{port}")).await;
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(log.contains("--insecure-listen"), warns, "{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_is_exact_and_never_a_wildcard_with_credentials() {
    let dir = tempdir();
    let listed = Coordinator::start(
        &dir.path().join("a"),
        vec![("CORS_ORIGINS".into(), "http://app.test".into())],
    )
    .await;
    // `*` only when set explicitly (the default is same-origin only: driveby.rs).
    let any = Coordinator::start(
        &dir.path().join("b"),
        vec![("CORS_ORIGINS".into(), "*".into())],
    )
    .await;
    let preflight = |url: String, origin: &'static str| async move {
        let r = client()
            .request(reqwest::Method::OPTIONS, format!("{url}/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization")
            .send()
            .await
            .unwrap();
        let h = |k: &str| r.headers().get(k).map(|v| v.to_str().unwrap().to_string());
        (
            h("access-control-allow-origin"),
            h("access-control-allow-credentials"),
        )
    };
    assert_eq!(
        preflight(listed.url.clone(), "http://app.test").await,
        (Some("http://app.test".into()), Some("true".into()))
    );
    assert_eq!(
        preflight(listed.url.clone(), "http://evil.test").await.0,
        None
    );
    let (origin, creds) = preflight(any.url.clone(), "http://evil.test").await;
    assert_eq!(origin.as_deref(), Some("*"));
    assert_ne!(
        creds.as_deref(),
        Some("true"),
        "a wildcard never comes with credentials"
    );
}
