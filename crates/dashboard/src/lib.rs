//! aof-dashboard: the web UI under `/ui`. Pages are one HTML layout filled per page on
//! the server; CSS and a small hand-written script are compiled into the binary
//! (`include_str!`), so neither building nor running needs Node. The script talks to
//! the coordinator's JSON API and SSE feed on the same origin — directly when the
//! coordinator serves the UI, through [`proxy`] when `aof dashboard` runs standalone.
//!
//! This crate holds no data and checks no credentials: pages are public shells, every
//! API call the script makes is policed by the coordinator.

mod pages;
pub mod proxy;

use axum::{
    extract::Path,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::get,
    Router,
};

pub use pages::Page;

/// Route templates this router serves (GET only), for the coordinator's auth table.
pub const ROUTES: &[&str] = &["/", "/ui", "/ui/", "/ui/assets/{file}", "/ui/{*path}"];

/// The `/ui` pages and assets plus the `/` redirect. Stateless, so it merges into any
/// router (`Router<S>`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { page("") }))
        .route("/ui/assets/{file}", get(asset))
        .route(
            "/ui/{*path}",
            get(|Path(p): Path<String>| async move { page(&p) }),
        )
}

fn page(path: &str) -> Response {
    let (status, html) = match Page::from_path(path) {
        Some(p) => (StatusCode::OK, p.render()),
        None => (StatusCode::NOT_FOUND, Page::NotFound.render()),
    };
    let mut resp = (status, html).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Pages are shells without data; never let a cache keep an old script reference.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure_headers(h);
    resp
}

/// No inline script or style anywhere, so the policy can be strict.
fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The embedded static files: name → (content type, body).
static ASSETS: &[(&str, &str, &str)] = &[
    ("app.css", "text/css", include_str!("../assets/app.css")),
    (
        "core.js",
        "text/javascript",
        include_str!("../assets/core.js"),
    ),
    (
        "overview.js",
        "text/javascript",
        include_str!("../assets/overview.js"),
    ),
    (
        "agents.js",
        "text/javascript",
        include_str!("../assets/agents.js"),
    ),
    (
        "sessions.js",
        "text/javascript",
        include_str!("../assets/sessions.js"),
    ),
    (
        "fold.js",
        "text/javascript",
        include_str!("../assets/fold.js"),
    ),
    (
        "timeline.js",
        "text/javascript",
        include_str!("../assets/timeline.js"),
    ),
    (
        "fleet.js",
        "text/javascript",
        include_str!("../assets/fleet.js"),
    ),
    (
        "audit.js",
        "text/javascript",
        include_str!("../assets/audit.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../assets/favicon.svg"),
    ),
];

async fn asset(Path(file): Path<String>) -> Response {
    let Some((_, ctype, body)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let mut resp = (*body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("{ctype}; charset=utf-8"))
            .unwrap_or(HeaderValue::from_static("text/plain")),
    );
    // Asset URLs carry the build version (`?v=`), so a short cache is safe.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    secure_headers(h);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_a_page_names_exists() {
        let session = Page::Session("s".into());
        for p in Page::ALL.iter().chain([&session]) {
            let html = p.render();
            let mut rest = html.as_str();
            while let Some(i) = rest.find("/ui/assets/") {
                rest = &rest[i + "/ui/assets/".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                    .collect();
                assert!(
                    ASSETS.iter().any(|(n, _, _)| *n == name),
                    "{p:?} names missing asset {name}"
                );
            }
        }
    }
}
