//! The policy table crossed with every credential kind and every forged header a
//! client can send (issue #20): each request's decision equals what the table and the
//! boundary rules say, and no refused request changes the store. Exhaustive over the
//! cross product (routes × credentials × forgeries), so it is deterministic.

use serde_json::{json, Value};

use super::routes::{letter, Who, EXPECTED};
use super::*;

/// What a request carries besides its credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forgery {
    /// The run's real lease headers, nothing forged.
    None,
    /// `Origin` of another site.
    ForeignOrigin,
    /// No `Origin`, but the browser marks the request cross-site.
    CrossSite,
    /// A query key given twice.
    RepeatedQuery,
    /// A body that is not JSON (a form or text/plain post needs no preflight).
    TextPlain,
    /// Empty lease headers (must count as absent).
    EmptyLease,
    /// Another run's id with this run's lease token.
    WrongRun,
}

const FORGERIES: [Forgery; 7] = [
    Forgery::None,
    Forgery::ForeignOrigin,
    Forgery::CrossSite,
    Forgery::RepeatedQuery,
    Forgery::TextPlain,
    Forgery::EmptyLease,
    Forgery::WrongRun,
];

/// Credentials: the table's roles plus two forged ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cred {
    Role(Who),
    ForgedKey,
    ForgedSessionToken,
}

/// Routes that write for a run and so need its lease from a runner key.
fn needs_lease(route: &str) -> bool {
    route.starts_with("POST /runner/runs/{run_id}/")
        || matches!(
            route,
            "POST /sessions/{id}/bind"
                | "POST /sessions/{id}/events"
                | "POST /sessions/{id}/events/batch"
                | "POST /runner/sessions/{id}/status"
                | "POST /sessions/{id}/approvals"
                | "GET /sessions/{id}/approvals/{approval_id}"
        )
}

/// Allowed requests that would end the fixture's run or session: not sent (the route
/// test covers them); their refusals are.
fn destructive(route: &str) -> bool {
    matches!(
        route,
        "DELETE /sessions/{id}"
            | "POST /sessions/{id}/stop"
            | "POST /runs/{run_id}/stop"
            | "DELETE /runners/{runner_id}"
            | "POST /runner/runs/{run_id}/completed"
            | "POST /runner/runs/{run_id}/failed"
            | "POST /runner/runs/{run_id}/stopped"
            | "POST /runner/runs/{run_id}/release"
    )
}

/// The decision: `Ok(())` allowed (anything but 401/403/415/400-repeated), or the
/// refusal's status and the codes it may carry.
fn expected(
    route: &str,
    allowed: &str,
    cred: Cred,
    f: Forgery,
) -> Result<(), (u16, &'static [&'static str])> {
    let write = !route.starts_with("GET ");
    // Before the credential: where the request comes from, then the query.
    match f {
        Forgery::ForeignOrigin if write => return Err((403, &["origin_not_allowed"])),
        Forgery::CrossSite if write => return Err((403, &["origin_not_allowed"])),
        Forgery::RepeatedQuery => return Err((400, &["repeated_query_key"])),
        _ => {}
    }
    let public = allowed == "*";
    let role_ok = match cred {
        Cred::Role(who) => public || allowed.contains(letter(who)),
        Cred::ForgedKey | Cred::ForgedSessionToken => public,
    };
    if !role_ok {
        return match cred {
            Cred::Role(Who::Nobody) | Cred::ForgedKey | Cred::ForgedSessionToken => {
                Err((401, &["unauthenticated"]))
            }
            Cred::Role(_) => Err((403, &["forbidden"])),
        };
    }
    // A runner key without this run's lease: the grant or the store refuses.
    if cred == Cred::Role(Who::Runner)
        && needs_lease(route)
        && matches!(f, Forgery::EmptyLease | Forgery::WrongRun)
    {
        return Err((LEASE_REFUSAL, LEASE_CODES));
    }
    let has_body = matches!(route.split(' ').next(), Some("POST" | "PUT" | "PATCH"));
    if f == Forgery::TextPlain && has_body {
        return Err((415, &["unsupported_media_type"]));
    }
    Ok(())
}

