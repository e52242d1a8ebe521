//! What a web page could make the user's browser send, refused before a credential is
//! read or a handler runs (issue #20). With auth off, any page the user opens could
//! otherwise drive the API: a `text/plain` POST needs no CORS preflight, and a page on
//! a name the attacker re-points at 127.0.0.1 (DNS rebinding) is "same-origin".
//!
//! - **Host** (auth off, and `/mcp` always): the `Host` — and `X-Forwarded-Host`, which
//!   `aof dashboard` sets to the browser's — must be `localhost`, an IP address, or in
//!   `coordinator.allowed_hosts`. A rebinding page's requests carry the attacker's name;
//!   an IP literal cannot be rebound (a page on `http://10.0.0.5:8765` *is* the
//!   coordinator), so runners and probes by IP need no setting. `/mcp` is stricter, as
//!   rmcp's own check (on too): loopback or listed only. `/health` and `/ready` answer
//!   any Host: they return nothing a page could use.
//! - **Origin** (every write, any credential): a present `Origin` (`null` included) must
//!   be the coordinator's own (`http(s)://<Host>`) or listed in `CORS_ORIGINS`. A write
//!   without `Origin` but marked `Sec-Fetch-Site: cross-site` is refused too. Clients
//!   that are not browsers send neither header and are unaffected.
//! - **Content-Type** (every request with a body): JSON only (`application/json`,
//!   `application/*+json`), so no cross-site "simple request" reaches a parser.

use aof_wire::error::ErrorCode;
use std::net::IpAddr;

use axum::{
    body::{Body, HttpBody},
    http::{header, request::Parts, HeaderMap, Method},
    response::{IntoResponse, Response},
};

use super::Auth;
use crate::{config::CoordinatorConfig, error::ApiError};

/// Routes any Host may reach (see the module doc).
const ANY_HOST: &[&str] = &["/health", "/ready"];

/// The orchestrator MCP route: its Host is checked with auth on too (agents reach it;
/// rmcp's own check, on as well, would answer a plain-text 403).
const MCP: &str = "/mcp";

/// Why a request was refused; each becomes an [`ApiError`] with a stable `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    HostNotAllowed,
    OriginNotAllowed,
    CrossSite,
    UnsupportedMediaType,
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let forbidden = |detail: &str, code| ApiError::Forbidden(detail.into(), code);
        match r {
            Refusal::HostNotAllowed => forbidden(
                "Host not allowed: with auth off the API answers only loopback names and \
                 coordinator.allowed_hosts (AOF_ALLOWED_HOSTS)",
                ErrorCode::HostNotAllowed,
            ),
            Refusal::OriginNotAllowed => forbidden(
                "Origin not allowed: writes from a browser must come from the coordinator's \
                 own origin or one listed in CORS_ORIGINS",
                ErrorCode::OriginNotAllowed,
            ),
            Refusal::CrossSite => forbidden(
                "Cross-site writes are not accepted (Sec-Fetch-Site: cross-site)",
                ErrorCode::OriginNotAllowed,
            ),
            Refusal::UnsupportedMediaType => ApiError::UnsupportedMediaType,
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

/// The host of a `Host`-style authority (`name[:port]`, `[v6]:port`), lowercased, IPv6
/// without brackets; `None` if it is not one.
pub fn host_name(authority: &str) -> Option<String> {
    let a: axum::http::uri::Authority = authority.trim().parse().ok()?;
    if a.as_str().contains('@') {
        return None;
    }
    let h = a.host().trim_start_matches('[').trim_end_matches(']');
    (!h.is_empty()).then(|| h.to_ascii_lowercase())
}

/// An entry of `coordinator.allowed_hosts`: a host name or IP without scheme or port.
pub fn allowed_host_entry(entry: &str) -> Result<String, String> {
    let e = entry.trim();
    if let Ok(ip) = e
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip.to_string());
    }
    let bad = || format!("'{e}' is not a host name (no scheme, port or path)");
    let a: axum::http::uri::Authority = e.parse().map_err(|_| bad())?;
    if a.port().is_some() || a.as_str() != a.host() || e.contains('/') {
        return Err(bad());
    }
    Ok(a.host().to_ascii_lowercase())
}

