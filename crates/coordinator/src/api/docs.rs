//! The interactive API page at `/docs` (`DOCS_ENABLED`): Swagger UI over `/openapi.json`,
//! every file served from the binary (see build.rs), no online validator, so the page
//! loads nothing from elsewhere and works offline.

use axum::{
    http::header,
    response::{Html, IntoResponse, Redirect},
    routing::get,
    Router,
};

use crate::AppState;

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>AOF API</title>
<link rel="stylesheet" href="swagger-ui.css">
<link rel="icon" type="image/png" href="favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="swagger-initializer.js"></script>
</body>
</html>
"#;

const INITIALIZER: &str = r##"window.onload = function () {
  window.ui = SwaggerUIBundle({
    "url": "/openapi.json",
    "dom_id": "#swagger-ui",
    "deepLinking": true,
    "validatorUrl": "none"
  });
};
"##;

const BUNDLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui-bundle.js"));
const CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/swagger-ui.css"));
const FAVICON: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/favicon-32x32.png"));

fn asset(mime: &'static str, body: &'static [u8]) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, mime)], body)
}

/// The page's routes (their paths are `DOCS_ROUTES`, which the policy table grants like
/// `/openapi.json`).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Redirect::permanent("/docs/") }))
        .route("/docs/", get(|| async { Html(PAGE) }))
        .route(
            "/docs/{*rest}",
            get(
                |axum::extract::Path(rest): axum::extract::Path<String>| async move {
                    match rest.as_str() {
                        "swagger-ui-bundle.js" => asset("text/javascript", BUNDLE).into_response(),
                        "swagger-ui.css" => asset("text/css", CSS).into_response(),
                        "favicon-32x32.png" => asset("image/png", FAVICON).into_response(),
                        "swagger-initializer.js" => {
                            asset("text/javascript", INITIALIZER.as_bytes()).into_response()
                        }
                        _ => super::ops::not_found().await.into_response(),
                    }
                },
            ),
        )
}
