//! The HTTP router: AOF reference routes plus `/ready` and `/metrics`.

mod approvals;
mod audit;
mod auth;
mod docs;
mod event_batch;
mod fence;
mod ops;
mod paging;
mod registry;
mod runner;
mod runs;
mod session_list;
mod sessions;
mod sse;

use std::sync::LazyLock;

use axum::{
    extract::DefaultBodyLimit,
    http::{HeaderMap, HeaderValue, Method},
    routing::get,
    Json, Router,
};
use tower_http::{cors::CorsLayer, trace::TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    auth::policy::{self, Grant, Undocumented},
    AppState,
};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "AOF coordinator",
        description = "Agent Orchestration Framework: sessions, runs, events, runners. \
                       Wire-compatible with the AOF reference coordinator."
    ),
    tags(
        (name = "runs"), (name = "sessions"), (name = "runner", description = "Runner protocol"),
        (name = "runners"), (name = "sse"), (name = "ops"), (name = "agents"),
        (name = "capabilities"), (name = "mcp-servers"),
        (name = "auth", description = "API keys and browser sessions"),
        (name = "audit", description = "Who did what (admins)"),
        (name = "approvals", description = "Tool calls waiting for a person's decision")
    )
)]
struct ApiDoc;

/// Every documented route, and the OpenAPI document built from the same list, so the
/// two cannot drift apart. Each handler's `#[utoipa::path]` also says who may call it
/// (`x-aof-grants`), which the policy table is read from (`auth::policy`).
fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::health))
        .routes(routes!(ops::ready))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::stats))
        .routes(routes!(runs::create, runs::list))
        .routes(routes!(runs::get_one))
        .routes(routes!(runs::stop))
        .routes(routes!(sessions::list))
        .routes(routes!(sessions::get_one, sessions::delete_one))
        .routes(routes!(sessions::status))
        .routes(routes!(sessions::result))
        .routes(routes!(sessions::affinity))
        .routes(routes!(sessions::bind))
        .routes(routes!(sessions::events, sessions::post_event))
        .routes(routes!(event_batch::post_batch))
        .routes(routes!(sessions::stop))
        .routes(routes!(sessions::metadata))
        .routes(routes!(sessions::purge))
        .routes(routes!(sse::sessions))
        .routes(routes!(runner::register))
        .routes(routes!(runner::poll))
        .routes(routes!(runner::started))
        .routes(routes!(runner::completed))
        .routes(routes!(runner::failed))
        .routes(routes!(runner::stopped))
        .routes(routes!(runner::release))
        .routes(routes!(runner::session_status))
        .routes(routes!(runner::heartbeat))
        .routes(routes!(runner::list))
        .routes(routes!(runner::remove))
        .routes(routes!(registry::list_agents, registry::create_agent))
        .routes(routes!(
            registry::get_agent,
            registry::update_agent,
            registry::delete_agent
        ))
        .routes(routes!(registry::agent_status))
        .routes(routes!(
            registry::list_capabilities,
            registry::create_capability
        ))
        .routes(routes!(
            registry::get_capability,
            registry::update_capability,
            registry::delete_capability
        ))
        .routes(routes!(registry::list_mcp, registry::create_mcp))
        .routes(routes!(
            registry::get_mcp,
            registry::update_mcp,
            registry::delete_mcp
        ))
        .routes(routes!(auth::create_key, auth::list_keys))
        .routes(routes!(auth::revoke_key))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(audit::list))
        .routes(routes!(approvals::request))
        .routes(routes!(approvals::session_one))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::get_one, approvals::decide))
        .split_for_parts();
    let mut doc = doc;
    document_boundary_refusals(&mut doc);
    name_audit_actions(&mut doc);
    (router, doc)
}

/// The published `/openapi.json`, built once: the routes never change in a process.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(|| routes().1);
    &DOC
}

/// The routes served outside the OpenAPI document, with who may call them; the policy
/// table adds them to the document's (and the dashboard's pages as public reads).
pub static UNDOCUMENTED: &[Undocumented] = &[
    Undocumented {
        method: Method::GET,
        path: "/openapi.json",
        grants: &[Grant::Viewer],
        action: None,
    },
    // `DOCS_ENABLED`: the API page over `/openapi.json` needs what the document needs.
    Undocumented {
        method: Method::GET,
        path: "/docs",
        grants: &[Grant::Viewer],
        action: Some("docs.redirect"),
    },
    Undocumented {
        method: Method::GET,
        path: "/docs/",
        grants: &[Grant::Viewer],
        action: Some("docs.page"),
    },
    Undocumented {
        method: Method::GET,
        path: "/docs/{*rest}",
        grants: &[Grant::Viewer],
        action: Some("docs.file"),
    },
    // Orchestrator MCP (streamable HTTP: POST messages, GET stream, DELETE session).
    // The tools hold a session token to its own children.
    Undocumented {
        method: Method::POST,
        path: "/mcp",
        grants: &[Grant::Operator, Grant::AnySession],
        action: Some("mcp.message"),
    },
    Undocumented {
        method: Method::GET,
        path: "/mcp",
        grants: &[Grant::Operator, Grant::AnySession],
        action: Some("mcp.stream"),
    },
    Undocumented {
        method: Method::DELETE,
        path: "/mcp",
        grants: &[Grant::Operator, Grant::AnySession],
        action: Some("mcp.close"),
    },
];

