//! OIDC JWTs: issuer, audience, expiry, kid and role claim.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

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

// ---------------------------------------------------------------------------------------
// Issue #20: nbf, empty sub, plain-http JWKS, and no lock across a JWKS fetch.
// ---------------------------------------------------------------------------------------

const ISSUER: &str = "https://issuer.test/";

/// An operator token for the test issuer, with `extra` claims merged over the defaults
/// (a `null` removes the claim).
fn token(kid: &str, extra: Value) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"iss": ISSUER, "aud": "aof", "exp": now + 600, "sub": "user|1", "roles": ["operator"]});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    jwt(kid, claims)
}

fn oidc_env(jwks: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AOF_OIDC_ISSUER", ISSUER.into()),
        ("AOF_OIDC_AUDIENCE", "aof".into()),
        ("AOF_OIDC_JWKS", jwks.into()),
    ]
}

async fn oidc_coordinator(dir: &Path, jwks: &str) -> (Coordinator, Keys) {
    let env = oidc_env(jwks);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    coordinator(dir, &env).await
}

/// `POST /runs` with a bearer token: what an OIDC user with the operator role may do.
async fn create_run(url: &str, token: &str) -> (u16, Value) {
    let body = json!({"type": "start_session", "agent_name": "t", "parameters": {"prompt": "p"}});
    req("POST", &format!("{url}/runs"), Some(token), Some(body), &[]).await
}