/// `localhost` and the loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The request's authority: `Host`, or HTTP/2's `:authority`.
fn authority(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// Whether the authority names a host the API answers: loopback, a listed name, or
/// (`any_ip`) any IP address.
fn host_ok(authority: &str, allowed: &[String], any_ip: bool) -> bool {
    host_name(authority).is_some_and(|h| {
        is_loopback(&h) || allowed.contains(&h) || (any_ip && h.parse::<IpAddr>().is_ok())
    })
}

/// Whether the method changes state (everything but GET, HEAD, OPTIONS).
pub fn is_write(m: &Method) -> bool {
    !matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl Auth {
    /// `origin` is the coordinator's own (`http(s)://<Host>`, `host` being the request's
    /// authority) or one listed in `CORS_ORIGINS`. `null` never is.
    pub(super) fn origin_known(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim().trim_end_matches('/');
        if origin.eq_ignore_ascii_case("null") || origin.is_empty() {
            return false;
        }
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
            return true;
        }
        host.filter(|h| !h.is_empty()).is_some_and(|h| {
            ["http://", "https://"].iter().any(|s| {
                origin.len() == s.len() + h.len()
                    && origin[..s.len()].eq_ignore_ascii_case(s)
                    && origin[s.len()..].eq_ignore_ascii_case(h)
            })
        })
    }

    /// A page on a foreign origin read the API. CORS (same origin by default) makes the
    /// browser hide every answer from it, and nothing on the wire tells the operator
    /// why their dashboard shows no data: say it in the log, once per origin, for the
    /// first few (any page the user opens could otherwise fill the log).
    fn note_foreign_reader(&self, origin: &str) {
        const MAX_NAMED: usize = 16;
        let mut seen = self
            .warned_origins
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_NAMED || seen.iter().any(|o| o == origin) {
            return;
        }
        seen.push(origin.to_string());
        drop(seen);
        tracing::warn!(
            origin,
            "a page at {origin} reads the API, but it is not in coordinator.cors_origins \
             (CORS_ORIGINS): the browser hides every answer from it, so a dashboard there \
             shows no data (\"Disconnected\"). If it is your dashboard, add its origin there"
        );
    }
}

/// Host, Origin and `Sec-Fetch-Site` (see the module doc); `template` is the matched route.
pub fn check_source(
    cfg: &CoordinatorConfig,
    auth: &Auth,
    parts: &Parts,
    template: Option<&str>,
) -> Result<(), Refusal> {
    let host = authority(parts);
    let any_host = template.is_some_and(|t| ANY_HOST.contains(&t));
    let mcp = template == Some(MCP);
    if !any_host && (!cfg.auth.enabled || mcp) {
        let ok = |h: &str| host_ok(h, &cfg.allowed_hosts, !mcp);
        // No Host at all: not a browser (every browser sends one), so no rebinding.
        if host.is_some_and(|h| !ok(h)) {
            return Err(Refusal::HostNotAllowed);
        }
        // `aof dashboard` forwards the browser's Host here; a rebinding of the proxy's
        // name must be refused as if it had reached us directly.
        for v in parts.headers.get_all("x-forwarded-host") {
            let v = v.to_str().map_err(|_| Refusal::HostNotAllowed)?;
            if !v.split(',').all(ok) {
                return Err(Refusal::HostNotAllowed);
            }
        }
    }
    if !is_write(&parts.method) {
        // Reads are not refused (a page cannot see the answer without CORS); only noted.
        if let Some(o) = parts
            .headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
        {
            if !auth.any_origin && !auth.origin_known(o, host) {
                auth.note_foreign_reader(o);
            }
        }
        return Ok(());
    }
    match parts.headers.get(header::ORIGIN) {
        Some(o) => {
            let o = o.to_str().map_err(|_| Refusal::OriginNotAllowed)?;
            // `CORS_ORIGINS=*`: any page may call with a bearer credential it holds (auth
            // on). Never on its own with auth off, never for the cookie.
            let star_bearer = auth.any_origin
                && cfg.auth.enabled
                && parts.headers.contains_key(header::AUTHORIZATION);
            if star_bearer || auth.origin_known(o, host) {
                Ok(())
            } else {
                Err(Refusal::OriginNotAllowed)
            }
        }
        None => {
            let cross = parts
                .headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
            if cross {
                Err(Refusal::CrossSite)
            } else {
                Ok(())
            }
        }
    }
}

/// `application/json` or `application/<x>+json`, parameters (charset) allowed.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.len() > "+json".len() && sub.ends_with("+json"))
}

