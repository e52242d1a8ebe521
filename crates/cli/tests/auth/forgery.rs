//! Issue #20, attack 2: a runner key forging writes. With auth on, a runner-role write
//! (events, batch, bind, run reports, a session's final status) needs the current lease
//! of a run of THAT session (or the path's run) held by one of the key's runners. Empty,
//! non-UTF-8 or repeated lease headers count as absent. Each test performs the attack,
//! checks the refusal (status and code) and that the store did not change.

use reqwest::header::{HeaderName, HeaderValue};

use super::*;

/// One request with raw header values (empty, non-UTF-8, repeated: what `req` cannot send).
async fn raw(
    method: &str,
    url: &str,
    token: &str,
    body: Value,
    headers: &[(&str, Vec<u8>)],
) -> (u16, Value) {
    let mut h = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    let resp = client()
        .request(method.parse().unwrap(), url)
        .bearer_auth(token)
        .headers(h)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn event(sid: &str, text: &str) -> Value {
    json!({"event_type": "message", "session_id": sid, "timestamp": "2026-01-01T00:00:00Z",
           "role": "assistant", "content": [{"type": "text", "text": text}]})
}

fn bind_body() -> Value {
    json!({"executor_session_id": "forged", "hostname": "evil", "executor_profile": "evil"})
}

/// The three session writes a lease guards: (path suffix, body).
fn session_writes(sid: &str) -> [(String, Value); 3] {
    [
        (format!("/sessions/{sid}/events"), event(sid, "forged")),
        (
            format!("/sessions/{sid}/events/batch"),
            json!({"events": [event(sid, "forged 1"), event(sid, "forged 2")]}),
        ),
        (format!("/sessions/{sid}/bind"), bind_body()),
    ]
}

/// What an attack must not change: every run, and these sessions with their events.
async fn snapshot(url: &str, viewer: &str, sids: &[&str]) -> Value {
    let mut out = json!({});
    let (_, runs) = req("GET", &format!("{url}/runs"), Some(viewer), None, &[]).await;
    out["runs"] = runs;
    for sid in sids {
        let (st, s) = req(
            "GET",
            &format!("{url}/sessions/{sid}"),
            Some(viewer),
            None,
            &[],
        )
        .await;
        assert_eq!(st, 200, "{s}");
        let (_, ev) = req(
            "GET",
            &format!("{url}/sessions/{sid}/events"),
            Some(viewer),
            None,
            &[],
        )
        .await;
        out[*sid] = json!({"session": s, "events": ev});
    }
    out
}

/// A second runner key, made by the admin.
async fn runner_key(url: &str, admin: &str) -> String {
    let (st, b) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(admin),
        Some(json!({"role": "runner"})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{b}");
    b["key"].as_str().unwrap().to_string()
}

/// Extra request headers, as `req` takes them.
type Headers<'a> = Vec<(&'a str, &'a str)>;

/// A run as polled: (session id, run id, lease token).
fn ids(run: &Value) -> (String, String, String) {
    let s = |k: &str| run[k].as_str().unwrap().to_string();
    (s("session_id"), s("run_id"), s("lease_token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_event_with_empty_lease_headers_is_refused() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    // The key holds a real lease; it just does not show it.
    let (_, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let (sid, rid, lease) = ids(&run);
    let before = snapshot(&url, &keys.viewer, &[&sid]).await;

    let (l, r) = ("x-aof-lease-token", "x-aof-run-id");
    let (lease_b, rid_b) = (lease.as_bytes().to_vec(), rid.as_bytes().to_vec());
    let forged = [
        vec![(l, vec![]), (r, vec![])],
        vec![(l, vec![]), (r, rid_b.clone())],
        vec![(l, lease_b.clone()), (r, vec![])],
        vec![(l, b" ".to_vec()), (r, rid_b.clone())],
    ];
    for headers in &forged {
        for (path, body) in session_writes(&sid) {
            let (st, b) = raw("POST", &format!("{url}{path}"), &keys.runner, body, headers).await;
            assert_eq!(
                (st, b["code"].as_str()),
                (403, Some("forbidden")),
                "{path} {headers:?}: {b}"
            );
        }
    }
    assert_eq!(snapshot(&url, &keys.viewer, &[&sid]).await, before);

    // The same key with its lease shown is let in: the refusals above were the headers.
    let (st, b) = req(
        "POST",
        &format!("{url}/sessions/{sid}/events"),
        Some(&keys.runner),
        Some(event(&sid, "real")),
        &[("x-aof-lease-token", &lease), ("x-aof-run-id", &rid)],
    )
    .await;
    assert_eq!(st, 201, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_event_with_non_utf8_lease_header_is_refused() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let (runner_id, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let (sid, rid, lease) = ids(&run);
    let before = snapshot(&url, &keys.viewer, &[&sid]).await;

    let (l, r) = ("x-aof-lease-token", "x-aof-run-id");
    let (lease_b, rid_b) = (lease.as_bytes().to_vec(), rid.as_bytes().to_vec());
    let latin1 = b"\xff\xfe\xe9".to_vec();
    // (headers, whether the token itself is unusable)
    let forged = [
        (vec![(l, latin1.clone()), (r, rid_b.clone())], true),
        (vec![(l, lease_b.clone()), (r, latin1.clone())], false),
        // Repeated: which one would count? Neither.
        (
            vec![
                (l, lease_b.clone()),
                (l, lease_b.clone()),
                (r, rid_b.clone()),
            ],
            true,
        ),
    ];
    for (headers, token_forged) in &forged {
        for (path, body) in session_writes(&sid) {
            let (st, b) = raw("POST", &format!("{url}{path}"), &keys.runner, body, headers).await;
            assert_eq!(
                (st, b["code"].as_str()),
                (403, Some("forbidden")),
                "{path}: {b}"
            );
        }
        // A report names its run in the path, so only the token matters there; it has
        // no lease grant in the table: the handler refuses it.
        if !token_forged {
            continue;
        }
        let (st, b) = raw(
            "POST",
            &format!("{url}/runner/runs/{rid}/failed"),
            &keys.runner,
            json!({"runner_id": runner_id, "error": "forged"}),
            headers,
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (403, Some("forbidden")), "{b}");
    }
    assert_eq!(snapshot(&url, &keys.viewer, &[&sid]).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_key_cannot_post_events_to_session_it_does_not_lease() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let key_b = runner_key(&url, &keys.admin).await;
    // Runner A (key A) holds a run of session X; runner B (key B) one of session Y.
    let (_, run_a) = claim_one(&url, &keys.runner, &keys.operator, "ha").await;
    let (_, run_b) = claim_one(&url, &key_b, &keys.operator, "hb").await;
    let (x, run_x, lease_x) = ids(&run_a);
    let (y, run_y, lease_y) = ids(&run_b);
    let before = snapshot(&url, &keys.viewer, &[&x, &y]).await;

    // (who, session written to, run id header, lease header, expected status and code)
    let attacks: Vec<(&str, &str, &str, &str, u16, &str)> = vec![
        // B's own, valid lease, used on a session it does not serve.
        (&key_b, &x, &run_y, &lease_y, 409, "lease_conflict"),
        // B names X's run with its own token, or a made-up one.
        (&key_b, &x, &run_x, &lease_y, 409, "lease_conflict"),
        (&key_b, &x, &run_x, "lease_0000", 409, "lease_conflict"),
        // B with A's whole lease (leaked): still not one of B's runners.
        (&key_b, &x, &run_x, &lease_x, 403, "runner_not_bound"),
        // A on session Y with its own lease of X, and with B's lease.
        (&keys.runner, &y, &run_x, &lease_x, 409, "lease_conflict"),
        (&keys.runner, &y, &run_y, &lease_y, 403, "runner_not_bound"),
        // A on its own session with a wrong token, or a run that does not exist.
        (
            &keys.runner,
            &x,
            &run_x,
            "lease_0000",
            409,
            "lease_conflict",
        ),
        (
            &keys.runner,
            &x,
            "run_nope",
            &lease_x,
            409,
            "lease_conflict",
        ),
    ];
    for (who, sid, run_id, lease, status, code) in attacks {
        for (path, body) in session_writes(sid) {
            let (st, b) = req(
                "POST",
                &format!("{url}{path}"),
                Some(who),
                Some(body),
                &[("x-aof-lease-token", lease), ("x-aof-run-id", run_id)],
            )
            .await;
            assert_eq!(
                (st, b["code"].as_str()),
                (status, Some(code)),
                "{path} run {run_id}: {b}"
            );
        }
    }
    assert_eq!(snapshot(&url, &keys.viewer, &[&x, &y]).await, before);

    // Each key writes to its own session with its own lease.
    for (who, sid, run_id, lease) in [
        (&keys.runner, &x, &run_x, &lease_x),
        (&key_b, &y, &run_y, &lease_y),
    ] {
        for (path, body) in session_writes(sid) {
            let (st, b) = req(
                "POST",
                &format!("{url}{path}"),
                Some(who),
                Some(body),
                &[("x-aof-lease-token", lease), ("x-aof-run-id", run_id)],
            )
            .await;
            assert!(st == 200 || st == 201, "{path}: {st} {b}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_reports_need_the_current_lease_of_the_path_run() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();
    let key_b = runner_key(&url, &keys.admin).await;
    let (runner_a, run_a) = claim_one(&url, &keys.runner, &keys.operator, "ha").await;
    let (runner_b, run_b) = claim_one(&url, &key_b, &keys.operator, "hb").await;
    let (x, run_x, lease_x) = ids(&run_a);
    let (y, run_y, lease_y) = ids(&run_b);
    let before = snapshot(&url, &keys.viewer, &[&x, &y]).await;

    let reports = [
        ("started", json!({"runner_id": runner_a})),
        ("completed", json!({"runner_id": runner_a})),
        ("failed", json!({"runner_id": runner_a, "error": "forged"})),
        (
            "stopped",
            json!({"runner_id": runner_a, "signal": "SIGTERM"}),
        ),
        ("release", json!({"runner_id": runner_a})),
    ];
    // (headers, expected status and code), each sent by A as its own runner on its own run.
    let x_id = run_x.as_str();
    let forged: Vec<(Headers, u16, &str)> = vec![
        (vec![], 403, "forbidden"),
        (vec![("x-aof-run-id", x_id)], 403, "forbidden"),
        (
            vec![("x-aof-lease-token", "lease_0000")],
            409,
            "lease_conflict",
        ),
        (vec![("x-aof-lease-token", &lease_y)], 409, "lease_conflict"),
        // The right token, but the run id header names another run than the path.
        (
            vec![("x-aof-lease-token", &lease_x), ("x-aof-run-id", &run_y)],
            409,
            "lease_conflict",
        ),
    ];
    for (headers, status, code) in &forged {
        for (what, body) in &reports {
            let (st, b) = req(
                "POST",
                &format!("{url}/runner/runs/{run_x}/{what}"),
                Some(&keys.runner),
                Some(body.clone()),
                headers,
            )
            .await;
            assert_eq!(
                (st, b["code"].as_str()),
                (*status, Some(*code)),
                "{what} {headers:?}: {b}"
            );
        }
    }
    // B, as its own runner, with A's leaked lease: the run is not B's runner's.
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/runs/{run_x}/failed"),
        Some(&key_b),
        Some(json!({"runner_id": runner_b, "error": "forged"})),
        &[("x-aof-lease-token", &lease_x), ("x-aof-run-id", &run_x)],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("runner_not_bound")),
        "{b}"
    );
    // A session's final status needs a lease of that session too.
    for (headers, status, code) in [
        (vec![], 403, "forbidden"),
        (
            vec![
                ("x-aof-lease-token", lease_y.as_str()),
                ("x-aof-run-id", run_y.as_str()),
            ],
            403,
            "runner_not_bound",
        ),
        (
            vec![
                ("x-aof-lease-token", lease_x.as_str()),
                ("x-aof-run-id", run_x.as_str()),
            ],
            409,
            "lease_conflict",
        ),
    ] {
        let (st, b) = req(
            "POST",
            &format!("{url}/runner/sessions/{y}/status"),
            Some(&keys.runner),
            Some(json!({"runner_id": runner_a, "status": "failed"})),
            &headers,
        )
        .await;
        assert_eq!((st, b["code"].as_str()), (status, Some(code)), "{b}");
    }
    assert_eq!(snapshot(&url, &keys.viewer, &[&x, &y]).await, before);

    // With its lease, A's report is taken.
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/runs/{run_x}/started"),
        Some(&keys.runner),
        Some(json!({"runner_id": runner_a})),
        &[("x-aof-lease-token", &lease_x), ("x-aof-run-id", &run_x)],
    )
    .await;
    assert_eq!(st, 200, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_failed_report_without_token_is_refused() {
    let dir = tempdir();
    // A short lease, and no retry of a run whose lease ran out: it fails.
    let (coord, keys) = coordinator(
        dir.path(),
        &[("AOF_LEASE_TTL", "2"), ("RUN_RECOVERY_MODE", "none")],
    )
    .await;
    let url = coord.url.clone();
    let (runner_id, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let (sid, rid, lease) = ids(&run);
    // No heartbeat: the coordinator fails the run when its lease runs out.
    wait_for("the lease to expire", || async {
        let (_, r) = req(
            "GET",
            &format!("{url}/runs/{rid}"),
            Some(&keys.viewer),
            None,
            &[],
        )
        .await;
        (r["status"] == "failed").then_some(())
    })
    .await;
    let before = snapshot(&url, &keys.viewer, &[&sid]).await;

    let failed = json!({"runner_id": runner_id, "error": "late"});
    for (headers, status, code) in [
        // Before issue #20 this one answered 200 (taken as a retry of an applied report).
        (vec![], 403, "forbidden"),
        (vec![("x-aof-run-id", rid.as_str())], 403, "forbidden"),
        (
            vec![
                ("x-aof-lease-token", lease.as_str()),
                ("x-aof-run-id", rid.as_str()),
            ],
            409,
            "lease_conflict",
        ),
    ] {
        for what in ["failed", "completed"] {
            let (st, b) = req(
                "POST",
                &format!("{url}/runner/runs/{rid}/{what}"),
                Some(&keys.runner),
                Some(failed.clone()),
                &headers,
            )
            .await;
            assert_eq!(
                (st, b["code"].as_str()),
                (status, Some(code)),
                "{what} {headers:?}: {b}"
            );
        }
    }
    assert_eq!(snapshot(&url, &keys.viewer, &[&sid]).await, before);
}
