//! Input limits through real HTTP on a real `aof coordinator`: every refusal has the
//! right 4xx and a stable `code`, and leaves the store exactly as it was.

use serde_json::{json, Value};

use crate::harness::*;

/// Everything the API can show about the store; a refused request must not change it.
async fn snapshot(url: &str) -> Value {
    let (_, sessions) = call("GET", &format!("{url}/sessions"), None).await;
    let (_, runs) = call("GET", &format!("{url}/runs"), None).await;
    let (_, runners) = call("GET", &format!("{url}/runners"), None).await;
    let mut events = serde_json::Map::new();
    for s in sessions["sessions"].as_array().unwrap() {
        let sid = s["session_id"].as_str().unwrap();
        events.insert(
            sid.into(),
            Value::Array(crate::harness::events(url, sid).await),
        );
    }
    // Heartbeat times move on their own; identity and registration data must not.
    let runners: Vec<Value> = runners["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["runner_id"],
                r["hostname"],
                r["project_dir"],
                r["executor_profile"],
                r["tags"]
            ])
        })
        .collect();
    let metrics = client()
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let stored: Vec<String> = metrics
        .lines()
        .filter(|l| l.starts_with("aof_events_stored") || l.starts_with("aof_runs{"))
        .map(str::to_string)
        .collect();
    json!({"sessions": sessions, "runs": runs, "runners": runners, "events": events, "metrics": stored})
}

