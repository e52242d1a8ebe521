//! The one table of who may call what: (method, route template) → grants. The
//! middleware in `auth.rs` looks every request up here; a route missing from the table
//! is admin-only, so a new route is denied until someone decides otherwise. Handlers do
//! no role checks; they only check object ownership the table cannot see (a runner key
//! acting as its own runner ids, a session token's `parent_session_id`).

use axum::http::Method;

/// One way to be allowed. Any grant of a rule is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// No credential needed.
    Public,
    /// Public when `auth.metrics_public`, else `Viewer`.
    Metrics,
    /// Any valid credential.
    Authenticated,
    /// viewer, operator or admin.
    Viewer,
    /// operator or admin.
    Operator,
    /// runner or admin.
    Runner,
    /// runner with the run's lease headers (the store then checks it holds the run), or admin.
    LeasedRunner,
    Admin,
    /// A session token whose session is the route's `{id}`.
    OwnSession,
    /// A session token whose session is the parent of the route's `{id}`.
    ChildSession,
    /// A session token and the `session_id` query naming its own session.
    OwnSessionFeed,
    /// A session token; the handler requires `parent_session_id` = its session.
    SessionSpawn,
    /// Any session token (the MCP tools check what it may touch).
    AnySession,
}

use Grant::*;

pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub grants: &'static [Grant],
}

const fn rule(method: Method, path: &'static str, grants: &'static [Grant]) -> Rule {
    Rule {
        method,
        path,
        grants,
    }
}

