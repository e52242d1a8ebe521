//! The OpenAPI document and the router are the same set of routes, every operation is
//! reachable over HTTP, and bodies are typed (no untyped `{}` schemas).

use std::collections::BTreeSet;

use aof_coordinator::{Coordinator, CoordinatorConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

async fn start() -> (String, CancellationToken, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = CoordinatorConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        db_path: dir.path().join("observability.db"),
        agents_dir: dir.path().join("agents"),
        poll_timeout: std::time::Duration::from_millis(200),
        ..CoordinatorConfig::default()
    };
    let c = Coordinator::bind(cfg).await.unwrap();
    let url = format!("http://{}", c.local_addr().unwrap());
    let token = CancellationToken::new();
    tokio::spawn(c.serve(token.clone()));
    (url, token, dir)
}

/// Resolves a `$ref` or returns the schema itself.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(|r| r.as_str()) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => schema,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_matches_router_and_is_typed() {
    let (url, token, _dir) = start().await;
    let doc: Value = reqwest::get(format!("{url}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.insert(format!("{} {path}", method.to_uppercase()));
            // Typed request bodies: a named schema with properties, never `{}`.
            if let Some(body) = op.get("requestBody") {
                let schema = &body["content"]["application/json"]["schema"];
                let resolved = resolve(&doc, schema);
                assert!(
                    resolved.get("properties").is_some() || resolved.get("oneOf").is_some(),
                    "{method} {path}: untyped request body {schema}"
                );
            }
            // Typed success responses.
            for (code, resp) in op["responses"].as_object().unwrap() {
                if code.starts_with('2') && code != "204" {
                    let content = resp["content"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{method} {path} {code}: no content"));
                    for (ctype, media) in content {
                        let schema = resolve(&doc, &media["schema"]);
                        assert!(
                            schema != &serde_json::json!({}),
                            "{method} {path} {code} {ctype}: untyped response"
                        );
                    }
                }
            }
        }
    }

    // The API surface: the reference's routes plus ours. Adding or removing a route
    // must be a conscious change here too.
    let expected: BTreeSet<String> = [
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /stats",
        "POST /runs",
        "GET /runs",
        "GET /runs/{run_id}",
        "POST /runs/{run_id}/stop",
        "GET /sessions",
        "GET /sessions/{id}",
        "DELETE /sessions/{id}",
        "GET /sessions/{id}/status",
        "GET /sessions/{id}/result",
        "GET /sessions/{id}/affinity",
        "POST /sessions/{id}/bind",
        "GET /sessions/{id}/events",
        "POST /sessions/{id}/events",
        "POST /sessions/{id}/events/batch",
        "POST /sessions/{id}/stop",
        "PATCH /sessions/{id}/metadata",
        "GET /sse/sessions",
        "POST /runner/register",
        "GET /runner/runs",
        "POST /runner/runs/{run_id}/started",
        "POST /runner/runs/{run_id}/completed",
        "POST /runner/runs/{run_id}/failed",
        "POST /runner/runs/{run_id}/stopped",
        "POST /runner/runs/{run_id}/release",
        "POST /runner/sessions/{id}/status",
        "POST /runner/heartbeat",
        "GET /runners",
        "DELETE /runners/{runner_id}",
        "GET /agents",
        "POST /agents",
        "GET /agents/{name}",
        "PATCH /agents/{name}",
        "DELETE /agents/{name}",
        "PATCH /agents/{name}/status",
        "GET /capabilities",
        "POST /capabilities",
        "GET /capabilities/{name}",
        "PATCH /capabilities/{name}",
        "DELETE /capabilities/{name}",
        "GET /mcp-servers",
        "POST /mcp-servers",
        "GET /mcp-servers/{server_id}",
        "PUT /mcp-servers/{server_id}",
        "DELETE /mcp-servers/{server_id}",
        "POST /retention/purge",
        "POST /auth/keys",
        "GET /auth/keys",
        "DELETE /auth/keys/{id}",
        "POST /auth/login",
        "POST /auth/logout",
        "GET /auth/me",
        "GET /audit",
        "POST /sessions/{id}/approvals",
        "GET /sessions/{id}/approvals/{approval_id}",
        "GET /approvals",
        "GET /approvals/{approval_id}",
        "POST /approvals/{approval_id}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let extra: Vec<_> = ops.difference(&expected).collect();
    let missing: Vec<_> = expected.difference(&ops).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "extra in doc: {extra:?}; missing from doc: {missing:?}"
    );

    // Every documented operation is served by the router (not the 404/405 fallbacks).
    let client = reqwest::Client::new();
    for op in &ops {
        let (method, path) = op.split_once(' ').unwrap();
        let concrete = path
            .replace("{run_id}", "run_x")
            .replace("{runner_id}", "lnch_x")
            .replace("{id}", "ses_x")
            .replace("{name}", "nobody")
            .replace("{server_id}", "nothing");
        let mut rb = client.request(method.parse().unwrap(), format!("{url}{concrete}"));
        if method != "GET" && method != "DELETE" {
            rb = rb.json(&serde_json::json!({}));
        }
        if path == "/sse/sessions" {
            // A stream: the status line is enough.
            let resp = rb.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200, "{op}");
            continue;
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            !matches!(
                body["code"].as_str(),
                Some("route_not_found" | "method_not_allowed")
            ),
            "{op} fell through to the fallback: {status} {body}"
        );
    }
    // And an undocumented path is not served.
    let resp = client
        .get(format!("{url}/not-a-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    token.cancel();
}
