//! `aof dashboard`: the pages served standalone, the coordinator's routes forwarded to
//! it (API calls, SSE streams, login cookies), so the browser sees one origin. Which
//! routes is the coordinator's to say (`aof_coordinator::auth::policy::forwarded_paths`,
//! from its route table): nothing else reaches it through here, any method on those
//! paths does (the coordinator answers 405 itself).
//!
//! The proxy adds no credential of its own: requests carry the browser's cookie or
//! bearer token and the coordinator decides. Because the coordinator's Origin check
//! compares against its own host, the proxy checks Origin against *its* host instead
//! and forwards allowed requests with the coordinator's origin. The browser's `Host`
//! goes along as `X-Forwarded-Host`, so the coordinator's DNS-rebinding check (auth off:
//! loopback or `coordinator.allowed_hosts` only) also covers a page that reached the
//! proxy under a rebound name.

use anyhow::Context;
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};
use futures::TryStreamExt;

/// Where requests go, parsed once.
#[derive(Clone)]
struct Upstream {
    /// `http://host:port` plus any path prefix, without a trailing slash.
    base: String,
    /// `scheme://host[:port]`, sent as `Origin` for requests whose origin we accepted.
    origin: HeaderValue,
    client: reqwest::Client,
}

/// Largest request body forwarded; above the coordinator's default limit (4 MiB).
const MAX_BODY: usize = 16 << 20;

/// Hop-by-hop headers (RFC 9110 §7.6.1), `host`, which the client sets itself, and
/// `x-forwarded-host`, which we set (a browser's own value must not pass as ours).
const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "x-forwarded-host",
];

fn origin_of(url: &str) -> anyhow::Result<HeaderValue> {
    let (scheme, rest) = url
        .split_once("://")
        .context("coordinator URL must start with http:// or https://")?;
    anyhow::ensure!(
        scheme == "http" || scheme == "https",
        "coordinator URL must start with http:// or https://, got {url}"
    );
    let host = rest.split('/').next().unwrap_or("");
    anyhow::ensure!(!host.is_empty(), "coordinator URL has no host: {url}");
    Ok(HeaderValue::from_str(&format!("{scheme}://{host}"))?)
}

/// The standalone app: dashboard pages, and `forwarded` (route templates, axum syntax)
/// sent on to `upstream`; any other path is a JSON 404 here.
pub fn app(upstream: &str, forwarded: &[&str]) -> anyhow::Result<Router> {
    let base = upstream.trim_end_matches('/').to_string();
    let origin = origin_of(&base)?;
    let client = reqwest::Client::builder()
        // No overall timeout: SSE responses stay open for as long as the page does.
        .connect_timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let up = Upstream {
        base,
        origin,
        client,
    };
    let api = forwarded
        .iter()
        .filter(|p| !crate::ROUTES.contains(p))
        .fold(Router::new(), |r, p| r.route(p, any(forward)));
    Ok(crate::router()
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found".into(), "route_not_found") })
        .with_state(up))
}

fn error(status: StatusCode, detail: String, code: &str) -> Response {
    let body = format!(
        "{{\"detail\":{},\"code\":\"{code}\"}}",
        serde_json_string(&detail)
    );
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// A JSON string literal without pulling serde_json into this crate.
fn serde_json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A page on another site must not use the browser's cookie through us (CSRF): an
/// `Origin`, when sent, must be this server's own.
fn origin_allowed(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if !origin_allowed(&parts.headers) {
        return error(
            StatusCode::FORBIDDEN,
            "Origin not allowed".into(),
            "origin_not_allowed",
        );
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("{}{path}", up.base);
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in &parts.headers {
        if HOP.contains(&k.as_str()) {
            continue;
        }
        if k == header::ORIGIN {
            headers.insert(header::ORIGIN, up.origin.clone());
        } else {
            headers.append(k.clone(), v.clone());
        }
    }
    if let Some(host) = parts.headers.get(header::HOST) {
        headers.insert("x-forwarded-host", host.clone());
    }
    // API bodies are small (the coordinator caps them); buffering keeps Content-Length.
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Request body larger than {MAX_BODY} bytes"),
                "body_too_large",
            )
        }
    };
    let resp = match up
        .client
        .request(parts.method.clone(), &url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, url = %url, "dashboard proxy: coordinator unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                format!("Coordinator unreachable at {}", up.base),
                "upstream_unavailable",
            );
        }
    };
    let mut out = Response::builder().status(resp.status());
    if let Some(h) = out.headers_mut() {
        for (k, v) in resp.headers() {
            if !HOP.contains(&k.as_str()) {
                h.append(HeaderName::from(k), v.clone());
            }
        }
        // Stream SSE through at once instead of letting anything buffer it.
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    out.body(Body::from_stream(stream))
        .unwrap_or_else(|e| error(StatusCode::BAD_GATEWAY, e.to_string(), "upstream_invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_rules() {
        assert_eq!(
            origin_of("http://coordinator:8765/").unwrap(),
            "http://coordinator:8765"
        );
        assert!(origin_of("coordinator:8765").is_err());
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("dash:8080"));
        assert!(origin_allowed(&h), "no Origin: the coordinator decides");
        h.insert(header::ORIGIN, HeaderValue::from_static("http://dash:8080"));
        assert!(origin_allowed(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("http://evil.test"));
        assert!(!origin_allowed(&h));
        assert_eq!(serde_json_string("a\"b\n"), "\"a\\\"b\\u000a\"");
    }

    /// Listed routes go to the coordinator (here: nothing listens, so 502), other
    /// paths are answered here and never reach it; the pages are served here.
    #[tokio::test]
    async fn forwards_only_the_listed_routes() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = format!("http://{}", dead.local_addr().unwrap());
        drop(dead);
        let app = app(&upstream, &["/runs", "/sessions/{id}", "/ui/{*path}"]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = reqwest::Client::new();
        let status = |m: &'static str, p: &'static str| {
            let c = c.clone();
            let url = format!("{base}{p}");
            async move {
                let r = c.request(m.parse().unwrap(), url).send().await.unwrap();
                let s = r.status().as_u16();
                (s, r.text().await.unwrap())
            }
        };
        for (m, p) in [
            ("GET", "/runs"),
            ("POST", "/runs"),
            ("DELETE", "/sessions/ses_1"),
        ] {
            let (s, body) = status(m, p).await;
            assert_eq!(s, 502, "{m} {p}: {body}");
            assert!(body.contains("upstream_unavailable"), "{body}");
        }
        for p in ["/admin", "/runs/x/y", "/sessions"] {
            let (s, body) = status("GET", p).await;
            assert_eq!(s, 404, "{p}: {body}");
            assert!(body.contains("\"code\":\"route_not_found\""), "{body}");
        }
        let (s, _) = status("GET", "/ui/").await;
        assert_eq!(s, 200, "a page, served here even if listed");
    }
}
