//! Issue #20, attacks 1 and 3: a web page driving the API through the user's browser
//! (foreign Origin, `text/plain` bodies, DNS rebinding, CORS), and a session token
//! reading another session's feed through a repeated query key. Each test performs the
//! attack, checks the refusal (status and `code`) and that the store did not change.

use aof_coordinator::auth::policy::RULES;
use futures::StreamExt;
use serde_json::{json, Value};

use super::*;

const EVIL: &str = "http://evil.test";

/// A `command` agent: what a drive-by would create to run a shell on the user's machine.
fn shell_agent(name: &str) -> Value {
    json!({"name": name, "description": "drive-by",
           "executor": {"kind": "command", "program": "sh", "args": ["-c", "touch /tmp/pwned"]}})
}

/// Everything an attack could change, as readers see it. Runners by id only (their
/// heartbeats move on their own).
async fn snapshot(url: &str, token: Option<&str>) -> Value {
    let mut out = serde_json::Map::new();
    for path in [
        "/agents",
        "/capabilities",
        "/mcp-servers",
        "/runs",
        "/sessions",
    ] {
        let (st, b) = req("GET", &format!("{url}{path}"), token, None, &[]).await;
        assert_eq!(st, 200, "{path}: {b}");
        out.insert(path.into(), b);
    }
    let (st, b) = req("GET", &format!("{url}/runners"), token, None, &[]).await;
    assert_eq!(st, 200, "{b}");
    let mut ids: Vec<String> = b["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["runner_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    out.insert("/runners".into(), json!(ids));
    Value::Object(out)
}

/// One request with a raw body and the given headers; status and JSON body.
async fn send(
    method: &str,
    url: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut rb = client().request(method.parse().unwrap(), url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    if let Some(b) = body {
        rb = rb.body(b.to_string());
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[track_caller]
fn refused(got: (u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(
        (got.0, got.1["code"].as_str()),
        (status, Some(code)),
        "{what}: {}",
        got.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driveby_text_plain_post_agents_is_415_and_creates_nothing() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let before = snapshot(&url, None).await;
    let agent = shell_agent("pwn").to_string();
    let run = json!({"type": "start_session", "agent_name": "pwn", "parameters": {"prompt": "x"}})
        .to_string();
    // What a page can send cross-site without a preflight, and a body with no type.
    for ct in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let h: Vec<(&str, &str)> = ct.iter().map(|c| ("content-type", *c)).collect();
        for (path, body) in [("/agents", &agent), ("/runs", &run), ("/mcp", &run)] {
            let got = send("POST", &format!("{url}{path}"), Some(body), &h).await;
            refused(
                got,
                415,
                "unsupported_media_type",
                &format!("{path} as {ct:?}"),
            );
        }
    }
    assert_eq!(
        snapshot(&url, None).await,
        before,
        "a refused body changed the store"
    );

    // JSON (any charset, `+json`) is accepted; body-less POSTs need no type at all.
    let (st, b) = send(
        "POST",
        &format!("{url}/agents"),
        Some(&shell_agent("ok").to_string()),
        &[("content-type", "application/json; charset=utf-8")],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (run_id, _) = start_run(&url, "p").await;
    let (st, b) = send("POST", &format!("{url}/runs/{run_id}/stop"), None, &[]).await;
    assert_eq!(st, 200, "a POST without a body needs no Content-Type: {b}");
}

/// A path for a route template, with the ids of things that exist (so a write that got
/// through would change them).
fn fill(template: &str, ids: &[(&str, &str)]) -> String {
    ids.iter()
        .fold(template.to_string(), |p, (k, v)| p.replace(k, v))
}

/// Every write of the policy table with a foreign Origin: 403 and nothing changed.
async fn every_write_refused(url: &str, token: Option<&str>, ids: &[(&str, &str)], origin: &str) {
    let mut writes = 0;
    for r in RULES {
        let method = r.method.as_str();
        if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            continue;
        }
        writes += 1;
        let path = fill(r.path, ids);
        let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}));
        let got = req(
            method,
            &format!("{url}{path}"),
            token,
            body,
            &[("origin", origin)],
        )
        .await;
        refused(got, 403, "origin_not_allowed", &format!("{method} {path}"));
    }
    assert!(writes >= 30, "the table lists only {writes} writes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driveby_foreign_origin_is_403_on_every_write_route() {
    let dir = tempdir();
    // `aof coordinator`, auth off (the default).
    let coord = Coordinator::start(&dir.path().join("c"), fast_env()).await;
    let url = coord.url.clone();
    let (st, _) = call(
        "POST",
        &format!("{url}/agents"),
        Some(shell_agent("victim")),
    )
    .await;
    assert_eq!(st, 201);
    let (st, b) = call(
        "POST",
        &format!("{url}/mcp-servers"),
        Some(json!({"id": "m", "name": "m", "url": "http://m/mcp"})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let runner_id = register(&url, "h1").await;
    let (run_id, sid) = start_run(&url, "p").await;
    let ids = [
        ("{id}", sid.as_str()),
        ("{run_id}", run_id.as_str()),
        ("{runner_id}", runner_id.as_str()),
        ("{name}", "victim"),
        ("{server_id}", "m"),
    ];
    let before = snapshot(&url, None).await;
    for origin in [EVIL, "http://localhost:1", "https://127.0.0.1.evil.test"] {
        every_write_refused(&url, None, &ids, origin).await;
    }
    assert_eq!(
        snapshot(&url, None).await,
        before,
        "a refused write changed the store"
    );
    // The coordinator's own page and Origin-less clients (CLI, runners) still write.
    let own = url.clone();
    let (st, b) = req(
        "PATCH",
        &format!("{url}/agents/victim/status"),
        None,
        Some(json!({"status": "inactive"})),
        &[("origin", &own)],
    )
    .await;
    assert_eq!(st, 200, "same origin: {b}");
    let (code, out, err) = aof(&["agents", "list", "--url", &url], &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("victim"), "{out}");

    // `aof up`: the same, with its in-process runner about.
    let updir = dir.path().join("up");
    std::fs::create_dir_all(&updir).unwrap();
    let up = Up::start(&updir).await;
    let url = up.url.clone();
    let (st, _) = call(
        "POST",
        &format!("{url}/agents"),
        Some(shell_agent("victim")),
    )
    .await;
    assert_eq!(st, 201);
    let (run_id, sid) = start_run(&url, "p").await;
    wait_session(&url, &sid, "finished").await;
    let runner_id = wait_for("the in-process runner", || async {
        let (_, b) = call("GET", &format!("{url}/runners"), None).await;
        b["runners"][0]["runner_id"].as_str().map(str::to_string)
    })
    .await;
    let ids = [
        ("{id}", sid.as_str()),
        ("{run_id}", run_id.as_str()),
        ("{runner_id}", runner_id.as_str()),
        ("{name}", "victim"),
        ("{server_id}", "m"),
    ];
    let before = snapshot(&url, None).await;
    every_write_refused(&url, None, &ids, EVIL).await;
    assert_eq!(
        snapshot(&url, None).await,
        before,
        "a refused write changed aof up's store"
    );
    // The README's two commands still work: `aof run … --follow` against `aof up`.
    let (code, out, err) = aof(
        &[
            "run",
            "anything",
            "hi",
            "--follow",
            "--timeout",
            "60",
            "--url",
            &url,
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[result] hi"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driveby_foreign_origin_is_403_whatever_the_credential() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let before = snapshot(&url, Some(&keys.viewer)).await;
    let ids = [
        ("{id}", "s"),
        ("{run_id}", "r"),
        ("{runner_id}", "x"),
        ("{name}", "n"),
        ("{server_id}", "m"),
    ];
    every_write_refused(&url, Some(&keys.admin), &ids, EVIL).await;
    assert_eq!(snapshot(&url, Some(&keys.viewer)).await, before);
    // The admin key from no browser at all still works.
    let (st, b) = req(
        "POST",
        &format!("{url}/agents"),
        Some(&keys.admin),
        Some(shell_agent("a")),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driveby_origin_null_is_refused() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let before = snapshot(&url, None).await;
    let agent = Some(shell_agent("pwn"));
    // A sandboxed iframe or a `data:` page sends `Origin: null`.
    let got = req(
        "POST",
        &format!("{url}/agents"),
        None,
        agent.clone(),
        &[("origin", "null")],
    )
    .await;
    refused(got, 403, "origin_not_allowed", "Origin: null");
    // No Origin, but the browser says the request is cross-site.
    let got = req(
        "POST",
        &format!("{url}/agents"),
        None,
        agent.clone(),
        &[("sec-fetch-site", "cross-site")],
    )
    .await;
    refused(got, 403, "origin_not_allowed", "Sec-Fetch-Site: cross-site");
    assert_eq!(snapshot(&url, None).await, before);
    // Same-origin fetches say so, and pass.
    let h = [("origin", url.as_str()), ("sec-fetch-site", "same-origin")];
    let (st, b) = req("POST", &format!("{url}/agents"), None, agent, &h).await;
    assert_eq!(st, 201, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_foreign_host_refused_with_auth_off() {
    let dir = tempdir();
    let coord = Coordinator::start(
        &dir.path().join("a"),
        [
            fast_env(),
            vec![("AOF_ALLOWED_HOSTS".into(), "aof.test".into())],
        ]
        .concat(),
    )
    .await;
    let url = coord.url.clone();
    let port = coord.port;
    let before = snapshot(&url, None).await;
    // A page on evil.test whose name now resolves to 127.0.0.1: its requests are
    // same-origin to the browser, Host and Origin both say evil.test.
    let evil_host = format!("evil.test:{port}");
    let evil_origin = format!("http://{evil_host}");
    let rebound = [
        ("host", evil_host.as_str()),
        ("origin", evil_origin.as_str()),
    ];
    for (method, path, body) in [
        ("GET", "/sessions", None),
        ("GET", "/sse/sessions", None),
        ("GET", "/agents", None),
        ("POST", "/agents", Some(shell_agent("pwn"))),
        (
            "POST",
            "/runs",
            Some(
                json!({"type": "start_session", "agent_name": "pwn", "parameters": {"prompt": "x"}}),
            ),
        ),
        (
            "POST",
            "/mcp",
            Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
        ),
    ] {
        let got = req(method, &format!("{url}{path}"), None, body, &rebound).await;
        refused(got, 403, "host_not_allowed", &format!("{method} {path}"));
    }
    // Through `aof dashboard`, the browser's Host arrives as X-Forwarded-Host.
    let got = req(
        "GET",
        &format!("{url}/sessions"),
        None,
        None,
        &[("x-forwarded-host", &evil_host)],
    )
    .await;
    refused(got, 403, "host_not_allowed", "X-Forwarded-Host");
    assert_eq!(snapshot(&url, None).await, before);
    // Probes answer any Host; they return nothing a page could use.
    for path in ["/health", "/ready"] {
        let (st, _) = req(
            "GET",
            &format!("{url}{path}"),
            None,
            None,
            &[("host", &evil_host)],
        )
        .await;
        assert_eq!(st, 200, "{path}");
    }
    // Loopback, IP addresses (an IP cannot be rebound: a page on one is the coordinator
    // itself) and the allowed name are served, and their own origin may write.
    for (i, host) in ["localhost", "127.0.0.1", "[::1]", "aof.test", "10.1.2.3"]
        .iter()
        .enumerate()
    {
        let h = format!("{host}:{port}");
        let o = format!("http://{h}");
        let (st, b) = req(
            "POST",
            &format!("{url}/agents"),
            None,
            Some(shell_agent(&format!("a{i}"))),
            &[("host", &h), ("origin", &o)],
        )
        .await;
        assert_eq!(st, 201, "{host}: {b}");
    }
    // `/mcp` is strict, as rmcp's own check: loopback and the allowed names only.
    let ip = format!("10.1.2.3:{port}");
    let mcp = Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let got = req("POST", &format!("{url}/mcp"), None, mcp, &[("host", &ip)]).await;
    refused(got, 403, "host_not_allowed", "/mcp by IP");

    // Auth on: the credential is the defence, except on /mcp, whose Host check stays.
    let (coord, keys) = coordinator(&dir.path().join("b"), &[]).await;
    let url = coord.url.clone();
    let h = format!("evil.test:{}", coord.port);
    let (st, _) = req(
        "GET",
        &format!("{url}/sessions"),
        Some(&keys.viewer),
        None,
        &[("host", &h)],
    )
    .await;
    assert_eq!(st, 200);
    let got = req(
        "POST",
        &format!("{url}/mcp"),
        Some(&keys.operator),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})),
        &[("host", &h)],
    )
    .await;
    refused(got, 403, "host_not_allowed", "/mcp with auth on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_cors_is_same_origin_only() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    for (method, extra) in [
        (reqwest::Method::OPTIONS, true),
        (reqwest::Method::GET, false),
    ] {
        let mut rb = client()
            .request(method.clone(), format!("{url}/sessions"))
            .header("origin", EVIL);
        if extra {
            rb = rb
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type");
        }
        let r = rb.send().await.unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{method}: {:?}",
            r.headers()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_star_with_auth_off_on_public_listener_refused_at_start() {
    let dir = tempdir();
    let data = dir.path().to_str().unwrap();
    for cmd in ["coordinator", "up"] {
        // Bounded, and killed on drop: a process that accepted the setting would serve.
        let child = tokio::process::Command::new(BIN)
            .args([cmd, "--listen", "0.0.0.0:0", "--insecure-listen"])
            .args(["--data-dir", data])
            .env_remove("AOF_API_KEY")
            .env("CORS_ORIGINS", "*")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let out = tokio::time::timeout(PATIENCE, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("aof {cmd} started with CORS_ORIGINS=* and auth off"))
            .unwrap();
        let (code, err) = (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(code, 2, "{cmd}: {err}");
        assert!(
            err.contains("coordinator.cors_origins (CORS_ORIGINS)") && err.contains("AUTH_ENABLED"),
            "{cmd}: {err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_query_key_is_400() {
    let dir = tempdir();
    let coord = Coordinator::start(dir.path(), fast_env()).await;
    let url = coord.url.clone();
    let (_, sid) = start_run(&url, "p").await;
    let before = snapshot(&url, None).await;
    for path in [
        "/sessions?limit=1&limit=2".to_string(),
        format!("/sse/sessions?session_id={sid}&session_id=other"),
        // Decoded before comparing: `session%5Fid` is `session_id`.
        format!("/sse/sessions?session_id={sid}&session%5Fid=other"),
        "/health?x=1&x=2".into(),
        format!("/sessions/{sid}/events?after=0&after=1"),
    ] {
        let got = req("GET", &format!("{url}{path}"), None, None, &[]).await;
        refused(got, 400, "repeated_query_key", &path);
    }
    let got = req(
        "DELETE",
        &format!("{url}/sessions/{sid}?a=1&a=1"),
        None,
        None,
        &[],
    )
    .await;
    refused(got, 400, "repeated_query_key", "DELETE");
    assert_eq!(snapshot(&url, None).await, before);
}

/// The frames of an SSE response until `until` matches one (or patience runs out).
async fn frames_until(
    resp: reqwest::Response,
    until: impl Fn(&aof_wire::sse::parse::Frame) -> bool,
) -> Vec<aof_wire::sse::parse::Frame> {
    let mut stream = resp.bytes_stream();
    let mut parser = aof_wire::sse::parse::Parser::default();
    let mut seen = Vec::new();
    loop {
        let chunk = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("SSE frame within patience")
            .expect("stream open")
            .unwrap();
        for f in parser.feed(&chunk) {
            let done = until(&f);
            seen.push(f);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_token_feed_is_forced_to_own_session() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (_, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let own = run["session_id"].as_str().unwrap().to_string();
    let token = run["session_token"].as_str().unwrap().to_string();
    let (st, victim) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&keys.operator),
        Some(
            json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "secret"}}),
        ),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{victim}");
    let victim = victim["session_id"].as_str().unwrap().to_string();
    let before = snapshot(&url, Some(&keys.viewer)).await;

    // The attack: own id for the policy, the victim's for the handler.
    let feed = format!("{url}/sse/sessions");
    for q in [
        format!("session_id={own}&session_id={victim}"),
        format!("session_id={victim}&session_id={own}"),
    ] {
        let got = req("GET", &format!("{feed}?{q}"), Some(&token), None, &[]).await;
        refused(got, 400, "repeated_query_key", &q);
    }
    let got = req(
        "GET",
        &format!("{feed}?session_id={victim}"),
        Some(&token),
        None,
        &[],
    )
    .await;
    refused(got, 403, "forbidden", "the victim's feed");
    assert_eq!(snapshot(&url, Some(&keys.viewer)).await, before);

    // Its own feed: the init frame and live items hold its session only. The victim's
    // update is committed first, so a leak would arrive before the own one.
    let resp = client()
        .get(format!("{feed}?session_id={own}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patch = |sid: String, v: &'static str| {
        let (url, key) = (url.clone(), keys.operator.clone());
        async move {
            let (st, b) = req(
                "PATCH",
                &format!("{url}/sessions/{sid}/metadata"),
                Some(&key),
                Some(json!({"executor_session_id": v})),
                &[],
            )
            .await;
            assert_eq!(st, 200, "{b}");
        }
    };
    patch(victim.clone(), "victim-mark").await;
    patch(own.clone(), "own-mark").await;
    let frames = frames_until(resp, |f| f.data.contains("own-mark")).await;
    assert_eq!(frames[0].event, "init");
    let init: Value = serde_json::from_str(&frames[0].data).unwrap();
    let ids: Vec<&str> = init["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [own.as_str()]);
    for f in &frames {
        assert!(
            !f.data.contains(&victim) && !f.data.contains("victim-mark"),
            "the victim's session leaked into the token's feed: {} {}",
            f.event,
            f.data
        );
    }
}