/// Sends `body` (raw JSON text), expects `status` + `code`, and an unchanged store.
async fn refused(url: &str, method: &str, path: &str, body: String, status: u16, code: &str) {
    let before = snapshot(url).await;
    let resp = client()
        .request(method.parse().unwrap(), format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let got = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let b: Value = resp.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (got, b["code"].as_str()),
        (status, Some(code)),
        "{method} {path}: {b}"
    );
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(b["detail"].is_string(), "{b}");
    assert_eq!(
        snapshot(url).await,
        before,
        "{method} {path} changed the store"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_with_stable_codes_and_write_nothing() {
    let dir = tempdir();
    let root = dir.path().join("projects");
    let mut env = fast_env();
    env.push((
        "AOF_PROJECT_DIR_ROOTS".into(),
        format!("/srv/aof-projects, {}", root.display()),
    ));
    env.push(("AOF_LEASE_TTL".into(), "120".into()));
    let c = Coordinator::start(dir.path(), env).await;
    let u = c.url.as_str();
    let inside = format!("{}/app", root.display());

    // Accepted inside the roots: a runner, a run, an event.
    let (st, b) = call(
        "POST",
        &format!("{u}/runner/register"),
        Some(json!({"hostname": "h1", "project_dir": "/srv/aof-projects/p", "executor_profile": "test"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = call(
        "POST",
        &format!("{u}/runs"),
        Some(
            json!({"type": "start_session", "session_id": "s1", "project_dir": inside,
                    "parameters": {"prompt": "hi"}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let ev = |extra: Value| {
        let mut e = json!({"event_type": "note", "session_id": "s1", "timestamp": "t"});
        e.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        e.to_string()
    };
    let (st, b) = call_raw("POST", &format!("{u}/sessions/s1/events"), &ev(json!({}))).await;
    assert_eq!(st, 201, "{b}");
    let run = |extra: Value| {
        let mut r = json!({"type": "start_session", "parameters": {"prompt": "x"}});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r.to_string()
    };
    let reg = |extra: Value| {
        let mut r = json!({"hostname": "h2", "project_dir": "/srv/aof-projects/q", "executor_profile": "test"});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r.to_string()
    };
    let bind = |extra: Value| {
        let mut r =
            json!({"executor_session_id": "e1", "hostname": "h1", "executor_profile": "test"});
        r.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        r.to_string()
    };
    let mib = |n: f64| "x".repeat((n * 1048576.0) as usize);
    let mut refusals = 0;
    macro_rules! refuse {
        ($m:expr, $p:expr, $body:expr, $st:expr, $code:expr) => {
            refused(u, $m, $p, $body, $st, $code).await;
            refusals += 1;
        };
    }

    // Sizes: 413 with a `*_too_large` code.
    refuse!(
        "POST",
        "/runs",
        run(json!({"parameters": {"prompt": mib(4.1)}})),
        413,
        "body_too_large"
    );
    refuse!(
        "POST",
        "/sessions/s1/events",
        ev(json!({"reason": mib(4.5)})),
        413,
        "body_too_large"
    );
    refuse!(
        "POST",
        "/sessions/s1/events",
        ev(json!({"result_text": mib(1.5)})),
        413,
        "event_too_large"
    );
    refuse!(
        "POST",
        "/sessions/s1/events",
        ev(json!({"tool_input": {"a": mib(0.6), "b": mib(0.6)}})),
        413,
        "event_too_large"
    );
    refuse!(
        "POST",
        "/runs",
        run(json!({"parameters": {"prompt": mib(1.2)}})),
        413,
        "parameters_too_large"
    );
    refuse!(
        "POST",
        "/runs",
        run(json!({"scope": {"k": mib(0.07)}})),
        413,
        "metadata_too_large"
    );
    refuse!(
        "POST",
        "/runs",
        run(json!({"additional_demands": {"tags": [mib(0.07)]}})),
        413,
        "metadata_too_large"
    );
    refuse!(
        "PATCH",
        "/sessions/s1/metadata",
        json!({"executor_session_id": mib(0.07)}).to_string(),
        413,
        "metadata_too_large"
    );
    refuse!(
        "POST",
        "/runner/register",
        reg(json!({"tags": [mib(0.07)]})),
        413,
        "metadata_too_large"
    );
    refuse!(
        "POST",
        "/runner/register",
        reg(json!({"executor": {"k": mib(0.07)}})),
        413,
        "metadata_too_large"
    );

    // Names: charset and length, 400.
    for bad in ["../etc", "a b", "x/y", ".hidden", &"a".repeat(61)] {
        refuse!(
            "POST",
            "/runs",
            run(json!({"agent_name": bad})),
            400,
            "invalid_agent_name"
        );
        refuse!(
            "PATCH",
            "/sessions/s1/metadata",
            json!({"agent_name": bad}).to_string(),
            400,
            "invalid_agent_name"
        );
    }
    for bad in ["a/b", "..", "a b", "ü", &"s".repeat(129)] {
        refuse!(
            "POST",
            "/runs",
            run(json!({"session_id": bad})),
            400,
            "invalid_session_id"
        );
    }
    for bad in ["", "bad host", "-x", "a/b", "h\n1", &"h".repeat(254)] {
        refuse!(
            "POST",
            "/runner/register",
            reg(json!({"hostname": bad})),
            400,
            "invalid_runner"
        );
        refuse!(
            "POST",
            "/runner/register",
            reg(json!({"executor_profile": bad})),
            400,
            "invalid_runner"
        );
        refuse!(
            "POST",
            "/sessions/s1/bind",
            bind(json!({"hostname": bad})),
            400,
            "invalid_runner"
        );
        refuse!(
            "PATCH",
            "/sessions/s1/metadata",
            json!({"hostname": bad}).to_string(),
            400,
            "invalid_runner"
        );
    }
    refuse!(
        "POST",
        "/runner/register",
        reg(json!({"tags": ["a,b"]})),
        400,
        "invalid_runner"
    );
    let many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    refuse!(
        "POST",
        "/runner/register",
        reg(json!({"tags": many})),
        400,
        "invalid_runner"
    );
    refuse!(
        "POST",
        "/sessions/s1/bind",
        bind(json!({"executor_session_id": "a\u{0}b"})),
        400,
        "invalid_metadata"
    );

    // project_dir: malformed → 400; outside the roots → 403, on every route that takes it.
    for bad in [
        "/etc",
        "/srv/aof-projects/../etc",
        "/srv/aof-projectsX",
        "relative/dir",
        "/",
    ] {
        refuse!(
            "POST",
            "/runs",
            run(json!({"project_dir": bad})),
            403,
            "project_dir_not_allowed"
        );
        refuse!(
            "POST",
            "/runs",
            run(json!({"type": "resume_session", "session_id": "s1", "project_dir": bad})),
            403,
            "project_dir_not_allowed"
        );
        refuse!(
            "POST",
            "/runner/register",
            reg(json!({"project_dir": bad})),
            403,
            "project_dir_not_allowed"
        );
        refuse!(
            "POST",
            "/sessions/s1/bind",
            bind(json!({"project_dir": bad})),
            403,
            "project_dir_not_allowed"
        );
        refuse!(
            "PATCH",
            "/sessions/s1/metadata",
            json!({"project_dir": bad}).to_string(),
            403,
            "project_dir_not_allowed"
        );
    }
    for bad in [
        String::new(),
        "/srv/aof-projects/a\nb".into(),
        format!("/srv/aof-projects/{}", "d".repeat(4096)),
    ] {
        refuse!(
            "POST",
            "/runs",
            run(json!({"project_dir": bad})),
            400,
            "invalid_project_dir"
        );
        refuse!(
            "POST",
            "/runner/register",
            reg(json!({"project_dir": bad})),
            400,
            "invalid_project_dir"
        );
    }

    // A chunked body (no Content-Length) is cut off at the same limit.
    let before = snapshot(u).await;
    let head = r#"{"type": "start_session", "parameters": {"prompt": ""#.to_string();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = std::iter::once(Ok(head.into_bytes()))
        .chain((0..80).map(|_| Ok(vec![b'x'; 64 << 10])))
        .chain(std::iter::once(Ok(br#""}}"#.to_vec())))
        .collect();
    let resp = client()
        .post(format!("{u}/runs"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await;
    // The server answers 413 as soon as the limit is passed and closes the connection; a
    // client still writing the rest may see that close (broken pipe / reset) before it
    // reads the answer. Either way nothing may be stored.
    match resp {
        Ok(resp) => {
            assert_eq!(resp.status().as_u16(), 413);
            let b: Value = resp.json().await.unwrap();
            assert_eq!(b["code"], "body_too_large", "{b}");
        }
        Err(e) => {
            let chain = format!("{e:?}");
            assert!(
                e.is_request()
                    && (chain.contains("BrokenPipe") || chain.contains("ConnectionReset")),
                "unexpected error sending an oversized chunked body: {chain}"
            );
        }
    }
    assert_eq!(
        snapshot(u).await,
        before,
        "a chunked oversized body changed the store"
    );
    refusals += 1;

    // Just under the limits is accepted (the limits are not off by a mile).
    let (st, b) = call_raw(
        "POST",
        &format!("{u}/sessions/s1/events"),
        &ev(json!({"result_text": mib(0.99)})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call_raw(
        "POST",
        &format!("{u}/runs"),
        &run(json!({"project_dir": format!("{inside}/deeper"), "agent_name": "a".repeat(60)})),
    )
    .await;
    assert_eq!(st, 201, "{b}");
    println!("LIMITS refusals={refusals} store_changed=0");
}
