//! The request id, the outermost of the three request layers (request id → audit →
//! auth): taken from the client's `x-request-id` when sane, else made here; set on the
//! request, so the audit log and handlers see the same one, and echoed on the response.

use axum::{
    extract::Request,
    http::{HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};

pub const REQUEST_ID: &str = "x-request-id";

fn sane(v: &HeaderValue) -> bool {
    v.to_str().is_ok_and(|s| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    })
}

/// The request's id (always present behind [`layer`]).
pub fn of(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub async fn layer(mut req: Request, next: Next) -> Response {
    let id = match req.headers().get(REQUEST_ID).filter(|v| sane(v)) {
        Some(v) => Some(v.clone()),
        None => HeaderValue::try_from(uuid::Uuid::new_v4().simple().to_string()).ok(),
    };
    if let Some(v) = &id {
        req.headers_mut().insert(REQUEST_ID, v.clone());
    }
    let mut resp = next.run(req).await;
    if let Some(v) = id {
        resp.headers_mut().entry(REQUEST_ID).or_insert(v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_from_clients_only_when_sane() {
        let h = |s: &str| HeaderValue::from_str(s).unwrap();
        assert!(sane(&h("abc-123_x.y:z")));
        assert!(!sane(&h("")));
        assert!(!sane(&h("a b")));
        assert!(!sane(&h("a/b")));
        assert!(!sane(&h(&"a".repeat(129))));
        assert!(sane(&h(&"a".repeat(128))));
    }
}
