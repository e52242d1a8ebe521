//! OIDC JWTs: issuer, audience, expiry, kid and role claim.

use serde_json::{json, Value};

use super::*;

// ---------------------------------------------------------------------------------------
// (5) OIDC.
// ---------------------------------------------------------------------------------------

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/oidc/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn jwt(kid: &str, claims: Value) -> String {
    let pem = std::fs::read(fixture("test-private.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &claims, &key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_are_checked_and_mapped_to_roles() {
    let dir = tempdir();
    let jwks = fixture("jwks.json");
    let (coord, _keys) = coordinator(
        dir.path(),
        &[
            ("AOF_OIDC_ISSUER", "https://issuer.test/"),
            ("AOF_OIDC_AUDIENCE", "aof"),
            ("AOF_OIDC_JWKS", &jwks),
            ("AOF_OIDC_ROLE_CLAIM", "https://aof/roles"),
        ],
    )
    .await;
    let url = coord.url.clone();
    let now = chrono::Utc::now().timestamp();
    let claims = |iss: &str, aud: &str, exp: i64, roles: Value| json!({"iss": iss, "aud": aud, "exp": exp, "sub": "user|1", "https://aof/roles": roles});
    let good = jwt(
        "test-key-1",
        claims(
            "https://issuer.test/",
            "aof",
            now + 600,
            json!(["operator"]),
        ),
    );
    let (st, me) = req("GET", &format!("{url}/auth/me"), Some(&good), None, &[]).await;
    assert_eq!(
        (st, me["role"].as_str(), me["subject"].as_str()),
        (200, Some("operator"), Some("user|1"))
    );
    assert_eq!(
        req("GET", &format!("{url}/sessions"), Some(&good), None, &[])
            .await
            .0,
        200
    );
    assert_eq!(
        req("GET", &format!("{url}/auth/keys"), Some(&good), None, &[])
            .await
            .0,
        403
    );

    for (what, token, want) in [
        (
            "wrong issuer",
            jwt(
                "test-key-1",
                claims("https://evil.test/", "aof", now + 600, json!("admin")),
            ),
            401,
        ),
        (
            "wrong audience",
            jwt(
                "test-key-1",
                claims("https://issuer.test/", "other", now + 600, json!("admin")),
            ),
            401,
        ),
        (
            "expired",
            jwt(
                "test-key-1",
                claims("https://issuer.test/", "aof", now - 3600, json!("admin")),
            ),
            401,
        ),
        (
            "unknown kid",
            jwt(
                "nope",
                claims("https://issuer.test/", "aof", now + 600, json!("admin")),
            ),
            401,
        ),
        (
            "no role",
            jwt(
                "test-key-1",
                claims("https://issuer.test/", "aof", now + 600, json!(["x"])),
            ),
            403,
        ),
    ] {
        let (st, b) = req("GET", &format!("{url}/sessions"), Some(&token), None, &[]).await;
        assert_eq!(st, want, "{what}: {b}");
    }
    // Tampered signature.
    let mut bad = good.clone();
    bad.pop();
    bad.push(if good.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        req("GET", &format!("{url}/sessions"), Some(&bad), None, &[])
            .await
            .0,
        401
    );
    assert_no_secret("coordinator log", &coord.log(), &[&good]);
}
