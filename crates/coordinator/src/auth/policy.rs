//! The one table of who may call what: (method, route template) → grants, and what the
//! audit log calls and keeps of it. It is not written here: each handler's
//! `#[utoipa::path]` carries its grants as the OpenAPI extension `x-aof-grants` (and,
//! where the derived name is wrong, `x-aof-audit-action`; for high-volume runner traffic
//! `x-aof-audit`), so the published `/openapi.json` says who may call each operation, and
//! [`table`] is read from that document once. The few routes outside the document
//! (`/openapi.json`, `/docs*`, `/mcp`) are [`crate::api::UNDOCUMENTED`], next to the
//! router; the dashboard's pages are public reads.
//!
//! The middleware in `auth.rs` looks every request up here; a route missing from the
//! table is admin-only, so a new route is denied until someone decides otherwise (and a
//! test fails on a documented operation without grants). Handlers do no role checks;
//! they only check object ownership the table cannot see (a runner key acting as its own
//! runner ids, a session token's `parent_session_id`).

use std::sync::LazyLock;

use axum::http::Method;
use serde::{Deserialize, Serialize};
use utoipa::openapi::{HttpMethod, OpenApi};

/// One way to be allowed. Any grant of a rule is enough. Serialized (snake_case) into
/// the document's `x-aof-grants`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// Which answers of a route the audit log keeps (`x-aof-audit`; see `crate::audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audit {
    /// Writes, admin-only reads and refusals.
    #[default]
    Writes,
    /// Refusals only: heartbeats, event posts and run reports are many per run, and the
    /// runs and events tables already record them.
    Refusals,
}

/// The document extensions the table is read from.
pub const GRANTS_EXT: &str = "x-aof-grants";
pub const AUDIT_ACTION_EXT: &str = "x-aof-audit-action";
pub const AUDIT_EXT: &str = "x-aof-audit";

/// One route of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub grants: &'static [Grant],
    /// The audit log's name for it (`run.create`).
    pub action: &'static str,
    pub audit: Audit,
}

/// A route outside the OpenAPI document, described where the router adds it.
pub struct Undocumented {
    pub method: Method,
    pub path: &'static str,
    pub grants: &'static [Grant],
    /// `None`: derived from the path ([`derived_action`]).
    pub action: Option<&'static str>,
}

/// Every route the router serves, read once from the document (the process's routes do
/// not change). Strings are leaked once so rules can be `'static` like the templates
/// axum matches against.
static TABLE: LazyLock<Vec<Rule>> =
    LazyLock::new(|| build(crate::api::document(), crate::api::UNDOCUMENTED));

/// The table, for iteration (`for r in RULES`, `RULES.iter()`).
#[derive(Clone, Copy)]
pub struct Rules;

pub const RULES: Rules = Rules;

impl std::ops::Deref for Rules {
    type Target = [Rule];
    fn deref(&self) -> &[Rule] {
        &TABLE
    }
}

impl IntoIterator for Rules {
    type Item = &'static Rule;
    type IntoIter = std::slice::Iter<'static, Rule>;
    fn into_iter(self) -> Self::IntoIter {
        TABLE.iter()
    }
}

/// The methods an operation can have in the document that the router serves.
static METHODS: [(HttpMethod, Method); 5] = [
    (HttpMethod::Get, Method::GET),
    (HttpMethod::Post, Method::POST),
    (HttpMethod::Put, Method::PUT),
    (HttpMethod::Patch, Method::PATCH),
    (HttpMethod::Delete, Method::DELETE),
];

/// Each operation of `doc` as (method, path, its extensions).
pub fn operations(
    doc: &OpenApi,
) -> impl Iterator<
    Item = (
        Method,
        &str,
        Option<&utoipa::openapi::extensions::Extensions>,
    ),
> {
    doc.paths.paths.iter().flat_map(|(path, item)| {
        METHODS.iter().filter_map(move |(hm, m)| {
            let op = match hm {
                HttpMethod::Get => item.get.as_ref(),
                HttpMethod::Post => item.post.as_ref(),
                HttpMethod::Put => item.put.as_ref(),
                HttpMethod::Patch => item.patch.as_ref(),
                HttpMethod::Delete => item.delete.as_ref(),
                _ => None,
            }?;
            Some((m.clone(), path.as_str(), op.extensions.as_ref()))
        })
    })
}