/// Every operation's audit name in the document (`x-aof-audit-action`): the declared one,
/// else the one derived from its path, so the document shows what the log will say.
fn name_audit_actions(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            (Method::GET, item.get.as_mut()),
            (Method::POST, item.post.as_mut()),
            (Method::PUT, item.put.as_mut()),
            (Method::PATCH, item.patch.as_mut()),
            (Method::DELETE, item.delete.as_mut()),
        ] {
            let Some(op) = op else { continue };
            let ext = op.extensions.get_or_insert_with(Default::default);
            ext.entry(policy::AUDIT_ACTION_EXT.to_string())
                .or_insert_with(|| policy::derived_action(&method, path).into());
        }
    }
}

/// The refusals the middleware gives before any handler (`auth::browser`, repeated query
/// keys), documented on every operation that can get them, so the document promises what
/// the API answers.
fn document_boundary_refusals(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, HttpMethod, Ref, RefOr, Response, ResponseBuilder};
    let error = |what: &str| -> RefOr<Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(what)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for method in [
            HttpMethod::Get,
            HttpMethod::Post,
            HttpMethod::Put,
            HttpMethod::Patch,
            HttpMethod::Delete,
        ] {
            let op = match method {
                HttpMethod::Get => item.get.as_mut(),
                HttpMethod::Post => item.post.as_mut(),
                HttpMethod::Put => item.put.as_mut(),
                HttpMethod::Patch => item.patch.as_mut(),
                HttpMethod::Delete => item.delete.as_mut(),
                _ => None,
            };
            let Some(op) = op else { continue };
            let responses = &mut op.responses.responses;
            responses
                .entry("400".into())
                .or_insert_with(|| error("Bad request (e.g. repeated_query_key)"));
            responses
                .entry("403".into())
                .or_insert_with(|| error("Refused: host_not_allowed, origin_not_allowed, or the credential may not do this"));
            if method != HttpMethod::Get {
                responses
                    .entry("415".into())
                    .or_insert_with(|| error("unsupported_media_type: a body that is not JSON"));
            }
        }
    }
}

pub fn router(state: AppState) -> Router {
    router_with_shutdown(state, tokio_util::sync::CancellationToken::new())
}

/// The router; `shutdown` also ends open MCP streams so a graceful stop does not hang.
pub fn router_with_shutdown(
    state: AppState,
    shutdown: tokio_util::sync::CancellationToken,
) -> Router {
    let cors = cors_layer(&state.cfg.cors_origins);
    let (api, _) = routes();
    // The orchestrator MCP server: not part of the REST document; the policy table
    // and the auth layer below guard it like every other route.
    let mcp = crate::mcp::service(state.clone(), shutdown);
    let api = api
        .route_service("/mcp", mcp)
        .route("/openapi.json", get(|| async { Json(document()) }));
    // `DOCS_ENABLED`: Swagger UI over the document above; merged before the layers
    // below, so the auth policy (`/docs*` as `/openapi.json`) and the browser checks
    // cover it like every route.
    let api = if state.cfg.docs_enabled {
        api.merge(docs::router())
    } else {
        api
    };
    api
        // The dashboard's pages and assets (`/ui`, and `/` redirecting there); kept out
        // of the OpenAPI document, which describes the API only.
        .merge(aof_dashboard::router())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.cfg.max_body_bytes))
        // Inside CORS, so preflights are answered without a credential; `layer` (not
        // `route_layer`) so unmatched paths are policed too (admin-only by default). It
        // also runs the browser checks (Host, Origin, JSON bodies) before any handler.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::enforce,
        ))
        // Outside auth, so its refusals are recorded too; inside the request id, which
        // the entries carry.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::audit::layer,
        ))
        .layer(axum::middleware::from_fn(crate::request_id::layer))
        .layer(cors)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::request_span)
                .on_response(crate::telemetry::record_status),
        )
        .with_state(state)
}

/// The routes `docs::router` serves (in [`UNDOCUMENTED`]; for the policy table's tests).
pub const DOCS_ROUTES: &[&str] = &["/docs", "/docs/", "/docs/{*rest}"];

/// `CORS_ORIGINS` exactly. Unset (the default): no `Access-Control-Allow-Origin` at all,
/// so only same-origin pages (the dashboard at `/ui`, `aof dashboard`) read the API. A
/// list allows just those origins, with credentials, so a dashboard on another origin can
/// use its cookie. `*` (explicit only) allows any origin to read but never with
/// credentials (browsers refuse that pair, and it would hand the cookie to every site).
/// CORS only governs what a page may *read*; writes are refused by Origin before any
/// handler (`auth::browser`), since a "simple" cross-site POST needs no preflight.
fn cors_layer(origins: &str) -> CorsLayer {
    let base = CorsLayer::new().allow_methods([
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]);
    if origins.trim() == "*" {
        base.allow_origin(tower_http::cors::Any)
            .allow_headers(tower_http::cors::Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty() && *o != "*")
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        base.allow_origin(list)
            .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
            .allow_credentials(true)
    }
}

/// Lease token and run id our runner sends with writes (absent for AOF reference runners).
/// A header that is empty, blank, not UTF-8 or repeated counts as absent: it proves
/// nothing, and a runner-role write without both is refused (`fence`, `auth::granted`).
pub(crate) fn lease_headers(h: &HeaderMap) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        let mut all = h.get_all(k).iter();
        let (Some(v), None) = (all.next(), all.next()) else {
            return None;
        };
        v.to_str()
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    (get(aof_wire::LEASE_HEADER), get(aof_wire::RUN_HEADER))
}
