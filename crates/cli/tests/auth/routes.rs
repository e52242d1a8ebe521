//! Every route of the live router × every role: 401 without a credential, 403 with the
//! wrong one; session tokens act only as their session.

use serde_json::json;

use super::*;

// ---------------------------------------------------------------------------------------
// (1) Every route × every role, from the live route table.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Who {
    Nobody,
    Viewer,
    Session,
    Runner,
    Operator,
    Admin,
}

/// Who may call each route: `*` = no credential needed, else letters
/// V(iewer) O(perator) R(unner) A(dmin) S(ession token, on its own session).
/// Written out here, apart from the coordinator's table, so the two check each other.
pub(super) const EXPECTED: &[(&str, &str)] = &[
    ("GET /health", "*"),
    ("GET /ready", "*"),
    ("GET /metrics", "*"),
    ("GET /stats", "VOA"),
    ("GET /openapi.json", "VOA"),
    ("POST /runs", "OAS"),
    ("GET /runs", "VOA"),
    ("GET /runs/{run_id}", "VOA"),
    ("POST /runs/{run_id}/stop", "OA"),
    ("GET /sessions", "VOA"),
    ("GET /sessions/{id}", "VOAS"),
    ("DELETE /sessions/{id}", "OA"),
    ("GET /sessions/{id}/status", "VOAS"),
    ("GET /sessions/{id}/result", "VOAS"),
    ("GET /sessions/{id}/affinity", "VOA"),
    ("POST /sessions/{id}/bind", "RA"),
    ("GET /sessions/{id}/events", "VOAS"),
    ("POST /sessions/{id}/events", "RAS"),
    ("POST /sessions/{id}/events/batch", "RAS"),
    ("POST /sessions/{id}/stop", "OA"),
    ("PATCH /sessions/{id}/metadata", "OA"),
    ("POST /retention/purge", "A"),
    ("GET /sse/sessions", "VOAS"),
    ("POST /runner/register", "RA"),
    ("GET /runner/runs", "RA"),
    ("POST /runner/runs/{run_id}/started", "RA"),
    ("POST /runner/runs/{run_id}/completed", "RA"),
    ("POST /runner/runs/{run_id}/failed", "RA"),
    ("POST /runner/runs/{run_id}/stopped", "RA"),
    ("POST /runner/runs/{run_id}/release", "RA"),
    ("POST /runner/sessions/{id}/status", "RA"),
    ("POST /runner/heartbeat", "RA"),
    ("GET /runners", "VOA"),
    ("DELETE /runners/{runner_id}", "ROA"),
    ("GET /agents", "VOA"),
    ("POST /agents", "OA"),
    ("GET /agents/{name}", "VOA"),
    ("PATCH /agents/{name}", "OA"),
    ("DELETE /agents/{name}", "OA"),
    ("PATCH /agents/{name}/status", "OA"),
    ("GET /capabilities", "VOA"),
    ("POST /capabilities", "OA"),
    ("GET /capabilities/{name}", "VOA"),
    ("PATCH /capabilities/{name}", "OA"),
    ("DELETE /capabilities/{name}", "OA"),
    ("GET /mcp-servers", "VOA"),
    ("POST /mcp-servers", "OA"),
    ("GET /mcp-servers/{server_id}", "VOA"),
    ("PUT /mcp-servers/{server_id}", "OA"),
    ("DELETE /mcp-servers/{server_id}", "OA"),
    ("POST /auth/keys", "A"),
    ("GET /auth/keys", "A"),
    ("DELETE /auth/keys/{id}", "A"),
    ("POST /auth/login", "*"),
    ("POST /auth/logout", "*"),
    ("GET /auth/me", "VOARS"),
    ("GET /audit", "A"),
    ("POST /sessions/{id}/approvals", "RA"),
    ("GET /sessions/{id}/approvals/{approval_id}", "VOAR"),
    ("GET /approvals", "VOA"),
    ("GET /approvals/{approval_id}", "VOA"),
    ("POST /approvals/{approval_id}", "OA"),
];