/// A lease refusal is 403 (no lease: the grant or the fence; a run another key's runner
/// holds) or 409 (`lease_conflict`: not this session's run, or not its current lease).
/// It comes before the body is read, so the fuzz's empty bodies never decide it.
const LEASE_REFUSAL: u16 = 0;
const LEASE_CODES: &[&str] = &["lease_conflict", "forbidden", "runner_not_bound"];

/// Everything a refused request could have changed, read as admin.
async fn digest(url: &str, admin: &str, sessions: &[&str]) -> Value {
    let mut d = serde_json::Map::new();
    for path in [
        "/sessions",
        "/runs",
        "/agents",
        "/capabilities",
        "/mcp-servers",
        "/auth/keys",
        "/approvals",
    ] {
        let (st, b) = req("GET", &format!("{url}{path}"), Some(admin), None, &[]).await;
        assert_eq!(st, 200, "{path}: {b}");
        d.insert(path.into(), b);
    }
    // Runners: who and in what state (heartbeat times move by themselves).
    let (_, runners) = req("GET", &format!("{url}/runners"), Some(admin), None, &[]).await;
    let runners: Vec<Value> = runners["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["runner_id"], r["status"]]))
        .collect();
    d.insert("runners".into(), runners.into());
    for s in sessions {
        let (st, b) = req(
            "GET",
            &format!("{url}/sessions/{s}/events"),
            Some(admin),
            None,
            &[],
        )
        .await;
        assert_eq!(st, 200, "{s}: {b}");
        d.insert(format!("events {s}"), b);
    }
    Value::Object(d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_table_holds_for_every_route_credential_and_forgery() {
    let dir = tempdir();
    // Leases and runners outlive the test: nothing changes unless a request changes it.
    let (coord, keys) = coordinator(
        dir.path(),
        &[
            ("AOF_LEASE_TTL", "3600"),
            ("RUNNER_STALE_THRESHOLD", "3600"),
            ("RUNNER_REMOVE_THRESHOLD", "7200"),
            // Allowed long-polls come back soon.
            ("RUNNER_POLL_TIMEOUT", "1"),
        ],
    )
    .await;
    let url = coord.url.clone();
    let (runner_id, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let sid = run["session_id"].as_str().unwrap().to_string();
    let rid = run["run_id"].as_str().unwrap().to_string();
    let lease = run["lease_token"].as_str().unwrap().to_string();
    let token = run["session_token"].as_str().unwrap().to_string();
    // A second session (pending, nobody's lease): the victim of wrong-run writes.
    let (st, other) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&keys.operator),
        Some(json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "v"}})),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{other}");
    let other_run = other["run_id"].as_str().unwrap().to_string();
    let other_sid = other["session_id"].as_str().unwrap().to_string();
    let watched = [sid.as_str(), other_sid.as_str()];

    let creds = [
        Cred::Role(Who::Nobody),
        Cred::Role(Who::Viewer),
        Cred::Role(Who::Session),
        Cred::Role(Who::Runner),
        Cred::Role(Who::Operator),
        Cred::Role(Who::Admin),
        Cred::ForgedKey,
        Cred::ForgedSessionToken,
    ];
    let token_of = |c: Cred| -> Option<String> {
        match c {
            Cred::Role(Who::Nobody) => None,
            Cred::Role(Who::Viewer) => Some(keys.viewer.clone()),
            Cred::Role(Who::Operator) => Some(keys.operator.clone()),
            Cred::Role(Who::Runner) => Some(keys.runner.clone()),
            Cred::Role(Who::Admin) => Some(keys.admin.clone()),
            Cred::Role(Who::Session) => Some(token.clone()),
            Cred::ForgedKey => Some("aof_000000000000_0000000000000000000000000000".into()),
            Cred::ForgedSessionToken => {
                Some("aofs_000000000000_0000000000000000000000000000".into())
            }
        }
    };

    let mut last = digest(&url, &keys.admin, &watched).await;
    let (mut sent, mut refused) = (0, 0);
    for (route, allowed) in EXPECTED {
        let (method, template) = route.split_once(' ').unwrap();
        for cred in creds {
            for f in FORGERIES {
                let want = expected(route, allowed, cred, f);
                if want.is_ok() && (destructive(route) || *route == "POST /auth/logout") {
                    continue;
                }
                let mut path = if template == "/auth/keys/{id}" {
                    "/auth/keys/nokey".to_string()
                } else {
                    template
                        .replace("{id}", &sid)
                        .replace("{run_id}", &rid)
                        .replace("{runner_id}", &runner_id)
                        .replace("{name}", "no-such")
                        .replace("{server_id}", "no-such")
                };
                let mut query = vec![];
                if template == "/sse/sessions" {
                    query.push(format!("session_id={sid}"));
                }
                if template == "/runner/runs" {
                    // Not a long-poll that waits: the runner's slots are reported full.
                    query.push(format!("runner_id={runner_id}&accept_runs=false"));
                }
                if f == Forgery::RepeatedQuery {
                    query.push("zz=1&zz=2".into());
                }
                if !query.is_empty() {
                    path = format!("{path}?{}", query.join("&"));
                }
                let mut rb = client().request(method.parse().unwrap(), format!("{url}{path}"));
                if let Some(t) = token_of(cred) {
                    rb = rb.bearer_auth(t);
                }
                rb = match f {
                    Forgery::EmptyLease => rb
                        .header("x-aof-lease-token", "")
                        .header("x-aof-run-id", ""),
                    Forgery::WrongRun => rb
                        .header("x-aof-lease-token", &lease)
                        .header("x-aof-run-id", &other_run),
                    _ => rb
                        .header("x-aof-lease-token", &lease)
                        .header("x-aof-run-id", &rid),
                };
                match f {
                    Forgery::ForeignOrigin => rb = rb.header("origin", "https://evil.example"),
                    Forgery::CrossSite => rb = rb.header("sec-fetch-site", "cross-site"),
                    _ => {}
                }
                if matches!(method, "POST" | "PUT" | "PATCH") {
                    rb = if f == Forgery::TextPlain {
                        rb.header("content-type", "text/plain").body("{}")
                    } else {
                        rb.json(&json!({}))
                    };
                }
                let resp = rb.send().await.unwrap_or_else(|e| panic!("{route}: {e}"));
                let st = resp.status().as_u16();
                // An allowed feed never ends: its status is the answer, its body unread.
                let json = resp
                    .headers()
                    .get("content-type")
                    .is_some_and(|c| c.to_str().unwrap_or("").starts_with("application/json"));
                let body: Value = if json {
                    resp.json().await.unwrap_or(Value::Null)
                } else {
                    Value::Null
                };
                sent += 1;
                let what = format!("{cred:?} {f:?} {method} {path} -> {st} {body}");
                match want {
                    Ok(()) => {
                        assert!(
                            !matches!(st, 401 | 403 | 415) && body["code"] != "repeated_query_key",
                            "should be allowed: {what}"
                        );
                        // An allowed request may change things (e.g. a heartbeat).
                        last = digest(&url, &keys.admin, &watched).await;
                    }
                    Err((status, codes)) => {
                        refused += 1;
                        let code = body["code"].as_str().unwrap_or("");
                        let status_ok = if status == LEASE_REFUSAL {
                            matches!(st, 403 | 409)
                        } else {
                            st == status
                        };
                        assert!(
                            status_ok && codes.contains(&code),
                            "want {status} {codes:?}: {what}"
                        );
                        let now = digest(&url, &keys.admin, &watched).await;
                        assert_eq!(now, last, "a refused request changed the store: {what}");
                    }
                }
            }
        }
    }
    assert!(
        sent > 2000 && refused > 1000,
        "sent {sent}, refused {refused}"
    );
}