async fn run_count(url: &str, admin: &str) -> usize {
    let (st, b) = req("GET", &format!("{url}/runs"), Some(admin), None, &[]).await;
    assert_eq!(st, 200, "{b}");
    b.as_array()
        .or_else(|| b["runs"].as_array())
        .unwrap_or_else(|| panic!("runs list: {b}"))
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_token_before_nbf_is_refused() {
    let dir = tempdir();
    let (coord, keys) = oidc_coordinator(dir.path(), &fixture("jwks.json")).await;
    let url = coord.url.clone();
    let now = chrono::Utc::now().timestamp();
    // Control: the same token with a past `nbf` is good.
    let (st, b) = create_run(&url, &token("test-key-1", json!({"nbf": now - 10}))).await;
    assert_eq!(st, 201, "{b}");

    // Attack: a token not valid for another hour (issued ahead, or a stolen future one).
    let runs = run_count(&url, &keys.admin).await;
    let early = token("test-key-1", json!({"nbf": now + 3600, "exp": now + 7200}));
    let (st, b) = create_run(&url, &early).await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );
    assert!(b["detail"].as_str().unwrap().contains("nbf"), "{b}");
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");
    assert_no_secret("coordinator log", &coord.log(), &[&early]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_empty_sub_is_refused() {
    let dir = tempdir();
    let (coord, keys) = oidc_coordinator(dir.path(), &fixture("jwks.json")).await;
    let url = coord.url.clone();
    let (st, b) = create_run(&url, &token("test-key-1", json!({}))).await;
    assert_eq!(st, 201, "control: {b}");

    // Attack: a token naming nobody (every such token would be the same "subject", so
    // one runner id binding or audit line would stand for all of them).
    let runs = run_count(&url, &keys.admin).await;
    for (what, extra) in [
        ("empty sub", json!({"sub": ""})),
        ("blank sub", json!({"sub": "  "})),
        ("no sub", json!({"sub": null})),
        ("sub not a string", json!({"sub": 7})),
    ] {
        let (st, b) = create_run(&url, &token("test-key-1", extra)).await;
        assert_eq!(
            (st, b["code"].as_str()),
            (401, Some("unauthenticated")),
            "{what}: {b}"
        );
    }
    assert_eq!(run_count(&url, &keys.admin).await, runs, "nothing written");
}

/// A JWKS server on loopback. Fetch 1 (at the coordinator's start) gets `test-key-1`;
/// fetch 2 is held open until the test says so, then gets `test-key-1` and
/// `test-key-2` (the same key material under a new kid: a rotation).
struct Jwks {
    url: String,
    hits: Arc<AtomicUsize>,
    /// One message per fetch that is being held.
    held: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: Arc<tokio::sync::Notify>,
    _server: tokio::task::JoinHandle<()>,
}

impl Jwks {
    async fn start(addr: &str) -> Jwks {
        let v1: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
        let mut rotated = v1["keys"][0].clone();
        rotated["kid"] = json!("test-key-2");
        let v2 = json!({"keys": [v1["keys"][0].clone(), rotated]});
        let hits = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let (held_tx, held) = tokio::sync::mpsc::unbounded_channel();
        let (h, r) = (hits.clone(), release.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (h, r, held_tx, v1, v2) = (
                    h.clone(),
                    r.clone(),
                    held_tx.clone(),
                    v1.clone(),
                    v2.clone(),
                );
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::Json(v1);
                    }
                    let released = r.notified();
                    let _ = held_tx.send(());
                    released.await;
                    axum::Json(v2)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let local = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Jwks {
            url: format!("http://{local}/jwks"),
            hits,
            held,
            release,
            _server: server,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_slow_jwks_fetch_blocks_no_other_request() {
    let dir = tempdir();
    let mut jwks = Jwks::start("127.0.0.1:0").await;
    let (coord, keys) = oidc_coordinator(dir.path(), &jwks.url).await;
    let url = coord.url.clone();
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 1, "fetched at start");

    // A token with a new kid makes the coordinator refetch; the JWKS server holds that
    // fetch open.
    let rotated = token("test-key-2", json!({}));
    let first = tokio::spawn({
        let (url, t) = (url.clone(), rotated.clone());
        async move { req("GET", &format!("{url}/auth/me"), Some(&t), None, &[]).await }
    });
    tokio::time::timeout(PATIENCE, jwks.held.recv())
        .await
        .expect("no refetch for a token with an unknown kid")
        .expect("the JWKS server runs");
    // A second request with the new kid joins that fetch instead of starting another.
    let second = tokio::spawn({
        let (url, t) = (url.clone(), rotated.clone());
        async move { req("GET", &format!("{url}/auth/me"), Some(&t), None, &[]).await }
    });

    // While the fetch is held: a token with a known kid and an API key are answered.
    let known = token("test-key-1", json!({"sub": "user|2"}));
    let (st, b) = req("GET", &format!("{url}/auth/me"), Some(&known), None, &[]).await;
    assert_eq!((st, b["subject"].as_str()), (200, Some("user|2")), "{b}");
    let (st, b) = req(
        "GET",
        &format!("{url}/sessions"),
        Some(&keys.viewer),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200, "{b}");
    // ... and the fetch is still held: those answers did not wait for it.
    assert!(
        !first.is_finished(),
        "the refetch request waits for the fetch"
    );
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2, "one refetch in flight");

    // Released: both requests with the new kid get in, on that one fetch.
    jwks.release.notify_waiters();
    for h in [first, second] {
        let (st, b) = h.await.unwrap();
        assert_eq!((st, b["subject"].as_str()), (200, Some("user|1")), "{b}");
    }
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 2);

    // Another unknown kid within the minute: refused at once, no new fetch.
    let (st, b) = req(
        "GET",
        &format!("{url}/auth/me"),
        Some(&token("test-key-3", json!({}))),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "{b}"
    );
    assert_eq!(
        jwks.hits.load(Ordering::SeqCst),
        2,
        "refetches are rate-limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_http_jwks_non_loopback_is_refused_at_start() {
    let dir = tempdir();
    // A JWKS server that would answer: on Linux, connecting to 0.0.0.0 reaches this
    // host, so only the plain-http rule (0.0.0.0 is not a loopback address) can
    // refuse it, before any fetch.
    let jwks = Jwks::start("0.0.0.0:0").await;
    let port = jwks
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/jwks");
    let data = dir.path().join("coord");
    for src in [
        format!("http://0.0.0.0:{port}/jwks"),
        "http://issuer.example/.well-known/jwks.json".to_string(),
    ] {
        let mut env = vec![("AUTH_ENABLED", "true".to_string())];
        env.extend(oidc_env(&src));
        // Killed if it starts anyway (the bug this guards against).
        let run = tokio::process::Command::new(BIN)
            .args(["coordinator", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .envs(env)
            .env_remove("AOF_API_KEY")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(PATIENCE, run)
            .await
            .unwrap_or_else(|_| panic!("the coordinator started with JWKS {src}"))
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{src}: {err}");
        assert!(
            err.contains("auth.oidc_jwks") && err.contains("plain http") && err.contains(&src),
            "{src}: {err}"
        );
    }
    assert_eq!(jwks.hits.load(Ordering::SeqCst), 0, "never fetched");
    assert!(
        !data.join("observability.db").exists(),
        "refused before the store opened"
    );

    // The same server on loopback is accepted (a local issuer or test double).
    let local = Jwks::start("127.0.0.1:0").await;
    let (coord, _) = oidc_coordinator(&dir.path().join("ok"), &local.url).await;
    let (st, _) = req(
        "GET",
        &format!("{}/auth/me", coord.url),
        Some(&token("test-key-1", json!({}))),
        None,
        &[],
    )
    .await;
    assert_eq!(st, 200);
}