pub(super) fn letter(w: Who) -> char {
    match w {
        Who::Viewer => 'V',
        Who::Operator => 'O',
        Who::Runner => 'R',
        Who::Admin => 'A',
        Who::Session => 'S',
        Who::Nobody => '-',
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_missing_credentials_and_wrong_roles() {
    let dir = tempdir();
    let (coord, keys) = coordinator(dir.path(), &[]).await;
    let url = coord.url.clone();

    let (runner_id, run) = claim_one(&url, &keys.runner, &keys.operator, "h1").await;
    let sid = run["session_id"].as_str().unwrap().to_string();
    let rid = run["run_id"].as_str().unwrap().to_string();
    let lease = run["lease_token"].as_str().unwrap().to_string();
    let token = run["session_token"]
        .as_str()
        .expect("poll hands out a session token")
        .to_string();
    assert!(token.starts_with("aofs_"), "{token}");

    // The session token acts as its session only.
    let (st, me) = req("GET", &format!("{url}/auth/me"), Some(&token), None, &[]).await;
    assert_eq!(
        (st, me["role"].as_str(), me["subject"].as_str()),
        (200, Some("session"), Some(sid.as_str()))
    );
    let spawn = |parent: &str| json!({"type": "start_session", "agent_name": "t", "parent_session_id": parent, "parameters": {"prompt": "c"}});
    let (st, b) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&token),
        Some(spawn("ses_other")),
        &[],
    )
    .await;
    assert_eq!((st, b["code"].as_str()), (403, Some("forbidden")), "{b}");
    let (st, b) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&token),
        Some(json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "c"}})),
        &[],
    )
    .await;
    assert_eq!(st, 403, "no parent is not its own session either: {b}");
    let (st, child) = req(
        "POST",
        &format!("{url}/runs"),
        Some(&token),
        Some(spawn(&sid)),
        &[],
    )
    .await;
    assert_eq!(st, 201, "{child}");
    let child_sid = child["session_id"].as_str().unwrap();
    let (st, _) = req(
        "POST",
        &format!("{url}/sessions/{child_sid}/stop"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "a session stops its own children");
    let (st, _) = req(
        "GET",
        &format!("{url}/sessions/{child_sid}"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 403, "but reads only itself");
    let (st, _) = req(
        "GET",
        &format!("{url}/sse/sessions"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 403, "the feed only for its own session");

    // GET /runs never shows tokens; only the poll did.
    let (_, runs) = req("GET", &format!("{url}/runs"), Some(&keys.viewer), None, &[]).await;
    assert!(!runs.to_string().contains("session_token") && !runs.to_string().contains(&lease));

    // A runner key acts only as runner ids it registered.
    let (st, other_runner) = req(
        "POST",
        &format!("{url}/auth/keys"),
        Some(&keys.admin),
        Some(json!({"role": "runner"})),
        &[],
    )
    .await;
    assert_eq!(st, 201);
    let other_runner = other_runner["key"].as_str().unwrap().to_string();
    let (st, b) = req(
        "GET",
        &format!("{url}/runner/runs?runner_id={runner_id}"),
        Some(&other_runner),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("runner_not_bound")),
        "{b}"
    );
    let (st, b) = req(
        "POST",
        &format!("{url}/runner/register"),
        Some(&other_runner),
        Some(json!({"hostname": "h1", "project_dir": "/p", "executor_profile": "echo"})),
        &[],
    )
    .await;
    assert_eq!(st, 403, "cannot take over another key's runner id: {b}");

    // Credentials only in the Authorization header or the cookie, never the query.
    let (st, b) = req(
        "GET",
        &format!("{url}/sessions?api_key={}", keys.admin),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );
    for bad in [
        format!("Basic {}", keys.admin),
        "Bearer aof_000000000000_00".into(),
        "Bearer ".into(),
    ] {
        let (st, _) = req(
            "GET",
            &format!("{url}/sessions"),
            None,
            None,
            &[("authorization", &bad)],
        )
        .await;
        assert_eq!(st, 401, "{bad}");
    }

    // The live route table: everything in the OpenAPI document, plus what is not in it.
    let (st, doc) = req(
        "GET",
        &format!("{url}/openapi.json"),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200);
    let mut routes: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.push("GET /openapi.json".into());
    assert!(routes.iter().any(|r| r == "GET /sse/sessions"));
    for r in &routes {
        assert!(
            EXPECTED.iter().any(|(e, _)| e == r),
            "route {r} has no expectation here"
        );
    }
    assert_eq!(
        routes.len(),
        EXPECTED.len(),
        "an expectation names a route that is gone"
    );

    let token_of = |w: Who| -> Option<String> {
        match w {
            Who::Nobody => None,
            Who::Viewer => Some(keys.viewer.clone()),
            Who::Operator => Some(keys.operator.clone()),
            Who::Runner => Some(keys.runner.clone()),
            Who::Admin => Some(keys.admin.clone()),
            Who::Session => Some(token.clone()),
        }
    };
    // The session token goes before anyone who may stop or delete its run.
    let order = [
        Who::Nobody,
        Who::Viewer,
        Who::Session,
        Who::Runner,
        Who::Operator,
        Who::Admin,
    ];
    for who in order {
        for (route, allowed) in EXPECTED {
            let (method, template) = route.split_once(' ').unwrap();
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
            if template == "/sse/sessions" {
                path.push_str(&format!("?session_id={sid}"));
            }
            // Bodies are empty objects: handlers that get that far answer 422 and change nothing.
            let body = matches!(method, "POST" | "PUT" | "PATCH").then(|| json!({}));
            let headers = [
                ("x-aof-lease-token", lease.as_str()),
                ("x-aof-run-id", rid.as_str()),
            ];
            let t = token_of(who);
            let (st, b) = req(
                method,
                &format!("{url}{path}"),
                t.as_deref(),
                body,
                &headers,
            )
            .await;
            let what = format!("{who:?} {route} -> {st} {b}");
            if *allowed == "*" {
                assert!(st != 401 && st != 403, "{what}");
            } else if who == Who::Nobody {
                assert_eq!(
                    (st, b["code"].as_str()),
                    (401, Some("unauthenticated")),
                    "{what}"
                );
            } else if allowed.contains(letter(who)) {
                assert!(st != 401 && st != 403, "{what}");
            } else {
                assert_eq!((st, b["code"].as_str()), (403, Some("forbidden")), "{what}");
            }
        }
    }
    // Unknown routes are admin-only: 401/403 before anyone learns they do not exist.
    assert_eq!(
        req("GET", &format!("{url}/nope"), None, None, &[]).await.0,
        401
    );
    assert_eq!(
        req(
            "GET",
            &format!("{url}/nope"),
            Some(&keys.operator),
            None,
            &[]
        )
        .await
        .0,
        403
    );
    assert_eq!(
        req("GET", &format!("{url}/nope"), Some(&keys.admin), None, &[])
            .await
            .0,
        404
    );

    let log = coord.log();
    assert_no_secret(
        "coordinator log",
        &log,
        &[
            &keys.admin,
            &keys.operator,
            &keys.viewer,
            &keys.runner,
            &token,
            &other_runner,
        ],
    );
}