/// The grants an operation declares; `None` when it declares none (or nothing
/// readable), which leaves it admin-only.
pub fn declared_grants(
    ext: Option<&utoipa::openapi::extensions::Extensions>,
) -> Option<Vec<Grant>> {
    let grants: Vec<Grant> = serde_json::from_value(ext?.get(GRANTS_EXT)?.clone()).ok()?;
    (!grants.is_empty()).then_some(grants)
}

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Vec::leak(v)
}

fn leak_str(s: String) -> &'static str {
    String::leak(s)
}

fn build(doc: &OpenApi, undocumented: &[Undocumented]) -> Vec<Rule> {
    let mut table = Vec::new();
    for (method, path, ext) in operations(doc) {
        // No grants: no rule, so admin-only (and `every_operation_declares_grants` fails).
        let Some(grants) = declared_grants(ext) else {
            continue;
        };
        let path = leak_str(path.to_string());
        let ext = ext.expect("grants came from the extensions");
        let action = match ext.get(AUDIT_ACTION_EXT).and_then(|v| v.as_str()) {
            Some(a) => leak_str(a.to_string()),
            None => leak_str(derived_action(&method, path)),
        };
        let audit = ext
            .get(AUDIT_EXT)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        table.push(Rule {
            method,
            path,
            grants: leak(grants),
            action,
            audit,
        });
    }
    for u in undocumented {
        table.push(Rule {
            method: u.method.clone(),
            path: u.path,
            grants: u.grants,
            action: match u.action {
                Some(a) => a,
                None => leak_str(derived_action(&u.method, u.path)),
            },
            audit: Audit::Writes,
        });
    }
    // Dashboard: pages and assets hold no data (their API calls are policed as usual),
    // and the login page must load before there is a credential.
    for &path in aof_dashboard::ROUTES {
        table.push(Rule {
            method: Method::GET,
            path,
            grants: &[Grant::Public],
            action: leak_str(derived_action(&Method::GET, path)),
            audit: Audit::Writes,
        });
    }
    table
}

/// A POST to one of these trailing words is that verb (`/runs/{id}/stop` → `run.stop`).
const VERBS: &[&str] = &[
    "stop",
    "bind",
    "purge",
    "started",
    "completed",
    "failed",
    "stopped",
];

/// `runs` → `run`, `mcp-servers` → `mcp_server`, `capabilities` → `capability`.
fn singular(seg: &str) -> String {
    let s = seg.replace('-', "_");
    if let Some(stem) = s.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = s.strip_suffix('s').filter(|_| !s.ends_with("ss")) {
        stem.to_string()
    } else {
        s
    }
}

/// The audit name a route gets unless it declares one (`x-aof-audit-action`): nouns from
/// the template's literal segments plus a verb from the method (`PATCH
/// /agents/{name}/status` → `agent.status.update`).
pub fn derived_action(method: &Method, template: &str) -> String {
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let segs: Vec<&str> = template.split('/').filter(|s| !s.is_empty()).collect();
    let is_param = |s: &str| s.starts_with('{');
    let mut nouns: Vec<String> = segs
        .iter()
        .filter(|s| !is_param(s))
        .map(|s| singular(s))
        .collect();
    let last = segs.last().copied().unwrap_or("");
    let verb = match *method {
        Method::POST if VERBS.contains(&last) => {
            nouns.pop();
            last
        }
        Method::GET if is_param(last) => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT | Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "other",
    };
    if nouns.is_empty() {
        return verb.into();
    }
    format!("{}.{verb}", nouns.join("."))
}

/// Admin-only: what any route missing from the table gets.
pub static DEFAULT: &[Grant] = &[Grant::Admin];

/// The rule for a request; `path` is the matched template (`None`: no route matched).
pub fn rule(method: &Method, path: Option<&str>) -> Option<&'static Rule> {
    // axum answers HEAD with the GET handler; it needs what GET needs.
    let method = if method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    let p = path?;
    TABLE.iter().find(|r| r.method == *method && r.path == p)
}