/// Whether the headers declare a JSON body.
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json)
}

/// A request whose body may be non-empty must declare JSON. Known-empty bodies (no
/// body, `Content-Length: 0`) need no Content-Type (`POST /runs/{id}/stop`).
pub fn check_body(headers: &HeaderMap, body: &Body) -> Result<(), Refusal> {
    if body.size_hint().exact() == Some(0) || declares_json(headers) {
        Ok(())
    } else {
        Err(Refusal::UnsupportedMediaType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for (a, h) in [
            ("localhost:8765", Some("localhost")),
            ("LocalHost", Some("localhost")),
            ("[::1]:80", Some("::1")),
            ("127.0.0.9:1", Some("127.0.0.9")),
            ("evil.test:8765", Some("evil.test")),
            ("user@evil.test", None),
            ("", None),
            ("a b", None),
        ] {
            assert_eq!(host_name(a).as_deref(), h, "{a}");
        }
        let allowed = vec!["coordinator".to_string()];
        for ok in [
            "localhost",
            "127.0.0.1:8765",
            "[::1]:8765",
            "coordinator:8765",
        ] {
            assert!(host_ok(ok, &allowed, false), "{ok}");
        }
        for bad in [
            "evil.test",
            "localhost.evil.test",
            "127.0.0.1.evil.test",
            "coordinator.evil.test",
            "10.0.0.1.nip.io",
        ] {
            assert!(!host_ok(bad, &allowed, true), "{bad}");
        }
        // IP literals cannot be rebound: served, except where the check is strict (/mcp).
        for ip in ["10.0.0.1:8765", "[fd00::1]:80", "0.0.0.0"] {
            assert!(host_ok(ip, &allowed, true), "{ip}");
            assert!(!host_ok(ip, &allowed, false), "{ip}");
        }
        assert_eq!(
            allowed_host_entry(" Coord.Example ").unwrap(),
            "coord.example"
        );
        assert_eq!(allowed_host_entry("[::1]").unwrap(), "::1");
        assert_eq!(allowed_host_entry("10.0.0.1").unwrap(), "10.0.0.1");
        for bad in ["coord:8765", "http://coord", "coord/x", "", "a b"] {
            assert!(allowed_host_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/+json",
            "text/json",
            "application/jsonx",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn foreign_readers_are_named_once_each_and_bounded() {
        let cfg = CoordinatorConfig::default();
        let auth = Auth::load(cfg.auth.clone(), "http://dash.test")
            .await
            .unwrap();
        let read = |origin: &str| {
            let req = axum::http::Request::get("/sessions")
                .header(header::HOST, "127.0.0.1:8765")
                .header(header::ORIGIN, origin)
                .body(())
                .unwrap();
            check_source(&cfg, &auth, &req.into_parts().0, Some("/sessions"))
        };
        let named = || auth.warned_origins.lock().unwrap().clone();
        // Listed and own origins are not foreign; reads are never refused.
        assert_eq!(read("http://dash.test"), Ok(()));
        assert_eq!(read("http://127.0.0.1:8765"), Ok(()));
        assert!(named().is_empty());
        assert_eq!(read("http://localhost:3000"), Ok(()));
        assert_eq!(read("http://localhost:3000"), Ok(()));
        assert_eq!(named(), ["http://localhost:3000"]);
        for i in 0..40 {
            assert_eq!(read(&format!("http://page{i}.test")), Ok(()));
        }
        assert_eq!(named().len(), 16, "at most 16 origins are named");
    }

    #[test]
    fn body_needs_json_unless_empty() {
        let mut h = HeaderMap::new();
        assert_eq!(check_body(&h, &Body::empty()), Ok(()));
        assert_eq!(
            check_body(&h, &Body::from("{}")),
            Err(Refusal::UnsupportedMediaType)
        );
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(
            check_body(&h, &Body::from("{}")),
            Err(Refusal::UnsupportedMediaType)
        );
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert_eq!(check_body(&h, &Body::from("{}")), Ok(()));
    }
}