/// Every route of the router. `auth_routes_are_all_in_the_table` (tests) checks that
/// nothing served is missing, so the admin-only default is a safety net, not the policy.
pub static RULES: &[Rule] = &[
    rule(Method::GET, "/health", &[Public]),
    rule(Method::GET, "/ready", &[Public]),
    rule(Method::GET, "/metrics", &[Metrics]),
    rule(Method::GET, "/openapi.json", &[Viewer]),
    // `DOCS_ENABLED`: the API page over `/openapi.json` needs what the document needs.
    rule(Method::GET, "/docs", &[Viewer]),
    rule(Method::GET, "/docs/", &[Viewer]),
    rule(Method::GET, "/docs/{*rest}", &[Viewer]),
    // Runs
    rule(Method::POST, "/runs", &[Operator, SessionSpawn]),
    rule(Method::GET, "/runs", &[Viewer]),
    rule(Method::GET, "/runs/{run_id}", &[Viewer]),
    rule(Method::POST, "/runs/{run_id}/stop", &[Operator]),
    // Sessions
    rule(Method::GET, "/sessions", &[Viewer]),
    rule(Method::GET, "/sessions/{id}", &[Viewer, OwnSession]),
    rule(Method::DELETE, "/sessions/{id}", &[Operator]),
    rule(Method::GET, "/sessions/{id}/status", &[Viewer, OwnSession]),
    rule(Method::GET, "/sessions/{id}/result", &[Viewer, OwnSession]),
    rule(Method::GET, "/sessions/{id}/affinity", &[Viewer]),
    rule(Method::POST, "/sessions/{id}/bind", &[LeasedRunner]),
    rule(Method::GET, "/sessions/{id}/events", &[Viewer, OwnSession]),
    rule(
        Method::POST,
        "/sessions/{id}/events",
        &[LeasedRunner, OwnSession],
    ),
    rule(
        Method::POST,
        "/sessions/{id}/events/batch",
        &[LeasedRunner, OwnSession],
    ),
    rule(
        Method::POST,
        "/sessions/{id}/stop",
        &[Operator, ChildSession],
    ),
    rule(Method::PATCH, "/sessions/{id}/metadata", &[Operator]),
    rule(Method::POST, "/retention/purge", &[Admin]),
    rule(Method::GET, "/sse/sessions", &[Viewer, OwnSessionFeed]),
    // Runner protocol
    rule(Method::POST, "/runner/register", &[Runner]),
    rule(Method::GET, "/runner/runs", &[Runner]),
    rule(Method::POST, "/runner/runs/{run_id}/started", &[Runner]),
    rule(Method::POST, "/runner/runs/{run_id}/completed", &[Runner]),
    rule(Method::POST, "/runner/runs/{run_id}/failed", &[Runner]),
    rule(Method::POST, "/runner/runs/{run_id}/stopped", &[Runner]),
    rule(Method::POST, "/runner/runs/{run_id}/release", &[Runner]),
    rule(Method::POST, "/runner/sessions/{id}/status", &[Runner]),
    rule(Method::POST, "/runner/heartbeat", &[Runner]),
    rule(Method::GET, "/runners", &[Viewer]),
    // A runner deregisters itself here; the handler holds it to its own ids.
    rule(Method::DELETE, "/runners/{runner_id}", &[Operator, Runner]),
    // Blueprint registries
    rule(Method::GET, "/agents", &[Viewer]),
    rule(Method::POST, "/agents", &[Operator]),
    rule(Method::GET, "/agents/{name}", &[Viewer]),
    rule(Method::PATCH, "/agents/{name}", &[Operator]),
    rule(Method::DELETE, "/agents/{name}", &[Operator]),
    rule(Method::PATCH, "/agents/{name}/status", &[Operator]),
    rule(Method::GET, "/capabilities", &[Viewer]),
    rule(Method::POST, "/capabilities", &[Operator]),
    rule(Method::GET, "/capabilities/{name}", &[Viewer]),
    rule(Method::PATCH, "/capabilities/{name}", &[Operator]),
    rule(Method::DELETE, "/capabilities/{name}", &[Operator]),
    rule(Method::GET, "/mcp-servers", &[Viewer]),
    rule(Method::POST, "/mcp-servers", &[Operator]),
    rule(Method::GET, "/mcp-servers/{server_id}", &[Viewer]),
    rule(Method::PUT, "/mcp-servers/{server_id}", &[Operator]),
    rule(Method::DELETE, "/mcp-servers/{server_id}", &[Operator]),
    // Auth
    rule(Method::POST, "/auth/keys", &[Admin]),
    rule(Method::GET, "/auth/keys", &[Admin]),
    rule(Method::DELETE, "/auth/keys/{id}", &[Admin]),
    // Login checks the key in its body itself; logout only clears a cookie.
    rule(Method::POST, "/auth/login", &[Public]),
    rule(Method::POST, "/auth/logout", &[Public]),
    rule(Method::GET, "/auth/me", &[Authenticated]),
    rule(Method::GET, "/audit", &[Admin]),
    // Orchestrator MCP (streamable HTTP: POST messages, GET stream, DELETE session).
    // The tools hold a session token to its own children.
    rule(Method::POST, "/mcp", &[Operator, AnySession]),
    rule(Method::GET, "/mcp", &[Operator, AnySession]),
    rule(Method::DELETE, "/mcp", &[Operator, AnySession]),
    // Dashboard: pages and assets hold no data (their API calls are policed as usual),
    // and the login page must load before there is a credential.
    rule(Method::GET, "/", &[Public]),
    rule(Method::GET, "/ui", &[Public]),
    rule(Method::GET, "/ui/", &[Public]),
    rule(Method::GET, "/ui/assets/{file}", &[Public]),
    rule(Method::GET, "/ui/{*path}", &[Public]),
];

/// Admin-only: what any route missing from the table gets.
pub static DEFAULT: &[Grant] = &[Admin];

/// The grants for a request; `path` is the matched template (`None`: no route matched).
pub fn grants(method: &Method, path: Option<&str>) -> &'static [Grant] {
    // axum answers HEAD with the GET handler; it needs what GET needs.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    path.and_then(|p| {
        RULES
            .iter()
            .find(|r| r.method == *method && r.path == p)
            .map(|r| r.grants)
    })
    .unwrap_or(DEFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_pages_are_public_and_nothing_else_changed_by_them() {
        for path in aof_dashboard::ROUTES {
            assert_eq!(grants(&Method::GET, Some(path)), &[Public], "{path}");
            assert_eq!(grants(&Method::POST, Some(path)), DEFAULT, "{path}");
        }
    }

    #[test]
    fn the_api_page_needs_what_the_api_document_needs() {
        let doc = grants(&Method::GET, Some("/openapi.json"));
        for path in crate::api::DOCS_ROUTES {
            assert_eq!(grants(&Method::GET, Some(path)), doc, "{path}");
            assert_eq!(grants(&Method::POST, Some(path)), DEFAULT, "{path}");
        }
    }
}