/// The grants for a request; `path` is the matched template (`None`: no route matched).
pub fn grants(method: &Method, path: Option<&str>) -> &'static [Grant] {
    rule(method, path).map_or(DEFAULT, |r| r.grants)
}

/// Route templates the standalone dashboard forwards to the coordinator: every route
/// in the table except the dashboard's own pages, which it serves itself.
pub fn forwarded_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = TABLE
        .iter()
        .map(|r| r.path)
        .filter(|p| !aof_dashboard::ROUTES.contains(p))
        .collect();
    paths.sort_unstable();
    paths.dedup();
    paths
}

/// The documented operations that declare no grants (they are admin-only until they do).
pub fn without_grants(doc: &OpenApi) -> Vec<String> {
    operations(doc)
        .filter(|(_, _, ext)| declared_grants(*ext).is_none())
        .map(|(m, p, _)| format!("{m} {p}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use Grant::*;

    #[test]
    fn every_operation_declares_its_grants() {
        let doc = crate::api::document();
        assert_eq!(without_grants(doc), Vec::<String>::new());
        // And so the table holds every route served: each documented operation, the
        // undocumented ones, the dashboard's pages; none twice.
        let served =
            operations(doc).count() + crate::api::UNDOCUMENTED.len() + aof_dashboard::ROUTES.len();
        let keys: BTreeSet<(String, &str)> = RULES
            .iter()
            .map(|r| (r.method.to_string(), r.path))
            .collect();
        assert_eq!((RULES.len(), keys.len()), (served, served));
        // The published document says who may call what.
        let json = serde_json::to_value(doc).unwrap();
        assert_eq!(
            json["paths"]["/runs"]["post"][GRANTS_EXT],
            serde_json::json!(["operator", "session_spawn"])
        );
        assert_eq!(
            json["paths"]["/runs"]["post"][AUDIT_ACTION_EXT],
            serde_json::json!("run.create")
        );
    }

    /// A handler added without `x-aof-grants` is caught, and admin-only meanwhile.
    #[test]
    fn a_handler_without_grants_is_admin_only_and_reported() {
        #[utoipa::path(get, path = "/new", responses((status = 200, description = "New")))]
        async fn new_route() {}
        #[utoipa::path(get, path = "/granted", extensions(("x-aof-grants" = json!([Grant::Viewer]))),
            responses((status = 200, description = "Granted")))]
        async fn granted() {}
        let (_, doc) = utoipa_axum::router::OpenApiRouter::<()>::new()
            .routes(utoipa_axum::routes!(new_route))
            .routes(utoipa_axum::routes!(granted))
            .split_for_parts();
        assert_eq!(without_grants(&doc), ["GET /new"]);
        let table = build(&doc, &[]);
        assert!(
            !table.iter().any(|r| r.path == "/new"),
            "no rule: admin-only"
        );
        let granted = table.iter().find(|r| r.path == "/granted").unwrap();
        assert_eq!(
            (granted.grants, granted.action, granted.audit),
            (&[Viewer][..], "granted.list", Audit::Writes)
        );
    }

    #[test]
    fn unknown_routes_are_admin_only() {
        assert_eq!(grants(&Method::GET, None), DEFAULT);
        assert_eq!(grants(&Method::GET, Some("/not/served")), DEFAULT);
        assert_eq!(grants(&Method::PUT, Some("/runs")), DEFAULT);
        assert_eq!(grants(&Method::HEAD, Some("/runs")), &[Viewer]);
    }

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

    #[test]
    fn the_dashboard_forwards_the_api_and_serves_its_pages() {
        let paths = forwarded_paths();
        for p in [
            "/runs",
            "/sessions/{id}/events",
            "/sse/sessions",
            "/auth/login",
            "/mcp",
        ] {
            assert!(paths.contains(&p), "{p}");
        }
        for p in aof_dashboard::ROUTES {
            assert!(!paths.contains(p), "{p}");
        }
    }
}
